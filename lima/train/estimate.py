"""Memory per rank and per node before launching, for the recipe's model and topology: GPU
memory from DeepSpeed's ZeRO-3 estimator plus activations, host memory per phase (load, train,
save, check), and the disk each epoch writes. The model is built on the meta device, so nothing
is allocated or downloaded beyond its config."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima.train.recipe import Recipe

#: transformers' default shard size for save_pretrained ("5GB"), assumed for a checkpoint that
#: is not on this machine.
DEFAULT_SHARD_BYTES = 5 * 10**9
#: The share of a device's memory a plan may fill (allocator fragmentation, CUDA context, NCCL).
GPU_HEADROOM = 0.9
#: Bytes per parameter of a DeepSpeed ZeRO-3 checkpoint with Adam: the 16-bit weights, fp32
#: master weights and the two moments (2 + 4 + 4 + 4); fp32 training keeps no second copy.
DS_STATE_BYTES = {"bfloat16": 14, "float16": 14, "float32": 12}
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass
class Estimate:
    parameters: int
    largest_layer: int
    nodes: int
    gpus_per_node: int
    offload_optimizer: bool
    offload_params: bool
    gpu_bytes_per_rank: float
    host_bytes_per_node: float
    activation_bytes_per_rank: float
    activation_bytes_without_checkpointing: float = 0.0
    activation_bytes_with_checkpointing: float = 0.0
    gradient_checkpointing: bool = True
    #: Host memory per node in each phase: load, train, save, check.
    host_phases: dict[str, float] = field(default_factory=dict)
    shard_bytes: float = 0.0
    #: Disk: one kept epoch-K/ (16-bit weights), one resumable checkpoint, and the epochs that
    #: write each.
    epoch_weights_bytes: float = 0.0
    resumable_bytes: float = 0.0
    kept_epochs: list[int] = field(default_factory=list)
    resumable_epochs: list[int] = field(default_factory=list)

    def disk_per_epoch(self, epochs: int) -> list[tuple[int, float]]:
        """(epoch, bytes written at its end) for each epoch that writes anything."""
        rows = []
        for k in range(epochs + 1):
            b = (self.epoch_weights_bytes if k in self.kept_epochs else 0.0) + (
                self.resumable_bytes if k in self.resumable_epochs else 0.0
            )
            if b:
                rows.append((k, b))
        return rows


def fill_auto(
    config: dict[str, Any], recipe: Recipe, world: int, hidden: int | None
) -> dict[str, Any]:
    """The DeepSpeed config with every "auto" set as transformers sets it at launch (the batch
    arithmetic, clipping, dtype; bucket sizes from the hidden size); an "auto" transformers
    would not fill is an error."""
    from lima.errors import ConfigError

    filled: dict[str, Any] = json.loads(json.dumps(config))
    accumulation = recipe.gradient_accumulation(world)
    h = hidden or 1
    values: dict[tuple[str, ...], Any] = {
        ("train_micro_batch_size_per_gpu",): recipe.micro_batch_size,
        ("gradient_accumulation_steps",): accumulation,
        ("train_batch_size",): recipe.global_batch_size,
        ("gradient_clipping",): recipe.max_grad_norm,
        ("bf16", "enabled"): recipe.dtype == "bfloat16",
        ("fp16", "enabled"): recipe.dtype == "float16",
        ("zero_optimization", "reduce_bucket_size"): h * h,
        ("zero_optimization", "stage3_prefetch_bucket_size"): int(0.9 * h * h),
        ("zero_optimization", "stage3_param_persistence_threshold"): 10 * h,
    }

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*path, key)
            if isinstance(value, dict):
                walk(value, here)
            elif value == "auto":
                if here not in values:
                    raise ConfigError(
                        f'{recipe.deepspeed}: {".".join(here)} is "auto", which transformers '
                        "does not fill in; give a value"
                    )
                node[key] = values[here]

    walk(filled, ())
    return filled


def validate_deepspeed(
    config: dict[str, Any], source: str, recipe: Recipe | None = None, world: int = 1
) -> None:
    """Checks the whole config with DeepSpeed's own ``DeepSpeedConfig`` (its batch arithmetic
    for ``world`` ranks included), after filling "auto" as transformers will; without a recipe,
    only the ``zero_optimization`` block ("auto" standing in as 1)."""
    import os
    from unittest import mock

    os.environ.setdefault("DS_ACCELERATOR", "cpu" if not _cuda() else "cuda")
    from deepspeed import comm
    from deepspeed.runtime.config import DeepSpeedConfig
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from pydantic import ValidationError

    from lima.errors import ConfigError

    def fail(e: Exception) -> None:
        if isinstance(e, ValidationError):
            msg = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
        else:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{source}: DeepSpeed rejects it: {msg}") from None

    if recipe is None:
        zero = {
            k: (1 if v == "auto" else v) for k, v in config.get("zero_optimization", {}).items()
        }
        try:
            DeepSpeedZeroConfig(**zero)
        except ValidationError as e:
            fail(e)
        return
    hidden = None
    with contextlib.suppress(OSError, ValueError):
        hidden = int(model_config(recipe).hidden_size)
    filled = fill_auto(config, recipe, world, hidden)
    hpz = filled.get("zero_optimization", {}).get("zero_hpz_partition_size", 1)
    if hpz > 1 and (recipe.gpus_per_node % hpz or world % hpz):
        raise ConfigError(
            f"{source}: zero_hpz_partition_size {hpz} must divide the GPUs per node "
            f"({recipe.gpus_per_node}) and the world size ({world})"
        )
    # DeepSpeedConfig reads the world size from the process group; stand in for the recipe's.
    with (
        mock.patch.object(comm, "get_rank", lambda *a, **k: 0),
        mock.patch.object(comm, "get_world_size", lambda *a, **k: world),
    ):
        try:
            DeepSpeedConfig(filled)
        except (ValidationError, ValueError, AssertionError, TypeError, KeyError) as e:
            fail(e)
        except Exception as e:  # DeepSpeedConfigError and the like
            if type(e).__module__.startswith("deepspeed"):
                fail(e)
            raise


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def model_config(recipe: Recipe) -> Any:
    from transformers import AutoConfig

    if recipe.tiny_model is not None:
        from lima.train.model import tiny_config

        # The trained vocabulary (its <unk>, <s>, </s> included), then EOT and pad.
        return tiny_config(recipe.tiny_model, recipe.tiny_model.vocab_size + 2)
    if recipe.architecture is not None:
        return AutoConfig.from_pretrained(recipe.architecture)
    return AutoConfig.from_pretrained(str(recipe.model_name_or_path))


def count_parameters(config: Any) -> tuple[int, int]:
    """(total parameters, parameters of the largest single module)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return total, largest


