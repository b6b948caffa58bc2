"""Damaged and unusual containers (issue 16.3, 16.4): a broken BZip2 member is an
ArchiveError naming the archive, the member and the compressed byte; under skip the loss is
counted (archive_errors, bytes_lost) and the scan says truncated; .bz2 files (one stream or
several) and zstd files that open with a skippable frame read as their contents; a huge post
id costs a map entry, not a bitset."""

from __future__ import annotations

import bz2
import re
import struct
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import BEER_7Z, COFFEE, SAMPLES

from lima import _core
from lima.errors import ArchiveError

ASKMEN = SAMPLES.parent / "reddit" / "AskMen_submissions.zst"


def damaged_beer(tmp_path: Path) -> Path:
    data = bytearray(BEER_7Z.read_bytes())
    for i in range(2_000_000, 2_000_016):
        data[i] ^= 0x5A
    path = tmp_path / "beer.stackexchange.com.7z"
    path.write_bytes(bytes(data))
    return path


def test_damaged_bzip2_member_names_archive_member_and_offset(tmp_path: Path) -> None:
    path = damaged_beer(tmp_path)
    with pytest.raises(ArchiveError) as info:
        _core.scan_stackexchange(path)
    msg = str(info.value)
    head = rf"{re.escape(str(path))}:Posts.xml: byte (\d+) of the compressed file: "
    m = re.match(head + r"member Posts.xml: bzip2 block at byte (\d+)", msg)
    assert m and m.group(1) == m.group(2), msg
    # the offset is the damaged block's, in the archive (within one 900k block of the damage)
    assert 2_000_000 - 900_000 <= int(m.group(1)) <= 2_000_016, msg


def test_skip_counts_what_a_damaged_member_cost(tmp_path: Path) -> None:
    whole = _core.scan_stackexchange(BEER_7Z, on_error="skip")[1]
    _, funnel = _core.scan_stackexchange(damaged_beer(tmp_path), on_error="skip")
    assert whole["archive_errors"] == 0 and whole["bytes_lost"] == 0
    # Posts.xml stops at the damaged block: what it read is kept, the rest counted
    assert funnel["archive_errors"] == 1 and funnel["truncated"] is True
    assert 0 < funnel["rows_read"] < whole["rows_read"]
    (err,) = funnel["errors"]
    read = int(re.search(r"after byte (\d+) of the decompressed data", err).group(1))  # type: ignore[union-attr]
    assert read + funnel["bytes_lost"] == 4_272_413  # Posts.xml's size in the archive
    # Users.xml comes after the damage in the same BZip2 stream: lost whole, not misread
    users = funnel["users"]
    assert users["archive_errors"] == 1 and users["rows_read"] == 0
    assert users["bytes_lost"] == 3_290_938 and users["malformed_rows"] == 0
    assert "after a damaged bzip2 block" in users["errors"][0]


def test_total_funnel_and_stats_show_archive_errors(tmp_path: Path) -> None:
    from lima.curate.sources import stackexchange
    from lima.curate.stats import table1

    scan = stackexchange.scan_site(
        damaged_beer(tmp_path), groups={}, on_error="skip", show_progress=False
    )
    total = stackexchange.total_funnel([scan])
    # Posts.xml's and Users.xml's, summed
    f = scan.funnel
    assert total["archive_errors"] == 2
    assert total["bytes_lost"] == f["bytes_lost"] + f["users"]["bytes_lost"] > 3_290_938
    text = table1({}, [scan], {})
    assert f"archive errors 1 ({f['bytes_lost']} bytes lost)" in text


def test_bz2_file_reads_as_its_contents(tmp_path: Path) -> None:
    data = (COFFEE / "Posts.xml").read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    for name, packed in (
        ("one", bz2.compress(data, 9)),
        # two streams back to back, as pbzip2 and lbzip2 write them, at a smaller block size
        ("two", bz2.compress(data[:cut], 1) + bz2.compress(data[cut:], 1)),
    ):
        d = tmp_path / name / "coffee.stackexchange.com"
        d.mkdir(parents=True)
        (d / "Posts.xml").write_bytes(packed)
        got = _core.scan_stackexchange(d / "Posts.xml")
        plain = _core.scan_stackexchange(COFFEE / "Posts.xml")
        assert got[1] == plain[1], name
        assert pl.DataFrame(got[0]).equals(pl.DataFrame(plain[0])), name


def test_cut_bz2_file_is_an_archive_error(tmp_path: Path) -> None:
    data = bz2.compress((COFFEE / "Posts.xml").read_bytes(), 9)
    path = tmp_path / "Posts.xml"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=rf"{re.escape(str(path))}: byte \d+"):
        _core.scan_stackexchange(path)


def test_zstd_file_opening_with_a_skippable_frame(tmp_path: Path) -> None:
    payload = b"lima test: a skippable frame holds no data"
    frame = struct.pack("<II", 0x184D2A53, len(payload)) + payload
    path = tmp_path / "AskMen_submissions.zst"
    path.write_bytes(frame + ASKMEN.read_bytes())
    got = _core.scan_pushshift(path, subreddit="AskMen")
    want = _core.scan_pushshift(ASKMEN, subreddit="AskMen")
    assert got[1] == want[1] and want[1]["kept_submissions"] > 0
    assert pl.DataFrame(got[0]).equals(pl.DataFrame(want[0]))


def test_huge_post_id_costs_no_bitset(tmp_path: Path) -> None:
    """Id="4294967295" in a 1 KB file: the scan's peak memory stays near the interpreter's
    (a bitset up to that id would be 512 MiB per set)."""
    rows = (COFFEE / "Posts.xml").read_text(encoding="utf-8").splitlines()
    head, body = rows[:2], [r for r in rows[2:] if r.strip().startswith("<row")][:3]
    big = body[0].replace(re.search(r' Id="\d+"', body[0]).group(0), ' Id="4294967295"')  # type: ignore[union-attr]
    d = tmp_path / "coffee.stackexchange.com"
    d.mkdir()
    (d / "Posts.xml").write_text("\n".join([*head, *body, big, "</posts>", ""]), encoding="utf-8")
    code = (
        "import resource, sys; from pathlib import Path; from lima import _core\n"
        "_, f = _core.scan_stackexchange(Path(sys.argv[1]), on_error='skip')\n"
        "print(f['rows_read'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    base = subprocess.run(
        [sys.executable, "-c", code, str(COFFEE / "Posts.xml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, str(d / "Posts.xml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows_read, peak_kib = map(int, done.stdout.split())
    assert rows_read == 4
    # no more than the whole coffee dump's scan plus 64 MiB
    assert peak_kib < int(base.stdout.split()[1]) + 64 * 1024, (done.stdout, base.stdout)
