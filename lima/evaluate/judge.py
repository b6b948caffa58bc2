"""Asking a judge through any OpenAI-compatible ``/v1/chat/completions`` endpoint, and pairwise
judging on top of it.

Each pair is judged twice, once in each order; when the two verdicts disagree the pair is a tie
(this cancels a judge's taste for one position). Replies are cached in SQLite by a hash of
everything sent, so a rerun sends nothing new. A reply that names no verdict is asked again
with the prompt set's one-line format reminder added (never the identical request), and after
the last attempt it is counted as ``unparsed``.

The client fails safe (``lima.evaluate.transport``): it follows no redirect (the key goes to the
configured host only), a reply that is not the expected JSON is a fault like a 5xx, faults are
retried with bounded exponential backoff that honours ``Retry-After``, and every request has a
total deadline. An item whose retries run out is counted as ``failed``, never dropped; once more
than ``max_failed`` of the items have failed the rest are not sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lima.evaluate import transport
from lima.evaluate.parsing import parse_verdict, unfence
from lima.evaluate.prompts import Prompt, PromptSet, task, transcript
from lima.evaluate.responses import Response
from lima.evaluate.transport import Fault, JudgeError, Refused
from lima.io import open_store

__all__ = ["Cache", "Judge", "JudgeError", "RateLimit", "parse_verdict", "unfence"]

T = TypeVar("T")
R = TypeVar("R")

CACHE_VERSION = "judge-v2"

_REMINDERS = {
    "pairwise": "End your reply with your choice alone on a line of its own: A, B or Neither.",
    "rating": "End your reply with the rating alone (1, 2, 3, 4, 5 or 6) on a line of its own.",
    "absolute": "End your reply with Fail, Pass or Excellent alone on a line of its own.",
}


class Cache:
    """Judge replies by request hash, in SQLite (safe across threads and reruns)."""

    def __init__(self, path: Any) -> None:
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


class ItemFailed(Exception):
    """One item could not be judged (its retries ran out, or the endpoint refused it)."""


@dataclass
class Asked:
    """What asking about one item gave: the parsed value (``None``: unreadable or failed),
    every reply received, and the error when the item failed."""

    value: Any
    replies: list[str]
    error: str | None = None


@dataclass
class Judge:
    url: str
    model: str
    api_key: str | None = None
    cache: Cache | None = None
    prompts: PromptSet | None = None
    retries: int = 5
    parse_attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 60.0
    timeout: float = 120.0
    rate: RateLimit = field(default_factory=lambda: RateLimit(None))
    sent: int = 0
    cached: int = 0
    faults: int = 0
    stopped: str | None = None  # set when no more requests may be sent, and why
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        transport.check_url(self.endpoint())

    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def prompt(self, kind: str) -> Prompt:
        if self.prompts is None:
            from lima.evaluate.prompts import load

            self.prompts = load("paper")
        return self.prompts.get(kind)

    def _post(self, body: dict[str, Any]) -> str:
        """One reply, retrying faults with backoff; ``ItemFailed`` when they run out or the
        endpoint refuses the request, ``JudgeError`` when it refuses every request."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = self.backoff
        last: Fault | None = None
        for attempt in range(self.retries + 1):
            self.rate.wait()
            try:
                reply = transport.post(self.endpoint(), data, headers, self.timeout,
                                       secret=self.api_key)  # fmt: skip
            except Fault as e:
                last = e
                with self._lock:
                    self.faults += 1
                if attempt == self.retries:
                    break
                time.sleep(min(self.max_backoff, max(delay, e.retry_after or 0.0)))
                delay = min(self.max_backoff, delay * 2)
                continue
            except Refused as e:
                raise ItemFailed(str(e)) from e
            with self._lock:
                self.sent += 1
            return reply
        raise ItemFailed(f"{last} (gave up after {self.retries + 1} attempts)")

    def ask(self, messages: list[dict[str, str]], attempt: int, max_tokens: int = 512) -> str:
        body = {"model": self.model, "messages": messages, "temperature": 0.0,
                "max_tokens": max_tokens}  # fmt: skip
        key = hashlib.sha256(
            json.dumps([CACHE_VERSION, body, attempt], sort_keys=True).encode()
        ).hexdigest()
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                with self._lock:
                    self.cached += 1
                return hit
        if self.stopped is not None:
            raise ItemFailed(f"not sent: {self.stopped}")
        reply = self._post(body)
        if self.cache is not None:
            self.cache.put(key, reply)
        return reply

    def parsed(self, prompt: Prompt, values: dict[str, str],
               parse: Callable[[str], T | None]) -> Asked:  # fmt: skip
        """Ask until ``parse`` reads the reply, at most ``parse_attempts`` times. The second
        ask adds the set's format reminder to the request; later ones also show the judge its
        last reply and repeat the reminder, so no ask repeats an earlier request."""
        replies: list[str] = []
        messages = prompt.messages(**values)
        for attempt in range(self.parse_attempts):
            try:
                reply = self.ask(reask(messages, prompt, replies), attempt, prompt.max_tokens)
            except ItemFailed as e:
                return Asked(None, replies, str(e))
            replies.append(reply)
            v = parse(reply)
            if v is not None:
                return Asked(v, replies)
        return Asked(None, replies)


