"""How a build runs its scans: one input is one task, its cached scan (frame, then the JSON
report) the completion marker. Tasks run here on a bounded thread pool (``--jobs``; the
native scans release the GIL) within a memory budget, on a Ray cluster (``--executor ray``),
or one per Slurm array task (``--scan-task K``). The select/write step that follows reads
only the cached scans, so every way of running gives the same bytes."""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import __version__
from lima.io import atomic_write, dumps, sha256_file, sha256_text, write_json

MiB = 1 << 20
# What a scan holds in memory, charged per byte of its input on disk: the candidate rows
# and the join's tables grow with the decompressed size, which for the dumps' BZip2, LZMA2
# and zstd is 4-10x the compressed size. An estimate, not a measurement: the summary
# reports the peak the build really reached.
COMPRESSED_FACTOR = 4
PLAIN_FACTOR = 1
# Below this a task is charged this much: interpreter-side frames, parquet writing.
MIN_COST = 64 * MiB
COMPRESSED_SUFFIXES = (".7z", ".zst", ".bz2", ".xz", ".gz")


def default_jobs() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def total_memory() -> int:
    """Physical memory in bytes (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def memory_budget(mib: int) -> int:
    """The configured budget in bytes; 0 means half of physical memory."""
    if mib > 0:
        return mib * MiB
    return max(total_memory() // 2, 1024 * MiB)


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def input_cost(path: Path) -> int:
    """The memory a scan of `path` (a file or a dump folder) is charged."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    cost = 0
    for f in files:
        factor = COMPRESSED_FACTOR if f.name.lower().endswith(COMPRESSED_SUFFIXES) else PLAIN_FACTOR
        cost += f.stat().st_size * factor
    return max(cost, MIN_COST)


