"""``lima-data review DIR``: a local page where a person reads candidates one
at a time and accepts, rejects or edits them.

Decisions live in ``DIR/review.sqlite`` (WAL, one transaction per decision,
so a crash loses nothing that was acknowledged); ``lima-data build --out DIR``
then takes the accepted (and edited) examples of a bucket instead of its
automatic selection. The server binds to 127.0.0.1 by default. Dump text only
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from lima.errors import ConfigError
from lima.io import open_store
from lima.web import JsonHandler, render

DB_NAME = "review.sqlite"


def bucket_of(source: str, group: str | None, domain: str) -> str:
    """The unit a quota is counted in: Stack Exchange by group, Reddit by subreddit."""
    if source == "stackexchange":
        return f"stackexchange/{group}"
    if source == "reddit":
        return f"reddit/{domain}"
    return source


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
                    bucket=bucket_of(r["source"], r["group"], r["domain"]),
                    source=r["source"],
                    domain=r["domain"],
                    conversations=list(r["conversations"]),
                    scores=scores,
                    url=meta.get("url"),
                )
            )
    return items


def quotas(out: Path) -> dict[str, int]:
    """Quota per bucket, from the build's manifest."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return {}
    sel = json.loads(manifest.read_text(encoding="utf-8")).get("selection", {})
    result = {f"stackexchange/{g}": r["wanted"] for g, r in sel.get("stackexchange", {}).items()}
    for key, r in sel.items():
        if key.startswith("reddit/"):
            for domain in r.get("sites", {}) or {}:
                result[f"reddit/{domain}"] = r["wanted"]
    return result


class Store:
    """Decisions in SQLite; every write is its own committed transaction."""

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
            )""",
            "a review database",
        )

    def decide(
        self, item: Item, decision: str, conversations: list[str] | None, reviewer: str | None
    ) -> None:
        if decision not in ("accept", "reject"):
            raise ValueError(f"decision must be accept or reject, not {decision!r}")
        turns = conversations if conversations is not None else item.conversations
        if len(turns) != len(item.conversations) or not all(isinstance(t, str) for t in turns):
            raise ValueError("an edit keeps the number of turns and must be text")
        edited = turns != item.conversations
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.lock:
            self.db.execute(
                """INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET decision=excluded.decision,
                   conversations=excluded.conversations, edited=excluded.edited,
                   reviewer=excluded.reviewer, updated_at=excluded.updated_at""",
                (item.id, item.bucket, decision, json.dumps(turns), int(edited), reviewer, now),
            )

    def all(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, bucket, decision, conversations, edited FROM decisions"
            ).fetchall()
        return {
            r[0]: {
                "bucket": r[1],
                "decision": r[2],
                "conversations": json.loads(r[3]),
                "edited": bool(r[4]),
            }
            for r in rows
        }

    def close(self) -> None:
        self.db.close()


def accepted(out: Path) -> dict[str, list[str]]:
    """Accepted ids with their (possibly edited) turns, for the build."""
    path = out / DB_NAME
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, conversations FROM decisions WHERE decision = 'accept' ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    return {r[0]: json.loads(r[1]) for r in rows}


class App:
    def __init__(self, out: Path, reviewer: str | None = None) -> None:
        self.out = out
        self.items = load_items(out)
        self.index = {it.id: i for i, it in enumerate(self.items)}
        self.quotas = quotas(out)
        self.store = Store(out / DB_NAME)
        self.reviewer = reviewer

    def item(self, i: int) -> dict[str, Any]:
        it = self.items[i]
        d = self.store.all().get(it.id)
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

    def progress(self) -> dict[str, Any]:
        decided = self.store.all()
        buckets: dict[str, dict[str, int]] = {}
        for it in self.items:
            b = buckets.setdefault(it.bucket, {"candidates": 0, "accepted": 0, "rejected": 0})
            b["candidates"] += 1
            d = decided.get(it.id)
            if d:
                b["accepted" if d["decision"] == "accept" else "rejected"] += 1
        for name, b in buckets.items():
            b["quota"] = self.quotas.get(name, 0)
        return {"buckets": dict(sorted(buckets.items())), "reviewed": len(decided)}


def make_handler(app: App) -> type[BaseHTTPRequestHandler]:
    page = resources.files("lima.curate").joinpath("review.html").read_text(encoding="utf-8")

    class Handler(JsonHandler):
        server_version = "lima-review"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self.send(200, page.encode(), "text/html; charset=utf-8")
            elif path == "/api/progress":
                self.json(app.progress())
            elif path.startswith("/api/item/"):
                try:
                    i = int(path.rsplit("/", 1)[1])
                    self.json(app.item(i))
                except (ValueError, IndexError):
                    self.json({"error": "no such item"}, HTTPStatus.NOT_FOUND)
            else:
                self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:
            if self.path != "/api/decide":
                self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)
                return
            try:
                body = self.read_json()
                it = app.items[app.index[body["id"]]]
                app.store.decide(it, body["decision"], body.get("turns"), app.reviewer)
            except (KeyError, ValueError, TypeError) as e:
                self.json({"error": str(e)}, HTTPStatus.BAD_REQUEST)
                return
            self.json({"ok": True, "progress": app.progress()})

    return Handler


def serve(
    out: Path, host: str = "127.0.0.1", port: int = 8765, reviewer: str | None = None
) -> ThreadingHTTPServer:
    """Start the review server (call ``serve_forever`` on the result)."""
    app = App(out, reviewer)
    server = ThreadingHTTPServer((host, port), make_handler(app))
    return server
