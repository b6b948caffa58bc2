"""Pushshift archives (real ones), WritingPrompts pairing and AskReddit
prompts, and bad input on the Reddit path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import ROOT, run_cli

from lima import _core
from lima.curate.sources import fan2018, reddit
from lima.errors import ArchiveError, DumpFormatError

DATA = ROOT / "tests" / "data"
RC = DATA / "pushshift" / "RC_2005-12.zst"
ASKMEN = ROOT / "lima" / "samples" / "reddit" / "AskMen_submissions.zst"
SAMPLES = DATA / "pushshift" / "schema-samples"
FAN = DATA / "writingprompts" / "fan2018_train_subset.csv"


def scan(path: Path, **kw: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    b, f = _core.scan_pushshift(path, **kw)
    return pl.DataFrame(b), f


def balanced(f: dict[str, Any]) -> None:
    assert (
        f["lines_read"]
        == f["blank"] + f["malformed"] + f["other_subreddit"] + f["submissions"] + f["comments"]
    )
    kept = f["kept_submissions"] + f["kept_comments"]
    assert f["submissions"] + f["comments"] == kept + sum(f["dropped"].values())


def test_monthly_comment_dump_needs_the_long_window() -> None:
    frame, f = scan(RC)
    assert f["lines_read"] == f["comments"] == 1075
    assert (
        f["dropped"]["deleted"] + f["dropped"]["removed"] == 120
    )  # the [deleted]/[removed] bodies
    assert (f["dropped"]["deleted"], f["dropped"]["removed"], f["kept_comments"]) == (105, 15, 955)
    assert set(frame["subreddit"]) == {"reddit.com"}
    balanced(f)


def test_subreddit_file_counts() -> None:
    frame, f = scan(ASKMEN, subreddit="askmen")
    assert (f["submissions"], f["kept_submissions"]) == (13050, 2677)
    assert (f["dropped"]["removed"], f["dropped"]["deleted"]) == (8897, 1476)
    assert frame["kind"].unique().to_list() == ["submission"]
    balanced(f)
    # another subreddit: every line is dropped, by the byte prefilter or after the parse
    _, other = scan(ASKMEN, subreddit="AskReddit")
    assert other["other_subreddit"] == 13050 and other["kept_submissions"] == 0
    balanced(other)


@pytest.mark.parametrize("name", ["submissions.ndjson", "comments.ndjson"])
def test_every_schema_sample_parses(name: str) -> None:
    frame, f = scan(SAMPLES / name)
    lines = (SAMPLES / name).read_text().splitlines()
    assert f["malformed"] == 0 and f["lines_read"] == len(lines)
    raw = [json.loads(line) for line in lines]
    gone = ("[deleted]", "[removed]")
    kept = {
        r["id"]
        for r in raw
        if (r.get("selftext") or r.get("body") or "").strip() not in gone
        and r.get("removed_by_category") is None
    }
    assert set(frame["id"]) == kept
    # created_utc comes as a number or a string across the years; both are read
    assert frame.filter(pl.col("id").is_in(list(kept)))["created_utc"].null_count() == 0
    as_text = {r["id"]: int(r["created_utc"]) for r in raw if isinstance(r["created_utc"], str)}
    got = dict(zip(frame["id"], frame["created_utc"], strict=True))
    assert all(got[i] == v for i, v in as_text.items() if i in got)
    balanced(f)


def test_entities_decoded() -> None:
    frame, _ = scan(RC)
    import zstandard

    with RC.open("rb") as f:
        dctx = zstandard.ZstdDecompressor(max_window_size=2**31)
        text = dctx.stream_reader(f).read()
    raw = [json.loads(x) for x in text.splitlines()]
    with_amp = [r for r in raw if "&amp;" in r["body"] or "&gt;" in r["body"]]
    assert with_amp, "the real dump has escaped bodies"
    checked = 0
    for r in with_amp:
        got = frame.filter(pl.col("id") == r["id"])["text"]
        if len(got):
            assert "&amp;" not in got[0] and "&gt;" not in got[0]
            assert got[0] == r["body"].replace("&gt;", ">").replace("&lt;", "<").replace(
                "&amp;", "&"
            )
            checked += 1
    assert checked > 0


def test_fan2018_detokenized_with_typographic_quotes(tmp_path: Path) -> None:
    raw = FAN.read_text(encoding="utf-8")
    assert "that \u2019 s there. \u201d" in raw and "As < name > enters" in raw
    subs_path, comments_path = fan2018.to_pushshift(FAN, tmp_path)
    bodies = comments_path.read_text(encoding="utf-8")
    stories = [json.loads(x)["body"] for x in bodies.splitlines()]
    assert any("\u201cDamnit. I keep forgetting that\u2019s there.\u201d" in b for b in stories)
    assert any("crack his 6\u20193\u201d head" in b for b in stories)
    titles = [json.loads(x)["title"] for x in subs_path.read_text().splitlines()]
    assert any(t.startswith("[WP] As <name> enters Hell") for t in titles)
    # no apostrophe left between spaces inside a word, no quote split off its word
    assert not re.search(r"\w \u2019 \w|\u201c |(?<=\S) \u201d", "\n".join(stories + titles))
    # the bundled sample is this conversion of the shipped CSV
    sample = ROOT / "lima" / "samples" / "reddit" / "WritingPrompts_comments.ndjson"
    assert sample.read_text(encoding="utf-8") == bodies


@pytest.fixture(scope="module")
def wp_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Pushshift-shaped WritingPrompts files from the real Fan et al. pairs,
    with votes and extra comments set by the test to pin the join down."""
    d = tmp_path_factory.mktemp("wp")
    subs_path, comments_path = fan2018.to_pushshift(FAN, d)
    subs = [json.loads(x) for x in subs_path.read_text().splitlines()]
    comments = [json.loads(x) for x in comments_path.read_text().splitlines()]
    for i, (s, c) in enumerate(zip(subs, comments, strict=True)):
        s["score"] = 1000 - i
        c["score"] = 500 + i  # later pairs have better stories
    first = subs[1]["id"]  # a [WP] prompt
    story = comments[1]["body"]
    base = {"subreddit": "WritingPrompts", "link_id": f"t3_{first}", "parent_id": f"t3_{first}"}
    comments += [
        # a reply to a comment scores higher but is not a story
        {**base, "id": "r1", "parent_id": "t1_x", "body": story, "score": 10_000},
        # the moderator bot's sticky is top level but excluded
        {**base, "id": "m1", "body": story, "score": 20_000, "author": "AutoModerator"},
        # a better real story on the same prompt wins
        {**base, "id": "b1", "body": comments[2]["body"], "score": 9_000, "author": "someone"},
    ]
    subs_path.write_text("".join(json.dumps(s) + "\n" for s in subs))
    comments_path.write_text("".join(json.dumps(c) + "\n" for c in comments))
    return subs_path, comments_path


