"""Selection: which candidates become examples.

Stack Exchange, as the paper says. First every question is one candidate:
the same (site, question id) read from several inputs (a folder and its
``.7z``, two dump dates) keeps the row of the newest dump (the input whose
latest post is newest; on a tie the input listed first), and an answer text
that appears on several sites is kept once (the higher-scored). Then, within
each group (STEM, other), the exchange of each next example is drawn with
temperature sampling, p(site) proportional to n_site ** (1 / tau), n_site
being the site's number of candidates after that deduplication; within a
site, questions with a self-contained title come first, then the highest
question score, ties broken by a hash of the seed and the example id. A site
that runs out leaves the draw. Everything is driven by one seeded
``random.Random``, so a seed fixes the selection.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Words that make a title lean on its body ("Is this safe?", "What does the following mean?").
DEICTIC_WORDS = [
    "this", "these", "those", "above", "below", "following", "attached", "aforementioned",
    "here", "pictured", "shown",
]  # fmt: skip
# Pronouns that lean on the body unless the title goes on to say what they stand for
# ("Is it safe?" leans; "Is it safe to drink beer after its date?" does not).
PRONOUN_WORDS = ["it", "its", "they", "them"]
PRONOUN_RESOLVED_BY = ["to", "that", "if", "whether", "when", "for"]
# A title that does not end in '?' is still a question when it opens with one of these.
QUESTION_WORDS = [
    "what", "why", "how", "when", "where", "which", "who", "whom", "whose", "is", "are", "can",
    "could", "should", "would", "does", "do", "did", "will", "was", "were", "has", "have",
]  # fmt: skip


def _alt(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in words)


def self_contained(
    title: pl.Expr,
    deictic: list[str],
    min_words: int,
    pronouns: list[str] | None = None,
    question_words: list[str] | None = None,
) -> pl.Expr:
    """A title that is a whole question by itself: a question (ends with '?' or opens
    with a question word), at least ``min_words`` words, no word that points outside it
    ("this", "the following", ...), and no pronoun the title leaves unresolved."""
    t = title.str.strip_chars()
    qw = QUESTION_WORDS if question_words is None else question_words
    question = t.str.ends_with("?")
    if qw:
        question = question | t.str.contains(r"(?i)^(?:" + _alt(qw) + r")\b")
    ok = question & (t.str.split(" ").list.len() >= min_words)
    if deictic:
        ok = ok & ~t.str.contains(r"(?i)\b(?:" + _alt(deictic) + r")\b")
    pn = PRONOUN_WORDS if pronouns is None else pronouns
    if pn:
        has = t.str.contains(r"(?i)\b(?:" + _alt(pn) + r")\b")
        resolved = t.str.contains(
            r"(?i)\b(?:" + _alt(pn) + r")\b.*\b(?:" + _alt(PRONOUN_RESOLVED_BY) + r")\b"
        )
        ok = ok & ~(has & ~resolved)
    return ok


def tie_break(ids: pl.Series, seed: int) -> pl.Series:
    """A seeded, platform-independent order for rows that rank equal."""
    return pl.Series(
        "_tie",
        [
            int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest())
            for i in ids.to_list()
        ],
        dtype=pl.UInt64,
    )


def dedupe_questions(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One row per (site, question id) across inputs, then one per answer text.

    The newest dump wins: each input (``meta.file``) is dated by its latest answer date;
    on a tie the input that comes first in ``frame`` wins. Returns the rows kept, in
    their original order, and a report of what was dropped and why."""
    report: dict[str, Any] = {
        "questions_in_several_inputs": 0,
        "answer_text_duplicates": 0,
        "chosen": [],
    }
    if frame.height == 0:
        return frame, report
    meta = pl.col("meta").struct
    work = frame.with_row_index("_row").with_columns(
        _file=meta.field("file").fill_null(""),
        _qid=meta.field("question_id"),
        _score=meta.field("answer_score"),
    )
    dated = work.group_by("_file").agg(
        _dump=meta.field("created").max().fill_null(""), _first=pl.col("_row").min()
    )
    work = work.join(dated, on="_file", how="left")
    ranked = work.sort(["_dump", "_first"], descending=[True, False])
    kept = ranked.unique(["domain", "_qid"], keep="first", maintain_order=True)
    dup = work.height - kept.height
    report["questions_in_several_inputs"] = dup
    if dup:
        losers = work.join(kept.select("_row"), on="_row", how="anti")
        for r in (
            losers.join(kept.select("domain", "_qid", _kept_file="_file"), on=["domain", "_qid"])
            .sort("domain", "_qid", "_file")
            .head(20)
            .iter_rows(named=True)
        ):
            report["chosen"].append(
                {"site": r["domain"], "question_id": r["_qid"], "kept_from": r["_kept_file"],
                 "dropped_from": r["_file"]}
            )  # fmt: skip
    answer = pl.col("conversations").list.last()
    by_answer = kept.sort(["_score", "id"], descending=[True, False])
    unique = (
        by_answer.with_columns(_answer=answer)
        .unique("_answer", keep="first", maintain_order=True)
        .drop("_answer")
    )
    report["answer_text_duplicates"] = kept.height - unique.height
    out = unique.sort("_row").drop("_row", "_file", "_qid", "_score", "_dump", "_first")
    return out, report


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
    pronouns: list[str] | None = None,
    question_words: list[str] | None = None,
) -> tuple[pl.DataFrame, dict[str, GroupReport]]:
    rng = random.Random(seed)
    flagged = candidates.with_columns(
        _self_contained=self_contained(
            pl.col("meta").struct.field("title"), deictic, min_title_words, pronouns,
            question_words,
        ),
        _tie=tie_break(candidates["id"], seed),
    )  # fmt: skip
    rank = [
        pl.col("_self_contained").not_(),
        pl.col("meta").struct.field("question_score").neg(),
        pl.col("_tie"),
        pl.col("id"),
    ]
    parts, reports = [], {}
    for group in sorted(quotas):
        chosen, report = temperature_sample(
            flagged.filter(pl.col("group") == group), quotas[group], tau, rng, rank
        )
        parts.append(chosen.drop("_self_contained", "_tie"))
        reports[group] = report
    selected = pl.concat(parts) if parts else candidates.clear()
    return selected, reports
