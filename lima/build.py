"""``lima-data build``: scan every configured dump (reusing finished scans),
select the quotas, and write the dataset with its manifest and Table 1."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from lima import __version__, schema
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
from lima.sources.stackexchange import SiteScan, scan_site, total_funnel
from lima.stats import table1


@dataclass
class BuildResult:
    out: Path
    train: pl.DataFrame
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


def _scan_cached(
    cfg: BuildConfig,
    label: str,
    path: Path,
    groups: dict[str, str],
    cache: Path,
    record: dict[str, Any],
) -> SiteScan:
    """Scan one dump, or reuse the finished scan of the same bytes and settings."""
    se = cfg.stackexchange
    key = sha256_text(
        dumps(
            {
                "version": __version__,
                "input": record["files"],
                "filters": cfg.to_dict()["stackexchange"]["filters"],
                "include_meta": se.include_meta,
                "groups": groups,
                "seed": cfg.seed,
                "on_error": cfg.on_error,
            }
        )
    )[:16]
    done = cache / f"{path.name}-{key}.json"
    frame_path = cache / f"{path.name}-{key}.parquet"
    if done.exists() and frame_path.exists():
        report = json.loads(done.read_text(encoding="utf-8"))
        return SiteScan(**report, frame=pl.read_parquet(frame_path))
    scan = scan_site(
        path,
        groups=groups,
        include_meta=se.include_meta,
        filters=se.filters,
        on_error=cfg.on_error,
        seed=cfg.seed,
    )
    scan.path = label
    atomic_write(frame_path, lambda tmp: scan.frame.write_parquet(tmp))
    write_json(done, scan.report())  # the completion marker, written last
    return scan


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
    atomic_write(
        out / "candidates" / "stackexchange.parquet", lambda tmp: candidates.write_parquet(tmp)
    )

    quotas = {"stem": se.quota.stem, "other": se.quota.other}
    train, selection = select_stackexchange(
        candidates,
        quotas,
        se.temperature,
        cfg.seed,
        se.not_self_contained_words,
        se.min_title_words,
    )
    train = train.sort("source", "id")
    rows = [schema.Example.from_row(r).to_lima_json() for r in train.iter_rows(named=True)]
    write_jsonl(out / "train.jsonl", rows)
    write_text(out / "stats.md", table1({"train": train}, scans, selection))

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
            }
        },
        "selection": {"stackexchange": {g: r.to_dict() for g, r in selection.items()}},
        "outputs": {
            "train.jsonl": {"rows": len(rows), "sha256": sha256_file(out / "train.jsonl")},
            "candidates/stackexchange.parquet": {"rows": len(candidates)},
        },
    }
    write_json(out / "manifest.json", manifest)
    return BuildResult(out, train, scans, selection, manifest)
