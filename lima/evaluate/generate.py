"""``lima-eval generate``: one or more sampled responses per prompt from a checkpoint, with the
paper's sampling, in batches, appended as they finish so an interrupted run resumes where it
stopped (rows already in the output are skipped)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.evaluate.backends import Generator
from lima.evaluate.responses import read_prompts
from lima.train.recipe import Generation


def _done(out: Path, scope: str) -> set[tuple[str, int]]:
    """(id, sample) already written; a torn last line from a killed run is cut off. Rows
    sampled under the other repetition-penalty scope are refused, not mixed in."""
    if not out.exists():
        return set()
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")
    good: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError:
            break
        good.append(line)
    if len(good) != len([x for x in lines if x.strip()]):
        out.write_text("".join(x + "\n" for x in good), encoding="utf-8")
    rows = [json.loads(x) for x in good]
    for lineno, r in enumerate(rows, 1):
        if r.get("penalty_scope", scope) != scope:
            raise ConfigError(
                f"{out}:{lineno}: sampled with the repetition penalty over "
                f"{r['penalty_scope']} tokens, this backend counts {scope}; "
                "write to a new file instead of mixing the two"
            )
    return {(str(r["id"]), int(r.get("sample", 0))) for r in rows}


def generate(
    model: Generator,
    prompts_file: Path,
    out: Path,
    *,
    gen: Generation,
    samples: int = 1,
    batch_size: int = 8,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    prompts = read_prompts(prompts_file)
    done = _done(out, model.penalty_scope)
    todo = [(pid, turns, s) for pid, turns in prompts for s in range(samples)
            if (pid, s) not in done]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("a", encoding="utf-8") as fh:
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            key = "|".join(f"{pid}#{s}" for pid, _, s in batch)
            batch_seed = seed + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
            results = model.generate([t for _, t, _ in batch], gen, batch_seed)
            for (pid, turns, s), (text, stopped, n) in zip(batch, results, strict=True):
                fh.write(json.dumps({
                    "id": pid, "sample": s, "prompt": turns[-1], "response": text,
                    "model": model.name, "stopped_at_eot": stopped, "new_tokens": n,
                    "penalty_scope": model.penalty_scope,
                }, ensure_ascii=False) + "\n")  # fmt: skip
            fh.flush()
            written += len(batch)
            if on_batch:
                on_batch(len(batch))
    return {"prompts": len(prompts), "samples": samples, "skipped_done": len(done),
            "written": written}  # fmt: skip
