"""The judge client against loopback servers that misbehave the ways real endpoints do: a
redirect to another port (which must never see the key), HTML, ``{"choices": []}``, a
truncated body, no ``choices``, 429 with ``Retry-After``, a server that trickles a byte at a
time, one that refuses one request or every request; and re-asks that change the request."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, lima_eval

from lima.evaluate.judge import ItemFailed, Judge, JudgeError, reask
from lima.evaluate.parsing import parse_verdict
from lima.evaluate.prompts import load
from lima.evaluate.transport import retry_after

SECRET = "sk-test-0123456789abcdef"
ALPACA = ROOT / "tests" / "data" / "alpaca_eval"

Script = Callable[[BaseHTTPRequestHandler, int, dict[str, Any]], None]


def ok(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json",
         extra: dict[str, str] | None = None, length: int | None = None) -> None:  # fmt: skip
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()


class Server:
    """A loopback endpoint that answers request number n (from 1) with ``script``, recording
    the time, headers and body of every request."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw) if raw else {}
                outer.requests.append({"at": time.monotonic(), "headers": dict(self.headers),
                                       "body": body})  # fmt: skip
                self.close_connection = True
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    outer.script(self, len(outer.requests), body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Any:
    made: list[Server] = []

    def make(script: Script) -> Server:
        made.append(Server(script))
        return made[-1]

    yield make
    for s in made:
        s.close()


def lima_eval_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from lima.evaluate.cli import main; main()",
                           *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **env})  # fmt: skip


def _judge(url: str, **kw: Any) -> Judge:
    opts: dict[str, Any] = {"api_key": SECRET, "retries": 0, "backoff": 0.01, "timeout": 5.0}
    return Judge(url, "judge-model", **{**opts, **kw})


BODY = {"model": "judge-model", "messages": [{"role": "user", "content": "hi"}]}


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_never_reaches_the_other_port(serve: Any, code: int) -> None:
    other = serve(lambda h, n, b: send(h, 200, ok("A")))
    first = serve(lambda h, n, b: send(h, code, b"moved", "text/plain",
                                       {"Location": other.url + "/chat/completions"}))  # fmt: skip
    j = _judge(first.url, retries=3)
    with pytest.raises(JudgeError, match=rf"HTTP {code} redirect to http://127.0.0.1:\d+/v1/chat/"
                                         "completions refused"):  # fmt: skip
        j.ask(BODY["messages"], 0)
    assert other.requests == []  # neither followed nor retried elsewhere
    assert len(first.requests) == 1  # and not retried: a redirect is not a fault
    assert first.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_compare_stops_on_a_redirect_and_never_leaks_the_key(serve: Any, tmp_path: Path) -> None:
    other = serve(lambda h, n, b: send(h, 200, ok("A")))
    first = serve(lambda h, n, b: send(h, 302, b"", "text/plain",
                                       {"Location": other.url + "/chat/completions"}))  # fmt: skip
    a, b = _alpaca(tmp_path, 3)
    out = str(tmp_path / "o")
    done = lima_eval_with({"OPENAI_API_KEY": SECRET}, "compare", str(a), str(b), "--judge",
                          first.url, "--judge-model", "x", "--out", out)  # fmt: skip
    assert done.returncode != 0 and "redirect" in done.stderr and "refused" in done.stderr
    assert other.requests == [] and 1 <= len(first.requests) <= 4  # the pairs in flight
    assert SECRET not in done.stderr + done.stdout
    assert not (tmp_path / "o" / "verdicts.jsonl").exists()


# --- replies that are not what they should be ----------------------------------------------

