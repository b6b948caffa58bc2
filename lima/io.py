"""Atomic output: everything is written to a temporary name in the target
folder and renamed into place, so an interrupted run leaves no half file.
And JSONL input whose errors name the file, line and column."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, flush it to disk, then
    rename it to ``path`` (and flush the folder, so the rename survives a power cut).

    The temporary is ``.NAME.PID.XXXX.tmp``; one left behind by a process that was killed
    (its pid no longer runs) is removed by the next write of the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename still happened
        pass
    finally:
        os.close(fd)


def remove_orphans(path: Path) -> list[Path]:
    """Delete the temporaries of ``path`` whose writer is gone; returns what was removed."""
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    for p in candidates:
        pid = p.name[len(prefix) :].split(".", 1)[0]
        if p.name.endswith(".tmp") and pid.isdigit() and not _alive(int(pid)):
            try:
                if p.is_dir():
                    import shutil

                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, UTF-8 text, so equal data gives equal bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def write_json(path: Path, obj: Any) -> None:
    write_text(path, dumps(obj))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows]
    write_text(path, "".join(lines))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSONL file (a UTF-8 byte-order
    mark at the start is allowed). A line that is not JSON, not UTF-8 or nested too deeply stops
    it with an error naming the file, line and column or byte."""
    from lima.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a JSONL file")
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    with fh:
        offset = 0
        for lineno, raw in enumerate(fh, 1):
            start, offset = offset, offset + len(raw)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw, start = raw[3:], 3
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"{path}:{lineno}: not UTF-8 (byte {start + e.start} of the file)"
                ) from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{lineno}:{e.colno}: not valid JSON: {e.msg}") from None
            except RecursionError:
                raise ConfigError(f"{path}:{lineno}: JSON nested too deeply") from None


def open_store(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """A SQLite file for answers that must not be lost: WAL, every statement its own committed
    transaction, ``schema`` created if missing. A file that is not such a database is a
    ``ConfigError`` naming it."""
    from lima.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as e:
        raise ConfigError(f"{path}: cannot open {what} ({e})") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
    except sqlite3.Error as e:
        db.close()
        raise ConfigError(f"{path}: not {what} ({e})") from None
    return db
