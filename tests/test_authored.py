"""The authored-example format: the shipped demo file, validation, the style report."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from lima.curate.sources import authored

DEMO = ROOT / "lima" / "samples" / "authored" / "demo.txt"


def test_demo_file_parses() -> None:
    ex = authored.parse([DEMO])
    kinds = {(e.split, tuple(e.tags)) for e in ex}
    assert ("train", ("refusal",)) in kinds and ("train", ("dialogue",)) in kinds
    assert sum(e.split == "dev" for e in ex) == 5 and sum(e.split == "test" for e in ex) == 12
    chains = [e for e in ex if "dialogue" in e.tags]
    assert all(len(e.turns) >= 4 and e.roles[-1] == "assistant" for e in chains)
    frame = authored.to_examples(ex, "CC BY 4.0")
    assert set(frame["source"]) == {"authored", "dialogue"}
    assert frame["id"].str.starts_with("authored/").all()


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mine.txt"
    p.write_text(text)
    return p


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "# header comment\n"
        "stray text\n"  # 2
        "@@ example train ok-one\n@@ user\nHi\n@@ assistant\nHello there.\n"
        "@@ example train ok-one\n@@ user\nAgain\n@@ assistant\nYes.\n"  # 8: duplicate id
        "@@ example valid Bad_Id\n@@ user\nx\n"  # 13: split and id
        "@@ example test t1 refusal\n@@ user\nq\n@@ assistant\na\n"  # 16
        "@@ example train no-answer\n@@ user\nq\n"  # 21
        "@@ example train long\n@@ user\na\n@@ assistant\nb\n@@ user\nc\n@@ assistant\nd\n"  # 24
        "@@ example train empty\n@@ user\n\n@@ assistant\nx\n"  # 33
        "@@ comment\n",  # 38
    )
    with pytest.raises(authored.AuthoredFormatError) as err:
        authored.parse([p])
    problems = "\n".join(err.value.problems)
    for where, what in [
        (2, "text before the first '@@ example'"),
        (8, "id 'ok-one' already used at"),
        (13, "split 'valid' is not one of"),
        (13, "must be lowercase"),
        (16, "must be exactly one user turn"),
        (16, "tags are for train examples only"),
        (21, "must end with an assistant turn"),
        (24, "tag it 'dialogue'"),
        (34, "turn 1 of 'empty' is empty"),
        (38, "unknown directive"),
    ]:
        assert f"mine.txt:{where}: " in problems and what in problems, (where, what, problems)


def test_non_utf8_file_names_the_byte(tmp_path: Path) -> None:
    p = tmp_path / "latin1.txt"
    p.write_bytes("@@ example train x\n@@ user\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(authored.AuthoredFormatError, match=r"latin1\.txt: byte 30: not UTF-8"):
        authored.parse([p])


def test_escaped_directive_and_markdown_survive(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "@@ example train md\n@@ user\nShow a diff header\n\n@@ assistant\n"
        "Sure, here it is.\n\n```\n\\@@ -1,2 +1,2 @@\n```\n\n",
    )
    (e,) = authored.parse([p])
    assert e.turns == ["Show a diff header", "Sure, here it is.\n\n```\n@@ -1,2 +1,2 @@\n```"]


def test_style_report_lists_responses_without_an_acknowledgement(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "@@ example train good\n@@ user\nq\n@@ assistant\nGood question. Here is how.\n"
        "@@ example train list\n@@ user\nq\n@@ assistant\n- step one\n- step two\n"
        "@@ example train rambling\n@@ user\nq\n@@ assistant\n" + " ".join(["word"] * 40) + ".\n",
    )
    report = authored.style_report(authored.parse([p]))
    assert "2 of the turns in 3 train examples do not" in report
    assert "list turn 2 opens with markup" in report and "mine.txt:9:" in report
    assert "rambling turn 2 opens with a 40-word sentence" in report
    assert " good " not in report
