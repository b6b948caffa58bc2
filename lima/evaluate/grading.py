"""Grading one response at a time, as in the paper's ablations and its absolute analysis:

- a 1..6 helpfulness rating from a judge, several samples per prompt, summarised as a mean
  with a two-sided 95% confidence interval (Student's t);
- a Fail / Pass / Excellent label from a judge (people give the same labels in
  ``lima-eval annotate``).

A conversation's earlier turns (``context``) are shown to the judge, so each turn of a scripted
chat is graded in its place. What the judge is asked comes from the prompt set
(``lima.evaluate.prompts``: the paper's Appendix D rubric by default); replies are read by
``lima.evaluate.parsing``. An unreadable reply is asked again with a format reminder and, after
the last attempt, counted as unparsed; one the endpoint never answered is counted as failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.evaluate.judge import Asked, Judge, Run, run_all
from lima.evaluate.parsing import parse_label, parse_rating
from lima.evaluate.prompts import task, transcript
from lima.evaluate.responses import Response
from lima.io import read_jsonl

__all__ = ["LABELS", "grade_all", "label_summary", "mean_ci", "parse_label", "parse_rating",
           "rating_summary", "read_labels"]  # fmt: skip

LABELS = ("fail", "pass", "excellent")


def _row(r: Response) -> dict[str, Any]:
    row: dict[str, Any] = {"id": r.key, "sample": r.sample, "model": r.model, "prompt": r.prompt}
    if r.context:
        row["turn"] = len(r.context) // 2 + 1
    return row


def _values(r: Response) -> dict[str, str]:
    return {"task": task(r), "transcript": transcript(r), "submission": r.response}


def _graded(r: Response, key: str, got: Asked) -> dict[str, Any]:
    return {**_row(r), key: got.value, "unparsed": got.value is None and got.error is None,
            "failed": got.error is not None, "error": got.error,
            "replies": got.replies}  # fmt: skip


def rate_one(judge: Judge, r: Response) -> dict[str, Any]:
    return _graded(r, "rating", judge.parsed(judge.prompt("rating"), _values(r), parse_rating))


def label_one(judge: Judge, r: Response) -> dict[str, Any]:
    return _graded(r, "label", judge.parsed(judge.prompt("absolute"), _values(r), parse_label))


def grade_all(
    judge: Judge,
    responses: list[Response],
    kind: str,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
    max_failed: float = 1.0,
) -> Run:
    """``kind`` is ``rating`` or ``label``; one row per response, in the input's order."""
    one = rate_one if kind == "rating" else label_one
    return run_all(lambda r: one(judge, r), responses, concurrency, on_done,
                   max_failed=max_failed, judge=judge)  # fmt: skip


def mean_ci(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and the two-sided ``level`` confidence interval of the mean, from Student's t with
    n-1 degrees of freedom (no interval for fewer than two values)."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None}
    mean = math.fsum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "ci_low": None, "ci_high": None}
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def rating_summary(rows: list[dict[str, Any]], over: str = "prompts") -> dict[str, Any]:
    """Mean rating with its 95% interval. ``over="prompts"`` first averages the samples of each
    prompt, so the interval counts prompts, not the (correlated) samples of one prompt;
    ``over="ratings"`` treats every rating as independent."""
    rated = [r for r in rows if r["rating"] is not None]
    by_prompt: dict[str, list[int]] = {}
    for r in rated:
        by_prompt.setdefault(r["id"], []).append(r["rating"])
    if over == "prompts":
        values = [math.fsum(v) / len(v) for v in by_prompt.values()]
    else:
        values = [float(r["rating"]) for r in rated]
    stats = mean_ci(values)
    return {
        "model": rows[0]["model"] if rows else None,
        "mean": stats["mean"],
        "ci_low": stats["ci_low"],
        "ci_high": stats["ci_high"],
        "ci_over": over,
        "prompts": len(by_prompt),
        "ratings": len(rated),
        "unparsed": sum(r["rating"] is None and not r.get("failed") for r in rows),
        "failed": sum(bool(r.get("failed")) for r in rows),
        "histogram": {str(k): sum(r["rating"] == k for r in rated) for k in range(1, 7)},
    }


def label_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fractions of fail / pass / excellent (and unparsed) over all rows, with counts."""
    n = len(rows)
    counts = {k: sum(r.get("label") == k for r in rows) for k in LABELS}
    counts["failed"] = sum(bool(r.get("failed")) for r in rows)
    counts["unparsed"] = n - sum(counts.values())
    out: dict[str, Any] = {"model": rows[0]["model"] if rows else None, "n": n}
    out.update({k: (c / n if n else 0.0) for k, c in counts.items()})
    out["counts"] = counts
    return out


def read_labels(path: Path) -> list[dict[str, Any]] | None:
    """The rows of a labels file (``{"id", "label", ...}``, as ``absolute`` and
    ``export-annotations`` write them), or ``None`` when the file holds something else, such as
    responses still to be graded."""
    if path.suffix != ".jsonl":
        return None
    rows: list[dict[str, Any]] = []
    for lineno, row in read_jsonl(path):
        if "label" not in row:
            if rows:
                raise ConfigError(f"{path}:{lineno}: a labels file needs 'label' on every row")
            return None
        if row["label"] is not None and row["label"] not in LABELS:
            raise ConfigError(
                f"{path}:{lineno}: label must be fail, pass or excellent, got {row['label']!r}"
            )
        if "id" not in row:
            raise ConfigError(f"{path}:{lineno}: a labels row needs an id")
        row.setdefault("model", path.stem)
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return rows
