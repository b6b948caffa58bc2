"""Throughput of `lima-data scan stackexchange` against its baselines.

    make bench                      # builds bench-data/ once, then measures
    python benches/bench_stackexchange.py --size-mb 1024 --7z-mb 256

The input is built from real rows (the three bundled site dumps) repeated
with fresh ids until it reaches --size-mb, so the row mix, the HTML and the
join structure are those of real dumps. Every tool runs in the same run on the
same machine, in its own process, after a warm-up read, so the page cache
holds the input for all of them; results are ratios, with peak RSS.

Measured:
- plain Posts.xml: lima scan vs `cat FILE > /dev/null` and vs the lxml
  baseline (benches/baseline_lxml.py: iterparse + the same join and filters);
- .7z (BZip2, as the real dumps, and LZMA2): lima scan vs `7z x -so`.
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

SAMPLES = ROOT / "lima" / "samples" / "stackexchange"
ROW_ID = re.compile(rb'( (?:Id|ParentId|AcceptedAnswerId)=")(\d+)(")')


def real_rows() -> list[bytes]:
    import py7zr

    rows: list[bytes] = []
    sources = [
        SAMPLES / "quantumcomputing.stackexchange.com" / "Posts.xml",
        SAMPLES / "coffee.stackexchange.com" / "Posts.xml",
    ]
    tmp = ROOT / "bench-data" / "beer"
    if not (tmp / "Posts.xml").exists():
        with py7zr.SevenZipFile(SAMPLES / "beer.stackexchange.com.7z") as z:
            z.extract(path=tmp, targets=["Posts.xml"])
    sources.append(tmp / "Posts.xml")
    for src in sources:
        rows += [
            line
            for line in src.read_bytes().splitlines(keepends=True)
            if line.lstrip().startswith(b"<row ")
        ]
    return rows


def build_posts(path: Path, size_mb: int) -> None:
    """Repeat the real rows, shifting every id by a fresh offset per copy."""
    if path.exists() and path.stat().st_size >= size_mb << 20:
        return
    rows = real_rows()
    stride = 10**6  # larger than any id in the samples
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    written = 0
    with tmp.open("wb") as f:
        head = b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
        f.write(head)
        copy = 0
        while written < size_mb << 20:
            shift = copy * stride

            def bump(m: re.Match[bytes], shift: int = shift) -> bytes:
                return m.group(1) + str(int(m.group(2)) + shift).encode() + m.group(3)

            chunk = b"".join(ROW_ID.sub(bump, r) for r in rows)
            f.write(chunk)
            written += len(chunk)
            copy += 1
        f.write(b"</posts>\n")
    tmp.rename(path)


def build_7z(posts: Path, archive: Path, size_mb: int, method: str) -> None:
    if archive.exists():
        return
    part = archive.parent / f"{archive.stem}-src" / "Posts.xml"
    part.parent.mkdir(parents=True, exist_ok=True)
    with posts.open("rb") as src, part.open("wb") as dst:
        data = src.read(size_mb << 20)
        cut = data.rindex(b"\n") + 1
        dst.write(data[:cut] + b"</posts>\n")
    subprocess.run(
        ["7z", "a", "-bd", "-y", f"-m0={method}", str(archive), str(part)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(part.parent)


def lima_cmd(path: Path) -> list[str]:
    code = (
        "import sys; from lima import _core;"
        "b, f = _core.scan_stackexchange(sys.argv[1]);"
        "assert f['rows_read'] > 0"
    )
    return [sys.executable, "-c", code, str(path)]


def baseline_cmd(path: Path) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); import baseline_lxml;"
        "p, f = baseline_lxml.scan(sys.argv[1]); assert f['rows_read'] > 0"
    )
    return [sys.executable, "-c", code, str(path), str(ROOT / "benches")]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the plain Posts.xml")
    ap.add_argument(
        "--7z-mb", dest="sevenz_mb", type=int, default=256, help="Posts.xml size inside the .7z"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-baseline", action="store_true", help="skip the (slow) lxml baseline")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()

    posts = args.out / "site.stackexchange.com" / "Posts.xml"
    print(f"building {posts} ({args.size_mb} MiB of real rows)...", flush=True)
    build_posts(posts, args.size_mb)
    size = posts.stat().st_size
    mb = size / 1e6
    results: dict[str, dict[str, float]] = {}

    def record(name: str, seconds: float, peak_kib: int, nbytes: int) -> None:
        results[name] = {
            "seconds": round(seconds, 3),
            "MB/s": round(nbytes / 1e6 / seconds, 1),
            "peak_rss_MiB": round(peak_kib / 1024, 1),
        }
        rate = nbytes / 1e6 / seconds
        print(f"  {name:40s} {seconds:8.2f} s {rate:9.1f} MB/s  peak {peak_kib / 1024:8.1f} MiB")

    subprocess.run(
        ["cat", str(posts)], check=True, stdout=subprocess.DEVNULL
    )  # warm the page cache
    print(f"plain Posts.xml, {mb:.0f} MB:", flush=True)
    # GNU cat hands a /dev/null target to copy_file_range, which reads nothing:
    # `dd` does the read a scanner must do, from the page cache.
    record("cat > /dev/null", *timed(["sh", "-c", f"cat '{posts}' > /dev/null"], args.repeat), size)
    record(
        "dd bs=1M > /dev/null",
        *timed(["dd", f"if={posts}", "of=/dev/null", "bs=1M", "status=none"], args.repeat),
        size,
    )
    record("lima scan", *timed(lima_cmd(posts), args.repeat), size)
    if not args.skip_baseline:
        record("lxml baseline", *timed(baseline_cmd(posts), 1), size)

    if shutil.which("7z"):
        for method in ("BZip2", "LZMA2"):
            archive = args.out / f"site-{method.lower()}.stackexchange.com.7z"
            print(f"building {archive}...", flush=True)
            build_7z(posts, archive, args.sevenz_mb, method)
            inner = args.sevenz_mb << 20
            print(f".7z ({method}), {inner / 1e6:.0f} MB of Posts.xml inside:")
            record(
                f"7z x -so ({method})",
                *timed(["sh", "-c", f"7z x -so '{archive}' > /dev/null"], args.repeat),
                inner,
            )
            record(
                f"7z x -so -mmt=1 ({method})",
                *timed(["sh", "-c", f"7z x -so -mmt=1 '{archive}' > /dev/null"], args.repeat),
                inner,
            )
            record(f"lima scan ({method})", *timed(lima_cmd(archive), args.repeat), inner)
    else:
        print("7z not found (apt-get install p7zip-full): skipping the .7z comparison")

    ratios = {
        "lima / cat": results["cat > /dev/null"]["seconds"] / results["lima scan"]["seconds"],
        "lima / dd": results["dd bs=1M > /dev/null"]["seconds"] / results["lima scan"]["seconds"],
    }
    if "lxml baseline" in results:
        ratios["lima speed-up over lxml"] = (
            results["lxml baseline"]["seconds"] / results["lima scan"]["seconds"]
        )
    for method in ("BZip2", "LZMA2"):
        if f"lima scan ({method})" in results:
            ratios[f"lima / 7z x -so ({method})"] = (
                results[f"7z x -so ({method})"]["seconds"]
                / results[f"lima scan ({method})"]["seconds"]
            )
            ratios[f"lima / 7z x -so -mmt=1 ({method})"] = (
                results[f"7z x -so -mmt=1 ({method})"]["seconds"]
                / results[f"lima scan ({method})"]["seconds"]
            )
    write_report(args.out / "results.json", size, results, ratios)


if __name__ == "__main__":
    main()
