"""Super-Natural Instructions task files (real ones from the v2 release)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from lima.curate.sources import natural_instructions as ni

TASKS = ROOT / "lima" / "samples" / "natural-instructions"
E2E = TASKS / "task957_e2e_nlg_text_generation_generate.json"


def test_keeps_generation_tasks_only_one_instance_each() -> None:
    scan = ni.scan([TASKS], ni.NaturalInstructionsSettings(), seed=0)
    assert scan.funnel == {
        "task_files": 3,
        "not_task_files": [],
        "duplicate_task_files": [],
        "rejected": {"not_generation_task": 2},  # COPA and Winograd are classification / spans
        "kept": 1,
        "categories": {"Data to Text": 1},
    }
    row = scan.frame.row(0, named=True)
    task = json.loads(E2E.read_text())
    prompt, response = row["conversations"]
    assert prompt.startswith(task["Definition"][0] + "\n\n")
    inst = next(i for i in task["Instances"] if i["id"] == row["meta"]["post_id"])
    assert prompt.endswith(inst["input"]) and response == inst["output"][0]
    assert row["license"] == "CC BY-SA 4.0" and row["domain"] == E2E.stem


def test_instance_choice_follows_the_seed() -> None:
    ids = {ni.scan([E2E], ni.NaturalInstructionsSettings(), s).frame["id"][0] for s in range(5)}
    assert len(ids) > 1
    a = ni.scan([E2E], ni.NaturalInstructionsSettings(), 3).frame
    assert a.equals(ni.scan([E2E], ni.NaturalInstructionsSettings(), 3).frame)


def test_definition_as_a_string_and_category_list_from_config(tmp_path: Path) -> None:
    task = json.loads(E2E.read_text())
    task["Definition"] = task["Definition"][0]  # the older files' form
    (tmp_path / "task957_old.json").write_text(json.dumps(task))
    scan = ni.scan([tmp_path], ni.NaturalInstructionsSettings(), 0)
    assert scan.frame["conversations"][0][0].startswith("In this task, we ask you convert")
    only_summaries = ni.NaturalInstructionsSettings(categories=["Summarization"])
    assert ni.scan([tmp_path], only_summaries, 0).funnel["rejected"] == {"not_generation_task": 1}


def test_broken_task_file_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "task1_bad.json"
    shutil.copy(E2E, bad)
    text = bad.read_text()
    bad.write_text(text[:5000] + "}" + text[5000:])
    with pytest.raises(ni.TaskFileError, match=r"task1_bad\.json: line \d+, column \d+ \(byte "):
        ni.scan([bad], ni.NaturalInstructionsSettings(), 0)
    bad.write_bytes(E2E.read_bytes()[:20000])  # truncated
    with pytest.raises(ni.TaskFileError, match=r"task1_bad\.json: line \d+, column \d+"):
        ni.scan([bad], ni.NaturalInstructionsSettings(), 0)
    bad.write_text("[1, 2]")
    with pytest.raises(ni.TaskFileError, match="not a task file"):
        ni.scan([bad], ni.NaturalInstructionsSettings(), 0)


def test_a_folder_of_testset_task_files_is_read_by_content(tmp_path: Path) -> None:
    # the released test split names its files testset_task*.json
    for f in TASKS.glob("*.json"):
        shutil.copy(f, tmp_path / f"testset_{f.name}")
    (tmp_path / "splits.json").write_text(json.dumps({"train": [], "test": ["task957"]}))
    scan = ni.scan([tmp_path], ni.NaturalInstructionsSettings(), seed=0)
    assert scan.funnel["task_files"] == 3 and scan.funnel["kept"] == 1
    assert scan.funnel["not_task_files"] == [str(tmp_path / "splits.json")]
    assert scan.frame["domain"][0] == "testset_task957_e2e_nlg_text_generation_generate"


def test_a_folder_without_a_task_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "splits.json").write_text(json.dumps({"train": []}))
    with pytest.raises(ni.TaskFileError, match=r"no Super-Natural Instructions task file"):
        ni.scan([tmp_path], ni.NaturalInstructionsSettings(), 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ni.TaskFileError, match=r"empty: no Super-Natural"):
        ni.scan([empty], ni.NaturalInstructionsSettings(), 0)


def test_the_same_task_file_given_twice_is_one_task(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(E2E, copy / E2E.name)
    scan = ni.scan([TASKS, copy], ni.NaturalInstructionsSettings(), seed=0)
    assert scan.frame.height == 1 and scan.funnel["task_files"] == 3
    assert scan.funnel["duplicate_task_files"] == [f"{copy / E2E.name} (same bytes as {E2E})"]
