"""Agreement between two verdict sets as in the paper: tie-discounted accuracy, 1 when both
give the same verdict, 0.5 when exactly one of them says tie, 0 otherwise (one says A, the
other B).

Verdicts are paired by item (id, and sample when there are several per prompt) and by the two
models compared. ``a`` means "model A won", so a file whose rows name the models the other way
round (people annotated ``compare B A``) has its verdicts flipped before they are compared; a
file comparing other models shares nothing and is refused. Files without model names (written
by hand) are paired by item alone, and the result says the roles were not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.io import read_jsonl

_FLIP = {"a": "b", "b": "a", "tie": "tie"}


@dataclass(frozen=True)
class Verdicts:
    """One file's verdicts by item, each with the models it compared (A first), if named."""

    path: str
    rows: dict[str, tuple[str, tuple[str, str] | None]]
    without_verdict: int

    @property
    def named(self) -> bool:
        return bool(self.rows) and all(m is not None for _, m in self.rows.values())


def pair_score(x: str, y: str) -> float:
    if x == y:
        return 1.0
    if "tie" in (x, y):
        return 0.5
    return 0.0


def _item(row: dict[str, Any]) -> str:
    sample = row.get("sample", 0)
    return f"{row['id']}#{sample}" if isinstance(sample, int) and sample > 0 else str(row["id"])


def read_verdicts(path: Path) -> Verdicts:
    """The verdicts of a ``verdicts.jsonl`` (compare's, or an annotator's from
    ``export-annotations``). Rows without a verdict (unparsed, failed) are counted."""
    rows: dict[str, tuple[str, tuple[str, str] | None]] = {}
    without = 0
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{lineno}: expected an object")
        if "id" not in row:
            raise ConfigError(f"{path}:{lineno}: a verdicts row needs an id")
        v = row.get("verdict")
        if v is None:
            without += 1
            continue
        if v not in ("a", "b", "tie"):
            raise ConfigError(f"{path}:{lineno}: verdict must be a, b or tie, got {v!r}")
        ma, mb = row.get("model_a"), row.get("model_b")
        models = (str(ma), str(mb)) if ma is not None and mb is not None else None
        if models is not None and models[0] == models[1]:
            raise ConfigError(f"{path}:{lineno}: model_a and model_b are both {models[0]!r}")
        key = _item(row) + ("" if models is None else "\x00" + "\x00".join(sorted(models)))
        if key in rows:
            raise ConfigError(f"{path}:{lineno}: a second verdict for {_item(row)!r}")
        rows[key] = (v, models)
    return Verdicts(str(path), rows, without)


def _oriented(v: Verdicts, by_models: bool) -> dict[str, str]:
    """Item key → verdict, where with ``by_models`` ``a`` means the model whose name sorts
    first won."""
    out = {}
    for key, (verdict, models) in v.rows.items():
        if by_models and models is not None and models[0] > models[1]:
            verdict = _FLIP[verdict]
        out[key if by_models else key.split("\x00", 1)[0]] = verdict
    return out


def agreement(x: Verdicts | dict[str, str], y: Verdicts | dict[str, str]) -> dict[str, Any]:
    """Tie-discounted accuracy over the items both sets judged, with the roles matched."""
    vx, vy = (_plain(v) if isinstance(v, dict) else v for v in (x, y))
    by_models = vx.named and vy.named
    ox, oy = _oriented(vx, by_models), _oriented(vy, by_models)
    if len(ox) != len(vx.rows) or len(oy) != len(vy.rows):
        raise ConfigError("a verdicts file without model names has two verdicts for one item")
    shared = sorted(ox.keys() & oy.keys())
    if not shared:
        if by_models:
            raise ConfigError(f"{vx.path} compares {_models(vx)}, {vy.path} compares "
                              f"{_models(vy)}: no verdict on the same item and models")  # fmt: skip
        raise ConfigError(f"{vx.path} and {vy.path} share no id")
    scores = [pair_score(ox[k], oy[k]) for k in shared]
    flipped = 0
    if by_models:
        flipped = sum(vx.rows[k][1] != vy.rows[k][1] for k in shared)
    return {
        "agreement": sum(scores) / len(scores),
        "n": len(shared),
        "only_in_first": len(ox.keys() - oy.keys()),
        "only_in_second": len(oy.keys() - ox.keys()),
        "without_verdict": [vx.without_verdict, vy.without_verdict],
        "roles": "matched by model names" if by_models else "not checked (no model names)",
        "flipped": flipped,
    }


def _plain(v: dict[str, str]) -> Verdicts:
    return Verdicts("verdicts", {k: (x, None) for k, x in v.items()}, 0)


def _models(v: Verdicts) -> str:
    pairs = sorted({" vs ".join(m) for _, m in v.rows.values() if m is not None})
    return ", ".join(pairs[:3]) + (" ..." if len(pairs) > 3 else "")
