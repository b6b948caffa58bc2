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
    # "19 Powerful Prayers for a Financial Miracle from God", "Bumps on the Scalp: Common
    # Causes & Treatments" are not how-tos; "How To ...", "Simple Ways to ..." and "Easy Ways
    # to ..." are
    assert f["rejected"] == {"title_not_how_to": 12}
    assert f["kept"] == f["articles"] - sum(f["rejected"].values()) == steps.frame.height


def test_titles_become_lower_case_questions_with_names_kept(steps: wikihow.WikiHowScan) -> None:
    prompts = dict(steps.frame.select("title", "prompt").iter_rows())
    assert prompts["How to Remove Lint from Clothes: 14+ Easy Methods"] == (
        "How to remove lint from clothes?"
    )
    assert prompts["3 Ways to Take Evening Primrose Oil - wikiHow"] == (
        "How to take evening primrose oil?"
    )
    assert prompts["How to Brush a Dog's Teeth (with Pictures) - wikiHow"] == (
        "How to brush a dog's teeth?"
    )
    assert prompts["Simple Ways to Clean Painted Wood: 10 Steps (with Pictures)"] == (
        "How to clean painted wood?"
    )
    assert prompts["Easy Ways to Install Vinyl Plank Flooring on Concrete"] == (
        "How to install vinyl plank flooring on concrete?"
    )
    assert prompts["How To Tell if Your Guy Friend Sees You as One of the Guys"].startswith(
        "How to tell if "
    )
    assert prompts["17 Ways to Look Younger at 30 - wikiHow"] == "How to look younger at 30?"
    # names: capitalised in mid-sentence in the article's own text, more often than not
    assert prompts["3 Ways to Get Rid of a European Hornet - wikiHow"] == (
        "How to get rid of a European hornet?"
    )
    assert prompts["How to Dress for Oktoberfest: 14 Steps (with Pictures) - wikiHow"] == (
        "How to dress for Oktoberfest?"
    )
    assert prompts["How to Dress Kinderwhore Like Courtney Love: 8 Steps"] == (
        "How to dress kinderwhore like Courtney Love?"
    )
    assert prompts["7 Ways to Disable JavaScript - wikiHow"] == "How to disable JavaScript?"
    assert prompts["3 Ways to Use Dr. Atkins' Diet as a Vegetarian or Vegan - wikiHow"] == (
        "How to use Dr. Atkins' diet as a vegetarian or vegan?"
    )
    # "Seller" is capitalised in a button's label, but "seller" is the common word there
    assert prompts["How to Sell Books on Amazon: A Quick & Easy Guide"] == (
        "How to sell books on Amazon?"
    )
    # a name of several words stays together: "Remote" is common in lower case in that article
    # ("a remote connection"), but "Remote Desktop" and "Chrome Remote Desktop" are more common
    assert prompts["How to Use Remote Desktop on Windows 8 (with Pictures) - wikiHow"] == (
        "How to use Remote Desktop on Windows 8?"
    )
    # every word of a run of capitals counts ("In a South Indian birth chart")
    assert prompts["How to Read a South Indian Astrology Chart: 8 Steps"] == (
        "How to read a South Indian astrology chart?"
    )
    # the article names "Virtual Router", a different name: no evidence for "Virtual Wifi"
    assert prompts["3 Ways to Create a Free Virtual Wifi Hotspot on Your Laptop"] == (
        "How to create a free virtual wifi hotspot on your laptop?"
    )
    # "the Facebook Polls page" once against "poll" fifteen times; "Baby Girl Dolls" in quotes
    assert prompts["How to Do Polls on Facebook (with Pictures) - wikiHow"] == (
        "How to do polls on Facebook?"
    )
    assert prompts["How to Store American Girl Dolls Long Term (with Pictures)"] == (
        "How to store American Girl dolls long term?"
    )
    assert all(p.startswith("How to ") and p.endswith("?") for p in prompts.values())


