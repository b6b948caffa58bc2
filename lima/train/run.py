"""A training run: transformers' Trainer on DeepSpeed, with what LIMA needs and they lack (the
EOT format, residual dropout, the 1e-5 → 1e-6 schedule, per-epoch 16-bit checkpoints with dev
generations, tokens/s and model-FLOPs utilisation in the log)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from lima.io import write_json, write_text
from lima.train.recipe import Recipe

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

    from lima.train.schedule import LimaLinearLR

    class LimaTrainer(Trainer):
        """Trainer with the paper's schedule and throughput accounting."""

        lima_final_lr: float = 0.0
        lima_flops: tuple[Any, int] | None = None
        lima_peak: float | None = None
        _lima_tokens = 0.0
        _lima_flops_done = 0.0
        _lima_since: float | None = None

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:
                self.lr_scheduler = LimaLinearLR(  # type: ignore[assignment]
                    optimizer or self.optimizer, num_training_steps, self.lima_final_lr
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            mask = inputs["attention_mask"]
            lengths = mask.sum(1).double()
            tokens = float(lengths.sum())
            self._lima_tokens += tokens
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
                    [self._lima_tokens, self._lima_flops_done],
                    dtype=torch.float64,
                )
                if torch.distributed.is_initialized():
                    dev = self.args.device if self.args.device.type == "cuda" else "cpu"
                    counts = counts.to(dev)
                    torch.distributed.all_reduce(counts)
                    counts = counts.cpu()
                self._lima_tokens = 0.0
                self._lima_flops_done = 0.0
                since, self._lima_since = self._lima_since, now
                if since is not None:
                    dt = max(now - since, 1e-9)
                    logs["tokens_per_s"] = round(float(counts[0]) / dt, 2)
                    if self.lima_peak:
                        world = self.args.world_size
                        logs["mfu"] = round(float(counts[1]) / dt / (self.lima_peak * world), 4)
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
                    "mfu": logs.get("mfu"),
                    "grad_norm": logs.get("grad_norm"),
                }
                with ctx.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            epoch = round(float(state.epoch or 0))
            if epoch in ctx.recipe.keep_epochs:
                ctx.epoch_end(epoch)
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

    def epoch_end(self, epoch: int) -> None:
        """Saves ``epoch-K/`` (consolidated 16-bit weights, tokenizer), checks that it loads
        without DeepSpeed and gives the live model's logits, and generates the dev prompts."""
        import torch

        from lima.io import write_jsonl
        from lima.train.generate import dev_generations, side_by_side

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
        if self.rank == 0:
            (tmp / "training_args.bin").unlink(missing_ok=True)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
            self._verify(target, live, epoch)
        _barrier()
        if self.dev:
            rows = dev_generations(
                model,
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
        _barrier()

    def _verify(self, target: Path, live: Any, epoch: int) -> None:
        import numpy as np
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.integrations import deepspeed as hf_ds

        # Load as a user would, outside ZeRO-3's partitioned loading that training switched on.
        saved_ref = hf_ds._hf_deepspeed_config_weak_ref
        hf_ds.unset_hf_deepspeed_config()
        try:
            reloaded = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        finally:
            hf_ds._hf_deepspeed_config_weak_ref = saved_ref
        reloaded.eval()
        with torch.no_grad():
            logits = reloaded(input_ids=torch.tensor([self.probe])).logits.float()
        diff = float((logits - live).abs().max())
        checks = self.out / "checks"
        checks.mkdir(exist_ok=True)
        np.save(checks / f"epoch-{epoch}-logits.npy", live.numpy())
        (checks / "probe.json").write_text(json.dumps(self.probe))
        with (checks / "save_checks.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"epoch": epoch, "max_abs_logit_diff": diff}) + "\n")


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

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from lima.train.data import Collator, chat_template, encode_all
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
    dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoding.examples]

    cuda = torch.cuda.is_available()
    resume = recipe.resume_from_checkpoint
    if resume == "last":
        resume = get_last_checkpoint(str(out / "checkpoints"))
        if resume is None:
            raise FileNotFoundError(f"{out / 'checkpoints'}: no checkpoint to resume from")
    if rank == 0 and not resume:
        write_text(out / "recipe.json", recipe.model_dump_json(indent=2) + "\n")
        for stale in (out / "train_log.jsonl", out / "checks" / "save_checks.jsonl"):
            stale.unlink(missing_ok=True)
    elif rank == 0 and resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        _truncate_log(out / "train_log.jsonl", int(state["global_step"]))

    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))

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
        optim="adamw_torch_fused" if cuda else "adamw_torch",
        logging_steps=recipe.logging_steps,
        save_strategy="epoch" if recipe.resumable_checkpoints else "no",
        save_total_limit=recipe.resumable_checkpoints or None,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=recipe.dtype == "bfloat16",
        fp16=recipe.dtype == "float16",
        deepspeed=recipe.deepspeed_config(),
        gradient_checkpointing=recipe.gradient_checkpointing,
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
        data_collator=Collator(tok.pad_token_id, 8 if cuda else None),
        processing_class=tok,
        callbacks=build_callbacks(ctx),
    )
    n_params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())
    embed: Any = model.get_input_embeddings().weight
    n_embed_params = int(embed.ds_numel if hasattr(embed, "ds_numel") else embed.numel())
    trainer.lima_final_lr = recipe.final_learning_rate
    trainer.lima_flops = (model.config, n_params - n_embed_params)
    trainer.lima_peak = peak_flops(recipe)
    ctx.trainer = trainer

    t0 = time.perf_counter()
    started.append(True)
    result = trainer.train(resume_from_checkpoint=resume)
    summary = {
        "recipe": recipe.name,
        "world_size": world,
        "deepspeed_zero_stage": (
            args.hf_deepspeed_config.config["zero_optimization"]["stage"]
            if args.deepspeed
            else None
        ),
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": recipe.global_batch_size,
        "optimizer_steps": trainer.state.global_step,
        "epochs": recipe.epochs,
        "train_loss": result.training_loss,
        "examples": len(dataset),
        "trimming": dict(sorted(encoding.counts.items())),
        "supervised_tokens": sum(sum(1 for y in e.labels if y >= 0) for e in encoding.examples),
        "residual_dropout": [round(p, 4) for p in rates],
        "parameters": n_params,
        "kept_epochs": sorted(k for k in recipe.keep_epochs if (out / f"epoch-{k}").exists()),
        "seconds": round(time.perf_counter() - t0, 1),
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
