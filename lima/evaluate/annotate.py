"""``lima-eval annotate``: people judge responses in the browser, as the paper's crowd did.

With two response files the task is pairwise: each prompt with both responses, the sides shown
in an order drawn per annotator and prompt, the models never named; the annotator picks
Response 1, Response 2 or Neither. With one file the task is absolute: Fail, Pass or Excellent
per response (a conversation's earlier turns shown above it). Several annotators work on the
same database, each under their name. Everything is stored in SQLite (WAL, one committed
transaction per answer) in the files' own terms (``a``/``b``/``tie``, not left/right), and
``lima-eval export-annotations`` writes each annotator's answers as a verdicts or labels file
that ``agreement``, ``absolute`` and friends read like a judge's. The page resumes at a person's
first unanswered item, takes a comment with each answer, and shows the guidelines people judge
by (the prompt set's own instructions). The server binds to 127.0.0.1 and refuses other origins
(``lima.web``).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lima.errors import ConfigError
from lima.evaluate.grading import LABELS
from lima.evaluate.responses import Response, pair, read_responses
from lima.io import open_store, write_jsonl
from lima.web import JsonHandler, LocalServer, render, require_token

_NAME = re.compile(r"[\w .@-]{1,64}")
_SIDE = {"1": 0, "2": 1}


@dataclass(frozen=True)
class Task:
    kind: str  # "pairwise" or "absolute"
    name: str
    model_a: str
    model_b: str | None
    items: list[tuple[Response, Response | None]]


def load_task(files: list[Path]) -> Task:
    if len(files) == 2:
        pairs, _, _ = pair(read_responses(files[0]), read_responses(files[1]))
        if not pairs:
            raise ConfigError(f"{files[0]} and {files[1]} share no prompt")
        a, b = pairs[0][0].model, pairs[0][1].model
        return Task("pairwise", f"pairwise:{a}|{b}", a, b, [(x, y) for x, y in pairs])
    if len(files) == 1:
        rows = read_responses(files[0])
        seen: set[str] = set()
        for r in rows:
            key = item_key(r)
            if key in seen:
                raise ConfigError(f"{files[0]}: two rows share the id {key!r}")
            seen.add(key)
        return Task("absolute", f"absolute:{rows[0].model}", rows[0].model, None,
                    [(r, None) for r in rows])  # fmt: skip
    raise ConfigError("annotate takes one response file (absolute) or two (pairwise)")


def item_key(r: Response) -> str:
    return r.key if r.sample == 0 else f"{r.key}#{r.sample}"


def flipped(seed: int, annotator: str, item: str) -> bool:
    """Whether model B is shown first to this annotator for this prompt."""
    return hashlib.sha256(f"{seed}\x00{annotator}\x00{item}".encode()).digest()[0] & 1 == 1


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValueError("an annotator name is 1 to 64 letters, digits, spaces or . @ - _")
    return name


class Store:
    """Answers in SQLite; each write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()
        self.db = open_store(
            path,
            """CREATE TABLE IF NOT EXISTS tasks (
                   task TEXT PRIMARY KEY, kind TEXT NOT NULL,
                   model_a TEXT NOT NULL, model_b TEXT);
               CREATE TABLE IF NOT EXISTS annotations (
                   task TEXT NOT NULL, item TEXT NOT NULL, annotator TEXT NOT NULL,
                   label TEXT NOT NULL, prompt TEXT NOT NULL, shown_b_first INTEGER,
                   updated_at TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '',
                   PRIMARY KEY (task, item, annotator));""",
            "an annotation database",
        )
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(annotations)")}
        if "comment" not in columns:  # a database from before comments
            self.db.execute("ALTER TABLE annotations ADD COLUMN comment TEXT NOT NULL DEFAULT ''")

    def add_task(self, task: Task) -> None:
        with self.lock:
            self.db.execute("INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, ?)",
                            (task.name, task.kind, task.model_a, task.model_b))  # fmt: skip

    def put(self, task: str, item: str, annotator: str, label: str, prompt: str,
            shown_b_first: bool | None, comment: str = "") -> None:  # fmt: skip
        now = datetime.now(UTC).isoformat(timespec="seconds")
        flag = None if shown_b_first is None else int(shown_b_first)
        with self.lock:
            self.db.execute(
                """INSERT INTO annotations
                   (task, item, annotator, label, prompt, shown_b_first, updated_at, comment)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(task, item, annotator) DO UPDATE SET label=excluded.label,
                   shown_b_first=excluded.shown_b_first, updated_at=excluded.updated_at,
                   comment=excluded.comment""",
                (task, item, annotator, label, prompt, flag, now, comment),
            )

    def labels(self, task: str, annotator: str) -> dict[str, str]:
        return {k: v[0] for k, v in self.answers(task, annotator).items()}

    def answers(self, task: str, annotator: str) -> dict[str, tuple[str, str]]:
        """Item -> (label, comment) for one annotator."""
        with self.lock:
            rows = self.db.execute(
                "SELECT item, label, comment FROM annotations WHERE task = ? AND annotator = ?",
                (task, annotator),
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def annotators(self, task: str) -> dict[str, int]:
        with self.lock:
            rows = self.db.execute(
                "SELECT annotator, COUNT(*) FROM annotations WHERE task = ? "
                "GROUP BY annotator ORDER BY annotator",
                (task,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        self.db.close()


MAX_COMMENT = 10_000


def guidelines(kind: str, prompts: str = "paper") -> dict[str, Any] | None:
    """What people are told for ``kind`` (pairwise or absolute): the prompt set's own words
    (its paragraphs, then what each choice means), so people judge by what the judge is told."""
    from lima.evaluate.prompts import load

    return load(prompts).guidelines(kind)


class App:
    def __init__(self, files: list[Path], db: Path, seed: int = 0, prompts: str = "paper") -> None:
        self.task = load_task(files)
        self.guidelines = guidelines(self.task.kind, prompts)
        self.seed = seed
        self.store = Store(db)
        self.store.add_task(self.task)
        self.keys = [item_key(a) for a, _ in self.task.items]
        self.index = {k: i for i, k in enumerate(self.keys)}

    def info(self, annotator: str | None = None) -> dict[str, Any]:
        choices = ["1", "2", "neither"] if self.task.kind == "pairwise" else list(LABELS)
        out: dict[str, Any] = {"kind": self.task.kind, "total": len(self.keys),
                               "choices": choices, "guidelines": self.guidelines,
                               "annotators": self.store.annotators(self.task.name)}  # fmt: skip
        if annotator is not None:
            done = self.store.labels(self.task.name, annotator)
            out["done"] = len(done)
            out["first_unanswered"] = next(
                (i for i, k in enumerate(self.keys) if k not in done), None
            )
        return out

    def _shown(self, label: str | None, b_first: bool) -> str | None:
        """A stored a/b/tie as the annotator saw it (1, 2 or neither)."""
        if label is None or self.task.kind != "pairwise":
            return label
        if label == "tie":
            return "neither"
        return "1" if (label == "a") != b_first else "2"

    def item(self, i: int, annotator: str) -> dict[str, Any]:
        a, b = self.task.items[i]
        key = self.keys[i]
        done = self.store.answers(self.task.name, annotator)
        label, comment = done.get(key, (None, ""))
        out: dict[str, Any] = {
            "index": i,
            "id": key,
            "total": len(self.keys),
            "done": len(done),
            "context": list(a.context),
            "context_html": [render(t) for t in a.context],
            "prompt": a.prompt,
            "prompt_html": render(a.prompt),
            "comment": comment,
        }
        if b is None:
            out["responses_html"] = [render(a.response)]
            out["choice"] = label
        else:
            b_first = flipped(self.seed, annotator, key)
            shown = (b, a) if b_first else (a, b)
            out["responses_html"] = [render(r.response) for r in shown]
            out["choice"] = self._shown(label, b_first)
        return out

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        annotator = check_name(str(body.get("annotator", "")))
        i = self.index.get(str(body.get("id")))
        if i is None:
            raise ValueError("no such item")
        key, (a, _) = self.keys[i], self.task.items[i]
        choice = str(body.get("choice"))
        comment = body.get("comment", "")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            raise ValueError(f"a comment is text of at most {MAX_COMMENT:,} characters")
        b_first: bool | None = None
        if self.task.kind == "pairwise":
            if choice not in ("1", "2", "neither"):
                raise ValueError("choice must be 1, 2 or neither")
            b_first = flipped(self.seed, annotator, key)
            label = "tie" if choice == "neither" else (
                "a" if (_SIDE[choice] == 0) != b_first else "b")  # fmt: skip
        else:
            if choice not in LABELS:
                raise ValueError("choice must be fail, pass or excellent")
            label = choice
        self.store.put(self.task.name, key, annotator, label, a.prompt, b_first, comment.strip())
        return {"ok": True, "done": len(self.store.labels(self.task.name, annotator)),
                "total": len(self.keys)}  # fmt: skip

    def close(self) -> None:
        self.store.close()


class Handler(JsonHandler):
    server_version = "lima-annotate"
    app: App
    page_text: str

    def get(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        app = self.app
        try:
            if url.path == "/":
                self.page(self.page_text)
            elif url.path == "/api/task":
                name = query.get("annotator", [""])[0]
                self.json(app.info(check_name(name) if name else None))
            elif url.path.startswith("/api/item/"):
                name = check_name(query.get("annotator", [""])[0])
                i = int(url.path.rsplit("/", 1)[1])
                if not 0 <= i < len(app.keys):
                    raise IndexError(i)
                self.json(app.item(i, name))
            else:
                self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except IndexError:
            self.json({"error": "no such item"}, HTTPStatus.NOT_FOUND)
        except ValueError as e:
            self.json({"error": str(e)}, HTTPStatus.BAD_REQUEST)

    def post(self) -> None:
        if self.path != "/api/annotate":
            self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        try:
            self.json(self.app.answer(self.read_object()))
        except (KeyError, ValueError, TypeError) as e:
            self.json({"error": str(e)}, HTTPStatus.BAD_REQUEST)


def serve(files: list[Path], db: Path, host: str = "127.0.0.1", port: int = 8766, seed: int = 0,
          token: str | None = None, prompts: str = "paper") -> LocalServer:  # fmt: skip
    """The annotation server (call ``serve_forever`` on the result)."""
    require_token(host, token)
    app = App(files, db, seed, prompts)
    page = resources.files("lima.evaluate").joinpath("annotate.html").read_text(encoding="utf-8")
    handler = type("AnnotateHandler", (Handler,), {"app": app, "page_text": page})
    try:
        server = LocalServer(host, port, handler, token)
    except BaseException:
        app.close()
        raise
    server.app = app
    return server


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def file_stem(name: str) -> str:
    """An annotator's name as a file name, escaped, never folded: ASCII letters, digits,
    ``-``, ``_`` and ``.`` stay (a leading ``.`` does not), every other character becomes
    ``%XX`` per UTF-8 byte. So ``ann b``, ``ann_b`` and ``ann@b`` give ``ann%20b``,
    ``ann_b`` and ``ann%40b``."""
    out = []
    for i, ch in enumerate(name):
        if ch in _SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def file_stems(names: list[str]) -> dict[str, str]:
    """``file_stem`` of each name; names whose stems differ only in case (one file on macOS
    and Windows) get ``~2``, ``~3``... in sorted order (``~`` never appears in a stem)."""
    stems: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name in sorted(names):
        stem = file_stem(name)
        n = seen.get(stem.casefold(), 0) + 1
        seen[stem.casefold()] = n
        stems[name] = stem if n == 1 else f"{stem}~{n}"
    return stems


def export(db: Path, out: Path, task: str | None = None) -> list[Path]:
    """Each annotator's answers as ``OUT/NAME.verdicts.jsonl`` (pairwise: ``{"id", "verdict",
    ...}``) or ``OUT/NAME.labels.jsonl`` (absolute: ``{"id", "label", ...}``), rows by id."""
    if not db.exists():
        raise ConfigError(f"{db}: no such annotation database")
    if db.is_dir():
        raise ConfigError(f"{db}: a folder, not an annotation database")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ConfigError(f"{db}: cannot open the annotation database ({e})") from None
    try:
        return _export(con, db, out, task)
    except sqlite3.Error as e:
        raise ConfigError(f"{db}: not an annotation database ({e})") from None
    finally:
        con.close()


def _export(con: sqlite3.Connection, db: Path, out: Path, task: str | None) -> list[Path]:
    tasks = con.execute("SELECT task, kind, model_a, model_b FROM tasks ORDER BY task").fetchall()
    if task is not None:
        tasks = [t for t in tasks if t[0] == task]
        if not tasks:
            raise ConfigError(f"{db}: no task {task!r}")
    kinds = [t[1] for t in tasks]
    if len(kinds) != len(set(kinds)):
        names = ", ".join(t[0] for t in tasks)
        raise ConfigError(f"{db} holds several tasks of one kind ({names}); pick one with --task")
    written = []
    columns = {r[1] for r in con.execute("PRAGMA table_info(annotations)")}
    comment = "comment" if "comment" in columns else "''"  # a database from before comments
    for name, kind, model_a, model_b in tasks:
        rows = con.execute(
            f"SELECT annotator, item, label, prompt, {comment} FROM annotations WHERE task = ? "
            "ORDER BY annotator, item",
            (name,),
        ).fetchall()
        by: dict[str, list[dict[str, Any]]] = {}
        for annotator, item, label, prompt, note in rows:
            if kind == "pairwise":
                row = {"id": item, "verdict": label, "annotator": annotator,
                       "model_a": model_a, "model_b": model_b, "prompt": prompt}  # fmt: skip
            else:
                row = {"id": item, "label": label, "annotator": annotator,
                       "model": model_a, "prompt": prompt}  # fmt: skip
            if note:
                row["comment"] = note
            by.setdefault(annotator, []).append(row)
        suffix = "verdicts" if kind == "pairwise" else "labels"
        stems = file_stems(list(by))
        for annotator, items in by.items():
            path = out / f"{stems[annotator]}.{suffix}.jsonl"
            write_jsonl(path, items)
            written.append(path)
    return written
