"""What a newcomer meets first: `--version`, `lima-data config`, the shipped examples/lima.toml,
`lima-data stats` on the files people actually have, the Python API, and outputs that leave no
temporaries behind."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_cli

from lima.curate import config

EXAMPLE = ROOT / "examples" / "lima.toml"
ALPACA = ROOT / "tests" / "data" / "alpaca_eval" / "alpaca-7b.model_outputs.json"


def _keys(cls: Any, where: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf key of a config dataclass, as a path."""
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += _keys(type(default), (*where, f.name))
        else:
            out.append((*where, f.name))
    return out


@pytest.mark.parametrize("prog", ["lima-data", "lima-train", "lima-eval"])
def test_version_flag(prog: str) -> None:
    from lima import __version__

    exe = Path(sys.executable).parent / prog
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{prog} {__version__}", proc.stderr


def test_config_prints_every_key_and_reads_back() -> None:
    proc = run_cli("config", "--samples")
    assert proc.returncode == 0, proc.stderr
    data = tomllib.loads(proc.stdout)
    assert config.from_dict(data).to_dict() == config.sample_config().to_dict()
    # the defaults, too: nothing is left implicit except keys that are unset
    defaults = tomllib.loads(run_cli("config").stdout)
    for key in _keys(config.BuildConfig):
        node: Any = defaults
        for part in key[:-1]:
            node = node[part]
        value = config.BuildConfig()
        for part in key:
            value = getattr(value, part)
        assert (key[-1] in node) == (value is not None), key


def test_config_of_a_file_fills_in_its_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "lima.toml"
    cfg.write_text("seed = 7\n[stackexchange.quota]\nstem = 3\n")
    data = tomllib.loads(run_cli("config", "--config", str(cfg)).stdout)
    assert data["seed"] == 7 and data["stackexchange"]["quota"] == {"stem": 3, "other": 200}
    assert data["dedup"]["threshold"] == 0.8
    both = run_cli("config", "--config", str(cfg), "--samples")
    assert both.returncode == 2 and "give one" in both.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[stackexchange]\ntemprature = 2\n")
    proc = run_cli("config", "--config", str(bad))
    assert proc.returncode == 1 and "bad.toml" in proc.stderr and "temprature" in proc.stderr


def test_example_config_shows_every_key_and_loads() -> None:
    """examples/lima.toml documents every key: a key added to the config must be added there."""
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    cfg = config.load(EXAMPLE)
    assert cfg.stackexchange.quota.stem == 200 and cfg.wikihow.quota == 200
    missing = []
    for key in _keys(config.BuildConfig):
        node: Any = data
        for part in key[:-1]:
            node = node.get(part, {})
        commented = re.search(rf"^# {re.escape(key[-1])} = ", text, re.M)
        if key[-1] not in node and not commented:
            missing.append(".".join(key))
    assert not missing, f"add these keys to examples/lima.toml: {missing}"
    # its values are the paper's: only the input paths differ from the defaults
    paper = config.BuildConfig().to_dict()
    ours = cfg.to_dict()

    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "paths"}
        return d

    assert strip(ours) == strip(paper)
    assert all(p.startswith("../dumps/") for p in cfg.stackexchange.paths)


def test_stats_reads_exports_and_refuses_what_is_not_a_dataset(demo: Any, tmp_path: Path) -> None:
    train = demo.out / "train.jsonl"
    direct = run_cli("stats", str(train))
    assert direct.returncode == 0, direct.stderr
    for fmt, name in (("messages", "t.jsonl"), ("sharegpt", "t.json")):
        out = tmp_path / name
        assert run_cli("export", str(train), "--format", fmt, "-o", str(out)).returncode == 0
        proc = run_cli("stats", str(out))
        assert proc.returncode == 0, proc.stderr
        # the same Table 1 rows (Stack Exchange's groups aside, which exports do not carry)
        assert "| wikiHow | 10 |" in proc.stdout and "Traceback" not in proc.stderr
        assert "| Pushshift Reddit | 10 |" in proc.stdout
    for path, words in (
        (demo.out, "is a directory"),
        (ALPACA, "AlpacaEval model outputs"),
        (tmp_path / "nope.jsonl", "no such file"),
    ):
        proc = run_cli("stats", str(path))
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"conversations": ["a", "b"], "source": "x"}\n{"text": 1}\n')
    proc = run_cli("stats", str(junk))
    assert proc.returncode == 1 and "junk.jsonl:2: not a dataset row" in proc.stderr


def test_python_api_builds_what_the_cli_builds(demo: Any, tmp_path: Path) -> None:
    light = subprocess.run(
        [sys.executable, "-c", "import lima, sys; print(sorted(m for m in sys.modules "
         "if m.startswith(('lima.', 'polars', 'torch'))))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert light.stdout.strip() == "[]"  # `import lima` loads nothing heavy
    import lima

    result = lima.build(lima.load_config(), tmp_path / "api")
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "stats.md", "manifest.json"):
        assert (tmp_path / "api" / name).read_bytes() == (demo.out / name).read_bytes(), name
    assert result.splits["train"].height == demo.splits["train"].height
    frame = lima.read_dataset(tmp_path / "api" / "train.jsonl")
    assert frame.height == result.splits["train"].height
    n = lima.export(tmp_path / "api" / "train.jsonl", "messages", tmp_path / "m.jsonl")
    assert n == frame.height and lima.read_dataset(tmp_path / "m.jsonl").height == n
    beer = lima.scan_stackexchange(ROOT / "lima/samples/stackexchange/beer.stackexchange.com.7z")
    assert beer.height > 0 and set(beer["domain"]) == {"beer.stackexchange.com"}
    posts = lima.scan_pushshift(
        ROOT / "lima/samples/reddit/AskMen_submissions.zst", subreddit="AskMen"
    )
    assert posts.height > 1000 and set(posts["subreddit"].str.to_lowercase()) == {"askmen"}


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    from lima.io import write_json

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = tmp_path / f".out.json.{gone.pid}.x1y2.tmp"
    orphan.write_text("half")
    alive = tmp_path / f".out.json.{os.getppid()}.a1b2.tmp"  # a running process's: not ours
    alive.write_text("busy")
    other = tmp_path / f".other.json.{gone.pid}.c3d4.tmp"  # another file's: left alone
    other.write_text("x")
    write_json(tmp_path / "out.json", {"a": 1})
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}
    assert not orphan.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.json")) == [
        alive.name
    ]


def test_usage_errors_exit_2_and_bad_input_exits_1(tmp_path: Path) -> None:
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("build", "--no-such-option").returncode == 2
    bad = tmp_path / "x.toml"
    bad.write_text("seed = [")
    proc = run_cli("build", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "x.toml" in proc.stderr
