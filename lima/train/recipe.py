"""Training recipes: one YAML file per job, validated before anything heavy is imported.

A recipe holds every number of the paper's recipe as a key, so ``key=value`` on the command
line can change any of them (dotted keys reach nested tables: ``generation.max_new_tokens=64``).
This module needs only pydantic and PyYAML; it never imports torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lima.errors import ConfigError

#: The epochs the paper chose its checkpoint from, by hand, on the 50 dev prompts.
PAPER_KEEP_EPOCHS = [5, 6, 7, 8, 9, 10]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Generation(_Strict):
    """The paper's sampling: nucleus p 0.9, temperature 0.7, a repetition penalty of 1.2 applied
    to the tokens generated so far (not the prompt), at most 2048 new tokens, stop at EOT."""

    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(0.7, gt=0)
    repetition_penalty: float = Field(1.2, ge=1)
    max_new_tokens: int = Field(2048, ge=1)
    batch_size: int = Field(8, ge=1, description="dev prompts per generate() call on each rank")


class TinyModel(_Strict):
    """A random-init LLaMA built from this config, with a byte-level BPE tokenizer trained on
    ``train_file``; for tests and demos on a CPU."""

    vocab_size: int = Field(1024, ge=300, description="tokenizer vocabulary before EOT and pad")
    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(176, ge=8)
    num_hidden_layers: int = Field(4, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    max_position_embeddings: int = Field(2048, ge=16)


class Recipe(_Strict):
    name: str
    train_file: Path
    dev_file: Path | None = None
    output_dir: Path
    model_name_or_path: str | None = None
    tiny_model: TinyModel | None = None
    architecture: Path | None = Field(
        None, description="a config.json for `lima-train estimate` when the weights are elsewhere"
    )
    deepspeed: Path | None = Field(None, description="DeepSpeed JSON config; null = no DeepSpeed")
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool | Literal["auto"] = Field(
        True, description='"auto": off when `lima-train estimate` finds the activations fit'
    )
    gpu_memory_gib: float = Field(
        80.0, gt=0, description="memory per device, for gradient_checkpointing: auto"
    )
    batching: Literal["auto", "padding_free", "group_by_length", "padded"] = Field(
        "auto",
        description="how a micro-batch is laid out; auto = padding_free on CUDA, "
        "group_by_length elsewhere",
    )

    # Conversation format.
    eot_token: str = "<EOT>"
    pad_token: str = "<pad>"
    loss_on: Literal["assistant", "all"] = "assistant"
    max_length: int = Field(2048, ge=16)
    min_supervised_tokens: int = Field(
        64, ge=1, description="trimming keeps at least this many response tokens (or all of them)"
    )

    # Optimisation.
    epochs: int = Field(15, ge=1)
    global_batch_size: int = Field(32, ge=1)
    micro_batch_size: int = Field(1, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    final_learning_rate: float = Field(1e-6, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    residual_dropout: float = Field(0.3, ge=0, lt=1)
    seed: int = 42

    # Checkpoints and logs.
    keep_epochs: list[int] = Field(default_factory=lambda: list(PAPER_KEEP_EPOCHS))
    resumable_checkpoints: int = Field(
        1, ge=0, description="full DeepSpeed checkpoints (optimizer included) kept for resuming"
    )
    checkpoint_every_epochs: int | None = Field(
        None,
        ge=1,
        description="a resumable checkpoint every K epochs; null = at the last kept epoch "
        "only; always at the end",
    )
    resume_from_checkpoint: str | None = Field(None, description='a checkpoint dir, or "last"')
    logging_steps: int = Field(1, ge=1)
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    generation: Generation = Field(default_factory=Generation)  # type: ignore[arg-type]
    dev_generation: Literal["after", "in_training", "none"] = Field(
        "after",
        description="after: from each epoch-K/ once training is done, one checkpoint per "
        "device (lima-eval generate's code); in_training: at each kept epoch inside ZeRO-3",
    )
    dev_generation_backend: Literal["transformers", "vllm"] = "transformers"
    peak_tflops: float | None = Field(
        None, gt=0, description="peak dense TFLOP/s per device for MFU; null = from the GPU name"
    )

    # The topology the recipe is written for: `lima-train estimate` and `check` use it; the
    # real world size comes from the launcher.
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_model(self) -> Recipe:
        if (self.model_name_or_path is None) == (self.tiny_model is None):
            raise ValueError("set exactly one of model_name_or_path and tiny_model")
        if self.final_learning_rate > self.learning_rate:
            raise ValueError("final_learning_rate is above learning_rate")
        if 2 * self.min_supervised_tokens + 2 > self.max_length:
            raise ValueError("max_length leaves no room for min_supervised_tokens of response")
        if any(k < 0 or k > self.epochs for k in self.keep_epochs):
            raise ValueError(f"keep_epochs must lie in 0..epochs ({self.epochs})")
        return self

    def gradient_accumulation(self, world_size: int) -> int:
        """Accumulation steps so that world × micro × accumulation = global batch, exactly."""
        per_step = world_size * self.micro_batch_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"recipe {self.name!r}: global_batch_size {self.global_batch_size} is not a "
                f"multiple of world size {world_size} × micro_batch_size "
                f"{self.micro_batch_size} = {per_step}; change micro_batch_size or the number "
                "of ranks"
            )
        return self.global_batch_size // per_step

    def deepspeed_config(self) -> dict[str, Any] | None:
        if self.deepspeed is None:
            return None
        return load_deepspeed_config(self.deepspeed)


def resumable_epochs(recipe: Recipe) -> list[int]:
    """The epochs that end with a full resumable checkpoint: every ``checkpoint_every_epochs``
    (default: the last kept epoch only) and always the last; none if
    ``resumable_checkpoints`` is 0."""
    if not recipe.resumable_checkpoints:
        return []
    if recipe.checkpoint_every_epochs:
        every = range(
            recipe.checkpoint_every_epochs, recipe.epochs + 1, recipe.checkpoint_every_epochs
        )
        chosen = set(every)
    else:
        chosen = {max(recipe.keep_epochs)} if recipe.keep_epochs else set()
    chosen.discard(0)
    return sorted(chosen | {recipe.epochs})


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """``key=value`` pairs onto the recipe's mapping; values are read as YAML scalars/lists."""
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a table in {source}")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return out


