"""The dataset card (``README.md`` of a build): what is in it, where it came from, under
which licences, and what CC BY-SA asks for: the author and asker of every Stack Exchange
example with links, the licence of each, and a statement that the texts were changed."""

from __future__ import annotations

from typing import Any

import polars as pl

from lima.curate.stats import refusals

SOURCE_NOTES = {
    "stackexchange": (
        "Stack Exchange",
        "CC BY-SA (2.5 / 3.0 / 4.0 by post date); author and link below",
    ),
    "wikihow": ("wikiHow", "CC BY-NC-SA 3.0 (non-commercial)"),
    "reddit": ("Reddit (Pushshift dumps)", "Reddit content; no explicit licence"),
    "natural_instructions": ("Super-Natural Instructions", "per task (`Instance License`)"),
    "authored": ("hand-written", "as set in the config (`authored.license`)"),
    "dialogue": ("multi-turn chains", "authored, or Stack Exchange CC BY-SA with author and link"),
}


# What a build does to each source's texts; CC BY-SA and CC BY-NC-SA ask that changes be
# indicated.
CHANGES = {
    "stackexchange": (
        "question and answer HTML converted to Markdown; links reduced to their text (links "
        "whose text was their address removed), images, struck-out text, footnote markers "
        "and reference lines removed; the question's title or body taken as the prompt"
    ),
    "dialogue": "comment threads under Stack Exchange answers edited into turns",
    "wikihow": (
        'the title made a question ("How to ...?", lower case but for names); the body '
        "written as the introduction, a heading per method or part and numbered steps with "
        'their bullets; "This article" at the start of a sentence of the introduction '
        'written "The following answer"; citations, links, images and the Tips, Warnings, '
        "Things You'll Need, References and Video sections removed"
    ),
    "reddit": "posts taken as written; prompts stripped of their [WP] tags",
    "natural_instructions": "one instance per task, its definition and input joined as the prompt",
    "authored": "written for this set",
}

# Hugging Face licence identifiers of the licences the sources carry.
HF_LICENSES = {
    "CC BY-SA 2.5": "cc-by-sa-2.5",
    "CC BY-SA 3.0": "cc-by-sa-3.0",
    "CC BY-SA 4.0": "cc-by-sa-4.0",
    "CC BY-NC-SA 3.0": "cc-by-nc-sa-3.0",
    "CC BY 4.0": "cc-by-4.0",
    "Apache-2.0": "apache-2.0",
    "MIT": "mit",
}


def front_matter_licenses(licences: list[str]) -> list[str]:
    """The ``license:`` list of the card's front matter; ``other`` for any licence without
    an identifier (Reddit posts carry none)."""
    ids = {HF_LICENSES.get(x, "other") for x in licences}
    return sorted(ids) or ["other"]


def _esc(text: str | None) -> str:
    return (
        (text or "").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")
    )


