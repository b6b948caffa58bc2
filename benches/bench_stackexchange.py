"""Throughput of `lima-data scan stackexchange` against its peers, on 1..N cores.

    make bench
    python benches/bench_stackexchange.py --size-mb 1024 --7z-mb 256 [--before DIR]

The input is built from the real rows of every bundled site dump (beer,
coffee, quantumcomputing, alcohol.meta), copied with fresh ids until it
reaches --size-mb, so the row mix, the HTML and the join are those of real
dumps. The compressed inputs must compress like a real dump, not like a file
of repeats: BZip2 blocks (900 kB) are far shorter than one copy, and LZMA2
gets a dictionary shorter than one copy, so no copy is coded as a match of
the one before. The run prints each ratio (compressed / raw) beside the one
of a real Posts.xml packed the same way.

Every tool runs in its own process, pinned with taskset to 1, 2, ... N cores
(each sizes its threads by the cores it may use), best of --repeat rounds (one
run of every tool per round), after a warm-up read so the page cache holds the
input for all. Figures are MB/s of decompressed XML with the peak RSS; ratios
compare tools of the same run.

Peers: `7z x -so` (p7zip-full), `lbzip2 -d` and `pbzip2 -d` on the same XML
as .bz2, `dd` (reading the plain file), and lxml iterparse with the same join
and filters (benches/baseline_lxml.py). `--before DIR` adds the rows of an
older build of the native module (DIR/limabefore/_core*.so) to each table.
"""

from __future__ import annotations

import argparse
import re
import subprocess
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

SAMPLES = ROOT / "lima" / "samples" / "stackexchange"
ROW_ID = re.compile(rb'( (?:Id|ParentId|AcceptedAnswerId)=")(\d+)(")')
PEERS = {"7z": "p7zip-full", "lbzip2": "lbzip2", "pbzip2": "pbzip2", "bzip2": "bzip2"}


def site_posts(work: Path) -> list[Path]:
    """Posts.xml of every bundled site; the beer archive's is extracted once."""
    import py7zr

    beer = work / "beer" / "Posts.xml"
    if not beer.exists():
        with py7zr.SevenZipFile(SAMPLES / "beer.stackexchange.com.7z") as z:
            z.extract(path=beer.parent, targets=["Posts.xml"])
    return [
        beer,
        SAMPLES / "quantumcomputing.stackexchange.com" / "Posts.xml",
        SAMPLES / "coffee.stackexchange.com" / "Posts.xml",
        ROOT / "tests" / "data" / "stackexchange" / "alcohol.meta.stackexchange.com" / "Posts.xml",
    ]


def real_rows(work: Path) -> list[bytes]:
    rows: list[bytes] = []
    for src in site_posts(work):
        rows += [
            line
            for line in src.read_bytes().splitlines(keepends=True)
            if line.lstrip().startswith(b"<row ")
        ]
    return rows


