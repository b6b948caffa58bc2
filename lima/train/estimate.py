"""Memory per rank before launching, from DeepSpeed's ZeRO-3 estimator, for the recipe's model
and topology. The model is built on the meta device, so nothing is allocated or downloaded
beyond its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lima.train.recipe import Recipe


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


def validate_deepspeed(config: dict[str, Any], source: str) -> None:
    """Checks the ``zero_optimization`` block against DeepSpeed's own schema ("auto" values,
    which transformers fills in from the recipe, stand in as 1)."""
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from pydantic import ValidationError

    from lima.errors import ConfigError

    zero = {k: (1 if v == "auto" else v) for k, v in config.get("zero_optimization", {}).items()}
    try:
        DeepSpeedZeroConfig(**zero)
    except ValidationError as e:
        problems = "; ".join(
            f"zero_optimization.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


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


def estimate(recipe: Recipe) -> Estimate:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    config = model_config(recipe)
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
    # Activations with gradient checkpointing: one hidden state per layer boundary, plus one
    # layer's full activations during recomputation (~34·s·h bytes in 16-bit, Korthikanti et
    # al. 2022, without attention scores, which SDPA does not store).
    s, h = recipe.max_length, config.hidden_size
    per_seq = 2 * s * h * config.num_hidden_layers + 34 * s * h
    if not recipe.gradient_checkpointing:
        per_seq = 34 * s * h * config.num_hidden_layers
    logits = 4 * s * config.vocab_size * 2  # fp32 logits and their gradient
    activations = recipe.micro_batch_size * (per_seq + logits)
    return Estimate(
        parameters=total,
        largest_layer=largest,
        nodes=recipe.nodes,
        gpus_per_node=recipe.gpus_per_node,
        offload_optimizer=off_opt,
        offload_params=off_par,
        gpu_bytes_per_rank=float(gpu_mem),
        host_bytes_per_node=float(cpu_mem),
        activation_bytes_per_rank=float(activations),
    )
