"""Grading one response at a time, as in the paper's ablations and its absolute analysis:

- a 1..6 helpfulness rating from a judge, several samples per prompt, summarised as a mean
  with a two-sided 95% confidence interval (Student's t);
- a Fail / Pass / Excellent label from a judge (people give the same labels in
  ``lima-eval annotate``).

A conversation's earlier turns (``context``) are shown to the judge, so each turn of a scripted
chat is graded in its place. Replies are parsed from a bare number or word, a sentence, or
JSON; an unreadable reply is asked again and, after the last attempt, counted as unparsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.evaluate.judge import Judge, run_all, unfence
from lima.evaluate.responses import Response
from lima.io import read_jsonl

LABELS = ("fail", "pass", "excellent")

RATING_SYSTEM = (
    "You grade how helpful an AI assistant's reply is to the user's last message. Use a scale "
    "from 1 to 6: 1 means useless or harmful, 2 mostly unhelpful, 3 partly helpful with clear "
    "gaps or errors, 4 helpful with minor flaws, 5 very helpful and accurate, 6 as good as an "
    "expert's answer could be. Length is not a merit in itself. Reply with the number only."
)

ABSOLUTE_SYSTEM = (
    "You grade an AI assistant's reply to the user's last message with one of three labels. "
    "Fail: the reply does not do what the message asks (it is wrong, off topic, incomplete, or "
    "refuses without need). Pass: the reply does what is asked, with no serious problem. "
    "Excellent: the reply does what is asked and could hardly be better. "
    "Reply with one word: Fail, Pass or Excellent."
)


def _transcript(r: Response) -> str:
    parts = []
    for i, turn in enumerate(r.context):
        parts.append(f"[{'User' if i % 2 == 0 else 'Assistant'}]\n{turn}")
    parts.append(f"[User]\n{r.prompt}")
    parts.append(f"[Assistant's reply to grade]\n{r.response}")
    return "\n\n".join(parts)


def rating_messages(r: Response) -> list[dict[str, str]]:
    user = _transcript(r) + "\n\nHow helpful is the reply, from 1 to 6?"
    return [{"role": "system", "content": RATING_SYSTEM}, {"role": "user", "content": user}]


def absolute_messages(r: Response) -> list[dict[str, str]]:
    user = _transcript(r) + "\n\nIs the reply Fail, Pass or Excellent?"
    return [{"role": "system", "content": ABSOLUTE_SYSTEM}, {"role": "user", "content": user}]


_RATING_KEYS = ("rating", "score", "helpfulness", "grade")


def parse_rating(reply: str) -> int | None:
    """An integer 1..6 from a judge's reply; ``None`` if it names none, several, or one out of
    range."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _RATING_KEYS:
            v = obj.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v if 1 <= v <= 6 else None
            if isinstance(v, str):
                return parse_rating(v)
        return None
    low = text.lower()
    bare = re.fullmatch(r"[\W_]*(\d+)(?:\s*(?:/|out of)\s*6)?[\W_]*", low)
    if bare:
        v = int(bare.group(1))
        return v if 1 <= v <= 6 else None
    patterns = [
        r"(?:rating|score|grade|helpfulness)\s*(?:is|of)?\s*[:=]?\s*\**(\d+)\b(?![.,]\d)",
        r"\b(\d+)\s*(?:/|out of)\s*6\b",
        r"\b(?:rate|give|grade)\s+(?:it|this|the reply|the response|this reply|this response)?"
        r"\s*(?:a|an|as)?\s*\**(\d+)\b(?![.,]\d)",
    ]
    for pat in patterns:
        found = {int(m.group(1)) for m in re.finditer(pat, low)}
        if found:
            v = found.pop() if len(found) == 1 else 0
            return v if 1 <= v <= 6 else None
    return None


_LABEL = r"(fail(?:s|ed|ure)?|pass(?:es|ed)?|excellent)"
_LABEL_KEYS = ("label", "verdict", "rating", "grade", "answer")


def _label(word: str) -> str:
    return "fail" if word.startswith("fail") else "pass" if word.startswith("pass") else word


def parse_label(reply: str) -> str | None:
    """``fail``, ``pass`` or ``excellent`` from a judge's or a person's reply."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _LABEL_KEYS:
            if isinstance(obj.get(k), str):
                return parse_label(obj[k])
        return None
    low = text.lower()
    bare = re.fullmatch(rf"[\W_]*{_LABEL}[\W_]*", low)
    if bare:
        return _label(bare.group(1))
    patterns = [
        rf"(?:label|verdict|rating|grade|answer)\s*(?:is)?\s*[:=]?\s*\**{_LABEL}\b",
        rf"(?:reply|response|answer|it)\s+(?:is|was)\s+(?:an?\s+)?\**{_LABEL}\b",
        rf"^\W*{_LABEL}\**\s*(?:[.:,;!)\-]|$)",
    ]
    for pat in patterns:
        found = {_label(m.group(1)) for m in re.finditer(pat, low, flags=re.MULTILINE)}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def _row(r: Response) -> dict[str, Any]:
    row: dict[str, Any] = {"id": r.key, "sample": r.sample, "model": r.model, "prompt": r.prompt}
    if r.context:
        row["turn"] = len(r.context) // 2 + 1
    return row


def rate_one(judge: Judge, r: Response) -> dict[str, Any]:
    rating, replies = judge.parsed(rating_messages(r), parse_rating)
    return {**_row(r), "rating": rating, "unparsed": rating is None, "replies": replies}


def label_one(judge: Judge, r: Response) -> dict[str, Any]:
    label, replies = judge.parsed(absolute_messages(r), parse_label)
    return {**_row(r), "label": label, "unparsed": label is None, "replies": replies}


def grade_all(
    judge: Judge,
    responses: list[Response],
    kind: str,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """``kind`` is ``rating`` or ``label``; one row per response, in the input's order."""
    one = rate_one if kind == "rating" else label_one
    return run_all(lambda r: one(judge, r), responses, concurrency, on_done)


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
        "unparsed": len(rows) - len(rated),
        "histogram": {str(k): sum(r["rating"] == k for r in rated) for k in range(1, 7)},
    }


def label_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fractions of fail / pass / excellent (and unparsed) over all rows, with counts."""
    n = len(rows)
    counts = {k: sum(r.get("label") == k for r in rows) for k in LABELS}
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
