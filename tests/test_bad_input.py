"""Corrupt, truncated and hostile inputs, cut from the real dumps: every
failure names the file and the byte offset; --on-error skip counts and goes
on; nothing panics."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from conftest import BEER_7Z, COFFEE, run_cli

from lima import _core
from lima.errors import ArchiveError, DumpFormatError, LimaError

POSTS = COFFEE / "Posts.xml"


def cut(tmp_path: Path, data: bytes, name: str = "coffee.stackexchange.com") -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "Posts.xml").write_bytes(data)
    return d / "Posts.xml"


def line_offsets(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n", data)]


@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.5, 0.93])
def test_truncated_xml_names_file_and_offset(tmp_path: Path, fraction: float) -> None:
    data = POSTS.read_bytes()
    at = int(len(data) * fraction)
    path = cut(tmp_path, data[:at])
    with pytest.raises(DumpFormatError) as info:
        _core.scan_stackexchange(path)
    msg = str(info.value)
    assert str(path) in msg
    # the error points at the start of the cut row, or at the end of the data
    starts = line_offsets(data[:at])
    offset = int(re.search(r"byte (\d+)", msg).group(1))  # type: ignore[union-attr]
    assert offset in starts or offset == at


def test_truncated_at_a_row_boundary(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    starts = line_offsets(data)
    at = starts[len(starts) // 2]
    path = cut(tmp_path, data[:at])
    with pytest.raises(DumpFormatError, match=rf"byte {at} .*closing </posts>"):
        _core.scan_stackexchange(path)
    _, funnel = _core.scan_stackexchange(path, on_error="skip")
    assert funnel["truncated"] is True
    assert funnel["malformed_rows"] == 0
    assert funnel["rows_read"] == len(starts) // 2 - 2  # minus the XML declaration and <posts>
    assert any("closing </posts>" in e for e in funnel["errors"])


def test_invalid_utf8_offset_is_exact(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    at = data.index(b"coffee", 20_000)
    path = cut(tmp_path, data[:at] + b"\xff" + data[at + 1 :])
    with pytest.raises(DumpFormatError, match=rf"byte {at} .*invalid UTF-8"):
        _core.scan_stackexchange(path)


def test_missing_attribute_names_line(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    at = data.index(b' PostTypeId="2"')
    row_start = data.rindex(b"\n", 0, at) + 1
    line = data[:row_start].count(b"\n") + 1
    path = cut(tmp_path, data.replace(b' PostTypeId="2"', b"", 1))
    with pytest.raises(
        DumpFormatError, match=rf"byte {row_start} \(line {line}\): row has no PostTypeId"
    ):
        _core.scan_stackexchange(path)


def test_skip_counts_bad_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    bad = data.replace(b' PostTypeId="2"', b"", 1)
    first = bad.index(b'Score="')
    bad = bad[:first] + b'Score="x' + bad[first + 7 :]  # a non-numeric score
    path = cut(tmp_path, bad)
    _, good = _core.scan_stackexchange(POSTS)
    _, funnel = _core.scan_stackexchange(path, on_error="skip")
    assert funnel["malformed_rows"] == 2
    assert funnel["rows_read"] == good["rows_read"]
    assert funnel["questions"] + funnel["answers"] == good["questions"] + good["answers"] - 2
    assert len(funnel["errors"]) == 2 and all(
        str(path) in e and "byte" in e for e in funnel["errors"]
    )


def test_overlong_row(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    path = cut(tmp_path, data)
    with pytest.raises(DumpFormatError, match="longer than 1000 bytes"):
        _core.scan_stackexchange(path, max_line_bytes=1000)
    _, funnel = _core.scan_stackexchange(path, max_line_bytes=1000, on_error="skip")
    assert funnel["malformed_rows"] > 0


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9, 0.99995])
def test_truncated_7z(tmp_path: Path, fraction: float) -> None:
    data = BEER_7Z.read_bytes()
    path = tmp_path / "beer.stackexchange.com.7z"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ArchiveError) as info:
        _core.scan_stackexchange(path)
    assert str(path) in str(info.value) and "byte" in str(info.value)


def test_flipped_bytes_in_7z_stream(tmp_path: Path) -> None:
    data = bytearray(BEER_7Z.read_bytes())
    for i in range(200_000, 200_064):
        data[i] ^= 0x5A
    path = tmp_path / "beer.stackexchange.com.7z"
    path.write_bytes(bytes(data))
    with pytest.raises(LimaError) as info:
        _core.scan_stackexchange(path)
    assert str(path) in str(info.value)


def test_random_corruption_never_panics(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    rng = random.Random(7)
    for trial in range(25):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        path = cut(tmp_path, bytes(buf), f"coffee{trial}.stackexchange.com")
        for mode in ("fail", "skip"):
            try:
                _core.scan_stackexchange(path, on_error=mode)
            except LimaError as e:
                assert str(path) in str(e)
            except BaseException as e:  # a PanicException is a BaseException
                pytest.fail(f"trial {trial} ({mode}): {type(e).__name__}: {e}")


def test_missing_inputs() -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        _core.scan_stackexchange(Path("/nope/Posts.xml"))
    with pytest.raises(FileNotFoundError, match=r"Posts\.xml"):
        _core.scan_stackexchange(Path(__file__).parent)


def test_cli_reports_error_without_traceback(tmp_path: Path) -> None:
    data = POSTS.read_bytes()
    path = cut(tmp_path, data[: len(data) // 2])
    proc = run_cli("scan", "stackexchange", str(path.parent), "-o", str(tmp_path / "x.parquet"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "byte" in proc.stderr and "Posts.xml" in proc.stderr
    assert not (tmp_path / "x.parquet").exists()
