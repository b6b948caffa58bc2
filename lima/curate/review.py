"""``lima-data review DIR``: a local page where a person reads candidates one
at a time and accepts, rejects or edits them.

Decisions live in ``DIR/review.sqlite`` (WAL, one transaction per decision,
so a crash loses nothing that was acknowledged), each with the state it
replaced so it can be undone; ``lima-data build --out DIR`` then takes the
accepted (and edited) examples of a bucket instead of its automatic selection,
never takes a rejected one, and records in the manifest what review changed.
The page opens at the first undecided candidate, filters by bucket and text,
and shows each bucket's quota from the build's manifest. The server binds to
127.0.0.1 by default and refuses other origins (``lima.web``). Dump text only
reaches the page as JSON put in with ``textContent``, or as Markdown rendered
here with raw HTML disabled, so ``<script>`` in a body shows as text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl

from lima.errors import ConfigError
from lima.io import open_store
from lima.web import JsonHandler, LocalServer, render, require_token

DB_NAME = "review.sqlite"


def bucket_of(file_stem: str, group: str | None) -> str:
    """The unit a quota is counted in, named as the build's manifest names it (its
    ``selection`` keys): Stack Exchange by group, Reddit by pool, the rest by source."""
    if file_stem.startswith("stackexchange"):
        return f"{file_stem}/{group}"
    if file_stem.startswith("reddit_"):
        return "reddit/" + file_stem.removeprefix("reddit_")
    if file_stem == "dialogues":
        return "dialogue/stackexchange"
    return file_stem


@dataclass
class Item:
    id: str
    bucket: str
    source: str
    domain: str
    conversations: list[str]
    scores: dict[str, Any]
    url: str | None


def load_items(out: Path) -> list[Item]:
    files = sorted((out / "candidates").glob("*.parquet"))
    if not files:
        raise ConfigError(
            f"{out}: no candidates/*.parquet here; run `lima-data build --out {out}` first"
        )
    items: list[Item] = []
    for f in files:
        for r in pl.read_parquet(f).iter_rows(named=True):
            meta = r["meta"] or {}
            scores = {
                k: meta.get(k)
                for k in ("question_score", "answer_score", "accepted")
                if meta.get(k) is not None
            }
            items.append(
                Item(
                    id=r["id"],
                    bucket=bucket_of(f.stem, r["group"]),
                    source=r["source"],
                    domain=r["domain"],
                    conversations=list(r["conversations"]),
                    scores=scores,
                    url=meta.get("url"),
                )
            )
    return items


def quotas(out: Path) -> dict[str, int]:
    """Quota per bucket: the ``wanted`` of each of the build manifest's ``selection`` keys."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return {}
    try:
        sel = json.loads(manifest.read_text(encoding="utf-8")).get("selection", {})
        return {key: int(r["wanted"]) for key, r in sel.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConfigError(f"{manifest}: not a build manifest ({e})") from None


class Store:
    """Decisions in SQLite; every write is its own committed transaction, and each decision
    keeps the state it replaced (``history``) so it can be undone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db = open_store(
            path,
            """CREATE TABLE IF NOT EXISTS decisions (
                id TEXT PRIMARY KEY,
                bucket TEXT NOT NULL,
                decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject')),
                conversations TEXT NOT NULL,
                edited INTEGER NOT NULL,
                reviewer TEXT,
                updated_at TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS history (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL,
                before TEXT
            );""",
            "a review database",
        )

    def _row(self, id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(
            "SELECT id, bucket, decision, conversations, edited, reviewer, updated_at "
            "FROM decisions WHERE id = ?",
            (id,),
        ).fetchone()
        return row

    def decide(
        self, item: Item, decision: str, conversations: list[str] | None, reviewer: str | None
    ) -> None:
        if decision not in ("accept", "reject"):
            raise ValueError(f"decision must be accept or reject, not {decision!r}")
        turns = conversations if conversations is not None else item.conversations
        if (
            not isinstance(turns, list)
            or len(turns) != len(item.conversations)
            or not all(isinstance(t, str) for t in turns)
        ):
            raise ValueError("an edit keeps the number of turns and must be text")
        if decision == "reject":
            turns = item.conversations
        edited = turns != item.conversations
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                before = self._row(item.id)
                self.db.execute(
                    "INSERT INTO history (id, before) VALUES (?, ?)",
                    (item.id, None if before is None else json.dumps(list(before))),
                )
                self.db.execute(
                    """INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(id) DO UPDATE SET decision=excluded.decision,
                       conversations=excluded.conversations, edited=excluded.edited,
                       reviewer=excluded.reviewer, updated_at=excluded.updated_at""",
                    (item.id, item.bucket, decision, json.dumps(turns), int(edited), reviewer,
                     now),
                )  # fmt: skip
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def undo(self, id: str) -> None:
        """Puts back what the latest decision on ``id`` replaced (``LookupError`` when there
        is none)."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                last = self.db.execute(
                    "SELECT seq, before FROM history WHERE id = ? ORDER BY seq DESC LIMIT 1",
                    (id,),
                ).fetchone()
                if last is None:
                    raise LookupError(f"nothing to undo for {id}")
                self.db.execute("DELETE FROM history WHERE seq = ?", (last[0],))
                self.db.execute("DELETE FROM decisions WHERE id = ?", (id,))
                if last[1] is not None:
                    self.db.execute(
                        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)", json.loads(last[1])
                    )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def get(self, id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self._row(id)
        if row is None:
            return None
        return {"decision": row[2], "conversations": json.loads(row[3]), "edited": bool(row[4])}

    def decisions(self) -> dict[str, str]:
        with self.lock:
            rows = self.db.execute("SELECT id, decision FROM decisions").fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        self.db.close()


def _read(out: Path, query: str) -> list[tuple[Any, ...]]:
    path = out / DB_NAME
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path}: not a review database ({e})") from None
    finally:
        db.close()