BAD_REPLIES: dict[str, tuple[Script, str]] = {
    "html": (lambda h, n, b: send(h, 200, b"<html><body>Bad gateway</body></html>", "text/html"),
             r"not JSON \(text/html\)"),
    "empty choices": (lambda h, n, b: send(h, 200, b'{"choices": []}'), "no choices"),
    "no choices": (lambda h, n, b: send(h, 200, b'{"id": "x", "object": "chat.completion"}'),
                   "no choices"),
    "error object": (lambda h, n, b: send(h, 200, b'{"error": {"message": "overloaded"}}'),
                     r"no choices \(error: .*overloaded"),
    "truncated": (lambda h, n, b: send(h, 200, ok("A")[:25], length=len(ok("A"))),
                  r"truncated reply: 25 of \d+ bytes|IncompleteRead|not JSON"),
    "null content": (lambda h, n, b: send(h, 200, b'{"choices": [{"message": {"content": null}}]}'),
                     r"no text in choices\[0\]\.message\.content"),
    "a list": (lambda h, n, b: send(h, 200, b"[1, 2]"), "not an object"),
    "5xx": (lambda h, n, b: send(h, 503, b"busy", "text/plain"), "HTTP 503"),
    "closed": (lambda h, n, b: h.connection.close(), "RemoteDisconnected|Connection"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REPLIES))
def test_a_bad_reply_is_a_fault_that_is_retried(serve: Any, case: str) -> None:
    bad, message = BAD_REPLIES[case]
    server = serve(lambda h, n, b: bad(h, n, b) if n == 1 else send(h, 200, ok("B")))
    j = _judge(server.url, retries=1)
    assert j.ask(BODY["messages"], 0) == "B"
    assert (len(server.requests), j.faults, j.sent) == (2, 1, 1)
    never = serve(bad)
    with pytest.raises(ItemFailed, match=message) as e:
        _judge(never.url, retries=2).ask(BODY["messages"], 0)
    assert "gave up after 3 attempts" in str(e.value) and len(never.requests) == 3


def test_retry_after_is_honoured_and_bounded(serve: Any) -> None:
    server = serve(lambda h, n, b: send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
                   if n == 1 else send(h, 200, ok("A")))  # fmt: skip
    assert _judge(server.url, retries=1).ask(BODY["messages"], 0) == "A"
    gap = server.requests[1]["at"] - server.requests[0]["at"]
    assert 0.95 <= gap < 3  # it waited as told, not the 0.01 s backoff
    forever = serve(lambda h, n, b: send(h, 503, b"", "text/plain", {"Retry-After": "3600"})
                    if n == 1 else send(h, 200, ok("A")))  # fmt: skip
    start = time.monotonic()
    assert _judge(forever.url, retries=1, max_backoff=0.2).ask(BODY["messages"], 0) == "A"
    assert time.monotonic() - start < 2  # an hour is capped at max_backoff
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert retry_after("soon") is None and retry_after("-5") == 0.0


def _trickle(headers_too: bool) -> Script:
    def script(h: BaseHTTPRequestHandler, n: int, b: dict[str, Any]) -> None:
        data = ok("A")
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
            head = b""
        for byte in head + data:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.2)

    return script


