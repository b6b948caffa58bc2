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
from lima.progress import run_with_bar

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
    first_person_words: list[str] = field(default_factory=lambda: ["I", "my"])
    reference_phrases: list[str] = field(
        default_factory=lambda: list(_core.default_reference_phrases())
    )


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


def to_examples(flat: pl.DataFrame, site: str, group: str) -> pl.DataFrame:
    """The scanner's flat columns as rows of the shared schema."""
    base = f"https://{site}"
    prompt = (
        pl.when(pl.col("prompt_field") == "title")
        .then(pl.col("title"))
        .otherwise(pl.col("question"))
    )
    author = pl.coalesce(
        pl.col("answer_owner_name"), pl.format("user {}", pl.col("answer_owner_id"))
    )
    author_url = pl.when(pl.col("answer_owner_id").is_not_null()).then(
        pl.format(base + "/users/{}", pl.col("answer_owner_id"))
    )
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
            created="answer_date",
            question_license=_license("question_date", "question_license"),
        ),
        license=_license("answer_date", "answer_license"),
    )
    return schema.check(out.cast(dict(schema.SCHEMA)))  # type: ignore[arg-type]


def scan_site(
    path: Path,
    *,
    groups: dict[str, str],
    site: str | None = None,
    include_meta: bool = False,
    filters: FilterSettings | None = None,
    on_error: str = "fail",
    seed: int = 0,
    show_progress: bool | None = None,
) -> SiteScan:
    """Scan one site dump (``.7z``, folder, or ``Posts.xml``)."""
    name = (site or site_from_path(path) or "").lower()
    if not name:
        raise ConfigError(
            f"{path}: cannot tell which site this dump is from its name; pass --site NAME"
        )
    if is_meta(name) and not include_meta:
        return SiteScan(str(path), name, "excluded", "skipped", "meta_site")
    group = groups.get(name, "other")
    if group == "excluded":
        return SiteScan(str(path), name, group, "skipped", "excluded_site")
    f = filters or FilterSettings()

    def work(progress: _core.Progress) -> tuple[_core.ArrowBatches, dict[str, Any]]:
        return _core.scan_stackexchange(
            path,
            progress=progress,
            on_error=on_error,
            seed=seed,
            filters=f.enabled,
            min_score=f.min_score,
            min_chars=f.min_chars,
            max_chars=f.max_chars,
            first_person_words=f.first_person_words,
            reference_phrases=f.reference_phrases,
        )

    batches, funnel = run_with_bar(name, work, show=show_progress)
    frame = to_examples(pl.DataFrame(batches), name, group)
    if name not in groups:
        funnel["warnings"] = [f"{name} is not in the sites table; grouped as 'other'"]
    return SiteScan(str(path), name, group, "scanned", None, funnel, frame)


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
)


def total_funnel(scans: list[SiteScan]) -> dict[str, Any]:
    """Sum the funnels of several files."""
    total: dict[str, Any] = {k: 0 for k in _COUNTS}
    total["rejected"] = {}
    total["other_post_types"] = {}
    total["files_skipped"] = {}
    for s in scans:
        if s.status == "skipped":
            reason = s.reason or "unknown"
            total["files_skipped"][reason] = total["files_skipped"].get(reason, 0) + 1
            continue
        for k in _COUNTS:
            total[k] += s.funnel[k]
        for key in ("rejected", "other_post_types"):
            for reason, n in s.funnel[key].items():
                total[key][reason] = total[key].get(reason, 0) + n
    return total
