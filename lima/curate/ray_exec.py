"""``lima-data build --executor ray``: each scan of the plan is one Ray task, run where
the cluster puts it; its cached scan (frame, then the JSON report, in ``out/candidates/``)
is its result, so ``out`` and the inputs must be on a filesystem every node sees. The
select/write step then runs once, on the caller, over the cached scans."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lima.curate import jobs
from lima.curate.config import BuildConfig
from lima.errors import ConfigError


def _scan_on_worker(cfg: BuildConfig, out: str, index: int, digest: str) -> dict[str, Any]:
    """Plan again on the worker (the driver has cached every input's hash, so nothing is
    read twice) and run scan `index`, which must be the one the driver planned."""
    from lima.curate import build

    hashes = jobs.InputHashes(Path(out) / "candidates" / "input_hashes.json")
    with build._hashing(hashes):
        task = build.plan(cfg, Path(out))[index]
    if task.digest != digest:
        raise RuntimeError(
            f"scan {index} ({task.label}) differs on this node: are the inputs and {out} "
            "the same files here as on the driver?"
        )
    task.run()
    return {"label": task.label, "peak_rss_bytes": jobs.peak_rss()}


def run(
    cfg: BuildConfig, out: Path, tasks: list[jobs.ScanTask], address: str | None
) -> jobs.PoolStats:
    try:
        import ray
    except ImportError as e:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'lima[ray]' (or pip install ray)"
        ) from e
    stats = jobs.PoolStats("ray", 0, 0, scans=len(tasks))
    start = time.monotonic()
    todo = [(i, t) for i, t in enumerate(tasks) if not t.finished()]
    stats.cached = len(tasks) - len(todo)
    if todo:
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        try:
            remote = ray.remote(max_retries=1)(_scan_on_worker)
            out_abs = str(out.resolve())
            # a task charged more than any node has would never be scheduled: it gets the
            # largest node to itself instead, as one over the budget runs alone locally
            largest = max(
                (n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive")),  # type: ignore[no-untyped-call]
                default=0,
            )
            refs = [
                remote.options(
                    memory=int(min(t.cost, largest)) if largest else None,
                    name=f"lima-scan-{i}",
                ).remote(cfg, out_abs, i, t.digest)
                for i, t in todo
            ]
            results = ray.get(refs)
        finally:
            if started_here:
                ray.shutdown()
        stats.ran = len(results)
        stats.peak_rss_bytes = max(r["peak_rss_bytes"] for r in results)
        missing = [t.label for _, t in todo if not t.finished()]
        if missing:
            raise RuntimeError(f"Ray tasks returned but left no cached scan for: {missing}")
    stats.seconds = round(time.monotonic() - start, 3)
    return stats