@pytest.mark.parametrize("headers_too", [False, True])
def test_a_trickling_server_is_cut_at_the_total_deadline(serve: Any, headers_too: bool) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the total deadline of 1 s ends it."""
    server = serve(_trickle(headers_too))
    start = time.monotonic()
    with pytest.raises(ItemFailed, match=r"no complete reply within 1 s"):
        _judge(server.url, timeout=1.0).ask(BODY["messages"], 0)
    assert time.monotonic() - start < 1.8


def test_refusals_fail_one_item_or_stop_the_run(serve: Any) -> None:
    too_long = serve(lambda h, n, b: send(h, 400, b'{"error": "context_length_exceeded"}'))
    with pytest.raises(ItemFailed, match="HTTP 400"):
        _judge(too_long.url, retries=3).ask(BODY["messages"], 0)
    assert len(too_long.requests) == 1  # not retried
    denied = serve(lambda h, n, b: send(h, 401, f"bad key {SECRET}".encode(), "text/plain"))
    with pytest.raises(JudgeError, match="HTTP 401") as e:
        _judge(denied.url, retries=3).ask(BODY["messages"], 0)
    assert SECRET not in str(e.value) and "***" in str(e.value)
    with pytest.raises(JudgeError, match="must be an http:// or https:// URL"):
        _judge("ftp://example.org/v1")


# --- failed items are counted, and the run exits by --max-failed -----------------------------


def _alpaca(tmp_path: Path, n: int) -> tuple[Path, Path]:
    a = json.loads((ALPACA / "alpaca-7b.model_outputs.json").read_text())[:n]
    b = json.loads((ALPACA / "text_davinci_003.model_outputs.json").read_text())[:n]
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return tmp_path / "a.json", tmp_path / "b.json"


def test_failed_pairs_are_counted_and_max_failed_decides_the_exit(
    serve: Any, tmp_path: Path
) -> None:
    a, b = _alpaca(tmp_path, 6)
    hard = json.loads(a.read_text())[2]["instruction"]
    up = {"hard": False}

    def script(h: BaseHTTPRequestHandler, n: int, body: dict[str, Any]) -> None:
        if hard in body["messages"][-1]["content"] and not up["hard"]:
            send(h, 200, b"<html>upstream timed out</html>", "text/html")
        else:
            send(h, 200, ok("Answer A is significantly better."))

    server = serve(script)
    args = ["compare", str(a), str(b), "--judge", server.url, "--judge-model", "x", "--out",
            str(tmp_path / "o"), "--retries", "1", "--concurrency", "1"]  # fmt: skip
    tolerant = lima_eval(*args, "--max-failed", "0.2")
    assert tolerant.returncode == 0, tolerant.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["counts"] == {"a": 0, "b": 0, "tie": 5, "unparsed": 0, "failed": 1}
    assert summary["n_total"] == 5 and summary["win_rate"] == 50.0
    rows = [json.loads(x) for x in (tmp_path / "o" / "verdicts.jsonl").open()]
    (failed,) = [r for r in rows if r["failed"]]
    assert failed["prompt"] == hard and "not JSON (text/html)" in failed["error"]
    strict = lima_eval(*args)  # --max-failed 0
    assert strict.returncode != 0 and "1 of 6 items failed" in strict.stderr
    assert len(rows) == 6 and (tmp_path / "o" / "verdicts.jsonl").exists()
    up["hard"] = True
    sent = len(server.requests)
    again = lima_eval(*args)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) - sent == 2  # only the failed pair, in both orders
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["counts"]["failed"] == 0


# --- re-asks --------------------------------------------------------------------------------


def test_a_re_ask_adds_the_reminder_and_never_repeats_a_request(serve: Any) -> None:
    server = serve(lambda h, n, b: send(h, 200, ok("Hmm." if n < 3 else "Neither is "
                                                    "significantly better.")))  # fmt: skip
    prompts = load("paper")
    pairwise = prompts.get("pairwise")
    j = _judge(server.url, parse_attempts=3, prompts=prompts)
    got = j.parsed(pairwise, {"task": "Q?", "transcript": "[User]\nQ?", "answer_a": "x",
                              "answer_b": "y"}, parse_verdict)  # fmt: skip
    assert got.value == "tie" and got.replies == ["Hmm.", "Hmm.", got.replies[2]]
    sent = [r["body"]["messages"] for r in server.requests]
    assert len(sent) == 3 and len({json.dumps(m) for m in sent}) == 3
    assert sent[0][-1]["content"].startswith("Imagine that you have a super-intelligent AI")
    assert sent[1][-1]["content"] == sent[0][-1]["content"] + "\n\n" + pairwise.reminder
    assert sent[2][-2] == {"role": "assistant", "content": "Hmm."}
    assert sent[2][-1] == {"role": "user", "content": pairwise.reminder}
    assert [r["body"]["max_tokens"] for r in server.requests] == [pairwise.max_tokens] * 3
    assert reask(sent[0], pairwise, []) == sent[0]
