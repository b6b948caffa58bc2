"""Stack Exchange: site dumps to (question, top answer) candidates.

The native scanner does the streaming, the join and the filters; this module
decides which files to read (meta and excluded sites are skipped and said so),
turns the scanner's flat Arrow batch into the shared schema, and sums funnels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import _core, schema
from lima.curate.sites import is_meta, site_from_path
from lima.errors import ConfigError
from lima.progress import console, run_with_bar, scan_threads

# Stack Exchange moved to CC BY-SA 3.0 on 2011-04-08 and to 4.0 on 2018-05-02;
# dumps from before 2019 carry no ContentLicense attribute.
_LICENSE_BY_DATE = (("2011-04-08", "CC BY-SA 2.5"), ("2018-05-02", "CC BY-SA 3.0"))
_LICENSE_LATEST = "CC BY-SA 4.0"


@dataclass
class FilterSettings:
    """LIMA's answer filters (section 2.1 of the paper); each is a config value."""

    enabled: bool = True
    min_score: int = 10
    min_chars: int = 1200
    max_chars: int = 4096
    # Pronouns in the author's own prose (not code, math or quotes); a capital "I" next to an
    # operator or digit, or after one of `numeral_words` ("World War I"), is not one.
    first_person_words: list[str] = field(default_factory=lambda: ["I", "my"])
    numeral_words: list[str] = field(default_factory=lambda: list(_core.default_numeral_words()))
    # Case-insensitive, at word boundaries; "@" alone stands for any @-mention.
    reference_phrases: list[str] = field(
        default_factory=lambda: list(_core.default_reference_phrases())
    )
    # An answer whose removed image is still pointed at ("as shown below", "like this:").
    image_references: bool = True
    image_phrases: list[str] = field(default_factory=lambda: list(_core.default_image_phrases()))
    # An answer whose text is at least this share of list items that are only links (0: off).
    max_link_list_share: float = 0.5


@dataclass
class MarkdownStyle:
    """How answers are written; the defaults match LIMA's released train set."""

    bullet: str = "* "
    blank_line_between_paragraphs: bool = False
    inline_code_backticks: bool = True
    escape: bool = True  # Markdown-special characters in prose
    max_depth: int = 8  # deeper lists and quotes are flattened and counted


def _core_options(f: FilterSettings, style: MarkdownStyle) -> dict[str, Any]:
    return {
        "min_chars": f.min_chars,
        "max_chars": f.max_chars,
        "first_person_words": f.first_person_words,
        "numeral_words": f.numeral_words,
        "reference_phrases": f.reference_phrases,
        "image_references": f.image_references,
        "image_phrases": f.image_phrases,
        "max_link_list_share": f.max_link_list_share,
        "bullet": style.bullet,
        "blank_line_between_paragraphs": style.blank_line_between_paragraphs,
        "inline_code_backticks": style.inline_code_backticks,
        "escape_markdown": style.escape,
        "max_depth": style.max_depth,
    }