def activation_bytes(recipe: Recipe, config: Any, checkpointing: bool) -> float:
    """Activations per rank for a micro-batch of full windows: with gradient checkpointing one
    16-bit hidden state per layer boundary plus one layer's activations during recomputation
    (~34·s·h bytes, Korthikanti et al. 2022, without attention scores, which SDPA does not
    store), without it every layer's; plus the fp32 logits and their gradient."""
    s, h = recipe.max_length, config.hidden_size
    per_seq = 2 * s * h * config.num_hidden_layers + 34 * s * h
    if not checkpointing:
        per_seq = 34 * s * h * config.num_hidden_layers
    logits = 4 * s * config.vocab_size * 2
    return float(recipe.micro_batch_size * (per_seq + logits))


def shard_bytes(recipe: Recipe, weights_bytes: float) -> float:
    """The largest checkpoint shard each rank reads at load: from the checkpoint's index when
    it is on this machine, else transformers' default shard size."""
    if recipe.model_name_or_path:
        index = Path(recipe.model_name_or_path) / "model.safetensors.index.json"
        if index.exists():
            files = set(json.loads(index.read_text())["weight_map"].values())
            sizes = [
                (index.parent / f).stat().st_size for f in files if (index.parent / f).exists()
            ]
            if sizes:
                return float(max(sizes))
    return float(min(weights_bytes, DEFAULT_SHARD_BYTES))


def estimate(recipe: Recipe, config: Any = None) -> Estimate:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    from lima.train import savecheck

    config = config if config is not None else model_config(recipe)
    total, largest = count_parameters(config)
    ds = recipe.deepspeed_config() or {}
    zero = ds.get("zero_optimization", {})
    off_opt = zero.get("offload_optimizer", {}).get("device", "none") not in ("none", None)
    off_par = zero.get("offload_param", {}).get("device", "none") not in ("none", None)
    cpu_mem, gpu_mem, _ = estimate_zero3_model_states_mem_needs(
        total,
        largest,
        num_gpus_per_node=recipe.gpus_per_node,
        num_nodes=recipe.nodes,
        cpu_offload=off_opt,
        cpu_offload_params=off_par,
        zero_init=True,
    )
    with_ckpt = activation_bytes(recipe, config, True)
    without = activation_bytes(recipe, config, False)
    if recipe.gradient_checkpointing == "auto":
        fits = gpu_mem + without <= GPU_HEADROOM * recipe.gpu_memory_gib * 2**30
        checkpointing = not fits
    else:
        checkpointing = bool(recipe.gradient_checkpointing)

    # Host memory per node, by phase. Offloaded model states stay on the host throughout.
    states_on_host = float(cpu_mem) if (off_opt or off_par) else 0.0
    weights = float(total * DTYPE_BYTES[recipe.dtype])
    shard = shard_bytes(recipe, weights)
    # load: every local rank reads a checkpoint shard while ZeRO-3 partitions it; DeepSpeed's
    # zero_init term covers the largest layer being gathered on each rank.
    load = recipe.gpus_per_node * shard + float(cpu_mem if not (off_opt or off_par) else 0)
    train = states_on_host
    # save: rank 0 gathers the whole 16-bit state dict on the host to write epoch-K/.
    save = states_on_host + weights
    shapes = _meta_shapes(config)
    check = states_on_host + float(savecheck.compared_bytes(shapes, DTYPE_BYTES[recipe.dtype]))
    from lima.train.recipe import resumable_epochs

    return Estimate(
        parameters=total,
        largest_layer=largest,
        nodes=recipe.nodes,
        gpus_per_node=recipe.gpus_per_node,
        offload_optimizer=off_opt,
        offload_params=off_par,
        gpu_bytes_per_rank=float(gpu_mem),
        host_bytes_per_node=max(load, train, save, check),
        activation_bytes_per_rank=with_ckpt if checkpointing else without,
        activation_bytes_without_checkpointing=without,
        activation_bytes_with_checkpointing=with_ckpt,
        gradient_checkpointing=checkpointing,
        host_phases={"load": load, "train": train, "save": save, "check": check},
        shard_bytes=shard,
        epoch_weights_bytes=weights,
        resumable_bytes=float(total * (DS_STATE_BYTES[recipe.dtype] + DTYPE_BYTES[recipe.dtype])),
        kept_epochs=sorted(recipe.keep_epochs),
        resumable_epochs=resumable_epochs(recipe),
    )


def _meta_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {n: tuple(p.shape) for n, p in model.named_parameters()}