def reask(
    messages: list[dict[str, str]], prompt: Prompt, replies: list[str]
) -> list[dict[str, str]]:
    """The request for the next ask after ``replies`` went unread."""
    if not replies:
        return messages
    reminder = prompt.reminder or _REMINDERS[prompt.kind]
    *head, last = messages
    reminded = [*head, {"role": "user", "content": f"{last['content']}\n\n{reminder}"}]
    if len(replies) == 1:
        return reminded
    return [*reminded, {"role": "assistant", "content": replies[-1]},
            {"role": "user", "content": reminder}]  # fmt: skip


_SWAP = {"a": "b", "b": "a", "tie": "tie"}


def pair_row(a: Response, b: Response) -> dict[str, Any]:
    return {"id": a.key if a.id else b.key, "sample": a.sample, "prompt": a.prompt,
            "model_a": a.model, "model_b": b.model}  # fmt: skip


def judge_pair(judge: Judge, a: Response, b: Response) -> dict[str, Any]:
    """The pair judged in both orders; the orders must agree or it is a tie."""
    prompt = judge.prompt("pairwise")
    ctx = {"task": task(a), "transcript": transcript(a)}
    first = judge.parsed(prompt, {**ctx, "answer_a": a.response, "answer_b": b.response},
                         parse_verdict)  # fmt: skip
    second = Asked(None, [])
    if first.error is None:
        second = judge.parsed(prompt, {**ctx, "answer_a": b.response, "answer_b": a.response},
                              parse_verdict)  # fmt: skip
    error = first.error or second.error
    swapped = None if second.value is None else _SWAP[second.value]
    verdict: str | None = None
    if first.value is not None and swapped is not None:
        verdict = first.value if first.value == swapped else "tie"
    return {**pair_row(a, b), "verdict": verdict, "a_first": first.value, "b_first": swapped,
            "unparsed": verdict is None and error is None, "failed": error is not None,
            "error": error, "replies": [first.replies, second.replies]}  # fmt: skip


@dataclass
class Run:
    """Rows of a judged run in the items' order, and why it stopped sending, if it did."""

    rows: list[dict[str, Any]]
    failed: int
    stopped: str | None = None


