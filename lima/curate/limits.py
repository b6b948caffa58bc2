"""Bounds every source shares: control characters stripped from every turn, and a maximum turn
length (by default the paper's 2,048-token training window) past which an example is dropped.
Both are counted per pool in the build's funnel."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

# C0 controls except tab, newline and carriage return; DEL; the C1 controls.
CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\x80-\x9F]"


@dataclass
class LimitSettings:
    """``max_turn_tokens``: the longest turn kept (0: no limit); counted with the build's
    tokenizer when one is given, else estimated as characters / ``chars_per_token``."""

    max_turn_tokens: int = 2048
    chars_per_token: float = 4.0
    strip_control_chars: bool = True


def apply(
    frame: pl.DataFrame,
    settings: LimitSettings,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``frame`` with control characters removed from its turns and the examples with a turn
    over the limit taken out; the report counts both."""
    report: dict[str, Any] = {
        "examples": frame.height,
        "examples_with_control_chars": 0,
        "control_chars_removed": 0,
        "turn_too_long": 0,
    }
    if frame.height == 0:
        return frame, report
    turns = pl.col("conversations")
    if settings.strip_control_chars:
        n = frame.select(per=turns.list.eval(pl.element().str.count_matches(CONTROL)).list.sum())[
            "per"
        ]
        report["examples_with_control_chars"] = int((n > 0).sum())
        report["control_chars_removed"] = int(n.sum())
        if report["control_chars_removed"]:
            frame = frame.with_columns(
                conversations=turns.list.eval(pl.element().str.replace_all(CONTROL, ""))
            )
    if settings.max_turn_tokens > 0:
        if count_tokens is None:
            longest = frame.select(
                m=turns.list.eval(pl.element().str.len_chars()).list.max().fill_null(0)
            )["m"]
            limit_chars = math.floor(settings.max_turn_tokens * settings.chars_per_token)
            too_long = longest > limit_chars
        else:
            lists = frame["conversations"].to_list()
            flat = [t for c in lists for t in c]
            counts = iter(count_tokens(flat))
            too_long = pl.Series(
                [
                    max((next(counts) for _ in c), default=0) > settings.max_turn_tokens
                    for c in lists
                ]
            )
        report["turn_too_long"] = int(too_long.sum())
        frame = frame.filter(~too_long)
    return frame, report
