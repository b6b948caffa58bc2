"""``lima-train``: fine-tune with the paper's recipe.

    lima-train --config training/recipes/NAME.yaml [key=value ...]
    lima-train estimate --config training/recipes/NAME.yaml [key=value ...]
    lima-train check [--nodes N --gpus-per-node G] training/recipes/*.yaml [key=value ...]
    lima-train picks RUN_DIR

The first form trains; run it as is for one process, or under ``torchrun``, ``deepspeed`` or
``accelerate launch`` (``-m lima.train``) for many ranks and nodes. With ``--dry-run`` every rank
joins the process group, prints its environment and stops. Relative paths in a recipe resolve
against the recipe's folder. Exit codes: 0 done, 1 bad input, 2 bad usage.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from lima import commands
from lima.errors import LimaError
from lima.train.recipe import Recipe, load_recipe

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

_OVERRIDES_HELP = "key=value pairs that override the recipe's keys (dotted for nested ones)"
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="a recipe YAML file")]
Overrides = Annotated[list[str] | None, typer.Argument(help=_OVERRIDES_HELP, show_default=False)]


def _fail(e: BaseException) -> NoReturn:
    """One line and exit 1 (bad input), or 2 for a ``commands.UsageError`` (bad usage)."""
    commands.fail(e)


train_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@train_app.command(help=__doc__)
def train(
    config: ConfigOpt,
    overrides: Overrides = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="join the launcher's process group, print each rank's environment and the "
            "batch arithmetic, and exit without loading a model",
        ),
    ] = False,
) -> None:
    try:
        recipe = load_recipe(config, overrides)
        if dry_run:
            from lima.train.dryrun import dry_run as rehearse

            rehearse(recipe)
            return
        from lima.train.quiet import import_deepspeed
        from lima.train.run import run

        import_deepspeed()
        summary = run(recipe)
    except (LimaError, OSError) as e:
        _fail(e)
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        t = Table(title=f"lima-train: {recipe.name}", show_header=False)
        for key, value in summary.items():
            t.add_row(key, json.dumps(value) if isinstance(value, list | dict) else str(value))
        console.print(t)
        console.print(
            f"checkpoints in {recipe.output_dir}/epoch-K; pick one on "
            f"{recipe.output_dir}/dev_generations.html"
        )
    if dist.is_initialized():
        dist.destroy_process_group()


tools_app = typer.Typer(
    help="Inspect recipes before launching.", add_completion=False, pretty_exceptions_enable=False
)


def _gib(n: float) -> str:
    if 0 < n < 2**30:
        return f"{n / 2**20:,.1f} MiB"
    return f"{n / 2**30:,.1f} GiB"


@tools_app.command("estimate")
def estimate_cmd(config: ConfigOpt, overrides: Overrides = None) -> None:
    """Memory per rank and per node, by phase, and the disk each epoch writes, for the recipe's
    model and topology (DeepSpeed's ZeRO-3 estimator for the model states)."""
    try:
        recipe = load_recipe(config, overrides)
        from lima.train.estimate import estimate
        from lima.train.quiet import import_deepspeed

        import_deepspeed()
        est = estimate(recipe)
    except (LimaError, OSError) as e:
        _fail(e)
    t = Table(title=f"{recipe.name}: {est.nodes} node(s) × {est.gpus_per_node} GPU(s), ZeRO-3")
    t.add_column("")
    t.add_column("per rank / node", justify="right")
    t.add_row("parameters", f"{est.parameters:,}")
    t.add_row("largest layer", f"{est.largest_layer:,}")
    t.add_row("offload optimizer / params", f"{est.offload_optimizer} / {est.offload_params}")
    t.add_row("GPU memory per rank, model states", _gib(est.gpu_bytes_per_rank))
    t.add_row(
        f"GPU memory per rank, activations (micro-batch {recipe.micro_batch_size} × "
        f"{recipe.max_length}), with / without gradient checkpointing",
        f"{_gib(est.activation_bytes_with_checkpointing)} / "
        f"{_gib(est.activation_bytes_without_checkpointing)}",
    )
    chosen = "on" if est.gradient_checkpointing else "off"
    how = "auto" if recipe.gradient_checkpointing == "auto" else "recipe"
    t.add_row(f"gradient checkpointing ({how}, {recipe.gpu_memory_gib:g} GiB per GPU)", chosen)
    t.add_row(
        "[bold]GPU memory per rank, total[/bold]",
        _gib(est.gpu_bytes_per_rank + est.activation_bytes_per_rank),
    )
    for phase, what in (
        ("load", f"each rank reads a {_gib(est.shard_bytes)} checkpoint shard"),
        ("train", "offloaded model states" if est.offload_optimizer or est.offload_params
         else "no model states on the host"),
        ("save", "rank 0 gathers the 16-bit state dict"),
        ("check", "a few tensors read lazily from safetensors"),
    ):  # fmt: skip
        t.add_row(f"host memory per node, {phase} ({what})", _gib(est.host_phases[phase]))
    t.add_row("[bold]host memory per node, peak[/bold]", _gib(est.host_bytes_per_node))
    t.add_row("disk per kept epoch (epoch-K/, 16-bit weights)", _gib(est.epoch_weights_bytes))
    t.add_row("disk per resumable checkpoint (weights + ZeRO-3 states)", _gib(est.resumable_bytes))
    per_epoch = est.disk_per_epoch(recipe.epochs)
    t.add_row("disk written, by epoch",
              ", ".join(f"{k}: {_gib(b)}" for k, b in per_epoch) or "nothing")  # fmt: skip
    t.add_row(
        f"disk at the end ({len(est.kept_epochs)} kept epochs, "
        f"{min(recipe.resumable_checkpoints, len(est.resumable_epochs))} checkpoint(s) kept)",
        _gib(len(est.kept_epochs) * est.epoch_weights_bytes
             + min(recipe.resumable_checkpoints, len(est.resumable_epochs)) * est.resumable_bytes),
    )  # fmt: skip
    console.print(t)
    console.print(
        "Model states from deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs "
        "(buffer factor 1.5); activations are a rough bound for full windows."
    )


@tools_app.command("check")
def check_cmd(
    recipes: Annotated[
        list[str], typer.Argument(help="recipe files, then key=value overrides for each")
    ],
    world_size: Annotated[
        int | None,
        typer.Option(help="ranks to check the batch for (default: the recipe's nodes × GPUs)"),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="nodes the job has (Slurm's SLURM_NNODES): an error unless the recipe's "
            "`nodes` says the same",
        ),
    ] = None,
    gpus_per_node: Annotated[
        int | None,
        typer.Option(
            min=1, help="GPUs per node the job has: an error unless the recipe's says the same"
        ),
    ] = None,
) -> None:
    """Validate recipes and their whole DeepSpeed configs (with DeepSpeed's own DeepSpeedConfig,
    "auto" filled as transformers fills it), and the batch arithmetic for the topology each
    declares (or --world-size, or the job's --nodes × --gpus-per-node); exits 1 on the first
    problem."""
    overrides = [a for a in recipes if "=" in a and not Path(a).exists()]
    paths = [Path(a) for a in recipes if a not in overrides]
    if not paths:
        _fail(commands.UsageError("lima-train check: give at least one recipe file"))
    for path in paths:
        try:
            recipe = load_recipe(path, overrides)
            _check_topology(path, recipe, nodes, gpus_per_node)
            ds = recipe.deepspeed_config()
            world = world_size or (nodes or recipe.nodes) * (gpus_per_node or recipe.gpus_per_node)
            accumulation = recipe.gradient_accumulation(world)
            if ds is not None:
                from lima.train.estimate import validate_deepspeed
                from lima.train.quiet import import_deepspeed

                import_deepspeed()
                validate_deepspeed(ds, str(recipe.deepspeed), recipe, world)
        except (LimaError, OSError) as e:
            _fail(e)
        console.print(
            f"ok {path}: {world} rank(s) × micro-batch {recipe.micro_batch_size} × "
            f"accumulation {accumulation} = {recipe.global_batch_size}"
        )


