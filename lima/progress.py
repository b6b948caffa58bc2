"""Run a native scan on a worker thread (the GIL is released inside) while the
main thread draws a byte progress bar and forwards Ctrl-C as a cancel."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lima import _core

T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)

# Scans running now, so Ctrl-C in the main thread stops those on pool threads too.
_active: set[_core.Progress] = set()
_active_lock = threading.Lock()


# Decoder threads a scan may use (0: every core): a build's pool gives each scan its
# share of the cores, so `--jobs N` does not start N scans each sized to every core.
_budget = threading.local()


def scan_threads() -> int:
    """The thread budget of scans started on this thread (0: every core)."""
    return int(getattr(_budget, "threads", 0))


def set_scan_threads(threads: int) -> None:
    _budget.threads = threads


def cancel_all() -> None:
    """Ask every running scan to stop (each then raises its cancelled error)."""
    with _active_lock:
        for counters in _active:
            counters.cancel()


def run_with_bar(label: str, work: Callable[[_core.Progress], T], *, show: bool | None = None) -> T:
    counters = _core.Progress()
    on_main = threading.current_thread() is threading.main_thread()
    if not on_main:
        # one live bar at a time: scans on a build's pool threads draw none
        show = False
    elif show is None:
        show = console.is_terminal
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not show,
    )
    if not on_main:
        with _active_lock:
            _active.add(counters)
        try:
            return work(counters)
        finally:
            with _active_lock:
                _active.discard(counters)
    with ThreadPoolExecutor(max_workers=1) as pool, bar:
        task = bar.add_task(label, total=None)
        future = pool.submit(work, counters)
        try:
            while True:
                try:
                    return future.result(timeout=0.1)
                except FutureTimeout:
                    total = counters.total or None
                    bar.update(task, completed=counters.position, total=total)
        except KeyboardInterrupt:
            counters.cancel()
            print("interrupted: stopping the scan...", file=sys.stderr)
            raise