#: Keys that hold a file or folder; relative ones in a recipe resolve against its folder.
PATH_KEYS = ("train_file", "dev_file", "output_dir", "architecture", "deepspeed")


def _resolve_paths(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The recipe's relative paths made absolute against the recipe's own folder, as the data
    config's are, so a recipe means the same from any working directory. ``model_name_or_path``
    is a Hub id unless it starts with ``./`` or ``../`` (then it is a folder beside the recipe)
    or is absolute. Overrides on the command line are left as given (relative to the working
    directory, where the user typed them)."""
    base = path.absolute().parent
    out = dict(data)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            out[key] = os.path.normpath(base / value)
    model = out.get("model_name_or_path")
    if isinstance(model, str) and model.startswith(("./", "../")):
        out["model_name_or_path"] = os.path.normpath(base / model)
    return out


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; errors name the file and the key. Relative paths
    in the file resolve against the file's folder (see ``PATH_KEYS``)."""
    text = _read_text(path, "recipe")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        # PyYAML's own message quotes the offending line under it; keep one line.
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of keys, got {type(data).__name__}")
    data = _resolve_paths(data, path)
    data = apply_overrides(data, overrides or [], str(path))
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(recipe)'}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


#: Keys a DeepSpeed config must leave to the recipe ("auto"), so the two never disagree.
_AUTO_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")


def _read_text(path: Path, what: str) -> str:
    """A config file's text (a UTF-8 byte-order mark allowed); a missing file, a folder or
    bytes that are not UTF-8 are one-line errors that name the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a {what} file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: byte {e.start}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None


def load_deepspeed_config(path: Path) -> dict[str, Any]:
    text = _read_text(path, "DeepSpeed config")
    try:
        config: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a DeepSpeed config is a JSON object")
    for key in _AUTO_KEYS:
        if config.get(key, "auto") != "auto":
            raise ConfigError(
                f'{path}: {key} must be "auto"; the recipe\'s global_batch_size and '
                "micro_batch_size set it"
            )
    zero = config.get("zero_optimization", {})
    if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save"):
        raise ConfigError(
            f"{path}: zero_optimization.stage3_gather_16bit_weights_on_model_save must be true, "
            "or the per-epoch checkpoints would not load without DeepSpeed"
        )
    if "optimizer" in config:
        raise ConfigError(
            f'{path}: remove "optimizer"; lima builds AdamW itself (DeepSpeedCPUAdam under '
            "offload) with no weight decay on norms and biases, and logs the lr each step used"
        )
    if "scheduler" in config:
        raise ConfigError(
            f'{path}: remove "scheduler"; lima sets the paper\'s linear '
            "learning_rate → final_learning_rate schedule itself"
        )
    return config