def _check_topology(path: Path, recipe: Recipe, nodes: int | None, gpus: int | None) -> None:
    """The job's nodes and GPUs per node against the recipe's: a 65B recipe written for four
    nodes must not start, unnoticed, on one."""
    from lima.errors import ConfigError

    if nodes is not None and nodes != recipe.nodes:
        raise ConfigError(
            f"{path}: recipe {recipe.name!r} is written for nodes: {recipe.nodes}, but the job "
            f"has {nodes} node(s); submit with --nodes {recipe.nodes}, or override "
            f"nodes={nodes} if the batch and memory still fit (lima-train estimate)"
        )
    if gpus is not None and gpus != recipe.gpus_per_node:
        raise ConfigError(
            f"{path}: recipe {recipe.name!r} is written for gpus_per_node: "
            f"{recipe.gpus_per_node}, but the job has {gpus} per node; override "
            f"gpus_per_node={gpus} if the batch and memory still fit (lima-train estimate)"
        )


@tools_app.command("picks")
def picks_cmd(
    run: Annotated[Path, typer.Argument(help="a lima-train output_dir (holding dev_generations/)")],
    host: commands.HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the page")] = 8767,
    token: commands.PageTokenOption = None,
) -> None:
    """Pick the checkpoint blind: serves RUN/dev_generations.html (answers shuffled per row,
    epochs shown once a row is picked) and saves every pick to
    RUN/dev_generations.picks.json beside it."""
    from lima.train.picks import PICKS
    from lima.train.picks import serve as make

    try:
        server = make(run, host, port, token)
    except (LimaError, OSError) as e:
        _fail(e)
    if server.warning:
        err_console.print(f"[yellow]{server.warning}[/yellow]", highlight=False)
    err_console.print(f"picking epochs of {run} (saved to {run / PICKS}): {server.url()}  "
                      "(Ctrl-C to stop)", highlight=False)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


_LOCAL_RANK = re.compile(r"^--local[-_]rank(=\d+)?$")


def main() -> None:
    argv = sys.argv[1:]
    # The deepspeed launcher passes --local_rank; the rank also comes in LOCAL_RANK.
    cleaned: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        m = _LOCAL_RANK.match(arg)
        if m:
            skip = m.group(1) is None
            continue
        cleaned.append(arg)
    if cleaned[:1] == ["--version"]:
        from lima import __version__

        print(f"lima-train {__version__}")
        return
    if cleaned and cleaned[0] in ("estimate", "check", "picks"):
        commands.run(functools.partial(tools_app, cleaned, prog_name="lima-train"))
    else:
        commands.run(functools.partial(train_app, cleaned, prog_name="lima-train"))