@dataclass
class SiteScan:
    path: str
    site: str
    group: str
    status: str  # "scanned" or "skipped"
    reason: str | None = None
    funnel: dict[str, Any] = field(default_factory=dict)
    frame: pl.DataFrame = field(default_factory=schema.empty)

    def report(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("frame")
        return d


def _license(date_col: str, license_col: str) -> pl.Expr:
    (d1, l1), (d2, l2) = _LICENSE_BY_DATE
    by_date = (
        pl.when(pl.col(date_col) < d1)
        .then(pl.lit(l1))
        .when(pl.col(date_col) < d2)
        .then(pl.lit(l2))
        .otherwise(pl.lit(_LICENSE_LATEST))
    )
    return pl.coalesce(pl.col(license_col), by_date)


def to_examples(flat: pl.DataFrame, site: str, group: str, source: str = "") -> pl.DataFrame:
    """The scanner's flat columns as rows of the shared schema; ``source`` names the input
    (kept in ``meta.file``, so a question read from two inputs can be told apart)."""
    base = f"https://{site}"
    prompt = (
        pl.when(pl.col("prompt_field") == "title")
        .then(pl.col("title"))
        .otherwise(pl.col("question"))
    )

    def person(name: str, uid: str) -> tuple[pl.Expr, pl.Expr]:
        who = pl.coalesce(pl.col(name), pl.format("user {}", pl.col(uid)))
        url = pl.when(pl.col(uid).is_not_null()).then(pl.format(base + "/users/{}", pl.col(uid)))
        return who, url

    author, author_url = person("answer_owner_name", "answer_owner_id")
    asker, asker_url = person("question_owner_name", "question_owner_id")
    out = flat.select(
        id=pl.format("se/" + site + "/q{}-a{}", "question_id", "answer_id"),
        source=pl.lit("stackexchange"),
        domain=pl.lit(site),
        group=pl.lit(group),
        conversations=pl.concat_list(prompt, pl.col("answer")),
        meta=pl.struct(
            question_id="question_id",
            answer_id="answer_id",
            question_score="question_score",
            answer_score="answer_score",
            accepted="accepted",
            prompt_field="prompt_field",
            title="title",
            question="question",
            tags="tags",
            url=pl.format(base + "/a/{}", "answer_id"),
            question_url=pl.format(base + "/questions/{}", "question_id"),
            author=author,
            author_url=author_url,
            asker=asker,
            asker_url=asker_url,
            file=pl.lit(source),
            created="answer_date",
            question_license=_license("question_date", "question_license"),
        ),
        license=_license("answer_date", "answer_license"),
    )
    return schema.conform(out)


def scan_site(
    path: Path,
    *,
    groups: dict[str, str],
    site: str | None = None,
    include_meta: bool = False,
    filters: FilterSettings | None = None,
    style: MarkdownStyle | None = None,
    on_error: str = "fail",
    seed: int = 0,
    show_progress: bool | None = None,
    label: str | None = None,
    users: bool = True,
) -> SiteScan:
    """Scan one site dump (``.7z``, folder, or ``Posts.xml``). A site missing from
    ``groups`` is scanned as ``other`` and warned about on the console and in the funnel."""
    name = (site or site_from_path(path) or "").lower()
    if not name:
        raise ConfigError(
            f"{path}: cannot tell which site this dump is from its name; "
            "pass --site NAME (or {path = ..., site = ...} in the config)"
        )
    if is_meta(name) and not include_meta:
        return SiteScan(str(path), name, "excluded", "skipped", "meta_site")
    group = groups.get(name, "other")
    if group == "excluded":
        return SiteScan(str(path), name, group, "skipped", "excluded_site")
    if path.is_dir() and not any(p.name.lower() in _POSTS for p in path.iterdir()):
        if on_error == "skip":
            console.print(f"[yellow]skipped[/yellow] {path}: no Posts.xml in this folder")
            return SiteScan(str(path), name, group, "skipped", "no_posts_file")
        raise FileNotFoundError(f"{path}: no Posts.xml in this folder")
    f = filters or FilterSettings()
    options = _core_options(f, style or MarkdownStyle())

    threads = scan_threads()

    def work(progress: _core.Progress) -> tuple[_core.ArrowBatches, dict[str, Any]]:
        return _core.scan_stackexchange(
            path,
            progress=progress,
            threads=threads,
            on_error=on_error,
            seed=seed,
            filters=f.enabled,
            min_score=f.min_score,
            users=users,
            **options,
        )

    batches, funnel = run_with_bar(name, work, show=show_progress)
    frame = to_examples(pl.DataFrame(batches), name, group, label or str(path))
    if name not in groups:
        warning = f"{name} is not in the sites table; grouped as 'other'"
        console.print(f"[yellow]warning[/yellow] {path}: {warning}")
        funnel["warnings"] = [warning]
    return SiteScan(label or str(path), name, group, "scanned", None, funnel, frame)


def check_answer(
    html: str, filters: FilterSettings | None = None, style: MarkdownStyle | None = None
) -> tuple[str, str | None]:
    """One answer body as the scanner converts and judges it: (Markdown, reason or None)."""
    return _core.check_answer(
        html, **_core_options(filters or FilterSettings(), style or MarkdownStyle())
    )


_POSTS = ("posts.xml", "posts.xml.zst")
_COUNTS = (
    "rows_read",
    "questions",
    "answers",
    "malformed_rows",
    "duplicate_ids",
    "answers_orphaned",
    "answers_not_top",
    "questions_unanswered",
    "top_answers",
    "kept",
    "nesting_flattened",
    # reads that failed in the container (a cut or corrupt block, a member whose CRC or size
    # is wrong) under on_error="skip", and the bytes not read because of them
    "archive_errors",
    "bytes_lost",
)


def total_funnel(scans: list[SiteScan]) -> dict[str, Any]:
    """Sum the funnels of several files."""
    total: dict[str, Any] = {k: 0 for k in _COUNTS}
    total["rejected"] = {}
    total["other_post_types"] = {}
    total["files_skipped"] = {}
    total["warnings"] = []
    total["authors_named"] = 0
    total["authors_not_listed"] = 0
    for s in scans:
        if s.status == "skipped":
            reason = s.reason or "unknown"
            total["files_skipped"][reason] = total["files_skipped"].get(reason, 0) + 1
            continue
        for k in _COUNTS:
            total[k] += s.funnel.get(k, 0)
        for key in ("rejected", "other_post_types"):
            for reason, n in s.funnel[key].items():
                total[key][reason] = total[key].get(reason, 0) + n
        total["warnings"] += [f"{s.path}: {w}" for w in s.funnel.get("warnings", [])]
        users = s.funnel.get("users") or {}
        total["archive_errors"] += users.get("archive_errors", 0)
        total["bytes_lost"] += users.get("bytes_lost", 0)
        total["authors_named"] += users.get("named", 0)
        total["authors_not_listed"] += users.get("not_listed", 0)
    return total
