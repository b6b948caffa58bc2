"""The dev-generation page the checkpoint is picked by, and the tiny server that keeps the picks.

``dev_generations.html`` (written after each kept epoch) shows one row per dev prompt with the
epochs' answers in columns shuffled per row, labelled only "answer A, B, ..."; a person picks
the best answer of a row and only then sees which epoch wrote each (blind, as a checkpoint
should be picked). The header tallies the picks per epoch.

Where picks go, as a user would expect from each way of opening the page:

- ``lima-train picks RUN_DIR`` serves the page on 127.0.0.1 and saves every pick at once to
  ``RUN_DIR/dev_generations.picks.json`` (beside the page), which the page reloads next time;
  this is the way to pick.
- Opened straight from disk the page still works: picks stay in that browser, and "Download
  picks" saves the same JSON (to the browser's downloads folder, which is as far as a file
  page may write).

No torch here: the page and the server need only the JSONL files.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
import threading
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from lima.errors import ConfigError
from lima.io import write_json, write_text
from lima.web import JsonHandler, LocalServer, require_token

PAGE = "dev_generations.html"
PICKS = "dev_generations.picks.json"
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.jsonl$")


def read_epochs(gen_dir: Path) -> dict[int, dict[str, dict[str, Any]]]:
    """Epoch -> prompt id -> row, from ``gen_dir/epoch-K.jsonl``."""
    epochs: dict[int, dict[str, dict[str, Any]]] = {}
    for f in sorted(gen_dir.glob("epoch-*.jsonl")):
        m = _EPOCH_FILE.search(f.name)
        if not m:
            continue
        rows: dict[str, dict[str, Any]] = {}
        with f.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    rows[str(r["id"])] = r
                except (ValueError, KeyError, TypeError) as e:
                    raise ConfigError(f"{f}:{n}: not a dev-generation row ({e})") from None
        epochs[int(m.group(1))] = rows
    return epochs


def _order(rid: str, epochs: list[int]) -> list[int]:
    """The columns of one row: shuffled, the same on every rebuild of the page."""
    order = list(epochs)
    random.Random(hashlib.sha256(rid.encode()).digest()).shuffle(order)
    return order


def page(gen_dir: Path) -> str:
    """The blind side-by-side page for the generations under ``gen_dir``."""
    epochs = read_epochs(gen_dir)
    kept = sorted(epochs)
    ids: list[str] = []
    prompts: dict[str, str] = {}
    for k in kept:
        for rid, r in epochs[k].items():
            if rid not in prompts:
                ids.append(rid)
                prompts[rid] = str(r.get("prompt", ""))
    tally = "".join(f"<th>epoch {k}<br><span class=tally data-epoch={k}>0</span> picked</th>"
                    for k in kept)  # fmt: skip
    width = max((sum(rid in epochs[k] for k in kept) for rid in ids), default=0)
    head = "".join(f"<th>answer {chr(65 + i)}</th>" for i in range(width))
    body = []
    for rid in ids:
        cells = []
        for k in _order(rid, [k for k in kept if rid in epochs[k]]):
            r = epochs[k][rid]
            stop = "stopped at EOT" if r.get("stopped_at_eot") else "hit max_new_tokens"
            cells.append(
                f"<td data-epoch={k}><label><input type=radio name='{html.escape(rid)}' "
                f"data-epoch={k}> prefer</label> <span class=reveal hidden>epoch {k}, "
                f"{int(r.get('new_tokens', 0))} tokens, {stop}</span>"
                f"<pre>{html.escape(str(r.get('generation', '')))}</pre></td>"
            )
        body.append(
            f"<tr data-id='{html.escape(rid)}'><th class=prompt><small>{html.escape(rid)}</small>"
            f"<pre>{html.escape(prompts[rid])}</pre></th>{''.join(cells)}</tr>"
        )
    template = resources.files("lima.train").joinpath("picks.html").read_text(encoding="utf-8")
    return Template(template).substitute(tally=tally, head=head, rows="\n".join(body), picks=PICKS)


def write_page(gen_dir: Path, out: Path) -> None:
    write_text(out, page(gen_dir))


class Picks:
    """The picks of one run, kept in ``RUN_DIR/dev_generations.picks.json``."""

    def __init__(self, run: Path) -> None:
        self.run = run
        gen_dir = run / "dev_generations"
        self.epochs = read_epochs(gen_dir)
        if not self.epochs:
            raise ConfigError(f"{gen_dir}: no epoch-K.jsonl here; is {run} a lima-train run?")
        self.choices: dict[str, set[int]] = {}
        for k, rows in self.epochs.items():
            for rid in rows:
                self.choices.setdefault(rid, set()).add(k)
        self.path = run / PICKS
        self.lock = threading.Lock()
        self.picks: dict[str, int] = {}
        if self.path.exists():
            try:
                saved = json.loads(self.path.read_text(encoding="utf-8"))["picks"]
                self.picks = {str(k): int(v) for k, v in saved.items()}
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ConfigError(f"{self.path}: not a picks file ({e})") from None
        self.html = page(gen_dir)

    def summary(self) -> dict[str, Any]:
        tally: dict[str, int] = {str(k): 0 for k in sorted(self.epochs)}
        for epoch in self.picks.values():
            tally[str(epoch)] = tally.get(str(epoch), 0) + 1
        return {"picks": dict(sorted(self.picks.items())), "tally": tally,
                "picked": len(self.picks), "prompts": len(self.choices)}  # fmt: skip

    def pick(self, body: dict[str, Any]) -> dict[str, Any]:
        rid, epoch = body.get("id"), body.get("epoch")
        if not isinstance(rid, str) or rid not in self.choices:
            raise ValueError("no such prompt")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch not in self.choices[rid]:
            raise ValueError(f"epoch must be one of {sorted(self.choices[rid])} for {rid}")
        with self.lock:
            self.picks[rid] = epoch
            summary = self.summary()
            write_json(self.path, summary)
        return summary


class Handler(JsonHandler):
    server_version = "lima-picks"
    app: Picks

    def get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.page(self.app.html)
        elif path == "/api/picks":
            with self.app.lock:
                self.json(self.app.summary())
        else:
            self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    def post(self) -> None:
        if self.path != "/api/pick":
            self.json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        try:
            self.json(self.app.pick(self.read_object()))
        except (ValueError, TypeError) as e:
            self.json({"error": str(e)}, HTTPStatus.BAD_REQUEST)


def serve(run: Path, host: str = "127.0.0.1", port: int = 8767,
          token: str | None = None) -> LocalServer:  # fmt: skip
    """The picks server for a run directory (call ``serve_forever`` on the result)."""
    require_token(host, token)
    app = Picks(run)
    server = LocalServer(host, port, type("PicksHandler", (Handler,), {"app": app}), token)
    server.app = app
    return server
