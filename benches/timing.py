"""Shared by the benchmarks: time a command in its own process."""

from __future__ import annotations

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
