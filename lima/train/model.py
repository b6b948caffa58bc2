"""What LIMA changes in a LLaMA-family model: an EOT special token (with a distinct pad), new
embedding rows set to the mean of the old ones (also under ZeRO-3, where every rank holds only a
shard), EOT as the model's end of sequence, and residual dropout rising over the layers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lima.train.recipe import Recipe, TinyModel


def _zero3_gathered(params: list[nn.Parameter]) -> contextlib.AbstractContextManager[Any]:
    """Gather ZeRO-3 shards so rank 0 can write whole tensors; a no-op without ZeRO-3."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=0)
    return contextlib.nullcontext()


def add_special_tokens(tok: Any, eot: str, pad: str) -> int:
    """Adds EOT, and a pad token distinct from EOT when the tokenizer lacks one. Returns the
    vocabulary size before, i.e. the first new row of the embeddings."""
    before = len(tok)
    if eot not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [eot]})
    if tok.pad_token is None or tok.pad_token == eot:
        if pad == eot:
            raise ValueError("pad_token must differ from eot_token")
        tok.add_special_tokens({"pad_token": pad})
    # EOT is the chat model's end of sequence: generation stops there, and transformers'
    # Trainer copies the tokenizer's eos into the model config.
    tok.eos_token = eot
    return before


def chat_template_in_config(tok: Any) -> None:
    """Makes ``tok.save_pretrained`` also write its chat template into tokenizer_config.json.
    transformers writes it to chat_template.jinja only; tools that read the config (older vLLM,
    TGI, lm-eval) would find no template there."""
    import json

    from lima.io import write_text

    save = tok.save_pretrained

    def save_pretrained(directory: Any, *args: Any, **kwargs: Any) -> Any:
        saved = save(directory, *args, **kwargs)
        config = Path(directory) / "tokenizer_config.json"
        if tok.chat_template and config.exists():
            data = json.loads(config.read_text(encoding="utf-8"))
            data["chat_template"] = tok.chat_template
            write_text(config, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return saved

    tok.save_pretrained = save_pretrained


def resize_with_mean_init(model: Any, old_rows: int, new_rows: int) -> None:
    """Grows the input and output embeddings to ``new_rows`` and sets every row from
    ``old_rows`` on to the mean of the rows before it."""
    if new_rows == old_rows:
        return
    model.resize_token_embeddings(new_rows, mean_resizing=False)
    weights = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight is not weights[0]:
        weights.append(out.weight)
    with _zero3_gathered(weights):
        rank0 = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
        if rank0 or not any(hasattr(w, "ds_id") for w in weights):
            with torch.no_grad():
                for w in weights:
                    w[old_rows:] = w[:old_rows].float().mean(0).to(w.dtype)


def set_eot(model: Any, eot_id: int, pad_id: int) -> None:
    for cfg in (model.config, model.generation_config):
        if cfg is not None:
            cfg.eos_token_id = eot_id
            cfg.pad_token_id = pad_id


# --- residual dropout ---------------------------------------------------------------------


class ResidualDropout(nn.Module):
    """Dropout on a sub-block's output, just before it is added to the residual stream."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training) if self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


def _apply_residual_dropout(module: nn.Module, _args: Any, output: Any) -> Any:
    drop: ResidualDropout = module.residual_dropout  # type: ignore[assignment]
    if isinstance(output, tuple):
        return (drop(output[0]), *output[1:])
    return drop(output)


#: Where LLaMA-family decoder layers keep the two sub-blocks whose outputs join the residual.
_ATTENTION = ("self_attn", "attention", "attn")
_MLP = ("mlp", "feed_forward", "block_sparse_moe")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    for candidate in (model, getattr(model, "model", None), getattr(model, "base_model", None)):
        if candidate is None:
            continue
        for name in ("layers", "model.layers"):
            node: Any = candidate
            for part in name.split("."):
                node = getattr(node, part, None)
            if isinstance(node, nn.ModuleList) and len(node):
                return node
    raise ValueError(f"{type(model).__name__}: no decoder layers found (model.layers)")


def _child(layer: nn.Module, names: tuple[str, ...]) -> nn.Module:
    for name in names:
        sub = getattr(layer, name, None)
        if isinstance(sub, nn.Module):
            return sub
    raise ValueError(f"{type(layer).__name__}: none of {names} found")


def residual_dropout_rates(n_layers: int, p_last: float) -> list[float]:
    """p for each layer, rising linearly from 0.0 at the bottom to ``p_last`` at the top."""
    if n_layers == 1:
        return [p_last]
    return [p_last * i / (n_layers - 1) for i in range(n_layers)]


def add_residual_dropout(model: nn.Module, p_last: float) -> list[float]:
    """Installs residual dropout on every decoder layer's attention and MLP output. The dropout
    modules hold no parameters, so checkpoints are unchanged; ``model.eval()`` turns them off."""
    layers = decoder_layers(model)
    rates = residual_dropout_rates(len(layers), p_last)
    for layer, p in zip(layers, rates, strict=True):
        for sub in (_child(layer, _ATTENTION), _child(layer, _MLP)):
            if hasattr(sub, "residual_dropout"):
                raise ValueError("residual dropout is already installed")
            sub.add_module("residual_dropout", ResidualDropout(p))
            sub.register_forward_hook(_apply_residual_dropout)
    return rates


def residual_dropout_modules(model: nn.Module) -> Iterator[ResidualDropout]:
    for m in model.modules():
        if isinstance(m, ResidualDropout):
            yield m


# --- the tiny random-init model -----------------------------------------------------------


def tiny_config(spec: TinyModel, vocab_size: int) -> Any:
    """The LLaMA config of a ``tiny_model`` recipe entry (untied input and output embeddings)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
    )


def build_tiny_base(recipe: Recipe, texts: list[str], out: Path) -> None:
    """Writes a random-init LLaMA and a byte-level BPE tokenizer trained on ``texts`` to
    ``out`` (a directory ``from_pretrained`` loads), deterministically from the recipe's seed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    spec: TinyModel = recipe.tiny_model  # type: ignore[assignment]
    specials = ["<unk>", "<s>", "</s>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tok.model_max_length = recipe.max_length
    config = tiny_config(spec, len(tok))
    config.bos_token_id, config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(config)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
