"""Reddit from Pushshift dumps: r/WritingPrompts prompt + story pairs (train)
and title-only r/AskReddit prompts (test).

The native scanner reads the archives, drops other subreddits before any JSON
parse, and counts deleted and removed content; this module pairs prompts with
stories and ranks them for review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import _core, schema
from lima.progress import run_with_bar, scan_threads

ROW_SCHEMA = {
    "kind": pl.String,
    "id": pl.String,
    "subreddit": pl.String,
    "title": pl.String,
    "text": pl.String,
    "score": pl.Int64,
    "created_utc": pl.Int64,
    "author": pl.String,
    "link_id": pl.String,
    "parent_id": pl.String,
    "num_comments": pl.Int64,
    "permalink": pl.String,
}

# "[WP] A prompt", "[ WP ] ...", "(WP) ...": the tag at the start of a title,
# which decides whether it is kept; all leading tags ("[WP] [NSFW]") are removed.
TAG = r"^\s*[\[(]\s*([A-Za-z]{2,3})\s*[\])]\s*"
LEADING_TAGS = r"^(?:\s*[\[(][^\])]{1,16}[\])])+\s*"


@dataclass
class PushshiftScan:
    path: str
    funnel: dict[str, Any]
    frame: pl.DataFrame

    def report(self) -> dict[str, Any]:
        return {"path": self.path, "funnel": self.funnel}


def scan_file(
    path: Path,
    *,
    subreddit: str | None,
    kind: str = "auto",
    on_error: str = "fail",
    min_submission_score: int | None = None,
    min_comment_score: int | None = None,
    min_comment_chars: int = 0,
    top_level_only: bool = False,
    show_progress: bool | None = None,
) -> PushshiftScan:
    threads = scan_threads()

    def work(progress: _core.Progress) -> tuple[_core.ArrowBatches, dict[str, Any]]:
        return _core.scan_pushshift(
            path,
            subreddit=subreddit,
            kind=kind,
            progress=progress,
            on_error=on_error,
            min_submission_score=min_submission_score,
            min_comment_score=min_comment_score,
            min_comment_chars=min_comment_chars,
            top_level_only=top_level_only,
            threads=threads,
        )

    batches, funnel = run_with_bar(path.name, work, show=show_progress)
    frame = pl.DataFrame(batches).cast(ROW_SCHEMA)  # type: ignore[arg-type]
    return PushshiftScan(str(path), funnel, frame)


def total_funnel(scans: list[PushshiftScan]) -> dict[str, Any]:
    total: dict[str, Any] = {"dropped": {}}
    for s in scans:
        for k, v in s.funnel.items():
            if isinstance(v, bool) or k == "errors":
                continue
            if isinstance(v, dict):
                for reason, n in v.items():
                    total["dropped"][reason] = total["dropped"].get(reason, 0) + n
            else:
                total[k] = total.get(k, 0) + v
    return total


@dataclass
class WritingPromptsSettings:
    """r/WritingPrompts: the title minus its tag is the prompt, the best
    top-level comment the story. Submissions are ranked by their score (the paper's "most
    upvoted posts"); the length bounds default to what Table 1 implies (274 tokens, about
    1,100 characters, per story): a floor at 500 characters, a cap at 2,000 (0: none)."""

    subreddit: str = "WritingPrompts"
    allowed_tags: list[str] = field(default_factory=lambda: ["WP"])
    min_story_score: int = 10
    min_story_chars: int = 500
    max_story_chars: int = 2000
    exclude_authors: list[str] = field(default_factory=lambda: ["AutoModerator", "[deleted]"])


@dataclass
class AskRedditSettings:
    """r/AskReddit: title-only submissions above a score, as test prompts."""

    subreddit: str = "AskReddit"
    min_score: int = 100


def _empty_examples() -> pl.DataFrame:
    return schema.empty()


def writingprompts(rows: pl.DataFrame, s: WritingPromptsSettings) -> pl.DataFrame:
    """Candidates ranked by submission score (then story score): one (prompt, story) per
    submission, its best-scored top-level story within the length bounds."""
    subs = rows.filter(pl.col("kind") == "submission").with_columns(
        tag=pl.col("title").str.extract(TAG, 1).str.to_uppercase()
    )
    allowed = [t.upper() for t in s.allowed_tags]
    prompts = subs.filter(pl.col("tag").is_in(allowed)).select(
        post_id=pl.col("id"),
        link_id=pl.lit("t3_") + pl.col("id"),
        tag="tag",
        prompt=pl.col("title").str.replace(LEADING_TAGS, "").str.strip_chars(),
        post_score=pl.col("score"),
        subreddit="subreddit",
        created=pl.col("created_utc"),
    )
    stories = rows.filter(
        (pl.col("kind") == "comment")
        & (pl.col("parent_id") == pl.col("link_id"))
        & (pl.col("score") >= s.min_story_score)
        & (pl.col("text").str.len_chars() >= s.min_story_chars)
        & ((s.max_story_chars <= 0) | (pl.col("text").str.len_chars() <= s.max_story_chars))
        & ~pl.col("author").fill_null("").is_in(s.exclude_authors)
    )
    best = (
        stories.sort(
            ["score", "created_utc", "id"], descending=[True, False, False], nulls_last=True
        )
        .group_by("link_id", maintain_order=True)
        .first()
    )
    pairs = prompts.join(best, on="link_id", how="inner").sort(
        ["post_score", "score", "post_id"], descending=[True, True, False], nulls_last=True
    )
    if pairs.is_empty():
        return _empty_examples()
    sub = pl.col("subreddit")
    url = pl.format("https://www.reddit.com/r/{}/comments/{}/_/{}/", sub, "post_id", "id")
    out = pairs.select(
        id=pl.format("reddit/{}/{}-{}", sub, "post_id", "id"),
        source=pl.lit("reddit"),
        domain=sub,
        group=pl.lit(None, pl.String),
        conversations=pl.concat_list("prompt", "text"),
        meta=pl.struct(
            question_score="post_score",
            answer_score="score",
            prompt_field=pl.lit("title"),
            title="prompt",
            url=url,
            question_url=pl.format("https://www.reddit.com/r/{}/comments/{}/", sub, "post_id"),
            author="author",
            created=pl.col("created_utc").cast(pl.String),
            post_id="post_id",
            reply_id="id",
            tag="tag",
        ),
        license=pl.lit(None, pl.String),
    )
    return schema.check(out.cast(dict(schema.SCHEMA)))  # type: ignore[arg-type]


def askreddit(rows: pl.DataFrame, s: AskRedditSettings) -> pl.DataFrame:
    """Title-only submissions above the score threshold, best first."""
    subs = rows.filter(
        (pl.col("kind") == "submission")
        & (pl.col("text").str.strip_chars() == "")
        & (pl.col("score") >= s.min_score)
        & pl.col("title").str.strip_chars().str.len_chars().gt(0)
    ).sort(["score", "id"], descending=[True, False])
    if subs.is_empty():
        return _empty_examples()
    sub = pl.col("subreddit")
    out = subs.select(
        id=pl.format("reddit/{}/{}", sub, "id"),
        source=pl.lit("reddit"),
        domain=sub,
        group=pl.lit(None, pl.String),
        conversations=pl.concat_list(pl.col("title").str.strip_chars()),
        meta=pl.struct(
            question_score="score",
            prompt_field=pl.lit("title"),
            title="title",
            url=pl.format("https://www.reddit.com/r/{}/comments/{}/", sub, "id"),
            author="author",
            created=pl.col("created_utc").cast(pl.String),
            post_id="id",
        ),
        license=pl.lit(None, pl.String),
    )
    return schema.check(out.cast(dict(schema.SCHEMA)))  # type: ignore[arg-type]
