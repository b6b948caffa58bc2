"""Every command over a matrix of bad inputs: each gives one line that names the file and exits 1
(or 2 for bad usage), never a traceback, and a file that is fine apart from a UTF-8 byte-order
mark is read."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

SAMPLES = ROOT / "lima" / "samples"
COFFEE_POSTS = SAMPLES / "stackexchange" / "coffee.stackexchange.com" / "Posts.xml"
AUTHORED = SAMPLES / "authored" / "demo.txt"
WP = SAMPLES / "reddit" / "WritingPrompts_submissions.ndjson"
DEEP = 100_000


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, demo: object) -> dict[str, Path]:
    """The hostile inputs, by name."""
    d = tmp_path_factory.mktemp("bad")
    (d / "a-folder").mkdir()
    (d / "empty").write_bytes(b"")
    (d / "binary").write_bytes(bytes(range(256)) * 40)
    (d / "deep.json").write_text("[" * DEEP + "]" * DEEP)
    (d / "deep.jsonl").write_text('{"conversations": ' + "[" * DEEP + "]" * DEEP + "}\n")
    (d / "deep.toml").write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    posts = COFFEE_POSTS.read_bytes()
    (d / "cut.xml").write_bytes(posts[: len(posts) // 2])
    return {p.name: p for p in d.iterdir()} | {"missing": d / "missing"}


def _runner(module: str) -> Callable[..., tuple[int, str]]:
    main: Callable[[], None] = __import__(module, fromlist=["main"]).main

    def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        old = sys.argv
        sys.argv = ["prog", *args]
        code = 0
        try:
            main()  # an exception escaping here is the traceback a user would see
        except SystemExit as e:
            code = int(e.code or 0)
        finally:
            sys.argv = old
        return code, capsys.readouterr().err

    return run


lima_data = _runner("lima.curate.cli")

# (command, arguments with {} for the bad file)
DATA_COMMANDS = [
    ("scan stackexchange", ["scan", "stackexchange", "{}", "-o", "{out}/o.parquet",
                            "--site", "coffee.stackexchange.com"]),
    ("scan pushshift", ["scan", "pushshift", "{}", "-o", "{out}/o.parquet"]),
    ("build --config", ["build", "--config", "{}", "--out", "{out}/b"]),
    ("build --tokenizer", ["build", "--tokenizer", "{}", "--out", "{out}/b"]),
    ("export", ["export", "{}", "--format", "messages", "-o", "{out}/e.jsonl"]),
    ("check-authored", ["check-authored", "{}"]),
    ("stats", ["stats", "{}"]),
    ("config", ["config", "--config", "{}"]),
    ("review", ["review", "{}", "--port", "0"]),
]  # fmt: skip

#: The bad files every command meets; an empty file is fine input for some commands (an empty
#: NDJSON, an empty config), so it is checked only for "no traceback".
CASES = ["a-folder", "missing", "binary", "deep.json", "deep.jsonl", "deep.toml", "cut.xml"]


@pytest.mark.parametrize(("name", "argv"), DATA_COMMANDS, ids=[c for c, _ in DATA_COMMANDS])
def test_lima_data_names_the_file_and_never_raises(
    name: str, argv: list[str], bad: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for case in [*CASES, "empty"]:
        path = bad[case]
        args = [a.replace("{}", str(path)).replace("{out}", str(tmp_path)) for a in argv]
        code, err = lima_data(capsys, *args)
        if case == "empty" and code == 0:
            continue
        assert code == 1, f"{name} on {case}: exit {code}: {err}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert any(path.name in line for line in lines), f"{name} on {case}: {err}"
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "stackexchange", str(COFFEE_POSTS.parent), "-o", "x.parquet", "--seed", "-1"],
        [
            "scan",
            "stackexchange",
            str(COFFEE_POSTS.parent),
            "-o",
            "x.parquet",
            "--min-score",
            str(2**63),
        ],
        ["scan", "pushshift", str(WP), "-o", "x.parquet", "--min-score", str(-(2**63) - 1)],
        ["build", "--seed", str(2**64), "--out", "x"],
    ],
    ids=["negative seed", "score past i64", "score below i64", "seed past u64"],
)
def test_out_of_range_numbers_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = lima_data(capsys, *argv)
    assert code == 2 and "Invalid value for '--" in err and "Traceback" not in err


def test_a_byte_order_mark_is_not_an_error(
    demo: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bom = b"\xef\xbb\xbf"
    out = Path(demo.out)  # type: ignore[attr-defined]
    (tmp_path / "train.jsonl").write_bytes(bom + (out / "train.jsonl").read_bytes())
    (tmp_path / "lima.toml").write_bytes(bom + b"seed = 3\n")
    (tmp_path / "demo.txt").write_bytes(bom + AUTHORED.read_bytes())
    for argv in (
        ["stats", str(tmp_path / "train.jsonl")],
        ["export", str(tmp_path / "train.jsonl"), "--format", "sharegpt", "-o",
         str(tmp_path / "s.json")],
        ["config", "--config", str(tmp_path / "lima.toml")],
        ["check-authored", str(tmp_path / "demo.txt")],
    ):  # fmt: skip
        code, err = lima_data(capsys, *argv)
        assert code == 0, f"{argv[0]}: {err}"


# --- lima-eval and lima-train ---------------------------------------------------------------

ALPACA = ROOT / "tests" / "data" / "alpaca_eval" / "alpaca-7b.model_outputs.json"
RECIPES = ROOT / "training" / "recipes"
#: Nothing listens there; every case fails on its file before a judge is asked.
JUDGE = ["--judge", "http://127.0.0.1:9/v1", "--judge-model", "m"]

lima_eval = _runner("lima.evaluate.cli")
lima_train = _runner("lima.train.cli")

EVAL_COMMANDS: list[tuple[Any, ...]] = [
    ("generate --prompts", ["generate", "--model", "{out}/no-model", "--prompts", "{}",
                            "-o", "{out}/g.jsonl"]),
    ("compare a", ["compare", "{}", str(ALPACA), *JUDGE, "--out", "{out}/c"]),
    ("compare b", ["compare", str(ALPACA), "{}", *JUDGE, "--out", "{out}/c"]),
    ("chart", ["chart", "{}", "-o", "{out}/c.png"]),
    ("rate", ["rate", "{}", *JUDGE, "--out", "{out}/r"]),
    ("absolute", ["absolute", "{}", *JUDGE, "--out", "{out}/a"]),
    ("agreement", ["agreement", "{}", "{}"]),
    ("chat --scripts", ["chat", "--model", "{out}/no-model", "--scripts", "{}",
                        "--out", "{out}/h"]),
    ("annotate", ["annotate", "{}", "--db", "{out}/a.sqlite", "--port", "0"]),
    # a missing or empty --db is a new database: the page would start and serve
    ("annotate --db", ["annotate", str(ALPACA), "--db", "{}", "--port", "0"],
     {"missing", "empty"}),
    ("export-annotations", ["export-annotations", "{}", "--out", "{out}/e"]),
]  # fmt: skip

TRAIN_COMMANDS = [
    ("check", ["check", "{}"]),
    ("estimate", ["estimate", "--config", "{}"]),
    ("train --config", ["--config", "{}"]),
    ("train train_file=", ["--config", str(RECIPES / "tiny-cpu.yaml"), "train_file={}",
                           "output_dir={out}/run"]),
    ("check deepspeed=", ["check", str(RECIPES / "tiny-cpu.yaml"), "deepspeed={}"]),
    ("estimate deepspeed=", ["estimate", "--config", str(RECIPES / "7b.yaml"), "deepspeed={}"]),
    ("picks", ["picks", "{}", "--port", "0"]),
]  # fmt: skip


def _sweep(run: Callable[..., tuple[int, str]], name: str, argv: list[str],
           bad: dict[str, Path], tmp: Path, capsys: pytest.CaptureFixture[str],
           fine: set[str] = frozenset()) -> None:  # type: ignore[assignment]  # fmt: skip
    """Each case gives exactly one line, ``error: ...`` naming the file, and exit 1; ``fine``
    are cases that are good input for the command."""
    wrong = []
    for case in [c for c in [*CASES, "empty"] if c not in fine]:
        path = bad[case]
        args = [a.replace("{}", str(path)).replace("{out}", str(tmp)) for a in argv]
        code, err = run(capsys, *args)
        if case == "empty" and code == 0:
            continue
        lines = [line for line in err.splitlines() if line.strip()]
        one_line = len(lines) == 1 and lines[0].startswith("error:") and path.name in lines[0]
        if code != 1 or not one_line or "Traceback" in err:
            wrong.append(f"{name} on {case}: exit {code}: {err[-600:]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("command", EVAL_COMMANDS, ids=[c[0] for c in EVAL_COMMANDS])
def test_lima_eval_names_the_file_and_never_raises(
    command: tuple[Any, ...], bad: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    name, argv, *fine = command
    _sweep(lima_eval, name, argv, bad, tmp_path, capsys, *fine)


@pytest.mark.parametrize(("name", "argv"), TRAIN_COMMANDS, ids=[c for c, _ in TRAIN_COMMANDS])
def test_lima_train_names_the_file_and_never_raises(
    name: str, argv: list[str], bad: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pytest.importorskip("torch")
    _sweep(lima_train, name, argv, bad, tmp_path, capsys)
    assert not (tmp_path / "run").exists()
