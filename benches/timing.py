"""Shared by the benchmarks: time a command in its own process."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], repeat: int) -> tuple[float, int]:
    """Best wall time over `repeat` runs, and the peak RSS (KiB) of the command
    itself, read by GNU time (a forked child's own getrusage would include the
    pages it shares with this process)."""
    best = float("inf")
    peak = 0
    gnu_time = Path("/usr/bin/time")
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r") as rss:
            wrapped = (
                [str(gnu_time), "-f", "%M", "-o", rss.name, *cmd] if gnu_time.exists() else cmd
            )
            t = time.perf_counter()
            subprocess.run(wrapped, check=True, stdout=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - t)
            text = rss.read().strip()
            peak = max(peak, int(text.splitlines()[-1]) if text else 0)
    return best, peak


def write_report(
    path: Path, size: int, results: dict[str, dict[str, float]], ratios: dict[str, float]
) -> None:
    """Print the ratios and write every number of the run as JSON."""
    print("ratios (throughput of lima relative to the baseline; >1 means lima is faster):")
    for k, v in ratios.items():
        print(f"  {k:40s} {v:6.2f}")
    report = {
        "input_bytes": size,
        "results": results,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