def run_all(
    work: Callable[[R], dict[str, Any]],
    items: list[R],
    concurrency: int,
    on_done: Callable[[], None] | None = None,
    *,
    max_failed: float = 1.0,
    judge: Judge | None = None,
) -> Run:
    """``work`` on every item with ``concurrency`` threads. Once more than ``max_failed`` (a
    fraction) of the items have failed, or the endpoint refused the run (``JudgeError``), the
    judge sends nothing more: the remaining items get what the cache holds and fail otherwise.
    A ``JudgeError`` is raised again once the threads are done."""
    limit = math.floor(max_failed * len(items) + 1e-9)
    lock = threading.Lock()
    state: dict[str, Any] = {"failed": 0, "fatal": None}

    def stop(reason: str) -> None:
        if judge is not None and judge.stopped is None:
            judge.stopped = reason

    def one(item: R) -> dict[str, Any]:
        try:
            row = work(item)
        except JudgeError as e:
            with lock:
                state["fatal"] = state["fatal"] or e
            stop("the endpoint refused the run")
            raise
        if row.get("failed"):
            with lock:
                state["failed"] += 1
                over = state["failed"] > limit
            if over:
                stop(f"more than {max_failed:g} of the {len(items)} items had failed "
                     "(--max-failed)")  # fmt: skip
        if on_done:
            on_done()
        return row

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, item) for item in items]
    errors = [e for f in futures if (e := f.exception()) is not None]
    if state["fatal"] is not None:
        raise state["fatal"]
    if errors:
        raise errors[0]
    rows = [f.result() for f in futures]
    return Run(rows, state["failed"], None if judge is None else judge.stopped)


def judge_all(
    judge: Judge,
    pairs: list[tuple[Response, Response]],
    concurrency: int,
    on_done: Callable[[], None] | None = None,
    max_failed: float = 1.0,
) -> Run:
    return run_all(lambda p: judge_pair(judge, *p), pairs, concurrency, on_done,
                   max_failed=max_failed, judge=judge)  # fmt: skip


def win_rate(counts: dict[str, int]) -> dict[str, Any]:
    """AlpacaEval's head-to-head numbers for model A against the baseline B, over the pairs
    with a verdict: a win counts 1, a tie 0.5, a loss 0; ``win_rate`` is their mean and
    ``standard_error`` the standard error of that mean (sample standard deviation over the
    square root of n), both in percent."""
    wins, losses, draws = counts["a"], counts["b"], counts["tie"]
    n = wins + losses + draws
    if n == 0:
        return {"win_rate": None, "standard_error": None, "n_wins": 0, "n_wins_base": 0,
                "n_draws": 0, "n_total": 0}  # fmt: skip
    mean = (wins + 0.5 * draws) / n
    se = None
    if n > 1:
        ss = wins * (1 - mean) ** 2 + draws * (0.5 - mean) ** 2 + losses * mean**2
        se = 100 * math.sqrt(ss / (n - 1)) / math.sqrt(n)
    return {"win_rate": 100 * mean, "standard_error": se, "n_wins": wins, "n_wins_base": losses,
            "n_draws": draws, "n_total": n}  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    counts = {k: sum(r["verdict"] == k for r in rows) for k in ("a", "b", "tie")}
    failed = sum(bool(r.get("failed")) for r in rows)
    unparsed = sum(r["verdict"] is None for r in rows) - failed
    out: dict[str, Any] = {"n": n}
    for k, c in counts.items():
        out[k] = c / n if n else 0.0
    out["unparsed"] = unparsed / n if n else 0.0
    out["failed"] = failed / n if n else 0.0
    out["counts"] = {**counts, "unparsed": unparsed, "failed": failed}
    out.update(win_rate(counts))
    if rows:
        out["model_a"], out["model_b"] = rows[0]["model_a"], rows[0]["model_b"]
    return out


LEADERBOARD = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
               "discrete_win_rate", "mode", "avg_length")  # fmt: skip


def leaderboard_csv(summary: dict[str, Any], pairs: list[tuple[Response, Response]]) -> str:
    """One AlpacaEval-style leaderboard row (the model's name, then AlpacaEval's columns) for
    model A against the baseline. ``avg_length`` is the mean length of A's outputs in
    characters; the verdicts are discrete, so ``discrete_win_rate`` equals ``win_rate``."""
    import csv
    import io

    lengths = [len(a.response) for a, _ in pairs]
    row = {**{k: summary.get(k) for k in LEADERBOARD}, "mode": "community",
           "discrete_win_rate": summary.get("win_rate"),
           "avg_length": round(sum(lengths) / len(lengths)) if lengths else 0}  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["", *LEADERBOARD])
    w.writerow(
        [summary.get("model_a", ""), *("" if row[k] is None else row[k] for k in LEADERBOARD)]
    )
    return buf.getvalue()
