"""The native Stack Exchange scan on the real dumps: golden funnels, golden
pairs, the accounting invariants, and agreement with an independent
lxml-based reference implementation (benches/baseline_lxml.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import baseline_lxml
import polars as pl
import pytest
from conftest import ALCOHOL_META, BEER_7Z, COFFEE, QC, ROOT

from lima import _core

GOLDEN = ROOT / "tests" / "golden"

# Counted once by hand-checked runs; the lxml reference below reproduces them independently.
FUNNELS: dict[str, dict[str, Any]] = {
    "beer": {
        "path": BEER_7Z, "rows_read": 3471, "questions": 1029, "answers": 2277,
        "other_post_types": {"4": 81, "5": 81, "7": 3}, "answers_orphaned": 0,
        "answers_not_top": 1290, "questions_unanswered": 42, "top_answers": 987,
        "rejected": {"first_person": 20, "mostly_links": 0, "refers_to_other_answers": 2,
                     "refers_to_removed_image": 0, "score_below_min": 854, "too_long": 2,
                     "too_short": 91},
        "kept": 18,
    },
    "coffee": {
        "path": COFFEE, "rows_read": 592, "questions": 225, "answers": 327,
        "other_post_types": {"4": 20, "5": 20}, "answers_orphaned": 0, "answers_not_top": 115,
        "questions_unanswered": 13, "top_answers": 212,
        "rejected": {"first_person": 7, "mostly_links": 0, "refers_to_other_answers": 0,
                     "refers_to_removed_image": 0, "score_below_min": 177, "too_long": 1,
                     "too_short": 24},
        "kept": 3,
    },
    "quantumcomputing": {
        "path": QC, "rows_read": 1986, "questions": 612, "answers": 1060,
        "other_post_types": {"4": 157, "5": 157}, "answers_orphaned": 0, "answers_not_top": 491,
        "questions_unanswered": 43, "top_answers": 569,
        "rejected": {"first_person": 22, "mostly_links": 0, "refers_to_other_answers": 3,
                     "refers_to_removed_image": 4, "score_below_min": 492, "too_long": 10,
                     "too_short": 21},
        "kept": 17,
    },
    "alcohol.meta": {
        "path": ALCOHOL_META, "rows_read": 251, "questions": 94, "answers": 141,
        "other_post_types": {"4": 8, "5": 8}, "answers_orphaned": 0, "answers_not_top": 66,
        "questions_unanswered": 19, "top_answers": 75,
        "rejected": {"first_person": 1, "mostly_links": 0, "refers_to_other_answers": 0,
                     "refers_to_removed_image": 0, "score_below_min": 66, "too_long": 0,
                     "too_short": 8},
        "kept": 0,
    },
}  # fmt: skip


def scan(path: Path, **kw: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    batches, funnel = _core.scan_stackexchange(path, **kw)
    return pl.DataFrame(batches), funnel


def check_invariants(f: dict[str, Any]) -> None:
    other = sum(f["other_post_types"].values())
    assert (
        f["rows_read"]
        == f["questions"] + f["answers"] + other + f["malformed_rows"] + f["duplicate_ids"]
    )
    assert f["answers"] == f["answers_orphaned"] + f["answers_not_top"] + f["top_answers"]
    assert f["top_answers"] == f["kept"] + sum(f["rejected"].values())
    assert f["questions"] == f["top_answers"] + f["questions_unanswered"]


@pytest.mark.parametrize("name", sorted(FUNNELS))
def test_golden_funnel(name: str) -> None:
    want = dict(FUNNELS[name])
    path = want.pop("path")
    frame, got = scan(path)
    assert {k: got[k] for k in want} == want
    assert got["malformed_rows"] == 0 and got["truncated"] is False and got["errors"] == []
    assert len(frame) == want["kept"]
    check_invariants(got)


@pytest.mark.parametrize("name", sorted(FUNNELS))
def test_unfiltered_keeps_every_top_answer(name: str) -> None:
    frame, got = scan(FUNNELS[name]["path"], filters=False)
    assert got["kept"] == got["top_answers"] == FUNNELS[name]["top_answers"] == len(frame)
    assert frame["question_id"].n_unique() == len(frame)
    check_invariants(got)


@pytest.mark.parametrize("name", ["quantumcomputing", "coffee", "alcohol.meta"])
def test_reference_implementation_agrees(name: str) -> None:
    path = FUNNELS[name]["path"] / "Posts.xml"
    pairs, ref = baseline_lxml.scan(str(path))
    frame, got = scan(path)
    for key, value in ref.items():
        assert got[key] == value, key
    assert sorted(zip(frame["question_id"], frame["answer_id"], strict=True)) == sorted(
        (p["question_id"], p["answer_id"]) for p in pairs
    )
    assert dict(zip(frame["answer_id"], frame["answer"], strict=True)) == {
        p["answer_id"]: p["answer"] for p in pairs
    }


def test_reference_agrees_unfiltered() -> None:
    pairs, ref = baseline_lxml.scan(str(QC / "Posts.xml"), baseline_lxml.Filters(enabled=False))
    frame, got = scan(QC, filters=False)
    assert got["kept"] == ref["kept"] == len(pairs)
    assert set(zip(frame["question_id"], frame["answer_id"], strict=True)) == {
        (p["question_id"], p["answer_id"]) for p in pairs
    }


def test_7z_member_equals_extracted_file(beer_posts_xml: Path) -> None:
    """Streaming Posts.xml out of the solid BZip2 archive gives exactly what
    an independent 7z implementation extracts."""
    from_archive, f1 = scan(BEER_7Z)
    from_file, f2 = scan(beer_posts_xml)
    assert f1 == f2
    assert from_archive.equals(from_file)
    _pairs, ref = baseline_lxml.scan(str(beer_posts_xml))
    assert {k: f1[k] for k in ref} == ref


@pytest.mark.parametrize(
    ("path", "qid", "aid", "golden"),
    [
        (BEER_7Z, 8, 18, "beer-q8-a18"),
        (QC, 70, 71, "quantumcomputing-q70-a71"),
        (COFFEE, 14, 46, "coffee-q14-a46"),
    ],
)
def test_golden_pairs(path: Path, qid: int, aid: int, golden: str) -> None:
    frame, _ = scan(path)
    row = frame.filter(pl.col("question_id") == qid).row(0, named=True)
    assert row["answer_id"] == aid
    assert row["answer"] == (GOLDEN / f"{golden}.answer.md").read_text(encoding="utf-8")
    assert row["question"] == (GOLDEN / f"{golden}.question.md").read_text(encoding="utf-8")


def test_known_pair_fields() -> None:
    frame, _ = scan(BEER_7Z)
    row = frame.filter(pl.col("question_id") == 8).row(0, named=True)
    assert row["title"] == "What is the difference between an ale and a lager?"
    assert row["answer_score"] == 39 and row["accepted"] is True
    assert row["tags"] == [
        "brewing",
        "ale",
        "lager",
    ]  # Tags="&lt;brewing&gt;&lt;ale&gt;&lt;lager&gt;"
    assert row["answer_license"] == "CC BY-SA 3.0"
    assert row["answer"].startswith("Ale yeast strains are best used at temperatures")
    # HTML is gone, entities are decoded
    assert "<" not in row["answer"] and "&amp;" not in row["answer"]


def test_old_dump_without_content_license_is_read() -> None:
    frame, _ = scan(QC)
    assert frame["question_license"].null_count() == len(frame)
    assert frame["answer_license"].null_count() == len(frame)


def test_prompt_field_follows_the_seed() -> None:
    a, _ = scan(QC, filters=False, seed=1)
    b, _ = scan(QC, filters=False, seed=1)
    c, _ = scan(QC, filters=False, seed=2)
    assert a["prompt_field"].to_list() == b["prompt_field"].to_list()
    assert a["prompt_field"].to_list() != c["prompt_field"].to_list()
    share = (a["prompt_field"] == "title").mean()
    assert isinstance(share, float) and 0.4 < share < 0.6


def test_filter_settings_are_honoured() -> None:
    _, strict = scan(QC, min_score=20)
    _, loose = scan(QC, min_score=5, min_chars=200, max_chars=10_000)
    assert strict["kept"] < FUNNELS["quantumcomputing"]["kept"] < loose["kept"]
    _, no_words = scan(QC, first_person_words=[], reference_phrases=[])
    assert no_words["rejected"]["first_person"] == 0
    assert no_words["rejected"]["refers_to_other_answers"] == 0
    with pytest.raises(ValueError, match="min_chars"):
        scan(QC, min_chars=10, max_chars=5)


@pytest.mark.parametrize("method", ["LZMA", "LZMA2", "BZIP2"])
def test_7z_methods(tmp_path: Path, method: str) -> None:
    """The coffee dump packed by py7zr with each method the dumps use, next to
    other members so Posts.xml is not first in the solid block."""
    import py7zr

    archive = tmp_path / "coffee.stackexchange.com.7z"
    filters = [{"id": getattr(py7zr, f"FILTER_{method}")}]
    with py7zr.SevenZipFile(archive, "w", filters=filters) as z:
        z.write(ROOT / "tests" / "data" / "stackexchange" / "Sites.xml", arcname="Badges.xml")
        z.write(COFFEE / "Posts.xml", arcname="Posts.xml")
    frame, funnel = scan(archive)
    plain, want = scan(COFFEE)
    assert funnel == want
    assert frame.equals(plain)


def test_lowercase_file_names(tmp_path: Path) -> None:
    d = tmp_path / "coffee.stackexchange.com"
    d.mkdir()
    (d / "posts.xml").write_bytes((COFFEE / "Posts.xml").read_bytes())
    _, funnel = scan(d)
    assert funnel["kept"] == FUNNELS["coffee"]["kept"]
