"""A plain-Python Stack Exchange scanner written as the benchmark's baseline:
lxml ``iterparse`` plus the same join as ``lima``.

It is also the test suite's independent reference for the parsing and the
join: on the real dumps its funnel must equal the native scanner's, count for
count. To compare those rather than two HTML converters and two filter sets,
it judges the few candidate answers with lima's own converter and style
filters (``lima._core.check_answer``, which has its own table-driven tests);
that only makes the baseline faster than a pure-Python one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from lxml import etree

from lima import _core

REASONS = (
    "first_person", "mostly_links", "refers_to_other_answers", "refers_to_removed_image",
    "score_below_min", "too_long", "too_short",
)  # fmt: skip


class Filters:
    def __init__(
        self,
        enabled: bool = True,
        min_score: int = 10,
        min_chars: int = 1200,
        max_chars: int = 4096,
        first_person_words: Iterable[str] = ("I", "my"),
        reference_phrases: Iterable[str] | None = None,
    ) -> None:
        self.enabled, self.min_score = enabled, min_score
        self.options: dict[str, Any] = {
            "min_chars": min_chars,
            "max_chars": max_chars,
            "first_person_words": list(first_person_words),
        }
        if reference_phrases is not None:
            self.options["reference_phrases"] = list(reference_phrases)

    def score_ok(self, score: int) -> bool:
        return not self.enabled or score >= self.min_score

    def check(self, html: str) -> tuple[str, str | None]:
        markdown, reason = _core.check_answer(html, **self.options)
        return markdown, reason if self.enabled else None


def scan(
    source: IO[bytes] | str, filters: Filters | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    f = filters or Filters()
    questions: dict[int, tuple[int, int, str, str]] = {}
    answered: dict[int, int] = {}
    best: dict[int, list[tuple[int, int, str | None, str | None]]] = {}
    funnel: dict[str, Any] = {"rows_read": 0, "questions": 0, "answers": 0, "other_post_types": {}}
    for _, row in etree.iterparse(source, events=("end",), tag="row"):
        a = row.attrib
        funnel["rows_read"] += 1
        kind = a["PostTypeId"]
        if kind == "1":
            funnel["questions"] += 1
            questions[int(a["Id"])] = (
                int(a["Score"]),
                int(a.get("AcceptedAnswerId", 0)),
                a["Title"],
                a["Body"],
            )
        elif kind == "2":
            funnel["answers"] += 1
            parent, score, aid = int(a["ParentId"]), int(a["Score"]), int(a["Id"])
            answered[parent] = answered.get(parent, 0) + 1
            cands = best.get(parent)
            if f.score_ok(score) and (not cands or score >= cands[0][0]):
                markdown, reason = f.check(a["Body"])
                entry = (score, aid, reason, markdown if reason is None else None)
                if cands and score > cands[0][0]:
                    cands.clear()
                best.setdefault(parent, []).append(entry)
        else:
            other = funnel["other_post_types"]
            other[kind] = other.get(kind, 0) + 1
        row.clear()
        while row.getprevious() is not None:
            del row.getparent()[0]
    orphaned = sum(n for q, n in answered.items() if q not in questions)
    top = sum(1 for q in answered if q in questions)
    rejected = dict.fromkeys(REASONS, 0)
    pairs = []
    judged = 0
    for qid, (_qscore, accepted, title, _body) in questions.items():
        cands = best.get(qid)
        if not cands:
            continue
        judged += 1
        score, aid, reason, markdown = min(cands, key=lambda c: (c[1] != accepted, c[1]))
        if reason is not None:
            rejected[reason] += 1
            continue
        pairs.append({"question_id": qid, "answer_id": aid, "title": title, "answer": markdown})
    rejected["score_below_min"] += top - judged
    funnel.update(
        answers_orphaned=orphaned,
        top_answers=top,
        answers_not_top=funnel["answers"] - orphaned - top,
        questions_unanswered=funnel["questions"] - top,
        rejected=rejected,
        kept=len(pairs),
    )
    return pairs, funnel


if __name__ == "__main__":
    pairs, funnel = scan(sys.argv[1])
    print(funnel)
