"""The paper's Table 1 (examples and mean input/output length per source) and
the funnel, as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from lima.select import GroupReport
    from lima.sources.stackexchange import SiteScan


def lengths(frame: pl.DataFrame) -> pl.DataFrame:
    """Per source: examples, mean input and output length in characters and
    words. Input is every user turn, output every assistant turn."""
    turns = frame.select(
        "source",
        pl.col("conversations").list.gather_every(2).alias("inp"),
        pl.col("conversations").list.gather_every(2, offset=1).alias("outp"),
    )

    def chars(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.len_chars()).list.sum()

    def words(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.split(" ").list.len()).list.sum()

    return (
        turns.group_by("source")
        .agg(
            pl.len().alias("examples"),
            chars("inp").mean().alias("input_chars"),
            words("inp").mean().alias("input_words"),
            chars("outp").mean().alias("output_chars"),
            words("outp").mean().alias("output_words"),
        )
        .sort("source")
    )


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def table1(
    splits: dict[str, pl.DataFrame],
    scans: list[SiteScan] | None = None,
    selection: dict[str, GroupReport] | None = None,
) -> str:
    parts = []
    for split, frame in splits.items():
        rows = []
        stats = lengths(frame)
        for r in stats.iter_rows(named=True):
            rows.append(
                [
                    r["source"],
                    r["examples"],
                    f"{r['input_chars']:.1f}",
                    f"{r['input_words']:.1f}",
                    f"{r['output_chars']:.1f}",
                    f"{r['output_words']:.1f}",
                ]
            )
        total = len(frame)
        rows.append(["**total**", total, "", "", "", ""])
        parts.append(
            f"## {split}: {total} examples\n\n"
            + _md_table(
                [
                    "source",
                    "examples",
                    "input chars",
                    "input words",
                    "output chars",
                    "output words",
                ],
                rows,
            )
        )
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
            rows.append([s.site, s.group, f["rows_read"], f["answers"], rej, f["kept"]])
        parts.append(
            "## Stack Exchange funnel\n\n"
            + _md_table(
                ["site", "group", "rows read", "answers", "top answers rejected", "kept"], rows
            )
        )
    return "# lima dataset statistics (the paper's Table 1)\n\n" + "\n".join(parts)
