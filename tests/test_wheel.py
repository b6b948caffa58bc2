"""An installed wheel works on its own, not only the editable source tree
(``lima/`` sits at the repository root, so the tree could mask a packaging gap)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which(
        "maturin"
    )
    if maturin is None:
        pytest.fail("maturin is not installed (make install provides it)")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([maturin, "build", "--release", "-q", "-o", str(dist)], cwd=ROOT, check=True)
    (whl,) = dist.glob("lima-*.whl")
    return whl


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for want in (
        "lima/_core.abi3.so",
        "lima/_core.pyi",
        "lima/py.typed",
        "lima/curate/cli.py",
        "lima/data/stackexchange_sites.csv",
        "lima/samples/stackexchange/beer.stackexchange.com.7z",
        "lima/samples/SOURCES.tsv",
        "lima/samples/reddit/AskMen_submissions.zst",
        "lima/samples/eval/mt_bench_question.jsonl",
        "lima/curate/review.html",
        "lima/evaluate/annotate.html",
        "lima/data/prompts/paper.toml",
        "lima/data/prompts/lima.toml",
        "lima/web.js",
        "lima/train/picks.html",
    ):
        assert want in names, want


def test_installed_wheel_imports_and_scans(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # system site packages give polars & co.; lima itself comes only from the wheel
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    py = env_dir / "bin" / "python"
    deps = (
        "import polars, typer, rich, os;"
        "print(os.pathsep.join(os.path.dirname(os.path.dirname(m.__file__))"
        " for m in (polars, typer, rich)))"
    )
    site = subprocess.run(
        [sys.executable, "-c", deps],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True
    )
    code = (
        "import lima, lima._core, lima.curate.build, lima.curate.config, pathlib;"
        f"assert lima.__file__.startswith({str(env_dir)!r}), lima.__file__;"
        "r = lima.curate.build.run(lima.curate.config.sample_config(), pathlib.Path('out'));"
        "print(lima.__version__, len(r.splits['train']))"
    )
    env = {**os.environ, "PYTHONPATH": site}
    proc = subprocess.run([py, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [lima_version(), "53"]


def lima_version() -> str:
    import lima

    return lima.__version__