def dataset_card(manifest: dict[str, Any], splits: dict[str, pl.DataFrame]) -> str:
    every = pl.concat([f.select("source", "license") for f in splits.values()])
    all_licences = sorted({x for x in every["license"].to_list() if x})
    lines = [
        "---",
        "language: en",
        "license:",
        *[f"- {x}" for x in front_matter_licenses(all_licences)],
        "task_categories: [text-generation]",
        "pretty_name: LIMA-style alignment set built by lima",
        "---",
        "",
        "# LIMA-style alignment set",
        "",
        f"Built by lima {manifest['version']} (preset `{manifest['preset']}`, seed "
        f"{manifest['seed']}, config sha256 `{manifest['config_sha256'][:16]}`). The recipe is "
        "that of *LIMA: Less Is More for Alignment* (Zhou et al., 2023); `manifest.json` lists "
        "every input file with its checksum and the funnel of every source.",
        "",
        "## Files",
        "",
        "| file | examples |",
        "|---|---|",
    ]
    for name, info in sorted(manifest["outputs"].items()):
        lines.append(f"| `{name}` | {info['rows']} |")
    lines += [
        "",
        'Each line is LIMA\'s own format, `{"conversations": [user, assistant, ...], '
        '"source": ...}`, plus `id`, `domain`, `group`, `license` and `meta`. '
        'Load with `datasets.load_dataset("json", data_files=...)`.',
        "",
        "## Sources and licences",
        "",
        "| source | examples (all splits) | licence |",
        "|---|---|---|",
    ]
    counts = dict(every.group_by("source").len().sort("source").rows())
    for source, n in counts.items():
        name, note = SOURCE_NOTES.get(source, (source, ""))
        licences = sorted(
            {x for x in every.filter(pl.col("source") == source)["license"].to_list() if x}
        )
        lines.append(f"| {name} | {n} | {note}{': ' + ', '.join(licences) if licences else ''} |")
    ref = refusals(splits)
    if ref:
        lines += [
            "",
            "Refusals among the authored examples (partial or full refusals of harmful "
            "requests, tagged `refusal`): "
            + ", ".join(
                f"{split} {n} of {splits[split].filter(pl.col('source') == 'authored').height}"
                for split, n in ref.items()
            )
            + " (the paper: 13 of its 200 authored training examples).",
        ]
    lines += ["", "## Changes were made", ""]
    lines.append("The texts are not the originals. Under each licence, these changes were made:")
    lines.append("")
    for licence in all_licences:
        sources = sorted(set(every.filter(pl.col("license") == licence)["source"].to_list()))
        what = "; ".join(
            f"{SOURCE_NOTES.get(s, (s, ''))[0]}: {CHANGES[s]}" for s in sources if s in CHANGES
        )
        lines.append(f"- {licence}: {what or 'taken as written'}.")
    lines += [
        "",
        "wikiHow text is CC BY-NC-SA 3.0: a set that contains it may not be used commercially. "
        "Reddit posts carry no licence grant; use them under your own assessment.",
        "",
        "## Attribution (Stack Exchange, CC BY-SA)",
        "",
    ]
    se = (
        pl.concat(
            [
                f.filter(pl.col("source").is_in(["stackexchange", "dialogue"]))
                for f in splits.values()
            ]
        )
        .unique("id")
        .sort("id")
    )
    se = se.filter(pl.col("meta").struct.field("url").is_not_null())
    if se.height == 0:
        lines.append("No Stack Exchange content in this build.")
    for r in se.iter_rows(named=True):
        m = r["meta"]
        credits = [f"answer by {_person(m.get('author'), m.get('author_url'))}"]
        if m.get("asker") or m.get("asker_url"):
            credits.append(f"question by {_person(m.get('asker'), m.get('asker_url'))}")
        lines.append(
            f"- [{_esc(m.get('title')) or r['id']}]({m['url']}) — {', '.join(credits)}, "
            f"{r['license'] or 'CC BY-SA'}"
        )
    lines += _wikihow_attribution(splits)
    return "\n".join(lines) + "\n"


def _wikihow_attribution(splits: dict[str, pl.DataFrame]) -> list[str]:
    """Every wikiHow article used, with its address: CC BY-NC-SA asks for the credit."""
    wh = (
        pl.concat([f.filter(pl.col("source") == "wikihow") for f in splits.values()])
        .unique("id")
        .sort("id")
    )
    if wh.height == 0:
        return []
    lines = [
        "",
        "## Attribution (wikiHow, CC BY-NC-SA 3.0)",
        "",
        "Each article is by the wikiHow community (https://www.wikihow.com), shared under "
        "CC BY-NC-SA 3.0 (https://creativecommons.org/licenses/by-nc-sa/3.0/):",
        "",
    ]
    for r in wh.iter_rows(named=True):
        m = r["meta"] or {}
        title = _esc(m.get("title")) or r["id"]
        url = m.get("url")
        shown = f"[{title}]({url})" if url else title
        lines.append(f"- {shown} — wikiHow contributors, {r['license'] or 'CC BY-NC-SA 3.0'}")
    return lines


def _person(name: str | None, url: str | None) -> str:
    shown = _esc(name) or "unknown"
    return f"[{shown}]({url})" if url else shown
