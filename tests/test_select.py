"""Temperature sampling of exchanges and the ranking inside an exchange."""

from __future__ import annotations

import random
from collections import Counter

import polars as pl
import pytest
from conftest import BEER_7Z, COFFEE, QC

from lima.curate.select import (
    DEICTIC_WORDS,
    select_stackexchange,
    self_contained,
    site_weights,
    temperature_sample,
)
from lima.curate.sites import load_groups
from lima.curate.sources.stackexchange import FilterSettings, scan_site


@pytest.fixture(scope="module")
def unfiltered() -> pl.DataFrame:
    groups = load_groups()
    frames = [
        scan_site(
            p, groups=groups, filters=FilterSettings(enabled=False), show_progress=False
        ).frame
        for p in (BEER_7Z, COFFEE, QC)
    ]
    return pl.concat(frames)


def test_weights_follow_n_to_the_one_over_tau() -> None:
    w = site_weights({"a": 1000, "b": 8, "c": 0}, tau=3)
    assert w == pytest.approx({"a": 10.0, "b": 2.0})
    assert site_weights({"a": 1000, "b": 8}, tau=1) == pytest.approx({"a": 1000.0, "b": 8.0})


def test_draws_match_the_temperature_distribution(unfiltered: pl.DataFrame) -> None:
    """Real sites of 987, 212 and 569 top answers; one draw each, many seeds."""
    counts = Counter()
    rank = [pl.col("id")]
    trials = 3000
    for seed in range(trials):
        chosen, _ = temperature_sample(unfiltered, 1, 3.0, random.Random(seed), rank)
        counts[chosen["domain"][0]] += 1
    n = unfiltered.group_by("domain").len().rows()
    w = {site: k ** (1 / 3) for site, k in n}
    total = sum(w.values())
    for site, weight in w.items():
        assert counts[site] / trials == pytest.approx(weight / total, abs=0.03), site


def test_exhausted_site_leaves_the_draw(unfiltered: pl.DataFrame) -> None:
    coffee_n = unfiltered.filter(pl.col("domain") == "coffee.stackexchange.com").height
    chosen, report = temperature_sample(
        unfiltered, len(unfiltered), 3.0, random.Random(0), [pl.col("id")]
    )
    assert len(chosen) == len(unfiltered) and chosen["id"].n_unique() == len(unfiltered)
    assert report.sites["coffee.stackexchange.com"] == coffee_n
    _more, report = temperature_sample(
        unfiltered, len(unfiltered) + 5, 3.0, random.Random(0), [pl.col("id")]
    )
    assert report.short_by == 5


def test_rank_within_a_site(unfiltered: pl.DataFrame) -> None:
    qc = unfiltered.filter(pl.col("domain") == "quantumcomputing.stackexchange.com")
    rank = [pl.col("meta").struct.field("answer_score").neg(), pl.col("id")]
    chosen, _ = temperature_sample(qc, 5, 3.0, random.Random(0), rank)
    scores = chosen["meta"].struct.field("answer_score").to_list()
    assert scores == sorted(qc["meta"].struct.field("answer_score").to_list(), reverse=True)[:5]


def test_questions_ranked_by_question_score(unfiltered: pl.DataFrame) -> None:
    """Within an exchange: self-contained titles first, then the highest question score."""
    qc = unfiltered.filter(pl.col("domain") == "quantumcomputing.stackexchange.com")
    chosen, _ = select_stackexchange(qc, {"stem": 30}, 3.0, 0, DEICTIC_WORDS, 4)
    ok = chosen.select(self_contained(pl.col("meta").struct.field("title"), DEICTIC_WORDS, 4))
    flags = ok.to_series().to_list()
    assert flags == sorted(flags, reverse=True)
    scores = chosen.filter(ok.to_series())["meta"].struct.field("question_score").to_list()
    assert scores == sorted(scores, reverse=True) and len(scores) > 5
    best = (
        qc.filter(
            pl.select(
                self_contained(qc["meta"].struct.field("title"), DEICTIC_WORDS, 4)
            ).to_series()
        )["meta"]
        .struct.field("question_score")
        .max()
    )
    assert scores[0] == best


def test_ties_are_broken_by_the_seed(unfiltered: pl.DataFrame) -> None:
    tied = unfiltered.filter(pl.col("domain") == "coffee.stackexchange.com").with_columns(
        meta=pl.col("meta").struct.with_fields(question_score=pl.lit(5, pl.Int64))
    )
    order = {
        seed: select_stackexchange(tied, {"other": len(tied)}, 3.0, seed, [], 1, [], [])[0][
            "id"
        ].to_list()
        for seed in (0, 0, 1)
    }
    again = select_stackexchange(tied, {"other": len(tied)}, 3.0, 0, [], 1, [], [])[0][
        "id"
    ].to_list()
    assert order[0] == again
    assert order[0] != order[1] and sorted(order[0]) == sorted(order[1])


@pytest.mark.parametrize(
    ("title", "ok"),
    [
        ("What is the difference between an ale and a lager?", True),
        ("How do I brew coffee without a filter?", True),
        ("How to brew coffee without a filter", True),  # opens with a question word
        ("Is this beer safe to drink?", False),  # leans on the body
        ("What does the following circuit do?", False),
        ("What does the above circuit compute?", False),
        ("Is it safe to drink?", True),  # "it" resolved by the infinitive
        ("Why does it taste sour?", False),  # "it" stands for something in the body
        ("Can they be brewed at home?", False),
        ("How long does it take to ferment a lager?", True),
        ("Lager vs ale", False),  # not a question
        ("Why?", False),  # too short to stand alone
    ],
)
def test_self_contained_titles(title: str, ok: bool) -> None:
    got = pl.select(self_contained(pl.lit(title), DEICTIC_WORDS, 4)).item()
    assert got is ok
