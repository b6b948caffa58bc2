"""`lima-data build --jobs N`, the memory budget, the input hash cache, the Slurm steps
(--plan, --scan-task) and --executor ray, on the bundled sample dumps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from lima.curate import build, config, jobs
from lima.errors import LimaError

OUTPUTS = [
    "train.jsonl",
    "dev.jsonl",
    "test.jsonl",
    "manifest.json",
    "stats.md",
    "README.md",
    "duplicates.parquet",
    "candidates/stackexchange.parquet",
    "candidates/dialogues.parquet",
    "candidates/reddit_writingprompts.parquet",
    "candidates/reddit_askreddit.parquet",
]


def sample() -> config.BuildConfig:
    cfg = config.sample_config()
    cfg.dialogues.enabled = True  # the comment mining adds a scan per site with comments
    return cfg


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> build.BuildResult:
    return build.run(sample(), tmp_path_factory.mktemp("serial") / "out", n_jobs=1)


def test_parallel_build_is_byte_identical(tmp_path: Path, serial: build.BuildResult) -> None:
    par = build.run(sample(), tmp_path / "out", n_jobs=3)
    assert par.run is not None and serial.run is not None
    assert par.run.scans == serial.run.scans == 8  # 3 sites, 2 + 1 Pushshift files, 2 with comments
    assert par.run.ran == 8 and par.run.jobs == 3
    for name in OUTPUTS:
        assert (par.out / name).read_bytes() == (serial.out / name).read_bytes(), name
    # how the build ran is in run.json, never in the manifest
    stats = json.loads((par.out / "run.json").read_text())
    assert stats["jobs"] == 3 and stats["ran"] == 8 and stats["cached"] == 0
    assert stats["peak_rss_bytes"] >= jobs.peak_rss() // 2 > 0
    assert "peak_rss_bytes" not in (par.out / "manifest.json").read_text()


def _watched(tasks: list[jobs.ScanTask]) -> tuple[list[int], threading.Event]:
    """Wrap each task's scan to record how many run at once; the first one waits (up to
    a second) for a second one to start."""
    peak = [0, 0]  # running now, most at once
    lock = threading.Lock()
    two = threading.Event()
    for t in tasks:
        inner = t.compute

        def compute(inner: Callable[[], Any] = inner) -> Any:
            with lock:
                peak[0] += 1
                peak[1] = max(peak[1], peak[0])
                if peak[0] >= 2:
                    two.set()
            two.wait(1.0)
            try:
                return inner()
            finally:
                with lock:
                    peak[0] -= 1

        t.compute = compute
    return peak, two


def test_memory_budget_bounds_what_runs_at_once(tmp_path: Path) -> None:
    cfg = sample()
    tasks = build.prepare(cfg, tmp_path / "a")
    # every task is charged at least 64 MiB: a 64 MiB budget runs them one at a time
    assert all(t.cost >= jobs.MIN_COST for t in tasks)
    peak, _ = _watched(tasks)
    stats = jobs.run_pool(tasks, 4, jobs.MIN_COST)
    assert peak[1] == 1 and stats.ran == len(tasks)
    assert stats.max_charged_bytes == jobs.MIN_COST
    # with room for all, two (of four allowed) do run at once
    tasks = build.prepare(cfg, tmp_path / "b")
    peak, two = _watched(tasks)
    stats = jobs.run_pool(tasks, 4, 1 << 40)
    assert two.is_set() and 2 <= peak[1] <= 4
    assert all(t.finished() for t in tasks)


def test_each_scan_gets_its_share_of_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs 2 on 8 cores: a scan that starts while another can still run at once gets 4
    decoder threads, not 8; alone (--jobs 1) every scan may use every core (0)."""
    from lima import progress

    monkeypatch.setattr(jobs, "default_jobs", lambda: 8)
    assert [jobs.share_of_cores(2, n) for n in (5, 2, 1)] == [4, 4, 8]
    assert jobs.share_of_cores(16, 3) == 2 and jobs.share_of_cores(16, 40) == 1
    seen: dict[int, list[int]] = {1: [], 2: []}
    for n in (1, 2):
        tasks = build.prepare(sample(), tmp_path / f"out{n}")
        assert len(tasks) >= 3
        for t in tasks:
            inner = t.compute

            def compute(inner: Callable[[], Any] = inner, n: int = n) -> Any:
                seen[n].append(progress.scan_threads())
                return inner()  # the budget reaches the native scan as threads=

            t.compute = compute
        jobs.run_pool(tasks, n, 1 << 40)
        assert all(t.finished() for t in tasks)
    assert set(seen[1]) == {0}
    assert seen[2][0] == 4 and set(seen[2]) <= {4, 8}, seen[2]
    assert progress.scan_threads() == 0


