"""Shared by the benchmarks: time a command in its own process, pinned to a
set of cores, and print the results as tables of ratios."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    seconds: float
    peak_kib: int

    def rate(self, nbytes: int) -> float:
        return nbytes / 1e6 / self.seconds


def core_sets() -> list[list[int]]:
    """1, 2, ... N cores of the ones this process may run on: the points of a scaling curve."""
    cores = sorted(os.sched_getaffinity(0))
    return [cores[:n] for n in range(1, len(cores) + 1)]


def cores_label(cores: list[int]) -> str:
    return f"{len(cores)} core{'s' if len(cores) > 1 else ''}"


def timed(cmd: list[str], repeat: int, cores: list[int] | None = None) -> Run:
    """Best wall time over `repeat` runs, and the peak RSS (KiB) of the command
    itself, read by GNU time (a forked child's own getrusage would include the
    pages it shares with this process). `cores` pins the command with taskset;
    every tool here sizes its thread pool by the cores it may run on."""
    best = float("inf")
    peak = 0
    gnu_time = Path("/usr/bin/time")
    pin = ["taskset", "-c", ",".join(map(str, cores))] if cores else []
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r") as rss:
            wrapped = [*pin, *cmd]
            if gnu_time.exists():
                wrapped = [str(gnu_time), "-f", "%M", "-o", rss.name, *wrapped]
            t = time.perf_counter()
            subprocess.run(wrapped, check=True, stdout=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - t)
            text = rss.read().strip()
            peak = max(peak, int(text.splitlines()[-1]) if text else 0)
    return Run(best, peak)


def need(tools: dict[str, str]) -> dict[str, bool]:
    """Which peer tools are installed; says how to get the missing ones."""
    have = {tool: shutil.which(tool) is not None for tool in tools}
    missing = [f"{t} (apt-get install {pkg})" for t, pkg in tools.items() if not have[t]]
    if missing:
        print("missing peers, their rows are skipped: " + ", ".join(missing), flush=True)
    return have


@dataclass
class Pending:
    tool: str
    cmd: list[str]
    repeat: int
    cores: list[int]
    best: Run | None = None


@dataclass
class Table:
    """One input, its tools (rows) on each core count (columns), every figure
    in MB/s of decompressed input with the peak RSS, and ratios against a
    baseline row measured in the same run.

    The tools of one column are timed in rounds, one run of each per round
    (best of the rounds), not each tool's repeats back to back: this machine's
    speed drifts over tens of seconds, and back-to-back repeats gave the tool
    timed in a slow stretch all of it (a build measured 0.85x itself)."""

    title: str
    nbytes: int
    columns: list[str]
    rows: dict[str, dict[str, Run]] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    pending_column: str = ""

    def add(self, tool: str, column: str, run: Run) -> None:
        self.rows.setdefault(tool, {})[column] = run
        print(
            f"  {tool:46s} [{column}] {run.seconds:8.2f} s {run.rate(self.nbytes):9.1f} MB/s"
            f"  peak {run.peak_kib / 1024:8.1f} MiB",
            flush=True,
        )

    def measure(
        self, tool: str, column: str, cmd: list[str], repeat: int, cores: list[int]
    ) -> None:
        """Queue `cmd` for `column`; the queue runs when another column is
        measured or the table is read."""
        if self.pending and column != self.pending_column:
            self.run_pending()
        self.pending_column = column
        self.pending.append(Pending(tool, cmd, repeat, cores))

    def run_pending(self) -> None:
        """Time the queued tools in rounds. A tool that fails (a build that
        cannot read this input) is reported and left out, not the end of the run."""
        queue, self.pending = self.pending, []
        column = self.pending_column
        for r in range(max((p.repeat for p in queue), default=0)):
            for p in queue:
                if p.repeat <= r or (r > 0 and p.best is None):
                    continue
                try:
                    run = timed(p.cmd, 1, p.cores)
                except subprocess.CalledProcessError as e:
                    print(f"  {p.tool:46s} [{column}] failed (exit {e.returncode}): left out")
                    p.repeat = 0
                    continue
                p.best = (
                    run
                    if p.best is None
                    else Run(min(p.best.seconds, run.seconds), max(p.best.peak_kib, run.peak_kib))
                )
        for p in queue:
            if p.best is not None:
                self.add(p.tool, column, p.best)

    def ratio(self, tool: str, base: str, column: str) -> float | None:
        self.run_pending()
        a, b = self.rows.get(tool, {}).get(column), self.rows.get(base, {}).get(column)
        return b.seconds / a.seconds if a and b else None

    def markdown(self, subject: str, baselines: list[str]) -> str:
        """Rows of MB/s (peak MiB) per column, then `subject`'s ratio against
        each baseline per column (> 1: subject is faster)."""
        self.run_pending()
        head = f"| {self.title} | " + " | ".join(self.columns) + " |"
        lines = [head, "|---" * (len(self.columns) + 1) + "|"]
        for tool, runs in self.rows.items():
            cells = []
            for c in self.columns:
                r = runs.get(c)
                cells.append(
                    f"{r.rate(self.nbytes):.0f} MB/s, {r.peak_kib / 1024:.0f} MiB" if r else "-"
                )
            lines.append(f"| {tool} | " + " | ".join(cells) + " |")
        for base in baselines:
            if base == subject or base not in self.rows:
                continue
            cells = []
            for c in self.columns:
                x = self.ratio(subject, base, c)
                cells.append(f"{x:.2f}x" if x else "-")
            lines.append(f"| **{subject} / {base}** | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        self.run_pending()
        return {
            "title": self.title,
            "input_bytes": self.nbytes,
            "rows": {
                tool: {
                    c: {
                        "seconds": round(r.seconds, 3),
                        "MB/s": round(r.rate(self.nbytes), 1),
                        "peak_rss_MiB": round(r.peak_kib / 1024, 1),
                    }
                    for c, r in runs.items()
                }
                for tool, runs in self.rows.items()
            },
        }


def write_report(path: Path, command: str, tables: list[tuple[Table, str, list[str]]]) -> None:
    """Print every table as Markdown (what README's Speed section quotes) and
    write all the numbers of the run as JSON."""
    print(f"\n`{command}`\n")
    for table, subject, baselines in tables:
        print(table.markdown(subject, baselines) + "\n")
    report = {
        "command": command,
        "cpu": _cpu_name(),
        "tables": [t.to_json() for t, _, _ in tables],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return sys.platform


def lima_core_code(call: str, before: Path | None = None) -> str:
    """A one-liner that loads the native module (the installed ``lima/_core*.so``,
    or with `before` the older build kept under ``before/limabefore/``) and runs
    `call` with it. Both load the library file alone, by path: importing the
    ``lima`` package first added its own imports (about 0.1 s, a fifth of a
    sparse Pushshift run) to the current build's figures and not to the older one's."""
    where = (
        repr(str(before / "limabefore"))
        if before is not None
        else "importlib.util.find_spec('lima').submodule_search_locations[0]"
    )
    return (
        "import sys, glob, os, importlib.util, importlib.machinery as m;"
        f"so = glob.glob(os.path.join({where}, '_core*.so'))[0];"
        "loader = m.ExtensionFileLoader('lima._core', so);"
        "spec = importlib.util.spec_from_loader('lima._core', loader);"
        "_core = importlib.util.module_from_spec(spec);"
        f"loader.exec_module(_core); {call}"
    )
