"""Every top answer's verdict on the shared Stack Exchange dumps, for before/after
comparisons of the converter and the filters.

    .venv/bin/python benches/se_verdicts.py ../shared/data/stackexchange out.json

Writes, per site: the funnel's kept and rejected counts, and for every top answer (any
score) the style filters' verdict (None is kept). Run it on two checkouts and diff the
JSON. On a core without ``check_answer`` (before issue 13) the verdict comes from that
checkout's ``benches/baseline_lxml.py`` filters, which its tests prove equal to its core.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import py7zr
from lxml import etree

from lima import _core

SITES = ("beer", "coffee", "quantumcomputing", "alcohol.meta")


def dump(root: Path, site: str) -> tuple[Path, Path]:
    """The path to scan, and a Posts.xml to read bodies from."""
    archive = root / f"{site}.stackexchange.com.7z"
    if archive.exists():
        out = Path(tempfile.mkdtemp())
        with py7zr.SevenZipFile(archive) as z:
            z.extract(path=out, targets=["Posts.xml"])
        return archive, out / "Posts.xml"
    folder = root / f"{site}.stackexchange.com"
    return folder, folder / "Posts.xml"


def verdict(html: str) -> str | None:
    if hasattr(_core, "check_answer"):
        return _core.check_answer(html)[1]  # type: ignore[no-any-return]
    sys.path.insert(0, str(Path(__file__).parent))
    import baseline_lxml  # the old checkout's reference filters

    markdown, prose = _core.html_to_markdown(html)
    return baseline_lxml.Filters().check(markdown, prose)  # type: ignore[call-arg,arg-type,return-value]


def main(root: Path, out: Path) -> None:
    report: dict[str, Any] = {}
    for site in SITES:
        path, posts = dump(root, site)
        _, funnel = _core.scan_stackexchange(path)
        top = pl.DataFrame(_core.scan_stackexchange(path, filters=False)[0])
        wanted = dict(zip(top["answer_id"], top["question_id"], strict=True))
        scores = dict(zip(top["answer_id"], top["answer_score"], strict=True))
        answers = {}
        for _, row in etree.iterparse(str(posts), events=("end",), tag="row"):
            aid = int(row.get("Id") or 0)
            if row.get("PostTypeId") == "2" and aid in wanted:
                answers[str(aid)] = {
                    "question": wanted[aid],
                    "score": scores[aid],
                    "verdict": verdict(row.get("Body") or ""),
                }
            row.clear()
        report[site] = {"kept": funnel["kept"], "rejected": funnel["rejected"], "answers": answers}
        print(site, funnel["kept"], funnel["rejected"])
    out.write_text(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