class InputHashes:
    """SHA-256 of input files, cached by resolved path, size and mtime in
    ``candidates/input_hashes.json``: an unchanged dump is hashed once, not read a
    second time on every build before its (cached) scan."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.dirty = False
        self.known: dict[str, list[Any]] = {}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.known = {
                    k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 3
                }
        except (OSError, ValueError):
            self.known = {}

    def sha256(self, f: Path) -> str:
        st = f.stat()
        key = str(f.resolve())
        with self.lock:
            hit = self.known.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = sha256_file(f)
        with self.lock:
            self.known[key] = [st.st_size, st.st_mtime_ns, digest]
            self.dirty = True
        return digest

    def prefetch(self, files: Iterable[Path], jobs: int) -> None:
        """Hash the files not yet known, `jobs` at a time (hashlib releases the GIL)."""
        todo = sorted({f for f in files if f.is_file()})
        if jobs <= 1 or len(todo) <= 1:
            for f in todo:
                self.sha256(f)
            return
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(self.sha256, todo))

    def save(self) -> None:
        if self.dirty:
            write_json(self.path, dict(sorted(self.known.items())))
            self.dirty = False


@dataclass
class ScanTask:
    """One input's scan: `compute` runs it; the cache holds its result under a
    digest of `key` (the input's bytes and every setting the scan reads)."""

    kind: str
    label: str
    cache: Path
    stem: str
    key: dict[str, Any]
    compute: Callable[[], tuple[pl.DataFrame, dict[str, Any]]]
    cost: int = MIN_COST
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = sha256_text(dumps({"version": __version__, **self.key}))[:16]

    @property
    def done(self) -> Path:
        return self.cache / f"{self.stem}-{self.digest}.json"

    @property
    def frame_path(self) -> Path:
        return self.cache / f"{self.stem}-{self.digest}.parquet"

    def finished(self) -> bool:
        return self.done.exists() and self.frame_path.exists()

    def run(self) -> None:
        """Scan and cache, unless a finished scan is there. The JSON report is the
        completion marker, written after the frame."""
        if self.finished():
            return
        frame, report = self.compute()
        atomic_write(self.frame_path, frame.write_parquet)
        write_json(self.done, report)

    def result(self) -> tuple[pl.DataFrame, dict[str, Any]]:
        self.run()
        return pl.read_parquet(self.frame_path), json.loads(self.done.read_text(encoding="utf-8"))


@dataclass
class PoolStats:
    """What running the scans took: for the build's summary and run.json (never the
    manifest, which must not depend on how the build ran)."""

    executor: str
    jobs: int
    budget_bytes: int
    scans: int = 0
    cached: int = 0
    ran: int = 0
    peak_rss_bytes: int = 0
    max_charged_bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def share_of_cores(jobs: int, scans_left: int) -> int:
    """Decoder threads for a scan that starts with `scans_left` scans (itself included)
    still to run or running: the cores split among the ones that can run at once, so the
    pool's scans together size their BZip2 decoders and Pushshift parsers to the machine,
    not each to all of it. The last scans of a build get more as fewer remain."""
    return max(1, default_jobs() // max(1, min(jobs, scans_left)))


def threads_for(cost: int, pending: int, jobs: int, scans_left: int, largest: bool = False) -> int:
    """Threads for a scan charged `cost` that starts while `pending` bytes are charged to it
    and to every scan running or still to run: the larger of its even share of the cores and
    its share by charge (rounded up), at most every core. A scan's threads are fixed when it
    starts, so one that holds more than its even share of the work is sized for it then. If
    it is also the `largest` of those running or still to run (it starts first), it gets
    every core: it runs longest, shares the cores with the small scans while they run (the
    kernel splits them by thread) and has them all once they finish, as Stack Overflow's
    Posts among the small sites. The scans running at once hold about twice the cores in
    threads at most."""
    cores = default_jobs()
    even = share_of_cores(jobs, scans_left)
    by_charge = -(-cores * cost // max(pending, cost, 1))
    if largest and by_charge > even:
        return cores
    return min(cores, max(even, by_charge))


def start_order(todo: list[tuple[int, ScanTask]]) -> list[tuple[int, ScanTask]]:
    """The order unfinished scans are offered to the pool: the largest charge first (ties in
    plan order), so the longest scan does not start last and run on alone."""
    return sorted(todo, key=lambda e: (-e[1].cost, e[0]))


def _run_on(task: ScanTask, threads: int) -> None:
    from lima import progress

    progress.set_scan_threads(threads)
    try:
        task.run()
    finally:
        progress.set_scan_threads(0)


def run_pool(tasks: list[ScanTask], jobs: int, budget: int) -> PoolStats:
    """Run the unfinished tasks, at most `jobs` at a time and never more than `budget`
    bytes charged at once (a task charged more than the budget runs alone). Tasks start
    largest charge first (`start_order`), a smaller one passing a larger one that waits for
    memory, each with `threads_for` its charge; with one job they run in plan order, each
    on every core. On a failure no
    new task starts except the earlier ones in plan order, and the earliest failure in plan
    order is raised: the error `--jobs 1` gives."""
    from lima import progress

    stats = PoolStats("local", jobs, budget, scans=len(tasks))
    start = time.monotonic()
    todo = [(i, t) for i, t in enumerate(tasks) if not t.finished()]
    stats.cached = len(tasks) - len(todo)
    if jobs <= 1 or len(todo) <= 1:
        for _, t in todo:
            stats.max_charged_bytes = max(stats.max_charged_bytes, min(t.cost, budget))
            t.run()
            stats.ran += 1
        stats.peak_rss_bytes = peak_rss()
        stats.seconds = round(time.monotonic() - start, 3)
        return stats
    todo = start_order(todo)
    failures: dict[int, BaseException] = {}
    running: dict[Future[None], tuple[int, int]] = {}
    charged = 0
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lima-scan")
    try:
        while todo or running:
            limit = min(failures) if failures else len(tasks)
            for entry in list(todo):
                i, t = entry
                if i >= limit:
                    continue
                cost = min(t.cost, budget)
                if len(running) >= jobs or (running and charged + cost > budget):
                    continue
                todo.remove(entry)
                # charged to this scan, the running ones and those still to run, uncapped:
                # the share by charge is of the work, not of the memory
                pending = t.cost + sum(tasks[j].cost for j, _ in running.values())
                pending += sum(u.cost for _, u in todo)
                # One charged the whole budget runs alone (nothing starts beside it): all
                # cores are its own, as for Stack Overflow's Posts among the small sites.
                alone = cost >= budget
                largest = all(u.cost <= t.cost for _, u in todo) and all(
                    tasks[j].cost <= t.cost for j, _ in running.values()
                )
                threads = (
                    default_jobs()
                    if alone
                    else threads_for(t.cost, pending, jobs, len(running) + 1 + len(todo), largest)
                )
                running[pool.submit(_run_on, t, threads)] = (i, cost)
                charged += cost
                stats.max_charged_bytes = max(stats.max_charged_bytes, charged)
            if failures:
                todo = [(i, t) for i, t in todo if i < min(failures)]
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                i, cost = running.pop(fut)
                charged -= cost
                err = fut.exception()
                if err is not None:
                    failures[i] = err
                else:
                    stats.ran += 1
    except KeyboardInterrupt:
        progress.cancel_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    stats.peak_rss_bytes = peak_rss()
    stats.seconds = round(time.monotonic() - start, 3)
    if failures:
        raise failures[min(failures)]
    return stats
