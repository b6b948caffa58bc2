"""The paper's Table 1 (examples and mean input/output length per source) and
the funnel, as Markdown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from lima.errors import ConfigError

if TYPE_CHECKING:
    from lima.curate.select import GroupReport
    from lima.curate.sources.stackexchange import SiteScan


def _label() -> pl.Expr:
    """Table 1's rows: Stack Exchange split into its groups, the other sources as they are."""
    return (
        pl.when(pl.col("group").is_not_null())
        .then(pl.format("{} ({})", "source", "group"))
        .otherwise("source")
    )


def lengths(frame: pl.DataFrame, tokenizer: Path | None = None) -> pl.DataFrame:
    """Per source: examples, mean input and output length in characters and
    words (and tokens with a ``tokenizer.json``). Input is every user turn,
    output every assistant turn."""
    if "group" not in frame.columns:
        frame = frame.with_columns(group=pl.lit(None, pl.String))
    turns = frame.select(
        _label().alias("source"),
        pl.col("conversations").list.gather_every(2).alias("inp"),
        pl.col("conversations").list.gather_every(2, offset=1).alias("outp"),
    )

    def chars(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.len_chars()).list.sum()

    def words(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.split(" ").list.len()).list.sum()

    aggs = [
        pl.len().alias("examples"),
        chars("inp").mean().alias("input_chars"),
        words("inp").mean().alias("input_words"),
        chars("outp").mean().alias("output_chars"),
        words("outp").mean().alias("output_words"),
    ]
    if tokenizer is not None:
        count = _token_counter(tokenizer)

        def tokens(c: str) -> pl.Expr:
            return pl.col(c).map_elements(
                lambda turns: sum(count(list(turns))), return_dtype=pl.Int64
            )

        turns = turns.with_columns(_ti=tokens("inp"), _to=tokens("outp"))
        aggs += [
            pl.col("_ti").mean().alias("input_tokens"),
            pl.col("_to").mean().alias("output_tokens"),
        ]
    return turns.group_by("source").agg(aggs).sort("source")


def _token_counter(path: Path) -> Callable[[list[str]], list[int]]:
    """Token counts per text, from a Hugging Face ``tokenizer.json`` (the fast Rust tokenizer)."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the library raises a bare Exception for a bad file
        raise ConfigError(f"{path}: not a tokenizer.json: {e}") from e

    def count(texts: list[str]) -> list[int]:
        return (
            [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)] if texts else []
        )

    return count


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def table1(
    splits: dict[str, pl.DataFrame],
    scans: list[SiteScan] | None = None,
    selection: dict[str, GroupReport] | None = None,
    tokenizer: Path | None = None,
) -> str:
    parts = []
    keys = ["input_chars", "input_words", "output_chars", "output_words"]
    header = ["source", "examples", "input chars", "input words", "output chars", "output words"]
    if tokenizer is not None:
        keys += ["input_tokens", "output_tokens"]
        header += ["input tokens", "output tokens"]
    for split, frame in splits.items():
        rows = []
        stats = lengths(frame, tokenizer)
        for r in stats.iter_rows(named=True):
            rows.append(
                [r["source"], r["examples"]]
                + [f"{r[k]:.1f}" if r[k] is not None else "" for k in keys]
            )
        total = len(frame)
        rows.append(["**total**", total] + [""] * len(keys))
        parts.append(f"## {split}: {total} examples\n\n" + _md_table(header, rows))
    if selection:
        rows = [
            [
                g,
                r.wanted,
                r.got,
                r.short_by,
                r.candidates,
                ", ".join(f"{s} {n}" for s, n in r.sites.items()),
            ]
            for g, r in selection.items()
        ]
        parts.append(
            "## Selection\n\n"
            + _md_table(["group", "quota", "selected", "short by", "candidates", "per site"], rows)
        )
    if scans:
        rows = []
        for s in scans:
            if s.status == "skipped":
                rows.append([s.site, s.group, f"skipped: {s.reason}", "", "", ""])
                continue
            f = s.funnel
            rej = ", ".join(f"{k} {v}" for k, v in f["rejected"].items() if v)
            if f.get("archive_errors"):
                lost = f"archive errors {f['archive_errors']} ({f.get('bytes_lost', 0)} bytes lost)"
                rej = f"{rej}, {lost}" if rej else lost
            rows.append([s.site, s.group, f["rows_read"], f["answers"], rej, f["kept"]])
        parts.append(
            "## Stack Exchange funnel\n\n"
            + _md_table(
                ["site", "group", "rows read", "answers", "top answers rejected", "kept"], rows
            )
        )
    return "# lima dataset statistics (the paper's Table 1)\n\n" + "\n".join(parts)
