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
    """Table 1's row key: Stack Exchange split into its groups, the other sources as they are."""
    return (
        pl.when(pl.col("group").is_not_null())
        .then(pl.format("{} ({})", "source", "group"))
        .otherwise("source")
    )


def _paper_label() -> pl.Expr:
    """The paper's row labels: "Stack Exchange (STEM)", "wikiHow", "Pushshift r/<the subreddit
    read>", "Natural Instructions", "Authored (Group A)" (train and dev) / "(Group B)" (test)."""
    src, grp, dom = pl.col("source"), pl.col("group"), pl.col("domain").fill_null("")
    return (
        pl.when((src == "stackexchange") & (grp == "stem"))
        .then(pl.lit("Stack Exchange (STEM)"))
        .when((src == "stackexchange") & (grp == "other"))
        .then(pl.lit("Stack Exchange (Other)"))
        .when(src == "stackexchange")
        .then(pl.format("Stack Exchange ({})", grp.fill_null("?")))
        .when(src == "wikihow")
        .then(pl.lit("wikiHow"))
        .when((src == "reddit") & (dom == ""))  # an export, which carries no subreddit
        .then(pl.lit("Pushshift Reddit"))
        .when(src == "reddit")
        .then(pl.format("Pushshift r/{}", dom))
        .when(src == "natural_instructions")
        .then(pl.lit("Natural Instructions"))
        .when((src == "authored") & (dom == "test"))
        .then(pl.lit("Authored (Group B)"))
        .when(src == "authored")
        .then(pl.lit("Authored (Group A)"))
        .when((src == "dialogue") & pl.col("id").str.starts_with("authored/"))
        .then(pl.lit("Dialogue (authored)"))
        .when(src == "dialogue")
        .then(pl.lit("Dialogue (Stack Exchange)"))
        .otherwise(src)
    )


# The paper's row order; rows of the same rank keep their label order.
_ORDER = {
    "stackexchange": 0, "wikihow": 1, "reddit": 2, "natural_instructions": 3, "authored": 4,
    "dialogue": 5,
}  # fmt: skip


def lengths(frame: pl.DataFrame, tokenizer: Path | None = None) -> pl.DataFrame:
    """Per Table 1 row: examples, mean input and output length in characters and words
    (whitespace-separated), and tokens with a ``tokenizer.json``; ``prompt_only`` when no
    example of the row has an output. Input is every user turn, output every assistant turn."""
    for col, dtype in (("group", pl.String), ("domain", pl.String), ("id", pl.String)):
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype).alias(col))
    turns = frame.select(
        _label().alias("key"),
        _paper_label().alias("source"),
        (
            pl.col("source").replace_strict(_ORDER, default=9) * 10
            + (pl.col("group").fill_null("") == "other").cast(pl.Int64)
        ).alias("_order"),
        pl.col("conversations").list.gather_every(2).alias("inp"),
        pl.col("conversations").list.gather_every(2, offset=1).alias("outp"),
    )

    def chars(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.len_chars()).list.sum()

    def words(c: str) -> pl.Expr:
        return pl.col(c).list.eval(pl.element().str.count_matches(r"\S+")).list.sum()

    aggs = [
        pl.len().alias("examples"),
        chars("inp").mean().alias("input_chars"),
        words("inp").mean().alias("input_words"),
        chars("outp").mean().alias("output_chars"),
        words("outp").mean().alias("output_words"),
        (pl.col("outp").list.len().max() == 0).alias("prompt_only"),
        pl.col("_order").first(),
    ]
    if tokenizer is not None:
        count = _token_counter(tokenizer)
        inp, outp = turns["inp"].to_list(), turns["outp"].to_list()

        def per_example(lists: list[list[str]]) -> list[int]:
            counts = iter(count([t for c in lists for t in c]))
            return [sum(next(counts) for _ in c) for c in lists]

        turns = turns.with_columns(
            _ti=pl.Series(per_example(inp), dtype=pl.Int64),
            _to=pl.Series(per_example(outp), dtype=pl.Int64),
        )
        aggs += [
            pl.col("_ti").mean().alias("input_tokens"),
            pl.col("_to").mean().alias("output_tokens"),
        ]
    return turns.group_by("key", "source").agg(aggs).sort("_order", "key", "source").drop("_order")


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