def wp_candidates(files: tuple[Path, Path], **settings: Any) -> pl.DataFrame:
    s = reddit.WritingPromptsSettings(**settings)
    rows = pl.concat(
        reddit.scan_file(p, subreddit=s.subreddit, top_level_only=True, show_progress=False).frame
        for p in files
    )
    return reddit.writingprompts(rows, s)


def test_writingprompts_join_tags_and_ranking(wp_files: tuple[Path, Path]) -> None:
    c = wp_candidates(wp_files, min_story_chars=200, max_story_chars=0)
    tags = c["meta"].struct.field("tag").unique().to_list()
    assert tags == ["WP"]  # [OT], [MP], [EU], ... are excluded by default
    prompts = c["conversations"].list.first()
    assert not prompts.str.contains(r"^\s*\[").any()  # the tag is removed
    # ranked by the submission's score: the paper's "most upvoted posts"
    scores = c["meta"].struct.field("question_score").to_list()
    assert scores == sorted(scores, reverse=True)
    assert c["id"].n_unique() == len(c)  # one story per prompt
    first = c.filter(pl.col("meta").struct.field("post_id") == "4m0n").row(0, named=True)
    assert first["meta"]["reply_id"] == "b1"  # not the reply, not the bot
    assert first["conversations"][0] == '"Life.EXE has stopped working."'
    # lowercase tags are the same tag: the sample holds six "[ wp ]" titles
    subs = [json.loads(x) for x in wp_files[0].read_text().splitlines()]
    lower = {x["id"] for x in subs if x["title"].startswith("[wp]")}
    assert len(lower) == 6
    assert lower & set(c["meta"].struct.field("post_id"))