def test_step_table_articles_read_like_lima(steps: wikihow.WikiHowScan) -> None:
    bodies = steps.frame["response"].to_list()
    raw = "\n".join(pl.read_csv(STEPS)["paragraph"].to_list())
    assert "X Research source" in raw and "Go to source" in raw and "https://" in raw
    # the scraper left images' metadata ({"smallUrl": ..., "licensing": "<div ...>"}) and
    # inline HTML ("<i>The St. Martins Handbook.</i>") in some paragraphs
    assert '{"smallUrl":' in raw and "<i>" in raw
    joined = "\n".join(bodies)
    for gone in ("X Research source", "X Trustworthy Source", "X Expert Source", "Go to source",
                 "https://", "[1]", "**", "smallUrl", "mw-parser-output", "<i>", "</i>",
                 "<div"):  # fmt: skip
        assert gone not in joined, gone
    lint = steps.frame.filter(pl.col("title").str.starts_with("How to Remove Lint"))["response"][0]
    assert lint.startswith("1. Use a lint roller. You can find them in the laundry")
    # the heading is not repeated at the start of its paragraph
    assert "Use a lint roller. Use a lint roller." not in lint
    assert "\n2. Make a homemade lint roller. You will need" in lint
    # a heading that is only the first words of its paragraph's sentence ("Wash the clothes"
    # before "Wash the clothes again, but without detergent.") is not a sentence of its own
    assert "\n14. Wash the clothes again, but without detergent. If you" in lint
    by_title = dict(steps.frame.select("title", "response").iter_rows())
    boy = by_title["How to Dress up a Boy Like a Girl (with Pictures) - wikiHow"]
    assert "\n2. Shave his legs, armpits, and face. For a boy" in boy
    # a heading without its sentence's stop ("Send for help" before "Send for help. The ...")
    cpr = by_title["How to Do CPR on an Adult: A 5-Part First Aid Guide with Visuals"]
    assert "\n3. Send for help. The more people" in cpr
    # a stop inside quotes ends the heading: no second one
    wifi = by_title["3 Ways to Create a Free Virtual Wifi Hotspot on Your Laptop"]
    assert '\n13. Click "System Preferences."\n' in wifi
    assert ". ." not in joined
    minister = by_title["3 Ways to Be an Ordained Minister - wikiHow"]
    assert "include: Performing baptisms. Officiating weddings and funerals." in minister


def test_every_article_has_its_address(steps: wikihow.WikiHowScan) -> None:
    a, _ = wikihow.categorize(steps.frame, wikihow.WikiHowSettings(), [TITLES])
    urls = dict(a.select("title", "url").iter_rows())
    assert urls["How to Brush a Dog's Teeth (with Pictures) - wikiHow"] == (
        "https://www.wikihow.com/Brush-a-Dog's-Teeth"
    )
    assert urls["3 Ways to Take Evening Primrose Oil - wikiHow"] == (
        "https://www.wikihow.com/Take-Evening-Primrose-Oil"
    )
    assert all(u.startswith("https://www.wikihow.com/") for u in urls.values())
    ex = wikihow.to_examples(a.drop_nulls("top"))
    assert ex["meta"].struct.field("url").null_count() == 0


