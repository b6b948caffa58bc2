"""The dataset card (``README.md`` of a build): what is in it, where it came from, under
which licences, and the attribution CC BY-SA asks for (author and link of every Stack
Exchange answer)."""

from __future__ import annotations

from typing import Any

import polars as pl

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


def _esc(text: str | None) -> str:
    return (
        (text or "").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")
    )


def dataset_card(manifest: dict[str, Any], splits: dict[str, pl.DataFrame]) -> str:
    lines = [
        "---",
        "language: en",
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
    every = pl.concat([f.select("source", "license") for f in splits.values()])
    counts = dict(every.group_by("source").len().sort("source").rows())
    for source, n in counts.items():
        name, note = SOURCE_NOTES.get(source, (source, ""))
        licences = sorted(
            {x for x in every.filter(pl.col("source") == source)["license"].to_list() if x}
        )
        lines.append(f"| {name} | {n} | {note}{': ' + ', '.join(licences) if licences else ''} |")
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
        author = _esc(m.get("author"))
        author_md = f"[{author}]({m['author_url']})" if m.get("author_url") else author
        lines.append(
            f"- [{_esc(m.get('title')) or r['id']}]({m['url']}) — answer by {author_md}, "
            f"{r['license'] or 'CC BY-SA'}"
        )
    return "\n".join(lines) + "\n"
