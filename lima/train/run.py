"""A training run: transformers' Trainer on DeepSpeed, with what LIMA needs and they lack (the
EOT format, residual dropout, the 1e-5 → 1e-6 schedule, per-epoch 16-bit checkpoints checked
at the cost of a few tensors, dev generations from each saved epoch once training is done,
padding-free micro-batches, tokens/s, padding and model-FLOPs utilisation in the log)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.io import write_json, write_jsonl, write_text
from lima.train.recipe import Recipe, resumable_epochs

#: Peak dense bf16 TFLOP/s per device, by a substring of the device name (vendor data sheets).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_launcher(recipe: Recipe, env: dict[str, str]) -> None:
    """``accelerate launch`` without ``--use_deepspeed`` runs a DeepSpeed recipe with ZeRO-3's
    partitioned weights and no engine to gather them; say so before anything loads."""
    from lima.errors import ConfigError

    by_accelerate = any(k.startswith("ACCELERATE_") for k in env)
    if recipe.deepspeed and by_accelerate and env.get("ACCELERATE_USE_DEEPSPEED") != "true":
        raise ConfigError(
            f"recipe {recipe.name!r} uses DeepSpeed ({recipe.deepspeed}): launch with "
            "`accelerate launch --use_deepspeed --num_processes N -m lima.train ...`, or with "
            "torchrun / deepspeed"
        )


def init_distributed() -> tuple[int, int]:
    """Joins the launcher's process group (torchrun, deepspeed, accelerate, Slurm via torchrun),
    or makes a group of one when started without a launcher. Returns (rank, world size)."""
    import torch

    if "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def _barrier() -> None:
    import torch

    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def _all_agree(ok: bool) -> bool:
    """True on every rank when ``ok`` holds on every rank (one rank's failure stops them all
    instead of leaving the others at a barrier)."""
    import torch

    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return ok
    dev = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1 if ok else 0], device=dev)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


class OutputLock:
    """An exclusive ``flock`` on ``output_dir/.lock`` for the run's life, held by rank 0: a
    second run on the same directory stops at once instead of interleaving checkpoints."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"
        self.fh: Any = None

    def acquire(self) -> str | None:
        """None when held, else why not."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            return (
                f"{self.path.parent}: another lima-train run holds {self.path}"
                + (f" ({holder})" if holder else "")
                + "; wait for it, or give another output_dir"
            )
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self.fh = fh
        return None

    def release(self) -> None:
        if self.fh is not None:
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` (a Trainer checkpoint-N directory) cannot be resumed from, or None when it
    is complete: transformers writes trainer_state.json last, and DeepSpeed one optimizer
    shard and one RNG state per rank, all non-empty."""
    m = _CHECKPOINT.match(path.name)
    if m is None:
        return "not a checkpoint-N directory"
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "no readable trainer_state.json"
    if int(state.get("global_step", -1)) != int(m.group(1)):
        return f"trainer_state.json says step {state.get('global_step')}"
    latest = path / "latest"
    if latest.exists():
        tag = path / latest.read_text().strip()
        optim = sorted(tag.glob("*optim_states.pt")) if tag.is_dir() else []
        if not optim:
            return f"no optimizer shards in {tag.name}"
        ranks = len(optim)
    elif (path / "optimizer.pt").exists():
        optim, ranks = [path / "optimizer.pt"], 1
    else:
        return "no optimizer state"
    empty = [f.name for f in optim if f.stat().st_size == 0]
    if empty:
        return f"empty {empty[0]}"
    rng = list(path.glob("rng_state*.pth"))
    if ranks > 1 and len(rng) < ranks:
        return f"{len(rng)} RNG states for {ranks} ranks"
    return None


def last_complete_checkpoint(ckpt_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint under ``ckpt_dir``, and the newer ones passed over as
    torn (with why), newest first."""
    found = sorted(
        ((int(m.group(1)), d) for d in ckpt_dir.glob("checkpoint-*")
         if d.is_dir() and (m := _CHECKPOINT.match(d.name))),
        reverse=True,
    )  # fmt: skip
    torn: list[tuple[Path, str]] = []
    for _, d in found:
        why = checkpoint_problem(d)
        if why is None:
            return d, torn
        torn.append((d, why))
    return None, torn


def optimizer_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's two parameter groups, the same for every recipe: weight decay on the weights,
    none on norms and biases (transformers' own rule, applied here also under offload)."""
    from transformers import Trainer

    decay = set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]