def test_koupaee_all_pairs_headlines_with_step_bodies_and_bullets(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowAll_format_sample.zip", "dummy_data/wikihowAll.csv", tmp_path)
    scan = wikihow.read_articles(path, wikihow.WikiHowSettings())
    assert scan.layout == "koupaee_all" and scan.funnel["kept"] == 1
    row = scan.frame.row(0, named=True)
    assert row["prompt"] == "How to be an organized artist?"  # the "1" suffix goes
    body = row["response"]
    assert body.startswith("1. Keep related supplies in the same area. If you're a photographer")
    # the lines under a step are its bullets, LIMA's "\t* " sub-list
    assert (
        "Some ideas include:\n\t* Essential supplies area -- the things you use every day.\n"
        in body
    )
    assert (
        "\t* Infrequent or secondary supplies area, tucked out of the way.\n2. Make an effort"
        in body
    )
    assert "8. Make a habit of throwing out old, excess, or useless stuff each month." in body
    assert ".." not in body and ";" not in body and "**" not in body


def test_koupaee_sep_opens_with_the_introduction_and_heads_each_method(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowSep_format_sample.zip", "dummy_data/wikihowSep.csv", tmp_path)
    scan = wikihow.read_articles(path, wikihow.WikiHowSettings())
    assert scan.layout == "koupaee_sep" and scan.funnel["with_introduction"] == 1
    body = scan.frame["response"][0]
    assert scan.frame["prompt"][0] == "How to sell fine art online?"
    assert body.startswith("So you're a new or aspiring artist and your creativity has spawned")
    assert (
        "there are some things you should consider.\n\n1. Sell yourself first. Before doing" in body
    )
    assert "**" not in body and "##" not in body  # one section: no heading
    # the same real rows as an article of two methods: a "## " heading for each, numbering
    # restarting, the introduction once, first
    frame = pl.read_csv(path, infer_schema=False)
    second = frame.with_columns(sectionLabel=pl.lit("Selling on a Marketplace"),
                                headline=pl.lit("Open a shop."))  # fmt: skip
    pl.concat([frame, second]).write_csv(tmp_path / "two.csv")
    body = wikihow.read_articles(tmp_path / "two.csv", wikihow.WikiHowSettings())
    text = body.frame["response"][0]
    assert text.count("So you're a new or aspiring artist") == 1
    assert "should consider.\n\n## Steps\n\n1. Sell yourself first." in text
    assert "\n\n## Selling on a Marketplace\n\n1. Open a shop. Before doing" in text
    assert "**" not in text


def test_this_article_becomes_the_following_answer_in_the_introduction(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowSep_format_sample.zip", "dummy_data/wikihowSep.csv", tmp_path)
    frame = pl.read_csv(path, infer_schema=False)
    # the real introduction, closed the way many wikiHow introductions are
    frame = frame.with_columns(
        overview=pl.col("overview").str.strip_chars() + " This article will show you how."
    )
    frame.write_csv(tmp_path / "intro.csv")
    body = wikihow.read_articles(tmp_path / "intro.csv", wikihow.WikiHowSettings())
    text = body.frame["response"][0]
    assert "some things you should consider. The following answer will show you how.\n\n1." in text
    kept = wikihow.read_articles(
        tmp_path / "intro.csv", wikihow.WikiHowSettings(rename_article=False)
    )
    assert "This article will show you how." in kept.frame["response"][0]


def test_koupaee_sep_drops_configured_sections(tmp_path: Path) -> None:
    path = unzip("koupaee_wikihowSep_format_sample.zip", "dummy_data/wikihowSep.csv", tmp_path)
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
    assert "## Tips" in scan.frame["response"][0] and "## Steps" in scan.frame["response"][0]


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


def test_classifier_is_right_on_seven_in_ten_held_out_titles() -> None:
    """The issue's bar, on benches/eval_wikihow_classifier.py's split (--holdout 0.2 --seed
    1): the held-out titles and their addresses take no part in training."""
    cmap = wikihow.load_category_map()
    table = wikihow.load_title_table([TITLES]).with_columns(
        top=wikihow.norm_name(pl.col("category")).replace_strict(cmap, default=None)
    )
    table = table.drop_nulls("top").sample(fraction=1.0, shuffle=True, seed=1)
    n_train = int(table.height * 0.8)
    train, test = table[:n_train], table[n_train:]
    model = wikihow.train_classifier(train, cmap)
    pred = test.join(wikihow.classify(test, model), on="key", how="left")
    assert pred["predicted"].null_count() == 0  # character n-grams: no title is unknown
    assert (pred["predicted"] == pred["top"]).mean() >= 0.70
    # a word the table never had is still read through its character n-grams
    x = model.matrix(["crocheting a minecraftish sweater"])
    assert x.getnnz() > 0
    # each kind of feature is normalised on its own; the row has unit length
    row = model.matrix(["train a naughty labrador"]).toarray()[0]
    assert abs(float((row**2).sum()) - 1.0) < 1e-9


def test_title_features_are_words_bigrams_and_character_ngrams() -> None:
    f = wikihow.title_features("Grow Mushrooms")
    assert "w:grow" in f and "w:mushroom" in f and "b:grow_mushrooms" in f
    assert {"c: gr", "c:row ", "c: mush", "c:ooms "} <= set(f)
    assert not any(x.startswith("c:") and len(x) - 2 > 5 for x in f)


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
