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