def mean_loss_over_steps(log_history: list[dict[str, Any]]) -> tuple[float | None, int]:
    """The mean loss per optimizer step over every logged step of the run (the log survives a
    resume in trainer_state.json), each logged mean weighted by the steps it covers."""
    rows = sorted((int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e)
    total, prev = 0.0, 0
    for step, loss in rows:
        if step <= prev:
            continue
        total += loss * (step - prev)
        prev = step
    return (total / prev if prev else None), prev


def model_flops_per_token(config: Any, n_params: int, seq_len: float) -> float:
    """Training FLOPs per token: 6 per weight (forward and backward) plus attention's
    12 · layers · hidden · sequence length (the PaLM paper's appendix B)."""
    return 6.0 * n_params + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_flops(recipe: Recipe) -> float | None:
    import torch

    if recipe.peak_tflops:
        return recipe.peak_tflops * 1e12
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12
    return None


def build_trainer_class() -> Any:
    import torch
    from transformers import Trainer

    from lima.train.data import LENGTHS
    from lima.train.schedule import LimaLinearLR

    class LimaTrainer(Trainer):
        """Trainer with the paper's schedule, one optimizer rule for every recipe, and
        throughput and padding accounting."""

        lima_final_lr: float = 0.0
        lima_flops: tuple[Any, int] | None = None
        lima_peak: float | None = None
        lima_offload: bool = False
        _lima_tokens = 0.0
        _lima_positions = 0.0
        _lima_flops_done = 0.0
        _lima_since: float | None = None

        def create_optimizer(self, model: Any = None) -> Any:
            """AdamW with ``optimizer_groups``: torch's (fused on CUDA), or DeepSpeedCPUAdam in
            AdamW mode when the optimizer lives on the host (ZeRO offload)."""
            if self.optimizer is None:
                args = self.args
                groups = optimizer_groups(model or self.model, args.weight_decay)
                common: dict[str, Any] = {
                    "lr": args.learning_rate,
                    "betas": (args.adam_beta1, args.adam_beta2),
                    "eps": args.adam_epsilon,
                }
                if self.lima_offload:
                    from deepspeed.ops.adam import DeepSpeedCPUAdam

                    self.optimizer = DeepSpeedCPUAdam(groups, adamw_mode=True, **common)
                else:
                    fused = torch.cuda.is_available()
                    self.optimizer = torch.optim.AdamW(groups, fused=fused, **common)
            return self.optimizer

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                self.lr_scheduler = LimaLinearLR(  # type: ignore[assignment]
                    optimizer or self.optimizer, num_training_steps, self.lima_final_lr
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            lengths = inputs.pop(LENGTHS).double()
            tokens = float(lengths.sum())
            self._lima_tokens += tokens
            self._lima_positions += float(inputs["input_ids"].numel())
            if self.lima_flops is not None:
                cfg, n = self.lima_flops
                # Each sequence costs 6N·T plus attention's 12·L·d·T².
                flops = float(
                    6.0 * n * tokens
                    + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * float((lengths**2).sum())
                )
                self._lima_flops_done += flops
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs:
                now = time.perf_counter()
                counts = torch.tensor(
                    [self._lima_tokens, self._lima_positions, self._lima_flops_done],
                    dtype=torch.float64,
                )
                if torch.distributed.is_initialized():
                    dev = self.args.device if self.args.device.type == "cuda" else "cpu"
                    counts = counts.to(dev)
                    torch.distributed.all_reduce(counts)
                    counts = counts.cpu()
                self._lima_tokens = self._lima_positions = self._lima_flops_done = 0.0
                if counts[1] > 0:
                    logs["padding_fraction"] = round(1.0 - float(counts[0] / counts[1]), 4)
                since, self._lima_since = self._lima_since, now
                if since is not None:
                    dt = max(now - since, 1e-9)
                    logs["tokens_per_s"] = round(float(counts[0]) / dt, 2)
                    if self.lima_peak:
                        world = self.args.world_size
                        logs["mfu"] = round(float(counts[2]) / dt / (self.lima_peak * world), 4)
            super().log(logs, *args, **kwargs)

    return LimaTrainer


def _mark_first_step(trainer: Any) -> None:
    trainer._lima_since = time.perf_counter()


def build_callbacks(ctx: RunContext) -> list[Any]:
    from transformers import TrainerCallback

    class Callbacks(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            _mark_first_step(ctx.trainer)
            if 0 in ctx.recipe.keep_epochs and state.global_step == 0:
                ctx.epoch_end(0)
                _mark_first_step(ctx.trainer)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs and "loss" in logs:
                row = {
                    "step": state.global_step,
                    "epoch": round(float(state.epoch or 0), 4),
                    "loss": logs["loss"],
                    "lr": logs.get("learning_rate"),
                    "tokens_per_s": logs.get("tokens_per_s"),
                    "padding_fraction": logs.get("padding_fraction"),
                    "mfu": logs.get("mfu"),
                    "grad_norm": logs.get("grad_norm"),
                }
                with ctx.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            epoch = round(float(state.epoch or 0))
            if epoch in ctx.recipe.keep_epochs:
                ctx.epoch_end(epoch)
            # transformers' save_strategy="epoch" asks for a save every epoch; keep the full
            # (optimizer-included) checkpoints to the recipe's epochs.
            control.should_save = epoch in ctx.resumable
            _mark_first_step(ctx.trainer)

    return [Callbacks()]


class RunContext:
    """What the per-epoch work needs: the trainer, the tokenizer, dev prompts, paths."""

    def __init__(self, recipe: Recipe, rank: int, world: int) -> None:
        self.recipe = recipe
        self.rank = rank
        self.world = world
        self.out = recipe.output_dir
        self.log_path = self.out / "train_log.jsonl"
        self.gen_dir = self.out / "dev_generations"
        self.trainer: Any = None
        self.tok: Any = None
        self.dev: list[tuple[str, list[str]]] = []
        self.eot_id = self.pad_id = -1
        self.zero3 = False
        self.probe: list[int] = []
        self.resumable = set(resumable_epochs(recipe))
        self.failed_checks: list[int] = []

    def epoch_end(self, epoch: int) -> None:
        """Saves ``epoch-K/`` (consolidated 16-bit weights, tokenizer), checks it against the
        live model a few tensors at a time (``lima.train.savecheck``), records the live logits
        on a probe, and with ``dev_generation: in_training`` generates the dev prompts."""
        import numpy as np
        import torch

        from lima.train import savecheck

        trainer = self.trainer
        target = self.out / f"epoch-{epoch}"
        tmp = self.out / f".epoch-{epoch}.tmp"
        if self.rank == 0 and tmp.exists():
            shutil.rmtree(tmp)
        _barrier()
        trainer.save_model(str(tmp))
        model = trainer.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            dev = next(model.parameters()).device
            live = model(input_ids=torch.tensor([self.probe], device=dev)).logits.float().cpu()
        model.train(was_training)
        shapes = savecheck.live_shapes(model)
        names = savecheck.pick(shapes)
        rows = savecheck.gather_live(model, names, self.rank)
        if self.rank == 0:
            (tmp / "training_args.bin").unlink(missing_ok=True)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
            result = savecheck.check_saved(target, shapes, rows)
            checks = self.out / "checks"
            checks.mkdir(exist_ok=True)
            np.save(checks / f"epoch-{epoch}-logits.npy", live.numpy())
            (checks / "probe.json").write_text(json.dumps(self.probe))
            with (checks / "save_checks.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({
                    "epoch": epoch, "ok": result.ok, "tensors_in_file": result.tensors_in_file,
                    "tensors_compared": len(result.compared), "bytes_read": result.bytes_read,
                    "max_abs_diff": result.max_abs_diff, "problems": result.problems[:20],
                }) + "\n")  # fmt: skip
            if not result.ok:
                self.failed_checks.append(epoch)
                print(f"warning: {target}: the saved weights differ from the live model: "
                      f"{'; '.join(result.problems[:3]) or f'max |diff| {result.max_abs_diff}'}",
                      file=sys.stderr)  # fmt: skip
        _barrier()
        if self.dev and self.recipe.dev_generation == "in_training":
            self._generate_in_training(epoch)
        _barrier()

    def _generate_in_training(self, epoch: int) -> None:
        from lima.train.generate import dev_generations, side_by_side

        rows = dev_generations(
            self.trainer.model,
            self.tok,
            self.dev,
            gen=self.recipe.generation,
            eot_id=self.eot_id,
            pad_id=self.pad_id,
            seed=self.recipe.seed,
            epoch=epoch,
            synced=self.zero3 and self.world > 1,
        )
        if rows is not None:
            self.gen_dir.mkdir(parents=True, exist_ok=True)
            write_jsonl(self.gen_dir / f"epoch-{epoch}.jsonl", rows)
            side_by_side(self.gen_dir, self.out / "dev_generations.html")


def generate_after_training(recipe: Recipe, epochs: list[int], rank: int, world: int) -> None:
    """Dev generations from the saved ``epoch-K/`` directories once training is done, with
    ``lima-eval generate``'s code (its backends and its resumable writer), one checkpoint per
    device at a time: rank r takes the r-th, (r+world)-th, ... epoch. Rows land in
    ``dev_generations/epoch-K.jsonl`` as the in-training path writes them."""
    from lima.evaluate import backends
    from lima.evaluate.generate import generate
    from lima.train.generate import side_by_side

    assert recipe.dev_file is not None
    gen_dir = recipe.output_dir / "dev_generations"
    raw_dir = gen_dir / "responses"
    for epoch in epochs[rank::world]:
        raw = raw_dir / f"epoch-{epoch}.jsonl"
        model = backends.load(recipe.output_dir / f"epoch-{epoch}", recipe.dev_generation_backend)
        seed = recipe.seed + 1_000_003 * epoch
        generate(model, recipe.dev_file, raw, gen=recipe.generation,
                 batch_size=recipe.generation.batch_size, seed=seed)  # fmt: skip
        del model
        rows = [json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines() if line]
        write_jsonl(gen_dir / f"epoch-{epoch}.jsonl", [{
            "id": r["id"], "epoch": epoch, "prompt": r["prompt"], "generation": r["response"],
            "stopped_at_eot": r["stopped_at_eot"], "new_tokens": r["new_tokens"],
        } for r in rows])  # fmt: skip
    _barrier()
    if rank == 0 and epochs:
        side_by_side(gen_dir, recipe.output_dir / "dev_generations.html")
    _barrier()


def _release_training(trainer: Any) -> None:
    """Frees the DeepSpeed engine, optimizer states and ZeRO-3 shards before generating, and
    turns off transformers' ZeRO-3 loading so checkpoints load whole, as a user loads them."""
    import gc

    import torch
    from transformers.integrations import deepspeed as hf_ds

    trainer.accelerator.free_memory()
    for attr in ("model_wrapped", "deepspeed", "optimizer", "lr_scheduler"):
        if hasattr(trainer, attr):
            setattr(trainer, attr, None)
    hf_ds.unset_hf_deepspeed_config()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(recipe: Recipe) -> dict[str, Any]:
    """Trains per the recipe; returns the summary written to ``output_dir/summary.json``.

    A run that stops before its first training step (a bad input file, a DeepSpeed config or
    model that does not load) leaves no ``output_dir`` behind when it made it."""
    from lima.train.data import read_conversations

    check_launcher(recipe, dict(os.environ))
    # Inputs are read before any process group forms, so a bad file is an error at once.
    rows = read_conversations(recipe.train_file)
    dev = read_conversations(recipe.dev_file) if recipe.dev_file else []
    recipe.deepspeed_config()
    fresh = not recipe.output_dir.exists()
    started: list[bool] = []
    try:
        return _run(recipe, rows, dev, started)
    except BaseException:
        if fresh and not started and int(os.environ.get("RANK", "0")) == 0:
            shutil.rmtree(recipe.output_dir, ignore_errors=True)
        raise


def _run(
    recipe: Recipe,
    rows: list[tuple[str, list[str]]],
    dev: list[tuple[str, list[str]]],
    started: list[bool],
) -> dict[str, Any]:
    rank, world = init_distributed()
    lock = OutputLock(recipe.output_dir)
    why = lock.acquire() if rank == 0 else None
    if not _all_agree(why is None):
        raise ConfigError(why or f"{recipe.output_dir}: rank 0 could not lock it")
    try:
        return _train(recipe, rank, world, rows, dev, started)
    finally:
        lock.release()


def _resolve_resume(recipe: Recipe, rank: int) -> str | None:
    """The checkpoint to resume from: ``last`` is the newest complete one; newer torn ones (a
    run killed while saving) are named and removed so the next save cannot mix with them."""
    resume = recipe.resume_from_checkpoint
    if resume != "last":
        if resume and checkpoint_problem(Path(resume)) is not None:
            raise ConfigError(f"{resume}: cannot resume: {checkpoint_problem(Path(resume))}")
        return resume
    ckpt_dir = recipe.output_dir / "checkpoints"
    found, torn = last_complete_checkpoint(ckpt_dir)
    if found is None:
        detail = f" ({len(torn)} torn: {torn[0][0].name}: {torn[0][1]})" if torn else ""
        raise ConfigError(f"{ckpt_dir}: no complete checkpoint to resume from{detail}")
    _barrier()
    if rank == 0:
        for d, why in torn:
            print(f"warning: {d}: torn ({why}); resuming from {found.name} and removing it",
                  file=sys.stderr)  # fmt: skip
            shutil.rmtree(d)
    _barrier()
    return str(found)


def _collator(recipe: Recipe, pad_id: int, cuda: bool) -> tuple[Any, str]:
    from lima.train.data import Collator, FlatCollator

    mode = recipe.batching
    if mode == "auto":
        mode = "padding_free" if cuda else "group_by_length"
    if mode == "padding_free":
        return FlatCollator(), mode
    return Collator(pad_id, 8 if cuda else None), mode


def _gradient_checkpointing(recipe: Recipe, model_path: str | Path) -> bool:
    if recipe.gradient_checkpointing != "auto":
        return bool(recipe.gradient_checkpointing)
    from transformers import AutoConfig

    from lima.train.estimate import estimate

    return estimate(recipe, AutoConfig.from_pretrained(model_path)).gradient_checkpointing


def _train(
    recipe: Recipe,
    rank: int,
    world: int,
    rows: list[tuple[str, list[str]]],
    dev: list[tuple[str, list[str]]],
    started: list[bool],
) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from lima.train.data import chat_template, check_encoding, encode_all
    from lima.train.model import (
        add_residual_dropout,
        add_special_tokens,
        build_tiny_base,
        chat_template_in_config,
        resize_with_mean_init,
        set_eot,
    )

    # The training bar stays; the per-save "Loading weights"/"Writing model shards" bars go.
    transformers.utils.logging.disable_progress_bar()
    transformers.set_seed(recipe.seed)
    out = recipe.output_dir
    accumulation = recipe.gradient_accumulation(world)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    _barrier()

    model_path: str | Path
    if recipe.tiny_model is not None:
        model_path = out / "base-model"
        if rank == 0 and not model_path.exists():
            build_tiny_base(recipe, [t for _, turns in rows for t in turns], model_path)
        _barrier()
    else:
        model_path = recipe.model_name_or_path  # type: ignore[assignment]

    tok = AutoTokenizer.from_pretrained(model_path)
    old_vocab = add_special_tokens(tok, recipe.eot_token, recipe.pad_token)
    eot_id: int = tok.convert_tokens_to_ids(recipe.eot_token)  # type: ignore[assignment]
    # Saved with every checkpoint: apply_chat_template gives the ids training used.
    tok.chat_template = chat_template(
        recipe.eot_token, tok.bos_token if tok.bos_token_id is not None else None
    )
    chat_template_in_config(tok)
    # lima trims to max_length itself; silence the tokenizer's warning about long texts.
    model_max_length, tok.model_max_length = tok.model_max_length, 10**9
    encoding = encode_all(
        tok,
        rows,
        eot_id=eot_id,
        bos_id=tok.bos_token_id,
        max_length=recipe.max_length,
        loss_on=recipe.loss_on,
        min_supervised=recipe.min_supervised_tokens,
    )
    tok.model_max_length = model_max_length
    for warning in check_encoding(encoding, recipe.train_file, recipe.loss_on):
        if rank == 0:
            print(f"warning: {warning}", file=sys.stderr)
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoding.examples]

    cuda = torch.cuda.is_available()
    resume = _resolve_resume(recipe, rank)
    if rank == 0 and not resume:
        write_text(out / "recipe.json", recipe.model_dump_json(indent=2) + "\n")
        for stale in (out / "train_log.jsonl", out / "checks" / "save_checks.jsonl"):
            stale.unlink(missing_ok=True)
    elif rank == 0 and resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        _truncate_log(out / "train_log.jsonl", int(state["global_step"]))

    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    collator, batching = _collator(recipe, tok.pad_token_id, cuda)
    checkpointing = _gradient_checkpointing(recipe, model_path)

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=recipe.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        max_grad_norm=recipe.max_grad_norm,
        warmup_steps=0,
        logging_steps=recipe.logging_steps,
        save_strategy="epoch" if recipe.resumable_checkpoints else "no",
        save_total_limit=recipe.resumable_checkpoints or None,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=recipe.dtype == "bfloat16",
        fp16=recipe.dtype == "float16",
        deepspeed=recipe.deepspeed_config(),
        gradient_checkpointing=checkpointing,
        train_sampling_strategy="group_by_length" if batching == "group_by_length" else "random",
        report_to=recipe.report_to,
        remove_unused_columns=False,
        use_cpu=not cuda,
        ddp_backend=None if cuda else "gloo",
        disable_tqdm=rank != 0,
        dataloader_num_workers=0,
        save_only_model=False,
        run_name=recipe.name,
    )
    # The TrainingArguments above switch on ZeRO-3's partitioned loading, so build the model now.
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype[recipe.dtype], attn_implementation=recipe.attn_implementation
    )
    resize_with_mean_init(model, old_vocab, len(tok))
    set_eot(model, eot_id, tok.pad_token_id)
    rates = add_residual_dropout(model, recipe.residual_dropout)

    ctx = RunContext(recipe, rank, world)
    ctx.tok, ctx.dev, ctx.eot_id, ctx.pad_id = tok, dev, eot_id, tok.pad_token_id
    ctx.zero3 = bool(args.deepspeed) and args.hf_deepspeed_config.is_zero3()
    ctx.probe = dataset[0]["input_ids"][:64]
    trainer_cls = build_trainer_class()
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tok,
        callbacks=build_callbacks(ctx),
    )
    n_params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())
    embed: Any = model.get_input_embeddings().weight
    n_embed_params = int(embed.ds_numel if hasattr(embed, "ds_numel") else embed.numel())
    trainer.lima_final_lr = recipe.final_learning_rate
    trainer.lima_flops = (model.config, n_params - n_embed_params)
    trainer.lima_peak = peak_flops(recipe)
    trainer.lima_offload = bool(args.deepspeed) and args.hf_deepspeed_config.is_offload()
    ctx.trainer = trainer

    t0 = time.perf_counter()
    started.append(True)
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - t0
    loss, loss_steps = mean_loss_over_steps(trainer.state.log_history)
    steps = trainer.state.global_step
    stage = (
        args.hf_deepspeed_config.config["zero_optimization"]["stage"] if args.deepspeed else None
    )
    kept = sorted(k for k in recipe.keep_epochs if (out / f"epoch-{k}").exists())
    gen_seconds = None
    if dev and recipe.dev_generation == "after":
        _release_training(trainer)
        del trainer, model
        ctx.trainer = None
        t1 = time.perf_counter()
        generate_after_training(recipe, kept, rank, world)
        gen_seconds = round(time.perf_counter() - t1, 1)
    summary = {
        "recipe": recipe.name,
        "world_size": world,
        "deepspeed_zero_stage": stage,
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": recipe.global_batch_size,
        "optimizer_steps": steps,
        "epochs": recipe.epochs,
        # The mean over every step of the run, the steps before a resume included.
        "train_loss": loss if loss is not None else result.training_loss,
        "train_loss_steps": loss_steps,
        "examples": len(dataset),
        "trimming": dict(sorted(encoding.counts.items())),
        "empty_responses": len(encoding.empty_responses),
        "turns_cut_before_tokenising": encoding.turns_cut,
        "supervised_tokens": encoding.supervised_tokens,
        "batching": batching,
        "gradient_checkpointing": checkpointing,
        "residual_dropout": [round(p, 4) for p in rates],
        "parameters": n_params,
        "kept_epochs": kept,
        "failed_save_checks": ctx.failed_checks,
        "dev_generation": recipe.dev_generation if dev else "none",
        "seconds": round(train_seconds, 1),
        "dev_generation_seconds": gen_seconds,
    }
    if rank == 0:
        write_json(out / "summary.json", summary)
    _barrier()
    return summary


def _truncate_log(path: Path, step: int) -> None:
    """Drops log rows past the checkpoint a run resumes from, so the log reads as one run."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    write_text(path, "".join(line + "\n" for line in kept))