def _section(split: str) -> str:
    if split == "train":
        return "Training"
    if split.startswith("train_"):
        return f"Training ({split.removeprefix('train_')})"
    return {"dev": "Development", "test": "Test"}.get(split, split)


def refusals(splits: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Authored examples tagged ``refusal`` (the paper: 13 of its 200 authored training
    examples), per split."""
    out = {}
    for split, frame in splits.items():
        if frame.height == 0 or not {"meta", "tags"} & set(frame.columns):
            continue
        authored = frame.filter(pl.col("source") == "authored")
        if authored.height == 0:
            continue
        if "tags" in authored.columns:  # a dataset file read back (lima.curate.export)
            tags = authored["tags"]
            if tags.null_count() == tags.len():  # an export, which carries no tags
                continue
        else:
            meta = authored.schema["meta"]
            if not isinstance(meta, pl.Struct) or "tags" not in [f.name for f in meta.fields]:
                continue
            tags = authored["meta"].struct.field("tags")
        out[split] = int(tags.list.contains("refusal").fill_null(False).sum())
    return out


def stats_json(splits: dict[str, pl.DataFrame], tokenizer: Path | None = None) -> dict[str, Any]:
    """Table 1 as data: per split, per row, examples and mean lengths in characters, words
    (and tokens); ``null`` output lengths for prompt-only rows."""
    unit = "tokens" if tokenizer is not None else "words"
    out: dict[str, Any] = {
        "unit": unit,
        "tokenizer": str(tokenizer) if tokenizer is not None else None,
        "words": "whitespace-separated",
        "splits": {},
        "refusals_among_authored": refusals(splits),
    }
    for split, frame in splits.items():
        rows = []
        for r in lengths(frame, tokenizer).iter_rows(named=True):
            row = {k: v for k, v in r.items() if k != "prompt_only"}
            if r["prompt_only"]:
                for k in list(row):
                    if k.startswith("output_"):
                        row[k] = None
            rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        out["splits"][split] = {"examples": frame.height, "rows": rows}
    return out


def _fmt(v: float | None) -> str:
    return "N/A" if v is None else f"{v:,.0f}"


def table1(
    splits: dict[str, pl.DataFrame],
    scans: list[SiteScan] | None = None,
    selection: dict[str, GroupReport] | None = None,
    tokenizer: Path | None = None,
) -> str:
    """The paper's Table 1 (Source, #Examples, Avg Input Len., Avg Output Len.; training,
    development and test rows; lengths in tokens with a tokenizer, else in words), then the
    selection and the Stack Exchange funnel."""
    data = stats_json(splits, tokenizer)
    unit = data["unit"]
    rows: list[list[Any]] = []
    for split, info in data["splits"].items():
        rows.append([f"**{_section(split)}**", "", "", ""])
        n, tin, tout, nout = 0, 0.0, 0.0, 0
        for r in info["rows"]:
            i, o = r[f"input_{unit}"], r[f"output_{unit}"]
            rows.append([r["source"], f"{r['examples']:,}", _fmt(i), _fmt(o)])
            n += r["examples"]
            tin += (i or 0) * r["examples"]
            if o is not None:
                tout += o * r["examples"]
                nout += r["examples"]
        rows.append([
            "Total", f"{n:,}", _fmt(tin / n if n else None), _fmt(tout / nout if nout else None)
        ])  # fmt: skip
    lead = (
        f"Mean lengths in tokens ({Path(str(tokenizer)).name})."
        if tokenizer is not None
        else "Mean lengths in words (whitespace-separated); `--tokenizer` gives tokens."
    )
    parts = [
        lead + " Input is every user turn of an example, output every assistant turn; N/A "
        "where a set is prompts only. `stats.json` holds the same numbers with characters.\n\n"
        + _md_table(["Source", "#Examples", "Avg Input Len.", "Avg Output Len."], rows)
    ]
    ref = data["refusals_among_authored"]
    if ref:
        auth = {
            s: int(f.filter(pl.col("source") == "authored").height)
            for s, f in splits.items()
            if s in ref
        }
        parts.append(
            "Refusals among authored examples: "
            + ", ".join(f"{split} {n} of {auth[split]}" for split, n in ref.items())
            + " (the paper: 13 of 200 training examples).\n"
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