def accepted(out: Path) -> dict[str, list[str]]:
    """Accepted ids with their (possibly edited) turns, for the build."""
    rows = _read(out, "SELECT id, conversations FROM decisions WHERE decision = 'accept' "
                      "ORDER BY id")  # fmt: skip
    return {r[0]: json.loads(r[1]) for r in rows}


def rejected(out: Path) -> set[str]:
    """Rejected ids, which the build never selects."""
    return {r[0] for r in _read(out, "SELECT id FROM decisions WHERE decision = 'reject'")}


def edited(out: Path) -> set[str]:
    """Accepted ids whose turns the reviewer changed."""
    rows = _read(out, "SELECT id FROM decisions WHERE decision = 'accept' AND edited = 1")
    return {r[0] for r in rows}


class App:
    def __init__(self, out: Path, reviewer: str | None = None) -> None:
        self.out = out
        self.items = load_items(out)
        self.index = {it.id: i for i, it in enumerate(self.items)}
        self.quotas = quotas(out)
        self.store = Store(out / DB_NAME)
        self.reviewer = reviewer
        # what the search box matches: id, domain and every turn, case-folded
        self.haystack = [
            "\n".join([it.id, it.domain, *it.conversations]).casefold() for it in self.items
        ]

    def item(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        d = self.store.get(it.id)
        turns = d["conversations"] if d else it.conversations
        return {
            "index": i,
            "total": len(self.items),
            "id": it.id,
            "bucket": it.bucket,
            "source": it.source,
            "domain": it.domain,
            "url": it.url,
            "scores": it.scores,
            "turns": turns,
            "turns_html": [render(t) for t in turns],
            "decision": d["decision"] if d else None,
            "edited": d["edited"] if d else False,
        }

    def listing(self, bucket: str | None, q: str | None) -> dict[str, Any]:
        """The items the filter keeps, in order, with whether each is decided."""
        needle = (q or "").strip().casefold()
        decided = self.store.decisions()
        indices = [
            i
            for i, it in enumerate(self.items)
            if (not bucket or it.bucket == bucket) and (not needle or needle in self.haystack[i])
        ]
        flags = [self.items[i].id in decided for i in indices]
        first = next((k for k, done in enumerate(flags) if not done), None)
        return {"indices": indices, "decided": flags, "first_undecided": first}

    def progress(self) -> dict[str, Any]:
        decided = self.store.decisions()
        buckets: dict[str, dict[str, Any]] = {}
        for it in self.items:
            b = buckets.setdefault(it.bucket, {"candidates": 0, "accepted": 0, "rejected": 0})
            b["candidates"] += 1
            d = decided.get(it.id)
            if d:
                b["accepted" if d == "accept" else "rejected"] += 1
        for name, b in buckets.items():
            b["quota"] = self.quotas.get(name)
        reviewed = sum(b["accepted"] + b["rejected"] for b in buckets.values())
        return {"buckets": dict(sorted(buckets.items())), "reviewed": reviewed,
                "total": len(self.items)}  # fmt: skip

    def _item_of(self, body: dict[str, Any]) -> Item:
        i = self.index.get(body.get("id"))  # type: ignore[arg-type]
        if i is None:
            raise ValueError("no such item")
        return self.items[i]

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        it = self._item_of(body)
        self.store.decide(it, str(body.get("decision")), body.get("turns"), self.reviewer)
        return {"ok": True, "index": self.index[it.id], "progress": self.progress()}

    def undo(self, body: dict[str, Any]) -> dict[str, Any]:
        it = self._item_of(body)
        self.store.undo(it.id)
        i = self.index[it.id]
        return {"ok": True, "index": i, "item": self.item(i), "progress": self.progress()}

    def close(self) -> None:
        self.store.close()


class Handler(JsonHandler):
    server_version = "lima-review"
    app: App
    page_text: str

    def get(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self.page(self.page_text)
        elif url.path == "/api/progress":
            self.json(self.app.progress())
        elif url.path == "/api/list":
            bucket = query.get("bucket", [""])[0]
            self.json(self.app.listing(bucket, query.get("q", [""])[0]))
        elif url.path.startswith("/api/item/"):
            try:
                i = int(url.path.rsplit("/", 1)[1])
                if not 0 <= i < len(self.app.items):
                    raise IndexError(i)
                self.json(self.app.item(i))
            except (ValueError, IndexError):
                self.json({"error": "no such item"}, HTTPStatus.NOT_FOUND)
        else:
            self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    def post(self) -> None:
        actions = {"/api/decide": self.app.decide, "/api/undo": self.app.undo}
        action = actions.get(self.path)
        if action is None:
            self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        try:
            self.json(action(self.read_object()))
        except LookupError as e:
            self.json({"error": str(e.args[0])}, HTTPStatus.CONFLICT)
        except (ValueError, TypeError) as e:
            self.json({"error": str(e)}, HTTPStatus.BAD_REQUEST)


def serve(
    out: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    reviewer: str | None = None,
    token: str | None = None,
) -> LocalServer:
    """Start the review server (call ``serve_forever`` on the result)."""
    require_token(host, token)
    app = App(out, reviewer)
    page = resources.files("lima.curate").joinpath("review.html").read_text(encoding="utf-8")
    handler = type("ReviewHandler", (Handler,), {"app": app, "page_text": page})
    try:
        server = LocalServer(host, port, handler, token)
    except BaseException:
        app.close()
        raise
    server.app = app
    return server
