"""Multi-turn candidates from real Stack Exchange comment threads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import BEER_7Z, QC

from lima import _core
from lima.curate.sources import dialogues


def c(user: str, text: str) -> dict[str, str]:
    return {"user_id": user, "text": text}


def test_chain_alternates_asker_and_answerer() -> None:
    comments = [
        c("B", "note by the answerer before anyone asked"),  # dropped: no follow-up yet
        c("A", "@B Does this also hold for mixed states?"),
        c("Z", "a bystander"),  # dropped: not a party
        c("A", "And for qutrits?"),  # merged with the previous follow-up
        c("B", "@A Yes, by linearity."),
        c("A", "Thanks!"),  # a follow-up nobody answered: dropped
    ]
    assert dialogues.chain("A", "B", comments) == [
        "Does this also hold for mixed states?\n\nAnd for qutrits?",
        "Yes, by linearity.",
    ]
    assert dialogues.chain("A", "B", [c("B", "x"), c("Z", "y")]) == []


@pytest.mark.parametrize("path", [QC, BEER_7Z], ids=["folder", "7z"])
def test_mined_chains_account_for_every_top_answer(path: object) -> None:
    scan = dialogues.mine(path, show_progress=False)  # type: ignore[arg-type]
    f = scan.funnel
    assert f["top_answers"] == sum(f["rejected"].values()) + f["kept"]
    com = f["comments"]
    assert com["rows_read"] == com["kept"] + com["other_posts"] + com["malformed_rows"]
    assert f["kept"] > 50 and scan.frame.height == f["kept"]
    for turns in scan.frame["conversations"].to_list():
        assert len(turns) >= 4 and len(turns) % 2 == 0  # ends on the answerer
        assert all(t.strip() for t in turns)
    assert scan.frame["source"].unique().to_list() == ["dialogue"]


def test_comment_scan_counts_real_rows() -> None:
    batches, funnel = _core.scan_comments(QC, [3, 7])
    assert funnel["rows_read"] == 3413 and funnel["malformed_rows"] == 0
    import polars as pl

    frame = pl.DataFrame(batches)
    assert set(frame["post_id"]) == {3, 7} and len(frame) == funnel["kept"]
    assert frame.height > 0 and frame.equals(frame.sort("post_id", "comment_id"))


def test_truncated_comments_name_the_file_or_are_counted(tmp_path: Path) -> None:
    site = tmp_path / "quantumcomputing.stackexchange.com"
    site.mkdir()
    shutil.copy(QC / "Posts.xml", site / "Posts.xml")
    data = (QC / "Comments.xml").read_bytes()
    (site / "Comments.xml").write_bytes(data[: len(data) // 2])
    with pytest.raises(_core.DumpFormatError, match=r"Comments\.xml: byte \d+"):
        dialogues.mine(site, show_progress=False)
    scan = dialogues.mine(site, on_error="skip", show_progress=False)
    com = scan.funnel["comments"]
    assert com["truncated"] and com["malformed_rows"] == 1 and com["errors"]
    assert com["rows_read"] == com["kept"] + com["other_posts"] + com["malformed_rows"]
