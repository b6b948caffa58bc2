"""Throughput of `lima-data scan pushshift` against the zstd CLI and a Python
baseline (python-zstandard + orjson), on 1..N cores.

    make bench
    python benches/bench_pushshift.py --size-mb 1024 [--before DIR]

The input repeats the real records of the bundled dumps (r/AskMen
submissions, the 2005-12 comment month, the 2005-2024 schema samples) with
fresh ids. Each copy is its own zstd frame at level 3 (the level the real
r/AskMen file was written with: it compresses to the same bytes), so the input
compresses like the real file and not like a file of repeats: no copy is coded
as a long match of the one before. The run prints the ratio (compressed / raw)
beside the real file's.

Two scans: AskMen, most of the bytes, so every such line is parsed (the dense
case); WritingPrompts, absent, like most subreddits of a monthly dump, so the
byte prefilter skips every line. Each tool runs in its own process pinned with
taskset to 1, 2, ... N cores, best of --repeat rounds (each round runs every
tool of a column once), peak RSS from GNU time.
`--before DIR` adds the rows of an older build of the native module
(DIR/limabefore/_core*.so).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from timing import (  # noqa: E402
    Table,
    core_sets,
    cores_label,
    lima_core_code,
    need,
    write_report,
)

ASKMEN = ROOT / "lima" / "samples" / "reddit" / "AskMen_submissions.zst"
SOURCES = [
    ASKMEN,
    ROOT / "tests" / "data" / "pushshift" / "RC_2005-12.zst",
    ROOT / "tests" / "data" / "pushshift" / "schema-samples" / "submissions.ndjson",
    ROOT / "tests" / "data" / "pushshift" / "schema-samples" / "comments.ndjson",
]
ID = re.compile(rb'("id":\s*")([0-9a-z]+)(")')
LEVEL = 3


def unzstd(data: bytes) -> bytes:
    import zstandard

    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(io.BytesIO(data))
    return reader.read()


def real_lines() -> list[bytes]:
    lines: list[bytes] = []
    for src in SOURCES:
        data = src.read_bytes()
        if src.suffix == ".zst":
            data = unzstd(data)
        lines += [x + b"\n" for x in data.splitlines() if x.strip()]
    return lines


def build(path: Path, size_mb: int) -> int:
    """Write the input; returns its decompressed size."""
    import zstandard

    raw_size = path.with_suffix(".size")
    if path.exists() and raw_size.exists():
        return int(raw_size.read_text())
    lines = real_lines()
    cctx = zstandard.ZstdCompressor(level=LEVEL)
    written, copy = 0, 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        while written < size_mb << 20:
            fresh = rb"\g<1>\g<2>" + f"r{copy}".encode() + rb"\g<3>"
            chunk = b"".join(ID.sub(fresh, x) for x in lines)
            f.write(cctx.compress(chunk))
            written += len(chunk)
            copy += 1
    tmp.rename(path)
    raw_size.write_text(str(written))
    return written


def real_ratio() -> float:
    data = ASKMEN.read_bytes()
    return len(data) / len(unzstd(data))


def lima_cmd(path: Path, sub: str, before: Path | None = None) -> list[str]:
    call = (
        "b, f = _core.scan_pushshift(sys.argv[1], subreddit=sys.argv[2]);assert f['lines_read'] > 0"
    )
    return [sys.executable, "-c", lima_core_code(call, before), str(path), sub]


BASELINE = """
import sys, io, orjson, zstandard
kept = []
want = sys.argv[2]
needle = want.encode()
with open(sys.argv[1], 'rb') as f:
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(
        f, read_across_frames=True)
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
assert kept or want != 'AskMen'
"""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="decompressed size of the input")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", type=Path, help="folder holding limabefore/_core*.so")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()
    if not need({"zstd": "zstd"})["zstd"]:
        sys.exit("needs the zstd CLI (apt-get install zstd)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pushshift-{args.size_mb}-frames.zst"
    print(f"building {path} ...", flush=True)
    size = build(path, args.size_mb)
    print(
        f"{path.stat().st_size / 1e6:.0f} MB compressed, {size / 1e6:.0f} MB of NDJSON: "
        f"compressed/raw {path.stat().st_size / size:.4f} "
        f"(the real r/AskMen file: {real_ratio():.4f})",
        flush=True,
    )
    columns = [cores_label(c) for c in core_sets()]
    tables = []
    for sub, what in (("AskMen", "every line parsed"), ("WritingPrompts", "prefilter only")):
        t = Table(f"{sub} kept ({what}), {size / 1e6:.0f} MB", size, columns)
        print(t.title, flush=True)
        for cores in core_sets():
            col = cores_label(cores)
            zstd = ["sh", "-c", f"zstd -q -d --long=31 -c '{path}' > /dev/null"]
            t.measure("zstd -d", col, zstd, args.repeat, cores)
            t.measure("lima scan pushshift", col, lima_cmd(path, sub), args.repeat, cores)
            if args.before:
                before = lima_cmd(path, sub, args.before)
                t.measure("lima scan pushshift (before)", col, before, args.repeat, cores)
            py = [sys.executable, "-c", BASELINE, str(path), sub]
            t.measure("python-zstandard + orjson", col, py, 1, cores)
        base = ["zstd -d", "lima scan pushshift (before)", "python-zstandard + orjson"]
        t.run_pending()
        tables.append((t, "lima scan pushshift", base))
    write_report(args.out / "pushshift-results.json", " ".join(sys.argv), tables)


if __name__ == "__main__":
    main()