def build_posts(path: Path, size_mb: int, work: Path) -> int:
    """Repeat the real rows, shifting every id by a fresh offset per copy;
    returns the size of one copy."""
    rows = real_rows(work)
    period = sum(len(r) for r in rows)
    if path.exists() and path.stat().st_size >= size_mb << 20:
        return period
    stride = 10**6  # larger than any id in the samples
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    written = 0
    with tmp.open("wb") as f:
        f.write(b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
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
    return period


def head_of(posts: Path, size_mb: int, out: Path) -> Path:
    """The first `size_mb` MiB of whole rows, closed, as a Posts.xml of its own."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with posts.open("rb") as src:
            data = src.read(size_mb << 20)
        out.write_bytes(data[: data.rindex(b"\n") + 1] + b"</posts>\n")
    return out


def pack_7z(src: Path, archive: Path, method: str, dict_bytes: int | None) -> Path:
    if not archive.exists():
        md = [f"-md={dict_bytes >> 20}m"] if dict_bytes else []
        subprocess.run(
            ["7z", "a", "-bd", "-y", f"-m0={method}", *md, str(archive), str(src)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return archive


def pack_bz2(src: Path, out: Path, tool: str) -> Path:
    if not out.exists():
        with out.open("wb") as f:
            subprocess.run([tool, "-9", "-c", str(src)], check=True, stdout=f)
    return out


def lzma2_dict(period: int) -> int:
    """The largest power of two below half a copy: no match reaches the previous copy."""
    d = 1 << 20
    while d * 4 <= period:
        d *= 2
    return d


def reference_ratios(work: Path, dict_bytes: int) -> dict[str, float]:
    """Compressed / raw of a real Posts.xml (beer, the largest bundled) packed each way."""
    beer = site_posts(work)[0]
    raw = beer.stat().st_size
    ref: dict[str, float] = {}
    for method, md in (("BZip2", None), ("LZMA2", dict_bytes)):
        archive = pack_7z(beer, work / f"beer-{method.lower()}.7z", method, md)
        ref[method] = archive.stat().st_size / raw
    return ref


def lima_cmd(path: Path, before: Path | None = None) -> list[str]:
    call = "b, f = _core.scan_stackexchange(sys.argv[1]); assert f['rows_read'] > 0"
    return [sys.executable, "-c", lima_core_code(call, before), str(path)]


def baseline_cmd(path: Path) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); import baseline_lxml;"
        "p, f = baseline_lxml.scan(sys.argv[1]); assert f['rows_read'] > 0"
    )
    return [sys.executable, "-c", code, str(path), str(ROOT / "benches")]


def sh(command: str) -> list[str]:
    return ["sh", "-c", command]


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
    ap.add_argument("--before", type=Path, help="folder holding limabefore/_core*.so")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data")
    args = ap.parse_args()
    have = need(PEERS)
    work = args.out
    posts = work / "site.stackexchange.com" / "Posts.xml"
    print(f"building {posts} ({args.size_mb} MiB of real rows)...", flush=True)
    period = build_posts(posts, args.size_mb, work)
    size = posts.stat().st_size
    columns = [cores_label(c) for c in core_sets()]
    tables: list[tuple[Table, str, list[str]]] = []

    def versions(t: Table, col: str, cores: list[int], path: Path, before_ok: bool = True) -> None:
        t.measure("lima scan", col, lima_cmd(path), args.repeat, cores)
        if args.before and before_ok:
            t.measure("lima scan (before)", col, lima_cmd(path, args.before), args.repeat, cores)

    subprocess.run(["cat", str(posts)], check=True, stdout=subprocess.DEVNULL)  # page cache
    plain = Table(f"plain Posts.xml, {size / 1e6:.0f} MB", size, columns)
    print(plain.title, flush=True)
    for cores in core_sets():
        col = cores_label(cores)
        # `cat > /dev/null` reads nothing (copy_file_range); dd does the read a scanner must do.
        dd = ["dd", f"if={posts}", "of=/dev/null", "bs=1M", "status=none"]
        plain.measure("dd bs=1M (read only)", col, dd, args.repeat, cores)
        versions(plain, col, cores, posts)
    if not args.skip_baseline:
        # single-threaded: one run on one core stands for every column
        plain.measure("lxml iterparse + same join", columns[0], baseline_cmd(posts), 1, [0])
    plain.run_pending()
    tables.append((plain, "lima scan", ["lima scan (before)", "lxml iterparse + same join"]))

    if not have["7z"]:
        write_report(work / "results.json", " ".join(sys.argv), tables)
        return
    part = head_of(posts, args.sevenz_mb, work / "part" / "Posts.xml")
    inner = part.stat().st_size
    md = lzma2_dict(period)
    ref = reference_ratios(work, md)
    archives = {
        "BZip2": pack_7z(part, work / "site-bzip2.stackexchange.com.7z", "BZip2", None),
        "LZMA2": pack_7z(part, work / f"site-lzma2-{md >> 20}m.stackexchange.com.7z", "LZMA2", md),
    }
    print(f"one copy of the rows: {period / 1e6:.1f} MB; LZMA2 dictionary {md >> 20} MiB")
    for method, archive in archives.items():
        ratio = archive.stat().st_size / inner
        print(
            f"{method}: {archive.stat().st_size / 1e6:.1f} MB for {inner / 1e6:.0f} MB, "
            f"compressed/raw {ratio:.3f} (a real Posts.xml, packed the same way: {ref[method]:.3f})"
        )
        t = Table(f".7z {method}, {inner / 1e6:.0f} MB inside", inner, columns)
        print(t.title, flush=True)
        for cores in core_sets():
            col = cores_label(cores)
            t.measure("7z x -so", col, sh(f"7z x -so '{archive}' > /dev/null"), args.repeat, cores)
            versions(t, col, cores, archive)
        t.run_pending()
        tables.append((t, "lima scan", ["lima scan (before)", "7z x -so"]))

    bz_tool = "lbzip2" if have["lbzip2"] else "bzip2"
    if have[bz_tool]:
        bz2 = pack_bz2(part, work / "site.Posts.xml.bz2", bz_tool)
        print(f".bz2 ({bz_tool} -9): compressed/raw {bz2.stat().st_size / inner:.3f}")
        t = Table(f".bz2, {inner / 1e6:.0f} MB inside", inner, columns)
        print(t.title, flush=True)
        for cores in core_sets():
            col = cores_label(cores)
            if have["lbzip2"]:
                cmd = sh(f"lbzip2 -d -c -n {len(cores)} '{bz2}' > /dev/null")
                t.measure("lbzip2 -d", col, cmd, args.repeat, cores)
            if have["pbzip2"]:
                # pbzip2 decodes its own multi-stream files in parallel, other files on one thread
                pbz = pack_bz2(part, work / "site.Posts.xml.pbzip2.bz2", "pbzip2")
                cmd = sh(f"pbzip2 -d -c -p{len(cores)} '{pbz}' > /dev/null")
                t.measure("pbzip2 -d (own file)", col, cmd, args.repeat, cores)
            if have["bzip2"]:
                t.measure("bzip2 -d", col, sh(f"bzip2 -d -c '{bz2}' > /dev/null"), 1, cores)
            t.measure("lima scan", col, lima_cmd(bz2), args.repeat, cores)
        t.run_pending()
        tables.append((t, "lima scan", ["lbzip2 -d", "pbzip2 -d (own file)", "bzip2 -d"]))
    write_report(work / "results.json", " ".join(sys.argv), tables)


if __name__ == "__main__":
    main()
