"""Multi-turn candidates mined from Stack Exchange comment threads.

A chain is a question, its top answer, then the comments under that answer in which the
asker and the answerer take turns: the asker's follow-up, the answerer's reply, and so on.
Other people's comments are skipped, consecutive comments by one person become one turn, and
the chain ends on the answerer. The paper edited 20 such chains by hand; these are candidates
for the review page, where a person edits them into the house style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import _core, schema
from lima.curate.sites import site_from_path
from lima.progress import run_with_bar

LICENSE = "CC BY-SA 4.0"


@dataclass
class DialogueScan:
    path: str
    site: str
    funnel: dict[str, Any]
    frame: pl.DataFrame = field(default_factory=schema.empty)

    def report(self) -> dict[str, Any]:
        return {"path": self.path, "site": self.site, "funnel": self.funnel}


def _clean_comment(text: str) -> str:
    t = text.strip()
    while t.startswith("@"):  # "@alice @bob thanks" -> "thanks"
        _, _, rest = t.partition(" ")
        if not rest:
            break
        t = rest.lstrip()
    return t


def chain(question_owner: str, answer_owner: str, comments: list[dict[str, Any]]) -> list[str]:
    """Alternating follow-up/reply turns from the comments under an answer (sorted by id)."""
    turns: list[tuple[str, str]] = []
    for c in comments:
        who = c["user_id"]
        if who not in (question_owner, answer_owner):
            continue
        text = _clean_comment(c["text"])
        if not text:
            continue
        if not turns and who != question_owner:
            continue  # the answerer's own notes before any follow-up
        if turns and turns[-1][0] == who:
            turns[-1] = (who, turns[-1][1] + "\n\n" + text)
        else:
            turns.append((who, text))
    if turns and turns[-1][0] == question_owner:
        turns.pop()  # a follow-up nobody answered
    return [t for _, t in turns]


def mine(
    path: Path,
    *,
    min_turns: int = 4,
    on_error: str = "fail",
    seed: int = 0,
    site: str | None = None,
    show_progress: bool | None = None,
) -> DialogueScan:
    """Chains of at least ``min_turns`` turns (question and answer included) from one site."""
    name = (site or site_from_path(path) or path.stem).lower()

    def posts(progress: _core.Progress) -> tuple[_core.ArrowBatches, dict[str, Any]]:
        return _core.scan_stackexchange(
            path, progress=progress, on_error=on_error, seed=seed, filters=False
        )

    batches, _ = run_with_bar(f"{name} posts", posts, show=show_progress)
    pairs = pl.DataFrame(batches)
    rejected: dict[str, int] = {}
    owned = pairs.filter(
        pl.col("question_owner_id").is_not_null()
        & pl.col("answer_owner_id").is_not_null()
        & (pl.col("question_owner_id") != pl.col("answer_owner_id"))
    )
    if pairs.height - owned.height:
        rejected["no_distinct_owners"] = pairs.height - owned.height
    ids = owned["answer_id"].to_list()

    def comments(progress: _core.Progress) -> tuple[_core.ArrowBatches, dict[str, Any]]:
        return _core.scan_comments(path, ids, progress=progress, on_error=on_error)

    cbatches, cfunnel = run_with_bar(f"{name} comments", comments, show=show_progress)
    by_post: dict[int, list[dict[str, Any]]] = {}
    for c in pl.DataFrame(cbatches).iter_rows(named=True):
        by_post.setdefault(c["post_id"], []).append(c)
    rows = []
    base = f"https://{name}"
    for p in owned.iter_rows(named=True):
        turns = chain(p["question_owner_id"], p["answer_owner_id"], by_post.get(p["answer_id"], []))
        if not turns:
            reason = "no_follow_up_and_reply"
        elif 2 + len(turns) < min_turns:
            reason = "too_few_turns"
        else:
            reason = None
        if reason:
            rejected[reason] = rejected.get(reason, 0) + 1
            continue
        prompt = f"{p['title']}\n\n{p['question']}".strip()
        rows.append(
            {
                "id": f"dialogue/{name}/q{p['question_id']}-a{p['answer_id']}",
                "source": "dialogue",
                "domain": name,
                "group": None,
                "conversations": [prompt, p["answer"], *turns],
                "meta": {
                    "question_id": p["question_id"],
                    "answer_id": p["answer_id"],
                    "question_score": p["question_score"],
                    "answer_score": p["answer_score"],
                    "title": p["title"],
                    "url": f"{base}/a/{p['answer_id']}",
                    "question_url": f"{base}/questions/{p['question_id']}",
                    "author": p["answer_owner_name"] or f"user {p['answer_owner_id']}",
                    "author_url": f"{base}/users/{p['answer_owner_id']}",
                },
                "license": p["answer_license"] or LICENSE,
            }
        )
    meta_schema = pl.Struct(
        {"question_id": pl.Int64, "answer_id": pl.Int64, "question_score": pl.Int64,
         "answer_score": pl.Int64, "title": pl.String, "url": pl.String,
         "question_url": pl.String, "author": pl.String, "author_url": pl.String}
    )  # fmt: skip
    frame = pl.DataFrame(rows, schema={**dict(schema.SCHEMA), "meta": meta_schema})
    frame = schema.conform(frame).sort(
        pl.col("conversations").list.len(), pl.col("meta").struct.field("answer_score"), "id",
        descending=[True, True, False],
    )  # fmt: skip
    funnel = {
        "top_answers": pairs.height,
        "comments": cfunnel,
        "rejected": dict(sorted(rejected.items())),
        "kept": frame.height,
    }
    return DialogueScan(str(path), name, funnel, frame)
