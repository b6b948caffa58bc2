"""``lima-data build``: scan every configured dump (reusing finished scans),
select the quotas, and write the dataset with its manifest and Table 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from lima import __version__, review, schema
from lima.config import BuildConfig
from lima.io import (
    atomic_write,
    dumps,
    sha256_file,
    sha256_text,
    write_json,
    write_jsonl,
    write_text,
)
from lima.select import GroupReport, select_stackexchange
from lima.sites import load_groups
from lima.sources import reddit
from lima.sources.stackexchange import SiteScan, scan_site, total_funnel
from lima.stats import table1


@dataclass
class BuildResult:
    out: Path
    train: pl.DataFrame
    test: pl.DataFrame
    scans: list[SiteScan]
    selection: dict[str, GroupReport]
    manifest: dict[str, Any]


def _input_record(label: str, path: Path) -> dict[str, Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {
        "path": label,
        "files": [
            {
                "name": f.name if f == path else str(f.relative_to(path)),
                "bytes": f.stat().st_size,
                "sha256": sha256_file(f),
            }
            for f in files
        ],
    }


def _cached(
    cache: Path,
    name: str,
    key: dict[str, Any],
    compute: Callable[[], tuple[pl.DataFrame, dict[str, Any]]],
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Reuse the finished scan of the same input bytes and settings, else run
    it. The JSON report is the completion marker, written after the frame."""
    digest = sha256_text(dumps({"version": __version__, **key}))[:16]
    done = cache / f"{name}-{digest}.json"
    frame_path = cache / f"{name}-{digest}.parquet"
    if done.exists() and frame_path.exists():
        return pl.read_parquet(frame_path), json.loads(done.read_text(encoding="utf-8"))
    frame, report = compute()
    atomic_write(frame_path, frame.write_parquet)
    write_json(done, report)
    return frame, report


def _scan_cached(
    cfg: BuildConfig,
    label: str,
    path: Path,
    groups: dict[str, str],
    cache: Path,
    record: dict[str, Any],
) -> SiteScan:
    se = cfg.stackexchange
    key = {
        "input": record["files"],
        "filters": cfg.to_dict()["stackexchange"]["filters"],
        "include_meta": se.include_meta,
        "groups": groups,
        "seed": cfg.seed,
        "on_error": cfg.on_error,
    }

    def compute() -> tuple[pl.DataFrame, dict[str, Any]]:
        scan = scan_site(
            path,
            groups=groups,
            include_meta=se.include_meta,
            filters=se.filters,
            on_error=cfg.on_error,
            seed=cfg.seed,
        )
        scan.path = label
        return scan.frame, scan.report()

    frame, report = _cached(cache, path.name, key, compute)
    return SiteScan(**report, frame=frame)


def _reddit_cached(
    cfg: BuildConfig,
    label: str,
    path: Path,
    cache: Path,
    record: dict[str, Any],
    settings: dict[str, Any],
) -> reddit.PushshiftScan:
    key = {"input": record["files"], "settings": settings, "on_error": cfg.on_error}

    def compute() -> tuple[pl.DataFrame, dict[str, Any]]:
        scan = reddit.scan_file(path, on_error=cfg.on_error, **settings)
        scan.path = label
        return scan.frame, scan.report()

    frame, report = _cached(cache, path.name, key, compute)
    return reddit.PushshiftScan(report["path"], report["funnel"], frame)


def _reddit(
    cfg: BuildConfig,
    out: Path,
    name: str,
    paths: list[str],
    settings: dict[str, Any],
    inputs: list[dict[str, Any]],
) -> tuple[pl.DataFrame, list[reddit.PushshiftScan]]:
    scans = []
    for label in paths:
        path = cfg.resolve(label)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input dump not found (from config entry {label!r})")
        record = _input_record(label, path)
        inputs.append(record)
        scans.append(_reddit_cached(cfg, label, path, out / "candidates" / name, record, settings))
    rows = pl.concat([s.frame for s in scans]) if scans else pl.DataFrame(schema=reddit.ROW_SCHEMA)
    return rows, scans


