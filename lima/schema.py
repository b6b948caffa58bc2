"""The one row schema shared by candidates and examples, as a polars schema
and as a typed record.

``meta`` is a struct holding the union of what the sources record; a source
leaves the fields it has no value for null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

SOURCES = ("stackexchange", "wikihow", "reddit", "natural_instructions", "authored", "dialogue")

META = pl.Struct(
    {
        "question_id": pl.Int64,
        "answer_id": pl.Int64,
        "question_score": pl.Int64,
        "answer_score": pl.Int64,
        "accepted": pl.Boolean,
        "prompt_field": pl.String,
        "title": pl.String,
        "question": pl.String,
        "tags": pl.List(pl.String),
        "url": pl.String,
        "question_url": pl.String,
        "author": pl.String,
        "author_url": pl.String,
        "created": pl.String,
        "question_license": pl.String,
        # string ids and the subreddit-side fields (Reddit's ids are base 36)
        "post_id": pl.String,
        "reply_id": pl.String,
        "tag": pl.String,
        # wikiHow, Super-Natural Instructions, authored and mined dialogues
        "category": pl.String,
        "category_source": pl.String,
        "file": pl.String,
        "line": pl.Int64,
        # Stack Exchange: who asked (the prompt is their title or body), named for attribution
        "asker": pl.String,
        "asker_url": pl.String,
    }
)

SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]
        "id": pl.String,
        "source": pl.String,
        "domain": pl.String,
        "group": pl.String,
        "conversations": pl.List(pl.String),
        "meta": META,
        "license": pl.String,
    }
)


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Cast ``df`` to the shared schema; ``meta`` may hold any subset of its fields
    (the rest become null)."""
    have = df.schema["meta"]
    names = {f.name for f in have.fields} if isinstance(have, pl.Struct) else set()
    unknown = names - set(META.to_schema())
    if unknown:
        raise TypeError(f"meta fields not in the schema: {sorted(unknown)}")
    meta = pl.struct(
        *[
            (pl.col("meta").struct.field(f.name) if f.name in names else pl.lit(None))
            .cast(f.dtype)
            .alias(f.name)
            for f in META.fields
        ]
    )
    out = df.with_columns(meta=meta).select(SCHEMA.names())
    return check(out.cast(dict(SCHEMA)))  # type: ignore[arg-type]


def check(df: pl.DataFrame) -> pl.DataFrame:
    """Return ``df`` with exactly the shared schema, or raise naming the difference."""
    if df.schema != SCHEMA:
        want, got = dict(SCHEMA), dict(df.schema)
        diff = {
            k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)
        }
        raise TypeError(f"frame does not match the example schema: {diff}")
    return df


@dataclass(frozen=True)
class Example:
    """One row of the schema as a Python object (for tests and small tools)."""

    id: str
    source: str
    domain: str
    group: str | None
    conversations: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    license: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Example:
        return cls(**{k: row[k] for k in SCHEMA.names()})

    def to_lima_json(self) -> dict[str, Any]:
        """LIMA's own format (``conversations``, ``source``) plus id and meta."""
        meta = {k: v for k, v in self.meta.items() if v is not None}
        return {
            "id": self.id,
            "conversations": self.conversations,
            "source": self.source,
            "domain": self.domain,
            "group": self.group,
            "license": self.license,
            "meta": meta,
        }
