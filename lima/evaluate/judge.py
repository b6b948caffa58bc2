"""Pairwise judging through any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Each pair is judged twice, once in each order; when the two verdicts disagree the pair is a tie
(this cancels a judge's taste for one position). Replies are cached in SQLite by a hash of
everything sent, so a rerun sends nothing new. Transport errors and 429/5xx are retried with
exponential backoff; a reply that names no verdict is asked again (a new attempt, cached apart),
and after the last attempt it is counted as ``unparsed``, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lima.errors import LimaError
from lima.evaluate.responses import Response
from lima.io import open_store

T = TypeVar("T")
R = TypeVar("R")

TEMPLATE_VERSION = "pairwise-v1"


class JudgeError(LimaError):
    """The judge endpoint kept failing (after the retries) or refused the request."""


SYSTEM = (
    "You are an impartial judge of AI assistant responses. You will see a user's prompt and two "
    "responses, A and B. Decide which response is better: more helpful, more accurate, clearer. "
    "Length is not a merit in itself. Reply with exactly one word: A, B, or Neither."
)


def pairwise_messages(prompt: str, first: str, second: str) -> list[dict[str, str]]:
    user = (
        f"[Prompt]\n{prompt}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n"
        "Which response is better? Answer A, B, or Neither."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_TIE = r"(?:neither|tie|equal(?:ly)?|both|same)"
_JSON_KEYS = ("verdict", "winner", "preference", "better", "answer", "choice")


def unfence(reply: str) -> tuple[str, dict[str, Any] | None]:
    """A reply stripped of whitespace and a Markdown code fence, and the JSON object it holds,
    if it is one."""
    text = reply.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return text, None
        if isinstance(obj, dict):
            return text, obj
    return text, None


def parse_verdict(reply: str) -> str | None:
    """``a``, ``b`` or ``tie`` from a judge's reply (a letter, a sentence, or JSON); ``None``
    when the reply names no verdict or names both."""
    text, obj = unfence(reply)
    if obj is not None:
        for k in _JSON_KEYS:
            if isinstance(obj.get(k), str):
                return parse_verdict(obj[k])
        return None
    low = text.lower()
    bare = re.fullmatch(r"[\W_]*(?:response|output|assistant)?\s*\(?([ab])\)?[\W_]*", low)
    if bare:
        return bare.group(1)
    if re.fullmatch(rf"[\W_]*{_TIE}[\W_]*", low):
        return "tie"
    patterns = [
        rf"^\W*{_TIE}\b",
        r"(?:response|output|assistant|answer)\s*\(?([ab])\)?\s+(?:is|was)\s+(?:clearly\s+|slightly\s+|much\s+)?(?:better|preferred|superior|stronger)",
        r"\b(?:prefer|choose|pick|select)\s+(?:response\s+|output\s+|assistant\s+)?\(?([ab])\)?\b",
        r"(?:verdict|winner|answer|choice)\s*(?:is)?\s*[:=]?\s*\**\(?([ab])\)?\**\b",
        rf"(?:verdict|winner|answer|choice)\s*(?:is)?\s*[:=]?\s*\**{_TIE}\b",
        r"^\W*\(?([ab])\)?\s*(?:[.:,)\-]|$)",
    ]
    found: set[str] = set()
    for pat in patterns:
        for m in re.finditer(pat, low, flags=re.MULTILINE):
            groups = [g for g in m.groups() if g]
            found.add(groups[0] if groups else "tie")
        if found:
            break
    return found.pop() if len(found) == 1 else None


class Cache:
    """Judge replies by request hash, in SQLite (safe across threads and reruns)."""

    def __init__(self, path: Path) -> None:
        self._db = open_store(
            path,
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT)",
            "a judge cache",
        )
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, reply))

    def close(self) -> None:
        self._db.close()


class RateLimit:
    """At most ``per_minute`` request starts per minute, spaced evenly, across threads."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclass
class Judge:
    url: str
    model: str
    api_key: str | None = None
    cache: Cache | None = None
    retries: int = 5
    parse_attempts: int = 3
    backoff: float = 0.5
    timeout: float = 120.0
    rate: RateLimit = field(default_factory=lambda: RateLimit(None))
    sent: int = 0
    cached: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def _post(self, body: dict[str, Any]) -> str:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            self.rate.wait()
            req = urllib.request.Request(self.endpoint(), data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read())
                with self._lock:
                    self.sent += 1
                return str(payload["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as e:
                if (e.code not in (408, 409, 429) and e.code < 500) or attempt == self.retries:
                    raise JudgeError(f"{self.endpoint()}: HTTP {e.code}: {e.read()[:300]!r}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.retries:
                    raise JudgeError(f"{self.endpoint()}: {e}") from e
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def ask(self, messages: list[dict[str, str]], attempt: int) -> str:
        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": 256}
        key = hashlib.sha256(
            json.dumps([TEMPLATE_VERSION, body, attempt], sort_keys=True).encode()
        ).hexdigest()
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.cached += 1
                return hit
        reply = self._post(body)
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply

    def parsed(
        self, messages: list[dict[str, str]], parse: Callable[[str], T | None]
    ) -> tuple[T | None, list[str]]:
        """Ask until ``parse`` reads the reply, at most ``parse_attempts`` times; the value
        (``None`` when no reply could be read) and every reply received."""
        replies = []
        for attempt in range(self.parse_attempts):
            reply = self.ask(messages, attempt)
            replies.append(reply)
            v = parse(reply)
            if v is not None:
                return v, replies
        return None, replies

    def verdict(self, messages: list[dict[str, str]]) -> tuple[str | None, list[str]]:
        return self.parsed(messages, parse_verdict)


_SWAP = {"a": "b", "b": "a", "tie": "tie"}


def judge_pair(judge: Judge, a: Response, b: Response) -> dict[str, Any]:
    """The pair judged in both orders; the orders must agree or it is a tie."""
    first, r1 = judge.verdict(pairwise_messages(a.prompt, a.response, b.response))
    second, r2 = judge.verdict(pairwise_messages(a.prompt, b.response, a.response))
    swapped = None if second is None else _SWAP[second]
    verdict: str | None = None
    if first is not None and swapped is not None:
        verdict = first if first == swapped else "tie"
    return {
        "id": a.key if a.id else b.key,
        "prompt": a.prompt,
        "model_a": a.model,
        "model_b": b.model,
        "verdict": verdict,
        "a_first": first,
        "b_first": swapped,
        "unparsed": verdict is None,
        "replies": [r1, r2],
    }


def run_all(
    work: Callable[[R], dict[str, Any]],
    items: list[R],
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """``work`` on every item with ``concurrency`` threads; results in the items' order."""

    def one(item: R) -> dict[str, Any]:
        row = work(item)
        if on_done:
            on_done()
        return row

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, items))


def judge_all(
    judge: Judge,
    pairs: list[tuple[Response, Response]],
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    return run_all(lambda p: judge_pair(judge, *p), pairs, concurrency, on_done)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    counts = {k: sum(r["verdict"] == k for r in rows) for k in ("a", "b", "tie")}
    unparsed = sum(r["verdict"] is None for r in rows)
    out: dict[str, Any] = {"n": n}
    for k, c in counts.items():
        out[k] = c / n if n else 0.0
    out["unparsed"] = unparsed / n if n else 0.0
    out["counts"] = {**counts, "unparsed": unparsed}
    if rows:
        out["model_a"], out["model_b"] = rows[0]["model_a"], rows[0]["model_b"]
    return out