def test_writingprompts_settings(wp_files: tuple[Path, Path]) -> None:
    base = len(wp_candidates(wp_files, min_story_chars=200, max_story_chars=0))
    wider = wp_candidates(
        wp_files, min_story_chars=200, max_story_chars=0, allowed_tags=["WP", "IP"]
    )
    assert len(wider) > base
    assert len(wp_candidates(wp_files, min_story_chars=200, max_story_chars=0,
                             min_story_score=800)) < base  # fmt: skip
    assert len(wp_candidates(wp_files, min_story_chars=5000, max_story_chars=0)) < base


def test_writingprompts_default_bounds_follow_table1(wp_files: tuple[Path, Path]) -> None:
    """Table 1: 274 tokens (about 1,100 characters) per story. The real stories run longer;
    the default bounds keep the ones of LIMA's length, each submission's best among them."""
    every = wp_candidates(wp_files, min_story_chars=1, max_story_chars=0)
    lengths = every["conversations"].list.get(1).str.len_chars()
    assert lengths.median() > 2500  # what ranking by score alone would pick from
    c = wp_candidates(wp_files)
    got = c["conversations"].list.get(1).str.len_chars()
    assert got.min() >= 500 and got.max() <= 2000
    assert 900 <= got.mean() <= 1600
    # half of the LIMA-like stories (500..1,500 characters) pass the floor, all of them here
    lima_like = ((lengths >= 500) & (lengths <= 1500)).sum()
    assert ((got >= 500) & (got <= 1500)).sum() >= lima_like / 2 > 0


def test_askreddit_title_only_prompts() -> None:
    rows = reddit.scan_file(ASKMEN, subreddit="AskMen", show_progress=False).frame
    c = reddit.askreddit(rows, reddit.AskRedditSettings(subreddit="AskMen", min_score=20))
    assert len(c) == 219
    assert (c["conversations"].list.len() == 1).all()
    src = rows.filter(pl.col("id").is_in(c["meta"].struct.field("post_id").to_list()))
    assert (src["text"].str.strip_chars() == "").all() and (src["score"] >= 20).all()


def test_truncated_zst(tmp_path: Path) -> None:
    data = ASKMEN.read_bytes()
    for frac in (0.3, 0.77):
        path = tmp_path / "AskMen_submissions.zst"
        path.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ArchiveError) as info:
            _core.scan_pushshift(path)
        assert str(path) in str(info.value) and "byte" in str(info.value)
        _, f = scan(path, on_error="skip")
        assert f["truncated"] is True and f["kept_submissions"] > 0


def test_bad_lines(tmp_path: Path) -> None:
    lines = (SAMPLES / "comments.ndjson").read_text().splitlines()
    bad = [
        *lines[:3],
        "{not json",
        *lines[3:5],
        '{"id": "big", "body": "' + "x" * (11 << 20) + '"}',
        *lines[5:],
    ]
    path = tmp_path / "comments.ndjson"
    path.write_text("\n".join(bad) + "\n")
    offset = sum(len(x) + 1 for x in lines[:3])
    with pytest.raises(DumpFormatError, match=rf"byte {offset} \(line 4\): not a JSON object"):
        _core.scan_pushshift(path)
    _, f = scan(path, on_error="skip")
    assert f["malformed"] == 2 and any("longer than the limit" in e for e in f["errors"])
    assert f["lines_read"] == len(lines) + 2
    balanced(f)


def test_cli_scan_pushshift(tmp_path: Path) -> None:
    out, stats = tmp_path / "rc.parquet", tmp_path / "rc.json"
    proc = run_cli(
        "scan",
        "pushshift",
        str(RC),
        "--subreddit",
        "reddit.com",
        "-o",
        str(out),
        "--stats",
        str(stats),
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pl.read_parquet(out)) == 955
    assert json.loads(stats.read_text())["total"]["dropped"]["deleted"] == 105
    help_text = run_cli("scan", "pushshift", "--help").stdout
    for flag in ("--subreddit", "--kind", "--stats", "--on-error"):
        assert flag in help_text