def run(cfg: BuildConfig, out: Path) -> BuildResult:
    se = cfg.stackexchange
    groups = load_groups(cfg.resolve(se.sites_file) if se.sites_file else None, se.site_groups)
    cache = out / "candidates" / "stackexchange"
    inputs, scans = [], []
    for label in se.paths:
        path = cfg.resolve(label)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input dump not found (from config entry {label!r})")
        record = _input_record(label, path)
        inputs.append(record)
        scans.append(_scan_cached(cfg, label, path, groups, cache, record))
    frames = [s.frame for s in scans if s.status == "scanned"]
    candidates = pl.concat(frames) if frames else schema.empty()
    atomic_write(out / "candidates" / "stackexchange.parquet", candidates.write_parquet)

    quotas = {"stem": se.quota.stem, "other": se.quota.other}
    train, selection = select_stackexchange(
        candidates,
        quotas,
        se.temperature,
        cfg.seed,
        se.not_self_contained_words,
        se.min_title_words,
    )
    # Where a person has reviewed a bucket, its accepted (and edited) examples replace the draw.
    decisions = review.accepted(out)
    for group, quota in quotas.items():
        pool = candidates.filter(pl.col("group") == group)
        reviewed = apply_review(pool, decisions)
        if reviewed is not None:
            train = pl.concat([train.filter(pl.col("group") != group), reviewed.head(quota)])
            selection[group] = _top(reviewed, quota, len(pool))
    # Reddit: WritingPrompts stories for train, title-only AskReddit prompts for test
    wp, ask = cfg.reddit.writingprompts, cfg.reddit.askreddit
    wp_rows, wp_scans = _reddit(
        cfg, out, "writingprompts", wp.paths,
        {"subreddit": wp.subreddit, "min_comment_score": wp.min_story_score,
         "min_comment_chars": wp.min_story_chars, "top_level_only": True},
        inputs,
    )  # fmt: skip
    wp_candidates = reddit.writingprompts(wp_rows, wp)
    ask_rows, ask_scans = _reddit(
        cfg, out, "askreddit", ask.paths,
        {"subreddit": ask.subreddit, "kind": "submissions", "min_submission_score": ask.min_score},
        inputs,
    )  # fmt: skip
    ask_candidates = reddit.askreddit(ask_rows, ask)
    for name, frame in (("writingprompts", wp_candidates), ("askreddit", ask_candidates)):
        atomic_write(out / "candidates" / f"reddit_{name}.parquet", frame.write_parquet)
    wp_chosen = apply_review(wp_candidates, decisions)
    wp_chosen = wp_candidates if wp_chosen is None else wp_chosen
    ask_chosen = apply_review(ask_candidates, decisions)
    ask_chosen = ask_candidates if ask_chosen is None else ask_chosen
    reddit_selection = {
        "writingprompts": _top(wp_chosen, wp.quota, len(wp_candidates)),
        "askreddit": _top(ask_chosen, ask.quota, len(ask_candidates)),
    }
    train = pl.concat([train, wp_chosen.head(wp.quota)]).sort("source", "id")
    test = ask_chosen.head(ask.quota).sort("source", "id")
    rows = [schema.Example.from_row(r).to_lima_json() for r in train.iter_rows(named=True)]
    test_rows = [schema.Example.from_row(r).to_lima_json() for r in test.iter_rows(named=True)]
    write_jsonl(out / "train.jsonl", rows)
    write_jsonl(out / "test.jsonl", test_rows)
    selection_all = {**selection, **{f"reddit/{k}": v for k, v in reddit_selection.items()}}
    write_text(out / "stats.md", table1({"train": train, "test": test}, scans, selection_all))

    manifest = {
        "tool": "lima",
        "version": __version__,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "config_sha256": sha256_text(dumps(cfg.to_dict())),
        "inputs": inputs,
        "funnel": {
            "stackexchange": {
                "files": [s.report() for s in scans],
                "total": total_funnel(scans),
            },
            "reddit/writingprompts": {
                "files": [s.report() for s in wp_scans],
                "total": reddit.total_funnel(wp_scans),
                "candidates": len(wp_candidates),
            },
            "reddit/askreddit": {
                "files": [s.report() for s in ask_scans],
                "total": reddit.total_funnel(ask_scans),
                "candidates": len(ask_candidates),
            },
        },
        "selection": {
            "stackexchange": {g: r.to_dict() for g, r in selection.items()},
            **{f"reddit/{k}": v.to_dict() for k, v in reddit_selection.items()},
        },
        "outputs": {
            "train.jsonl": {"rows": len(rows), "sha256": sha256_file(out / "train.jsonl")},
            "test.jsonl": {"rows": len(test_rows), "sha256": sha256_file(out / "test.jsonl")},
            "candidates/stackexchange.parquet": {"rows": len(candidates)},
        },
    }
    write_json(out / "manifest.json", manifest)
    return BuildResult(out, train, test, scans, selection_all, manifest)


def _top(chosen: pl.DataFrame, quota: int, candidates: int) -> GroupReport:
    """The first `quota` of ranked (or reviewed) rows."""
    got = min(quota, len(chosen))
    sites = chosen.head(quota)["domain"].value_counts().sort("domain").rows()
    return GroupReport(wanted=quota, got=got, candidates=candidates, sites=dict(sites))


def apply_review(pool: pl.DataFrame, decisions: dict[str, list[str]]) -> pl.DataFrame | None:
    """The accepted rows of `pool` with their edited turns, or None when no
    row of it was accepted (then the automatic selection stands)."""
    ids = [i for i in pool["id"].to_list() if i in decisions]
    if not ids:
        return None
    edits = pl.DataFrame(
        {"id": ids, "_turns": [decisions[i] for i in ids]},
        schema={"id": pl.String, "_turns": pl.List(pl.String)},
    )
    return (
        pool.join(edits, on="id", how="inner", maintain_order="left")
        .with_columns(conversations=pl.col("_turns"))
        .drop("_turns")
    )
