from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "lima" / "samples" / "stackexchange"
DATA = ROOT / "tests" / "data" / "stackexchange"
BEER_7Z = SAMPLES / "beer.stackexchange.com.7z"
QC = SAMPLES / "quantumcomputing.stackexchange.com"
COFFEE = SAMPLES / "coffee.stackexchange.com"
ALCOHOL_META = DATA / "alcohol.meta.stackexchange.com"

sys.path.insert(0, str(ROOT / "benches"))


@pytest.fixture(scope="session")
def beer_posts_xml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Posts.xml of the real beer archive, extracted once by py7zr (an
    independent 7z implementation) for tests that need the plain bytes."""
    import py7zr

    d = tmp_path_factory.mktemp("beer") / "beer.stackexchange.com"
    with py7zr.SevenZipFile(BEER_7Z) as z:
        z.extract(path=d, targets=["Posts.xml"])
    return d / "Posts.xml"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`make demo`'s dataset, built once per test session."""
    from lima import build, config

    return build.run(config.sample_config(), tmp_path_factory.mktemp("demo") / "out")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`lima-data ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "lima.cli", *args], capture_output=True, text=True, check=False
    )
