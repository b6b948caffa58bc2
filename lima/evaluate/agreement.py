"""Agreement between two verdict sets as in the paper: tie-discounted accuracy, 1 when both
give the same verdict, 0.5 when exactly one of them says tie, 0 otherwise (one says A, the
other B)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.io import read_jsonl


def pair_score(x: str, y: str) -> float:
    if x == y:
        return 1.0
    if "tie" in (x, y):
        return 0.5
    return 0.0


def read_verdicts(path: Path) -> dict[str, str]:
    """id → verdict (a, b or tie) of a verdicts.jsonl; rows without a verdict are skipped and
    counted by the caller via the ids that are missing."""
    out: dict[str, str] = {}
    for lineno, row in read_jsonl(path):
        v = row.get("verdict")
        if v is None:
            continue
        if v not in ("a", "b", "tie"):
            raise ConfigError(f"{path}:{lineno}: verdict must be a, b or tie, got {v!r}")
        out[str(row["id"])] = v
    return out


def agreement(x: dict[str, str], y: dict[str, str]) -> dict[str, Any]:
    shared = sorted(x.keys() & y.keys())
    if not shared:
        raise ConfigError("the two verdict sets share no id")
    scores = [pair_score(x[k], y[k]) for k in shared]
    return {
        "agreement": sum(scores) / len(scores),
        "n": len(shared),
        "only_in_first": len(x.keys() - y.keys()),
        "only_in_second": len(y.keys() - x.keys()),
    }
