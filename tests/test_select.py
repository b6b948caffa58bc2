"""Temperature sampling of exchanges and the ranking inside an exchange."""

from __future__ import annotations

import random
from collections import Counter

import polars as pl
import pytest
from conftest import BEER_7Z, COFFEE, QC

from lima.curate.select import self_contained, site_weights, temperature_sample
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


@pytest.mark.parametrize(
    ("title", "ok"),
    [
        ("What is the difference between an ale and a lager?", True),
        ("How do I brew coffee without a filter?", True),
        ("Is this beer safe to drink?", False),  # leans on the body
        ("What does the following circuit do?", False),
        ("Lager vs ale", False),  # not a question
        ("Why?", False),  # too short to stand alone
    ],
)
def test_self_contained_titles(title: str, ok: bool) -> None:
    from lima.curate.config import DEICTIC_WORDS

    got = pl.select(self_contained(pl.lit(title), DEICTIC_WORDS, 4)).item()
    assert got is ok
