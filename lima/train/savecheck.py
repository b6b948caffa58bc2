"""The per-epoch save check, at the cost of a few tensors: every saved tensor's name and shape
from the safetensors headers, and the values of a handful (the final norm, the first and last
layers' norms and a few rows of their projections, the first and last embedding rows, where
EOT and pad live) compared exactly with the live model, read lazily with ``safe_open``. Never a
whole-model reload: at 65B that was 243 GiB of fp32 on rank 0, six times a run."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Rows compared at each end of a 2-D tensor (the embeddings' last rows hold EOT and pad).
ROWS = 8

_LAYER = re.compile(r"\.layers\.(\d+)\.")


def pick(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """The tensors whose values are compared: every 1-D tensor of the first and last decoder
    layers and outside the layers (the norms), plus every 2-D tensor outside the layers
    (embeddings, head) and each layer's first and last 2-D tensor (in name order)."""
    layers = sorted({int(m.group(1)) for n in shapes if (m := _LAYER.search(n))})
    ends = {layers[0], layers[-1]} if layers else set()
    chosen: list[str] = []
    by_layer: dict[int, list[str]] = {}
    for name in sorted(shapes):
        m = _LAYER.search(name)
        if m is None:
            chosen.append(name)
        elif int(m.group(1)) in ends:
            if len(shapes[name]) == 1:
                chosen.append(name)
            else:
                by_layer.setdefault(int(m.group(1)), []).append(name)
    for names in by_layer.values():
        chosen += sorted({names[0], names[-1]})
    return sorted(chosen)


def rows_of(shape: tuple[int, ...]) -> list[int]:
    """The row indices compared for a tensor of ``shape``: all of a small one, else the first
    and last ``ROWS``."""
    if len(shape) < 2 or shape[0] <= 2 * ROWS:
        return list(range(shape[0])) if shape else []
    return [*range(ROWS), *range(shape[0] - ROWS, shape[0])]


def compared_bytes(shapes: dict[str, tuple[int, ...]], itemsize: int) -> int:
    """Bytes the check reads (and gathers) for the picked tensors."""
    total = 0
    for name in pick(shapes):
        shape = shapes[name]
        per_row = 1
        for d in shape[1:]:
            per_row *= d
        total += len(rows_of(shape)) * per_row * itemsize if shape else itemsize
    return total


def live_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Parameter shapes, the full ones under ZeRO-3 (``ds_shape``)."""
    return {n: tuple(getattr(p, "ds_shape", p.shape)) for n, p in model.named_parameters()}


def gather_live(model: Any, names: list[str], rank: int) -> dict[str, Any]:
    """The compared rows of ``names`` from the live model, on rank 0 (every rank must call it:
    under ZeRO-3 each tensor is gathered from its shards)."""
    import torch

    params = dict(model.named_parameters())
    out: dict[str, Any] = {}
    for name in names:
        p = params[name]
        if hasattr(p, "ds_id"):
            import deepspeed

            ctx: Any = deepspeed.zero.GatheredParameters([p], modifier_rank=None)
        else:
            import contextlib

            ctx = contextlib.nullcontext()
        with ctx, torch.no_grad():
            if rank == 0:
                idx = rows_of(tuple(p.shape))
                t = p.detach()
                out[name] = (t[idx] if t.dim() >= 1 else t).float().cpu().clone()
    return out


@dataclass
class SaveCheck:
    tensors_in_file: int = 0
    compared: list[str] = field(default_factory=list)
    bytes_read: int = 0
    max_abs_diff: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.max_abs_diff == 0.0


def _files(target: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (one file or a sharded index)."""
    index = target / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: target / f for name, f in weight_map.items()}
    single = target / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{target}: no model.safetensors or its index")
    from safetensors import safe_open

    with safe_open(str(single), "pt") as fh:
        return {name: single for name in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)


def check_saved(
    target: Path, shapes: dict[str, tuple[int, ...]], live: dict[str, Any]
) -> SaveCheck:
    """Compares ``target``'s safetensors with the live model's ``shapes`` (all tensors, from
    the headers) and ``live`` rows (values, exactly), reading only those rows."""
    from safetensors import safe_open

    result = SaveCheck()
    where = _files(target)
    result.tensors_in_file = len(where)
    for name in sorted(set(shapes) - set(where)):
        result.problems.append(f"{name}: missing from the saved weights")
    handles: dict[Path, Any] = {}
    try:
        for name in sorted(set(where) & set(shapes)):
            f = where[name]
            if f not in handles:
                handles[f] = safe_open(str(f), "pt").__enter__()
            sl = handles[f].get_slice(name)
            saved_shape = tuple(sl.get_shape())
            if saved_shape != shapes[name]:
                result.problems.append(f"{name}: saved {saved_shape}, live {shapes[name]}")
                continue
            if name not in live:
                continue
            idx = rows_of(saved_shape)
            if len(saved_shape) >= 2 and len(idx) < saved_shape[0]:
                head, tail = sl[:ROWS], sl[saved_shape[0] - ROWS :]
                import torch

                saved = torch.cat([head, tail])
            else:
                saved = sl[:] if saved_shape else sl[()]
            result.bytes_read += saved.numel() * saved.element_size()
            diff = float((saved.float() - live[name]).abs().max()) if saved.numel() else 0.0
            result.max_abs_diff = max(result.max_abs_diff, diff)
            result.compared.append(name)
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)
    return result
