"""Selection: which candidates become examples.

Within each Stack Exchange group (STEM, other) the exchange of each next
example is drawn with temperature sampling, p(site) proportional to
n_site ** (1 / tau) where n_site is the site's number of candidates; within a
site, questions with a self-contained title come first, then by answer score.
A site that runs out leaves the draw. Everything is driven by one seeded
``random.Random``, so a seed fixes the selection.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl


def self_contained(title: pl.Expr, deictic: list[str], min_words: int) -> pl.Expr:
    """A title that is a whole question by itself: ends with '?', has enough
    words, and points at nothing outside it ("this", "the following", ...)."""
    t = title.str.strip_chars()
    ok = t.str.ends_with("?") & (t.str.split(" ").list.len() >= min_words)
    if deictic:
        pattern = r"(?i)\b(?:" + "|".join(re.escape(w) for w in deictic) + r")\b"
        ok = ok & ~t.str.contains(pattern)
    return ok


def site_weights(counts: dict[str, int], tau: float) -> dict[str, float]:
    """Unnormalised temperature weights n ** (1 / tau)."""
    return {site: n ** (1.0 / tau) for site, n in counts.items() if n > 0}


@dataclass
class GroupReport:
    wanted: int
    got: int
    candidates: int
    sites: dict[str, int] = field(default_factory=dict)
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def short_by(self) -> int:
        return max(0, self.wanted - self.got)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wanted": self.wanted,
            "got": self.got,
            "short_by": self.short_by,
            "candidates": self.candidates,
            "sites": self.sites,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
        }


def temperature_sample(
    frame: pl.DataFrame, quota: int, tau: float, rng: random.Random, rank: list[pl.Expr]
) -> tuple[pl.DataFrame, GroupReport]:
    """Draw ``quota`` rows: a site by temperature, then that site's next best row."""
    ordered = frame.with_row_index("_row").sort([pl.col("domain"), *rank])
    pools: dict[str, list[int]] = {}
    for site, rows in (
        ordered.group_by("domain", maintain_order=True).agg(pl.col("_row")).iter_rows()
    ):
        pools[site] = list(rows)
    counts = {site: len(rows) for site, rows in sorted(pools.items())}
    weights = site_weights(counts, tau)
    total = sum(weights.values()) or 1.0
    report = GroupReport(
        wanted=quota,
        got=0,
        candidates=len(frame),
        probabilities={s: w / total for s, w in weights.items()},
    )
    cursor = dict.fromkeys(pools, 0)
    picked: list[int] = []
    live = sorted(weights)
    while len(picked) < quota and live:
        site = rng.choices(live, weights=[weights[s] for s in live])[0]
        picked.append(pools[site][cursor[site]])
        cursor[site] += 1
        report.sites[site] = report.sites.get(site, 0) + 1
        if cursor[site] == len(pools[site]):
            live.remove(site)
    report.got = len(picked)
    report.sites = dict(sorted(report.sites.items()))
    order = pl.DataFrame(
        {"_row": picked, "_pick": range(len(picked))}, schema={"_row": pl.UInt32, "_pick": pl.Int64}
    )
    chosen = frame.with_row_index("_row").join(order, on="_row").sort("_pick").drop("_row", "_pick")
    return chosen, report


def select_stackexchange(
    candidates: pl.DataFrame,
    quotas: dict[str, int],
    tau: float,
    seed: int,
    deictic: list[str],
    min_title_words: int,
) -> tuple[pl.DataFrame, dict[str, GroupReport]]:
    rng = random.Random(seed)
    flagged = candidates.with_columns(
        _self_contained=self_contained(
            pl.col("meta").struct.field("title"), deictic, min_title_words
        )
    )
    rank = [
        pl.col("_self_contained").not_(),
        pl.col("meta").struct.field("answer_score").neg(),
        pl.col("meta").struct.field("question_score").neg(),
        pl.col("id"),
    ]
    parts, reports = [], {}
    for group in sorted(quotas):
        chosen, report = temperature_sample(
            flagged.filter(pl.col("group") == group), quotas[group], tau, rng, rank
        )
        parts.append(chosen.drop("_self_contained"))
        reports[group] = report
    selected = pl.concat(parts) if parts else candidates.clear()
    return selected, reports
