"""Super-Natural Instructions: one random instance from each natural-language-generation task.

A task file is JSON with ``Definition`` (a list of strings, or one string in older files),
``Categories``, ``Instances`` (``id``, ``input``, ``output`` as a list) and per-task licence and
language fields. A task is kept when one of its categories is in the configured list and its
input and output language is in the configured languages; the prompt is the definition, a blank
line and the instance input, the response is the instance's first output.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import schema
from lima.errors import LimaError

# Generation categories of the SNI taxonomy: the output is free text, not a label or a span.
NLG_CATEGORIES = [
    "Summarization", "Paraphrasing", "Style Transfer", "Text Simplification", "Data to Text",
    "Title Generation", "Sentence Compression", "Question Rewriting", "Sentence Expansion",
    "Story Composition", "Poem Generation", "Dialogue Generation", "Question Generation",
    "Explanation", "Text Completion",
]  # fmt: skip


class TaskFileError(LimaError):
    pass


@dataclass
class NaturalInstructionsSettings:
    categories: list[str] = field(default_factory=lambda: list(NLG_CATEGORIES))
    languages: list[str] = field(default_factory=lambda: ["English"])
    min_output_chars: int = 1


def task_files(path: Path) -> list[Path]:
    """A task file, or every ``*.json`` in a folder (its ``tasks/`` too), sorted; which of
    them hold a task is decided by their content (``is_task``), not their name."""
    if path.is_dir():
        inner = path / "tasks" if (path / "tasks").is_dir() else path
        return sorted(p for p in inner.glob("*.json") if p.is_file())
    return [path]


def is_task(data: Any) -> bool:
    """The task schema: an object with ``Definition`` and an ``Instances`` list."""
    return (
        isinstance(data, dict) and "Definition" in data and isinstance(data.get("Instances"), list)
    )


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _load(path: Path, raw: bytes | None = None) -> Any:
    raw = path.read_bytes() if raw is None else raw
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        byte = len(e.doc[: e.pos].encode("utf-8"))
        raise TaskFileError(
            f"{path}: line {e.lineno}, column {e.colno} (byte {byte}): {e.msg}"
        ) from e
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{path}: byte {e.start}: not UTF-8") from e
    except RecursionError:
        raise TaskFileError(f"{path}: byte 0: nested too deeply to be a task file") from None
    return data


@dataclass
class TaskScan:
    funnel: dict[str, Any]
    frame: pl.DataFrame  # the shared schema: one candidate per kept task


def scan(paths: list[Path], settings: NaturalInstructionsSettings, seed: int) -> TaskScan:
    wanted = {c.lower() for c in settings.categories}
    langs = set(settings.languages)
    rejected: dict[str, int] = {}
    by_category: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    n_files = 0
    not_tasks: list[str] = []
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for path in paths:
        files = task_files(path)
        tasks_here = 0
        for f in files:
            raw = f.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            if digest in seen:  # the same task file given twice (two folders, a copy)
                duplicates.append(f"{f} (same bytes as {seen[digest]})")
                tasks_here += 1
                continue
            task = _load(f, raw)
            if not is_task(task):
                if not path.is_dir():
                    raise TaskFileError(
                        f"{f}: byte 0: not a task file (no 'Definition' and 'Instances' list)"
                    )
                not_tasks.append(str(f))
                continue
            seen[digest] = str(f)
            tasks_here += 1
            n_files += 1
            name = f.stem
            cats = [str(c) for c in task.get("Categories") or []]
            langs_io = {*map(str, task.get("Input_language") or []),
                        *map(str, task.get("Output_language") or [])}  # fmt: skip
            instances = [
                i for i in task["Instances"]
                if isinstance(i, dict) and isinstance(i.get("output"), list) and i["output"]
                and len(str(i["output"][0]).strip()) >= settings.min_output_chars
            ]  # fmt: skip
            reason = None
            if not any(c.lower() in wanted for c in cats):
                reason = "not_generation_task"
            elif langs and not langs_io <= langs:
                reason = "language"
            elif not instances:
                reason = "no_usable_instance"
            if reason:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            category = next(c for c in cats if c.lower() in wanted)
            by_category[category] = by_category.get(category, 0) + 1
            inst = random.Random(f"sni:{seed}:{name}").choice(instances)
            definition = _as_text(task.get("Definition")).strip()
            prompt = f"{definition}\n\n{str(inst.get('input', '')).strip()}".strip()
            rows.append(
                {
                    "id": f"sni/{name}/{inst.get('id', '')}",
                    "source": "natural_instructions",
                    "domain": name,
                    "group": None,
                    "conversations": [prompt, str(inst["output"][0]).strip()],
                    "meta": {
                        "post_id": str(inst.get("id", "")),
                        "category": category,
                        "url": _as_text(task.get("URL")) or None,
                        "author": ", ".join(map(str, task.get("Contributors") or [])) or None,
                        "file": f.name,
                    },
                    "license": _as_text(task.get("Instance License")) or None,
                }
            )
        if path.is_dir() and tasks_here == 0:
            raise TaskFileError(
                f"{path}: no Super-Natural Instructions task file among its {len(files)} .json "
                "file(s) (a task has 'Definition' and an 'Instances' list)"
            )
    funnel = {
        "task_files": n_files,
        "not_task_files": not_tasks,
        "duplicate_task_files": duplicates,
        "rejected": dict(sorted(rejected.items())),
        "kept": len(rows),
        "categories": dict(sorted(by_category.items())),
    }
    frame = pl.DataFrame(
        rows,
        schema={**dict(schema.SCHEMA), "meta": pl.Struct(
            {"post_id": pl.String, "category": pl.String, "url": pl.String,
             "author": pl.String, "file": pl.String})},
    )  # fmt: skip
    return TaskScan(funnel, schema.conform(frame))


def sample(candidates: pl.DataFrame, quota: int, seed: int) -> pl.DataFrame:
    """``quota`` tasks drawn at random (one instance each was drawn in the scan)."""
    ordered = candidates.sort("id")
    idx = list(range(ordered.height))
    random.Random(f"sni-tasks:{seed}").shuffle(idx)
    return ordered[sorted(idx[:quota])]
