"""``lima-eval chat``: scripted multi-turn conversations with a checkpoint (the paper's dialogue
analysis). A script is a list of user turns; the model answers each one with the whole
conversation so far as its context, its own earlier answers included. Every model turn becomes
a response row with its ``context``, so a judge (``--judge``) or people (``lima-eval annotate``)
label each turn Fail / Pass / Excellent in its place.

Scripts are JSONL rows ``{"id", "turns": [...]}``; MT-bench's ``question.jsonl``
(``question_id``, ``turns``) reads as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.evaluate.backends import Generator
from lima.evaluate.grading import LABELS, label_summary
from lima.io import read_jsonl
from lima.train.recipe import Generation


def read_scripts(path: Path) -> list[tuple[str, list[str]]]:
    """(id, user turns) per script; errors name the file and line."""
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for lineno, row in read_jsonl(path):
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise ConfigError(f"{path}:{lineno}: 'turns' must be a non-empty list of strings")
        rid = row.get("id", row.get("question_id"))
        sid = str(rid) if rid is not None else f"{path.stem}-{lineno}"
        if sid in seen:
            raise ConfigError(f"{path}:{lineno}: script id {sid!r} appears twice")
        seen.add(sid)
        out.append((sid, turns))
    if not out:
        raise ConfigError(f"{path}: no scripts")
    return out


def run_scripts(
    model: Generator,
    scripts: list[tuple[str, list[str]]],
    gen: Generation,
    *,
    seed: int = 0,
    batch_size: int = 8,
    on_turn: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Play every script turn by turn; the scripts that are still going advance together, in
    batches. Rows come out per script, turn by turn."""
    history: dict[str, list[str]] = {sid: [] for sid, _ in scripts}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    longest = max(len(t) for _, t in scripts)
    for k in range(longest):
        live = [(sid, turns[k]) for sid, turns in scripts if k < len(turns)]
        for i in range(0, len(live), batch_size):
            batch = live[i : i + batch_size]
            key = "|".join(f"{sid}#{k}" for sid, _ in batch)
            batch_seed = seed + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
            contexts = [history[sid] + [user] for sid, user in batch]
            results = model.generate(contexts, gen, batch_seed)
            for (sid, user), (text, stopped, n) in zip(batch, results, strict=True):
                rows[(sid, k)] = {
                    "id": f"{sid}#{k + 1}", "script": sid, "turn": k + 1,
                    "context": list(history[sid]), "prompt": user, "response": text,
                    "model": model.name, "stopped_at_eot": stopped, "new_tokens": n,
                    "penalty_scope": model.penalty_scope,
                }  # fmt: skip
                history[sid] += [user, text]
            if on_turn:
                on_turn(len(batch))
    return [rows[(sid, k)] for sid, turns in scripts for k in range(len(turns))]


def chat_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Labels per turn and overall, and per conversation the first turn labelled Fail (the
    paper counts conversations that fail within three turns)."""
    turns = sorted({int(r["turn"]) for r in rows})
    per_turn = {str(t): label_summary([r for r in rows if r["turn"] == t]) for t in turns}
    first_fail: dict[str, int | None] = {}
    for r in rows:
        sid = str(r["script"])
        first_fail.setdefault(sid, None)
        if r.get("label") == "fail" and first_fail[sid] is None:
            first_fail[sid] = int(r["turn"])
    failed = [t for t in first_fail.values() if t is not None]
    return {
        "model": rows[0]["model"] if rows else None,
        "conversations": len(first_fail),
        "turns": len(rows),
        "labelled": sum(r.get("label") in LABELS for r in rows),
        "overall": label_summary(rows),
        "per_turn": per_turn,
        "conversations_with_a_fail": len(failed),
        "failed_within_3_turns": sum(t <= 3 for t in failed),
        "first_fail": first_fail,
    }


def transcript(rows: list[dict[str, Any]]) -> str:
    """The conversations as Markdown, each model turn with its label."""
    out: list[str] = []
    script = None
    for r in rows:
        if r["script"] != script:
            script = r["script"]
            out.append(f"## {script}\n")
        label = r.get("label")
        tag = f" — **{label.capitalize()}**" if label else ""
        out.append(f"**User (turn {r['turn']}):** {r['prompt']}\n")
        out.append(f"**{r['model']}{tag}:** {r['response']}\n")
    return "\n".join(out)
