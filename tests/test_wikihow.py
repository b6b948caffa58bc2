"""wikiHow on real files: the 223-article step table and the Koupaee formats."""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
import pytest
from conftest import ROOT

from lima.curate.sources import wikihow

STEPS = ROOT / "lima" / "samples" / "wikihow" / "steps_223_articles.csv"
TITLES = ROOT / "lima" / "data" / "wikihow_titles.csv"
ZIPS = ROOT / "tests" / "data" / "wikihow"


def unzip(name: str, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(ZIPS / name) as z:
        target = dest / Path(member).name
        target.write_bytes(z.read(member))
    return target


@pytest.fixture(scope="module")
def steps() -> wikihow.WikiHowScan:
    return wikihow.read_articles(STEPS, wikihow.WikiHowSettings())


def test_step_table_funnel_counts_every_article(steps: wikihow.WikiHowScan) -> None:
    f = steps.funnel
    assert steps.layout == "steps"
    assert (f["rows_read"], f["steps"], f["articles"]) == (3514, 3514, 223)
    # "19 Powerful Prayers for a Financial Miracle from God" is not a how-to
    assert f["rejected"] == {"title_not_how_to": 16}
    assert f["kept"] == f["articles"] - sum(f["rejected"].values()) == steps.frame.height


def test_titles_become_questions(steps: wikihow.WikiHowScan) -> None:
    prompts = dict(steps.frame.select("title", "prompt").iter_rows())
    assert prompts["How to Remove Lint from Clothes: 14+ Easy Methods"] == (
        "How to Remove Lint from Clothes?"
    )
    assert prompts["3 Ways to Take Evening Primrose Oil - wikiHow"] == (
        "How to Take Evening Primrose Oil?"
    )
    assert prompts["How to Brush a Dog's Teeth (with Pictures) - wikiHow"] == (
        "How to Brush a Dog's Teeth?"
    )
    assert (
        prompts["10 Ways to Tone Legs While Sitting - wikiHow"] == "How to Tone Legs While Sitting?"
    )
    assert all(p.startswith("How to ") and p.endswith("?") for p in prompts.values())


def test_citations_links_and_article_self_reference_are_cleaned(
    steps: wikihow.WikiHowScan,
) -> None:
    bodies = steps.frame["response"].to_list()
    raw = "\n".join(pl.read_csv(STEPS)["paragraph"].to_list())
    assert "X Research source" in raw and "Go to source" in raw and "https://" in raw
    joined = "\n".join(bodies)
    for gone in ("X Research source", "X Trustworthy Source", "X Expert Source", "Go to source",
                 "https://", "[1]"):  # fmt: skip
        assert gone not in joined, gone
    assert "this article" not in joined.lower()
    lint = steps.frame.filter(pl.col("title").str.starts_with("How to Remove Lint"))["response"][0]
    assert lint.startswith("1. **Use a lint roller.** You can find them in the laundry")
    # the heading is not repeated at the start of its paragraph
    assert "**Use a lint roller.** Use a lint roller." not in lint


def test_koupaee_all_pairs_headlines_with_step_bodies(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowAll_format_sample.zip", "dummy_data/wikihowAll.csv", tmp_path)
    scan = wikihow.read_articles(path, wikihow.WikiHowSettings())
    assert scan.layout == "koupaee_all" and scan.funnel["kept"] == 1
    row = scan.frame.row(0, named=True)
    assert row["prompt"] == "How to Be an Organized Artist?"  # the "1" suffix goes
    body = row["response"]
    assert body.startswith(
        "1. **Keep related supplies in the same area.** If you're a photographer"
    )
    assert "8. **Make a habit of throwing out old, excess, or useless stuff each month.**" in body
    assert ".." not in body and ";" not in body.splitlines()[0][-2:]


def test_koupaee_sep_drops_configured_sections(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowSep_format_sample.zip", "dummy_data/wikihowSep.csv", tmp_path)
    scan = wikihow.read_articles(path, wikihow.WikiHowSettings())
    assert scan.layout == "koupaee_sep"
    assert scan.frame["response"][0].startswith("1. **Sell yourself first.** Before doing")
    # the same real row, labelled as a Tips section: dropped, and the article with it
    frame = pl.read_csv(path, infer_schema=False)
    tips = frame.with_columns(sectionLabel=pl.lit("Tips"))
    both = pl.concat([frame, tips.with_columns(headline=pl.lit("Another tip."))])
    both.write_csv(tmp_path / "two.csv")
    scan = wikihow.read_articles(tmp_path / "two.csv", wikihow.WikiHowSettings())
    assert scan.funnel["steps_in_dropped_sections"] == 1
    assert "Another tip" not in scan.frame["response"][0]
    keep_tips = wikihow.WikiHowSettings(drop_sections=[])
    scan = wikihow.read_articles(tmp_path / "two.csv", keep_tips)
    assert "### Tips" in scan.frame["response"][0] and "### Steps" in scan.frame["response"][0]


def test_categories_map_onto_the_19_and_the_classifier_is_deterministic(
    steps: wikihow.WikiHowScan,
) -> None:
    cmap = wikihow.load_category_map()
    assert set(cmap.values()) == set(wikihow.TOP_LEVEL) and len(wikihow.TOP_LEVEL) == 19
    titles = pl.read_csv(TITLES)
    assert {wikihow._norm_category(c) for c in titles["Category"]} <= set(cmap)
    a, how = wikihow.categorize(steps.frame, wikihow.WikiHowSettings(), [TITLES])
    assert how["title_table"] == 11  # exact title matches with the table
    assert how["classifier"] + how["title_table"] + a["top"].null_count() == steps.frame.height
    assert set(a["top"].drop_nulls()) <= set(wikihow.TOP_LEVEL)
    again, _ = wikihow.categorize(steps.frame, wikihow.WikiHowSettings(), [TITLES])
    assert a.equals(again)
    by_title = dict(a.select("title", "top").iter_rows())
    assert by_title["How to Brush a Dog's Teeth (with Pictures) - wikiHow"] == "Pets and Animals"


def test_sample_draws_a_category_then_an_article() -> None:
    cands = pl.DataFrame(
        {"id": [f"w{i:03d}" for i in range(100)], "domain": ["Health"] * 90 + ["Travel"] * 10}
    )
    picks = wikihow.sample(cands, 10, seed=0)
    # uniform over categories, not over articles: Travel gets about half of the draws
    assert 2 <= (picks["domain"] == "Travel").sum() <= 8
    assert picks.equals(wikihow.sample(cands, 10, seed=0))
    assert wikihow.sample(cands, 500, seed=0).height == 100  # runs out, never repeats


def test_bad_csv_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "wiki.csv"
    bad.write_text("name,value\nx,1\n")
    with pytest.raises(wikihow.WikiHowError, match=r"wiki\.csv: line 1: header"):
        wikihow.read_articles(bad, wikihow.WikiHowSettings())
    bad.write_text('title,heading,paragraph\n"How to x,a,b\n')
    with pytest.raises(wikihow.WikiHowError, match=r"wiki\.csv"):
        wikihow.read_articles(bad, wikihow.WikiHowSettings())
