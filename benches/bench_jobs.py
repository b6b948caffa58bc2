"""Wall time of `lima-data build` with `--jobs 1` against `--jobs N` (N: every core), end
to end (the scans, then the select/write step) from an empty --out, and its scans alone.

    make bench
    python benches/bench_jobs.py --size-mb 1024

Two inputs: the bundled sample config (three Stack Exchange sites, three Pushshift files,
the comment scans of two sites: 8 scans, all small), and the same with a large site listed
last: a plain Posts.xml of --size-mb built from the real rows of the bundled sites with
fresh ids (as benches/bench_stackexchange.py builds it). The second is the shape of a real
build, one Stack Overflow among small sites: with --jobs N it starts first with every core
(lima/curate/jobs.py), beside the small scans.

Each input is timed twice: the whole build, and its scans alone (`build.scan_inputs`, the
part --jobs spreads; the input hashes cached from the round before). Figures are MB/s of
input on disk read by the scans, with the peak RSS; the ratio row is
`--jobs N / --jobs 1` in the same run, best of --repeat rounds (one run of each per round).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from bench_stackexchange import build_posts  # noqa: E402
from timing import Table, cores_label, write_report  # noqa: E402

BUILD = """
import shutil, sys
from pathlib import Path
from lima.curate import build, config
out, jobs, what, *extra = sys.argv[1:]
cfg = config.sample_config()
cfg.dialogues.enabled = True
cfg.stackexchange.paths = list(cfg.stackexchange.paths) + extra
out = Path(out)
if what == "build":
    shutil.rmtree(out, ignore_errors=True)
    build.run(cfg, out, n_jobs=int(jobs))
else:  # the scans alone, the input hashes kept from the round before
    for p in (out / "candidates").glob("*"):
        if p.name != "input_hashes.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    build.scan_inputs(cfg, out, n_jobs=int(jobs))
"""


def sample_bytes(work: Path) -> int:
    """Bytes on disk the sample config's scans read (a site's comment scan reads its dump
    again, so it counts again)."""
    from lima.curate import build, config

    cfg = config.sample_config()
    cfg.dialogues.enabled = True
    tasks = build.prepare(cfg, work / "plan")
    return sum(int(f["bytes"]) for t in tasks for f in t.key["input"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the large site's Posts.xml")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()
    work = args.out / "jobs"
    big = work / "big.stackexchange.com" / "Posts.xml"
    build_posts(big, args.size_mb, args.out / "stackexchange")
    cores = sorted(os.sched_getaffinity(0))
    n = len(cores)
    column = cores_label(cores)
    small = sample_bytes(work)
    tables = []
    for title, extra, nbytes in (
        ("bundled inputs (8 scans)", [], small),
        (
            f"bundled + a {big.stat().st_size / 1e9:.1f} GB Posts.xml listed last",
            [str(big.parent)],
            small + big.stat().st_size,
        ),
    ):
        print(f"{title}: {nbytes / 1e6:.1f} MB on disk", flush=True)
        for what in ("build", "scans"):
            t = Table(f"{title}, {what}", nbytes, [column])
            for jobs in (1, n):
                out = work / f"out-{what}-{jobs}"
                cmd = [sys.executable, "-c", BUILD, str(out), str(jobs), what, *extra]
                t.measure(f"--jobs {jobs}", column, cmd, args.repeat, cores)
            t.run_pending()
            tables.append((t, f"--jobs {n}", ["--jobs 1"]))
    write_report(args.out / "jobs-results.json", " ".join(sys.argv), tables)


if __name__ == "__main__":
    main()
