"""The `lima-data` command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
from conftest import ALCOHOL_META, BEER_7Z, COFFEE, run_cli
from typer.testing import CliRunner

from lima import schema
from lima.curate.cli import app

runner = CliRunner()


def test_help_explains_every_command() -> None:
    for args, words in [
        ([], ["scan", "build", "stats"]),
        (
            ["scan", "stackexchange"],
            ["--no-filters", "--include-meta", "--site", "--on-error", "--stats"],
        ),
        (["build"], ["--config", "--out", "sample"]),
    ]:
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0
        for w in words:
            assert w in result.output, (args, w)


def test_scan_writes_parquet_and_funnel(tmp_path: Path) -> None:
    out, stats = tmp_path / "se.parquet", tmp_path / "stats.json"
    result = runner.invoke(
        app,
        [
            "scan",
            "stackexchange",
            str(BEER_7Z),
            str(COFFEE),
            str(ALCOHOL_META),
            "-o",
            str(out),
            "--stats",
            str(stats),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame.schema == schema.SCHEMA and len(frame) == 18 + 3
    report = json.loads(stats.read_text())
    assert [f["status"] for f in report["files"]] == ["scanned", "scanned", "skipped"]
    assert report["files"][2]["reason"] == "meta_site"
    assert report["total"]["answers"] == 2277 + 327
    assert report["total"]["files_skipped"] == {"meta_site": 1}


def test_scan_meta_when_asked_and_site_override(tmp_path: Path) -> None:
    out, stats = tmp_path / "m.parquet", tmp_path / "m.json"
    result = runner.invoke(
        app,
        [
            "scan",
            "stackexchange",
            str(ALCOHOL_META),
            "--include-meta",
            "--no-filters",
            "-o",
            str(out),
            "--stats",
            str(stats),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(pl.read_parquet(out)) == 75
    renamed = tmp_path / "dump.xml"
    renamed.write_bytes((COFFEE / "Posts.xml").read_bytes())
    result = runner.invoke(
        app,
        [
            "scan",
            "stackexchange",
            str(renamed),
            "--site",
            "coffee.stackexchange.com",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert set(pl.read_parquet(out)["domain"]) == {"coffee.stackexchange.com"}


def test_unknown_site_name_is_a_clear_error(tmp_path: Path) -> None:
    renamed = tmp_path / "dump.xml"
    renamed.write_bytes((COFFEE / "Posts.xml").read_bytes())
    proc = run_cli("scan", "stackexchange", str(renamed), "-o", str(tmp_path / "o.parquet"))
    assert proc.returncode == 1
    assert "pass --site" in proc.stderr and "Traceback" not in proc.stderr


def test_stats_command(tmp_path: Path) -> None:
    from lima.curate import build, config

    result = build.run(config.sample_config(), tmp_path / "out")
    out = runner.invoke(app, ["stats", str(result.out / "train.jsonl")])
    assert out.exit_code == 0, out.output
    assert "| Stack Exchange (STEM) | 10 |" in out.output
    assert "| Pushshift r/WritingPrompts | 10 |" in out.output


def test_lima_data_never_imports_torch(tmp_path: Path) -> None:
    """A module loader for torch that records any real import (a spec lookup,
    as polars does to see what is installed, is not an import)."""
    code = (
        "import sys, importlib.abc, importlib.machinery, pathlib\n"
        "tried = []\n"
        "class Loader(importlib.abc.Loader):\n"
        "    def create_module(self, spec): return None\n"
        "    def exec_module(self, module):\n"
        "        tried.append(module.__name__); raise ImportError('torch is blocked')\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            return importlib.machinery.ModuleSpec(name, Loader())\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import lima.curate.cli, lima.curate.build, lima.curate.config, lima.curate.review\n"
        "lima.curate.build.run(lima.curate.config.sample_config(), pathlib.Path(sys.argv[1]))\n"
        "sys.exit(1 if tried else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    # the spy does see a real import, so the check above can fail
    leak = code.replace(
        "import lima.curate.cli,",
        "exec('try:\\n import torch\\nexcept ImportError: pass')\nimport lima.curate.cli,",
    )
    proc = subprocess.run([sys.executable, "-c", leak, str(tmp_path / "out2")], capture_output=True)
    assert proc.returncode == 1, proc.stderr
