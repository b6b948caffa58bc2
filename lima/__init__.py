"""lima: curate a LIMA-style alignment set from raw public dumps, fine-tune on it, evaluate it.

The heavy per-record work (archive streaming, XML and NDJSON parsing, the answer filters and the
HTML conversion) runs in the native module ``lima._core``. The command lines are ``lima-data``,
``lima-train`` and ``lima-eval``; from Python (a notebook, a pipeline) these few calls do what
``lima-data`` does, and importing ``lima`` stays light (each call imports what it needs)::

    import lima

    cfg = lima.load_config("examples/lima.toml")     # or lima.load_config() for the samples
    result = lima.build(cfg, "out/lima")             # the whole curation, as `lima-data build`
    result.splits["train"]                           # polars frames of the written splits
    result.manifest["funnel"]                        # every record read, kept or counted

    answers = lima.scan_stackexchange("dumps/beer.stackexchange.com.7z")   # a polars frame
    posts = lima.scan_pushshift("RS_2019-10.zst", subreddit="WritingPrompts")
    lima.export("out/lima/train.jsonl", "messages", "train.messages.jsonl")
    frame = lima.read_dataset("train.messages.jsonl")                      # any of lima's formats

Training and evaluation are the ``lima.train`` and ``lima.evaluate`` packages (the optional
``train`` extra); their entry points are the command lines.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

try:
    __version__ = version("lima")
except PackageNotFoundError:  # running from a source tree that was never installed
    from lima._core import __version__

if TYPE_CHECKING:
    import polars as pl

    from lima.curate.build import BuildResult
    from lima.curate.config import BuildConfig

StrPath = str | PathLike[str]

__all__ = [
    "__version__",
    "build",
    "export",
    "load_config",
    "read_dataset",
    "scan_pushshift",
    "scan_stackexchange",
]


def load_config(path: StrPath | None = None) -> BuildConfig:
    """A validated build config from a ``lima.toml`` (unknown keys and wrong types are a
    ``ConfigError`` naming the file and key). Without a path: the config that runs on the
    sample dumps bundled with lima, as ``lima-data build`` without ``--config``."""
    from lima.curate import config

    return config.sample_config() if path is None else config.load(Path(path))


def build(cfg: BuildConfig, out: StrPath) -> BuildResult:
    """Run the whole curation into ``out`` (train/dev/test.jsonl, manifest.json, stats.md,
    the dataset card, candidates/); a rerun reuses finished scans. Returns the written splits
    as polars frames, the scans, the selection report and the manifest."""
    from lima.curate import build as build_mod

    cfg.validate("lima.build")
    return build_mod.run(cfg, Path(out))


def scan_stackexchange(
    path: StrPath,
    *,
    site: str | None = None,
    filters: bool = True,
    on_error: str = "fail",
    seed: int = 0,
    include_meta: bool = False,
) -> pl.DataFrame:
    """One site dump (a ``.7z``, a folder holding ``Posts.xml``, or a ``Posts.xml``) as a
    frame of (question, top answer) examples in the shared schema, after the paper's filters
    (``filters=False``: every top answer). For the funnel (counts per rejection reason) call
    ``lima.curate.sources.stackexchange.scan_site``, which this wraps."""
    from lima.curate.sites import load_groups
    from lima.curate.sources.stackexchange import FilterSettings, scan_site

    scan = scan_site(
        Path(path),
        groups=load_groups(None),
        site=site,
        include_meta=include_meta,
        filters=FilterSettings(enabled=filters),
        on_error=on_error,
        seed=seed,
        show_progress=False,
    )
    return scan.frame


def scan_pushshift(
    path: StrPath, *, subreddit: str | None = None, on_error: str = "fail"
) -> pl.DataFrame:
    """The submissions and comments of ``subreddit`` (all when ``None``) in a Pushshift dump
    (``.zst`` with the 2 GiB window, or NDJSON), one row each."""
    from lima.curate.sources import reddit

    return reddit.scan_file(
        Path(path), subreddit=subreddit, on_error=on_error, show_progress=False
    ).frame


def export(file: StrPath, format: str, out: StrPath, *, system: str | None = None) -> int:
    """Convert a build's ``.jsonl`` to ``messages`` (OpenAI-style JSONL), ``sharegpt`` (JSON)
    or ``parquet``; returns the number of examples written."""
    from lima.curate import export as export_mod

    return export_mod.export(Path(file), format, Path(out), system=system)


def read_dataset(path: StrPath) -> pl.DataFrame:
    """A dataset file (a build's ``.jsonl``, a ``messages`` or ShareGPT export, a
    ``.parquet``) as a frame with ``conversations`` and ``source``."""
    from lima.curate.export import read_dataset as read

    return read(Path(path))