def test_a_scan_that_runs_alone_gets_every_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan charged the whole memory budget runs with nothing beside it (a Stack Overflow
    among small sites), so it gets all 8 cores under --jobs 4, not 8 // 4."""
    from lima import progress

    monkeypatch.setattr(jobs, "default_jobs", lambda: 8)
    tasks = build.prepare(sample(), tmp_path / "out")
    assert len(tasks) >= 3
    seen: list[int] = []
    for t in tasks:
        inner = t.compute

        def compute(inner: Callable[[], Any] = inner) -> Any:
            seen.append(progress.scan_threads())
            return inner()

        t.compute = compute
    jobs.run_pool(tasks, 4, 1)  # a 1-byte budget: every scan is charged all of it
    assert all(t.finished() for t in tasks)
    assert seen == [8] * len(tasks), seen


def test_the_largest_scan_starts_first_with_every_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan charged most of the work (the last input listed, charged 30x each other one)
    starts first under --jobs 4, not last, and gets all 8 cores, not the even share (2) that
    would leave it on a quarter of the machine once the others finish; the next largest
    (20x) gets its share by charge, the others the even share."""
    from lima import progress

    monkeypatch.setattr(jobs, "default_jobs", lambda: 8)
    assert jobs.threads_for(6, 10, 4, 5) == 5  # 8 * 6 / 10, rounded up, beats 8 // 4
    assert jobs.threads_for(6, 10, 4, 5, largest=True) == 8  # more than its share, largest
    assert jobs.threads_for(1, 10, 4, 5, largest=True) == 2  # the even share covers it
    assert jobs.threads_for(1, 10, 4, 5) == 2  # the even share when that is more
    assert jobs.threads_for(10, 10, 4, 1) == 8  # never more than the cores
    tasks = build.prepare(sample(), tmp_path / "out")
    n = len(tasks)
    assert n >= 3 and all(t.cost == jobs.MIN_COST for t in tasks)
    big, second = tasks[-1], tasks[-2]
    big.cost = 30 * jobs.MIN_COST
    second.cost = 20 * jobs.MIN_COST
    key = [f"{t.kind} {t.label}" for t in (big, second)]  # a site's comments scan shares its label
    lock = threading.Lock()
    started: list[tuple[str, int]] = []
    for t in tasks:
        inner = t.compute

        def compute(inner: Callable[[], Any] = inner, label: str = f"{t.kind} {t.label}") -> Any:
            with lock:
                started.append((label, progress.scan_threads()))
            return inner()

        t.compute = compute
    jobs.run_pool(tasks, 4, 1 << 40)
    assert all(t.finished() for t in tasks) and len(started) == n
    threads = dict(started)
    # four run at once: the two large ones are among the first four, whatever the race (in
    # plan order they would wait for a free slot)
    assert len(threads) == n and set(key) <= set(dict(started[:4])), started
    assert threads[key[0]] == 8
    # the second largest, beside the largest: its share by charge, 8 * 20 / (30 + 20 + n - 2)
    assert threads[key[1]] == -(-8 * 20 // (50 + n - 2)) == 3
    assert all(k in (2, 4, 8) for label, k in started if label not in key), started


def test_compressed_inputs_are_charged_more(monkeypatch: pytest.MonkeyPatch) -> None:
    assert jobs.input_cost(config.sample_config().resolve(config.SAMPLE_PATHS[1])) == jobs.MIN_COST
    monkeypatch.setattr(jobs, "MIN_COST", 0)  # the samples are smaller than the floor
    cfg = sample()
    beer = cfg.resolve(config.SAMPLE_PATHS[0])
    quantum = cfg.resolve(config.SAMPLE_PATHS[2])
    assert jobs.input_cost(beer) == beer.stat().st_size * jobs.COMPRESSED_FACTOR
    on_disk = sum(p.stat().st_size for p in quantum.iterdir())
    assert jobs.input_cost(quantum) == on_disk


def test_first_failure_in_config_order_is_raised(tmp_path: Path) -> None:
    """Two cut archives: --jobs 3 reports the one --jobs 1 reports (the first listed)."""
    cfg = sample()
    beer = cfg.resolve(config.SAMPLE_PATHS[0])
    data = beer.read_bytes()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / beer.name).write_bytes(data[: len(data) // 2])
    cfg.stackexchange.paths = [
        config.SAMPLE_PATHS[1],
        str(tmp_path / "a" / beer.name),
        str(tmp_path / "b" / beer.name),
    ]
    errors = []
    for n in (1, 3):
        with pytest.raises(LimaError) as e:
            build.run(cfg, tmp_path / f"out{n}", n_jobs=n)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and str(tmp_path / "a") in errors[0], errors


def test_unchanged_inputs_are_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.sample_config()
    site = tmp_path / "coffee.stackexchange.com"
    shutil.copytree(cfg.resolve(config.SAMPLE_PATHS[1]), site)
    cfg.stackexchange.paths = [str(site)]
    out = tmp_path / "out"
    first = build.run(cfg, out)
    cache = json.loads((out / "candidates" / "input_hashes.json").read_text())
    assert str((site / "Posts.xml").resolve()) in cache

    def boom(path: Path, chunk: int = 0) -> str:
        raise AssertionError(f"hashed again: {path}")

    monkeypatch.setattr(jobs, "sha256_file", boom)
    again = build.run(cfg, out)
    assert (again.out / "manifest.json").read_bytes() == (first.out / "manifest.json").read_bytes()
    # a file whose size or mtime changed is hashed again
    posts = site / "Posts.xml"
    posts.write_bytes(posts.read_bytes())
    with pytest.raises(AssertionError, match="hashed again"):
        build.run(cfg, out)


def test_slurm_steps_give_the_same_build(tmp_path: Path, serial: build.BuildResult) -> None:
    out = tmp_path / "out"
    listed = run_cli("build", "--out", str(out), "--with-dialogues", "--plan")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(i) for i in range(8)]
    assert all(r[3] == "to scan" for r in rows) and rows[0][1] == "stackexchange"
    for i in range(len(rows)):
        one = run_cli("build", "--out", str(out), "--with-dialogues", "--scan-task", str(i))
        assert one.returncode == 0 and "done" in one.stderr, one.stderr
    again = run_cli("build", "--out", str(out), "--with-dialogues", "--scan-task", "3")
    assert again.returncode == 0 and "was cached" in again.stderr
    bad = run_cli("build", "--out", str(out), "--with-dialogues", "--scan-task", "8")
    assert bad.returncode == 2 and "0..7" in bad.stderr
    final = run_cli("build", "--out", str(out), "--with-dialogues", "--jobs", "2")
    assert final.returncode == 0, final.stderr
    assert "scans: 0 run on 2 jobs, 8 cached" in final.stderr
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (serial.out / name).read_bytes(), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ray_executor(tmp_path: Path, serial: build.BuildResult) -> None:
    """A Ray head started here on 127.0.0.1 (`ray start --head --block`, its own process
    group, ended with it); the CLI joins it with --address, runs one task per scan there,
    and writes the bytes of a local build."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'lima[ray]')")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    # Ray's socket paths must fit in 107 bytes: a short folder, not pytest's
    temp = Path(tempfile.mkdtemp(prefix="lima-ray-"))
    # no token file in the home folder: the cluster lives for this test only
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start exited"
            assert time.monotonic() < deadline, "the Ray head did not come up in 90 s"
            time.sleep(0.5)
        out = tmp_path / "out"
        args = ["build", "--out", str(out), "--with-dialogues", "--executor", "ray"]
        done = subprocess.run(
            [sys.executable, "-m", "lima.curate.cli", *args, "--address", address],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"scans: 8 run on Ray at {address}, 0 cached" in done.stderr
        for name in OUTPUTS:
            assert (out / name).read_bytes() == (serial.out / name).read_bytes(), name
        stats = json.loads((out / "run.json").read_text())
        assert stats["executor"] == "ray" and stats["ran"] == 8
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        shutil.rmtree(temp, ignore_errors=True)
    missing = run_cli("build", "--out", str(tmp_path / "x"), "--executor", "ray")
    assert missing.returncode == 2 and "--address" in missing.stderr
