"""Throughput of `lima-data scan pushshift` against the zstd CLI and a Python
baseline, on a >= 1 GB .zst made from real Pushshift records.

    python benches/bench_pushshift.py --size-mb 1024

The input repeats the real records of the bundled dumps (r/AskMen submissions,
the 2005-12 comment month, the 2005-2024 schema samples) with fresh ids, and
is compressed with `zstd --long=31` like the real dumps. The scan keeps
r/AskMen. Each tool runs in its own process, best of N, peak RSS from GNU
time; `taskset -c 0` gives the one-core figures.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from timing import timed, write_report  # noqa: E402

SOURCES = [
    ROOT / "lima" / "samples" / "reddit" / "AskMen_submissions.zst",
    ROOT / "tests" / "data" / "pushshift" / "RC_2005-12.zst",
    ROOT / "tests" / "data" / "pushshift" / "schema-samples" / "submissions.ndjson",
    ROOT / "tests" / "data" / "pushshift" / "schema-samples" / "comments.ndjson",
]
ID = re.compile(rb'("id":\s*")([0-9a-z]+)(")')


def real_lines() -> list[bytes]:
    import zstandard

    lines: list[bytes] = []
    for src in SOURCES:
        data = src.read_bytes()
        if src.suffix == ".zst":
            data = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(data).read()
        lines += [x + b"\n" for x in data.splitlines() if x.strip()]
    return lines


def build(path: Path, size_mb: int) -> None:
    if path.exists():
        return
    lines = real_lines()
    plain = path.with_suffix(".ndjson")
    written, copy = 0, 0
    with plain.open("wb") as f:
        while written < size_mb << 20:
            fresh = rb"\g<1>\g<2>" + f"r{copy}".encode() + rb"\g<3>"
            chunk = b"".join(ID.sub(fresh, x) for x in lines)
            f.write(chunk)
            written += len(chunk)
            copy += 1
    subprocess.run(
        ["zstd", "-q", "-f", "--long=31", "-T2", "-3", str(plain), "-o", str(path)], check=True
    )
    plain.unlink()


LIMA = (
    "import sys; from lima import _core;"
    "b, f = _core.scan_pushshift(sys.argv[1], subreddit=sys.argv[2]);"
    "assert f['lines_read'] > 0"
)
BASELINE = """
import sys, io, orjson, zstandard
kept = []
want = sys.argv[2]
needle = want.encode()
with open(sys.argv[1], 'rb') as f:
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(f)
    for line in io.BufferedReader(reader, 1 << 20):
        if needle not in line:
            continue
        r = orjson.loads(line)
        if r.get('subreddit') != want:
            continue
        text = r.get('selftext') if 'title' in r else r.get('body')
        if text in ('[deleted]', '[removed]') or r.get('removed_by_category'):
            continue
        kept.append(r)
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="decompressed size of the input")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()
    if not shutil.which("zstd"):
        sys.exit("needs the zstd CLI (apt-get install zstd)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pushshift-{args.size_mb}.zst"
    print(f"building {path} ...", flush=True)
    build(path, args.size_mb)
    listing = subprocess.run(["zstd", "-l", "-v", str(path)], capture_output=True, text=True).stdout
    size = int(listing.split("Decompressed Size:")[1].split("(")[1].split(" B")[0].replace(",", ""))
    print(
        f"{path.stat().st_size / 1e6:.0f} MB compressed, {size / 1e6:.0f} MB of NDJSON", flush=True
    )
    # AskMen: most of the bytes are the kept subreddit, every such line is parsed.
    # WritingPrompts: absent, like most subreddits of a monthly dump; the byte
    # prefilter skips every line.
    zstd_cmd = ["sh", "-c", f"zstd -q -d --long=31 -c '{path}' > /dev/null"]
    runs = {"zstd -d --long=31 > /dev/null": zstd_cmd}
    for sub in ("AskMen", "WritingPrompts"):
        runs[f"lima scan pushshift ({sub})"] = [sys.executable, "-c", LIMA, str(path), sub]
        runs[f"python baseline ({sub})"] = [sys.executable, "-c", BASELINE, str(path), sub]
    results = {}
    for cores in ("all", "one"):
        for name, cmd in runs.items():
            full = cmd if cores == "all" else ["taskset", "-c", "0", *cmd]
            seconds, peak = timed(full, args.repeat)
            key = f"{name} [{cores} core{'s' if cores == 'all' else ''}]"
            rate = size / 1e6 / seconds
            results[key] = {
                "seconds": round(seconds, 3),
                "MB/s": round(rate, 1),
                "peak_rss_MiB": round(peak / 1024, 1),
            }
            print(f"  {key:55s} {seconds:7.2f} s {rate:8.1f} MB/s  peak {peak / 1024:7.1f} MiB")
    ratios = {}
    for cores in ("all cores", "one core"):
        zstd = results[f"zstd -d --long=31 > /dev/null [{cores}]"]["seconds"]
        for sub in ("AskMen", "WritingPrompts"):
            lima = results[f"lima scan pushshift ({sub}) [{cores}]"]["seconds"]
            py = results[f"python baseline ({sub}) [{cores}]"]["seconds"]
            ratios[f"lima / zstd -d, {sub} [{cores}]"] = zstd / lima
            ratios[f"lima / python, {sub} [{cores}]"] = py / lima
    write_report(args.out / "pushshift-results.json", size, results, ratios)


if __name__ == "__main__":
    main()
