"""Build outputs in the formats trainers read: OpenAI-style ``messages`` JSONL, ShareGPT
JSON, and Parquet. Roles alternate user / assistant, as in LIMA's ``conversations``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from lima.errors import LimaError
from lima.io import atomic_write, read_jsonl, write_jsonl, write_text


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, row in read_jsonl(path):
        turns = row.get("conversations") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise LimaError(f"{path}:{n}: 'conversations' must be a list of strings")
        rows.append(row)
    return rows


def read_dataset(path: Path) -> pl.DataFrame:
    """A dataset file as a frame with ``conversations`` (list of turns, user first) and
    ``source`` (and ``group`` where the file has it): a build's ``.jsonl``, its ``messages``
    export (system messages left out), a ShareGPT export, or a ``.parquet`` of the shared
    schema. Anything else is a ``LimaError`` that says what the file looks like."""
    if path.is_dir():
        hint = (
            " (a build folder: its Table 1 is in stats.md)" if (path / "stats.md").exists() else ""
        )
        raise LimaError(f"{path}: is a directory; give a train/dev/test .jsonl{hint}")
    if not path.exists():
        raise LimaError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as e:
            raise LimaError(f"{path}: not a readable Parquet file ({e})") from None
        if not {"conversations", "source"} <= set(frame.columns):
            raise LimaError(f"{path}: needs 'conversations' and 'source' columns")
        return frame
    with path.open("rb") as fh:
        head = fh.read(1 << 16).lstrip()
    if head.startswith(b"["):
        return _from_json_list(path)
    rows: list[dict[str, Any]] = []
    for n, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise LimaError(f"{path}:{n}: a row must be a JSON object")
        if "messages" in row and "conversations" not in row:
            msgs = row["messages"]
            if not isinstance(msgs, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs
            ):
                raise LimaError(f"{path}:{n}: 'messages' must be a list of {{role, content}}")
            turns = [m["content"] for m in msgs if m.get("role") != "system"]
        else:
            turns = row.get("conversations")  # type: ignore[assignment]
            if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
                raise LimaError(
                    f"{path}:{n}: not a dataset row (needs 'conversations', a list of strings, "
                    "or an export's 'messages')"
                )
        raw_meta = row.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        tags = meta.get("tags") if isinstance(meta.get("tags"), list) else None
        rows.append(
            {
                "conversations": turns,
                "source": row.get("source"),
                "group": row.get("group") if isinstance(row.get("group"), str) else None,
                "domain": row.get("domain") if isinstance(row.get("domain"), str) else None,
                "id": row.get("id") if isinstance(row.get("id"), str) else None,
                "tags": [str(t) for t in tags] if tags is not None else None,
            }
        )
    return _frame(rows)


def _from_json_list(path: Path) -> pl.DataFrame:
    try:
        items = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise LimaError(f"{path}: byte {e.start}: not UTF-8") from None
    except json.JSONDecodeError as e:
        raise LimaError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except RecursionError:
        raise LimaError(f"{path}: JSON nested too deeply") from None
    if not isinstance(items, list):
        raise LimaError(f"{path}: expected a JSON list")
    first = items[0] if items and isinstance(items[0], dict) else {}
    if "instruction" in first and "output" in first:
        raise LimaError(
            f"{path}: AlpacaEval model outputs (instruction, output, generator), not a dataset; "
            "`lima-eval compare` reads it"
        )
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        conv = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(conv, list) or not all(
            isinstance(t, dict) and isinstance(t.get("value"), str) for t in conv
        ):
            raise LimaError(
                f"{path}: item {i}: not a ShareGPT row (needs 'conversations' of {{from, value}})"
            )
        turns = [t["value"] for t in conv if t.get("from") != "system"]
        rows.append({"conversations": turns, "source": item.get("source")})
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "conversations": pl.List(pl.String), "source": pl.String, "group": pl.String,
            "domain": pl.String, "id": pl.String, "tags": pl.List(pl.String),
        },
    ).with_columns(pl.col("source").fill_null("unknown"))  # fmt: skip


def _roles(n: int) -> list[str]:
    return ["user" if i % 2 == 0 else "assistant" for i in range(n)]


def export(path: Path, fmt: str, out: Path, system: str | None = None) -> int:
    rows = read_rows(path)
    if fmt == "messages":
        lines = []
        for r in rows:
            msgs = [{"role": "system", "content": system}] if system else []
            msgs += [
                {"role": role, "content": t}
                for role, t in zip(_roles(len(r["conversations"])), r["conversations"], strict=True)
            ]
            lines.append({"id": r.get("id"), "source": r.get("source"), "messages": msgs})
        write_jsonl(out, lines)
    elif fmt == "sharegpt":
        who = {"user": "human", "assistant": "gpt"}
        items = []
        for r in rows:
            conv = [{"from": "system", "value": system}] if system else []
            conv += [
                {"from": who[role], "value": t}
                for role, t in zip(_roles(len(r["conversations"])), r["conversations"], strict=True)
            ]
            items.append({"id": r.get("id"), "source": r.get("source"), "conversations": conv})
        write_text(out, json.dumps(items, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    elif fmt == "parquet":
        frame = pl.DataFrame(
            {
                "id": [r.get("id") for r in rows],
                "source": [r.get("source") for r in rows],
                "domain": [r.get("domain") for r in rows],
                "license": [r.get("license") for r in rows],
                "conversations": [r["conversations"] for r in rows],
                "meta": [
                    json.dumps(r.get("meta", {}), sort_keys=True, ensure_ascii=False) for r in rows
                ],
            },
            schema={"id": pl.String, "source": pl.String, "domain": pl.String, "license": pl.String,
                    "conversations": pl.List(pl.String), "meta": pl.String},
        )  # fmt: skip
        atomic_write(out, frame.write_parquet)
    else:
        raise LimaError(f"unknown export format {fmt!r}")
    return len(rows)
