"""`lima-eval serve` with the official `openai` client against the tiny model the tests train:
streaming, stop, seed, usage, models; and a server that stays up: every bad field is a 400 with
a message, prompts beyond the window are refused, generation stops when the client hangs up or
the time runs out, a full queue answers 503, and a burst of 250 connections loses none."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")


class Served:
    """A checkpoint served in this process."""

    def __init__(self, path: Path, **kw: Any) -> None:
        from lima.evaluate.serve import Model, serve
        from lima.train.recipe import Generation

        self.model = Model(path)
        self.server = serve(self.model, "127.0.0.1", 0, Generation(max_new_tokens=64), **kw)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.client = openai.OpenAI(base_url=self.url + "/v1", api_key=kw.get("token") or "none",
                                    max_retries=0, timeout=120)  # fmt: skip

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.server.gate.stats)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def raw(port: int, body: bytes, close_after: float | None = None, **headers: str) -> str | None:
    """POSTs ``body`` on a bare socket; returns the status line, or hangs up after
    ``close_after`` seconds."""
    head = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
            "Content-Length": str(len(body)), **headers}  # fmt: skip
    request = "POST /v1/chat/completions HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in head.items()
    )
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(request.encode() + b"\r\n" + body)
        if close_after is not None:
            time.sleep(close_after)
            return None
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def _answer(status: str) -> int:
    return int(status.split()[1])


@pytest.fixture(scope="module")
def tuned(eot_model: Path) -> Iterator[Served]:
    s = Served(eot_model / "epoch-15")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prompt(eot_model: Path) -> str:
    rows = [json.loads(x) for x in (eot_model / "dev_generations" / "epoch-15.jsonl").open()]
    return str(rows[0]["prompt"])


def _ask(s: Served, prompt: str, **kw: Any) -> Any:
    return s.client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": prompt}], **kw
    )


def test_openai_client_seed_usage_stream_and_stop(tuned: Served, prompt: str) -> None:
    first = _ask(tuned, prompt, seed=3)
    text = first.choices[0].message.content
    assert first.choices[0].finish_reason == "stop" and text  # the tuned model stops at EOT
    assert _ask(tuned, prompt, seed=3).choices[0].message.content == text
    # no seed: a fresh sample per call
    fresh = {_ask(tuned, prompt).choices[0].message.content for _ in range(4)}
    assert len(fresh) >= 2
    # usage: the prompt in the training format, the new tokens (EOT counted)
    want_prompt = len(tuned.model.encode([prompt]))
    u = first.usage
    assert u.prompt_tokens == want_prompt and 0 < u.completion_tokens < 64
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # content as a list of text parts is the same prompt
    parts = tuned.client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        seed=3)  # fmt: skip
    assert parts.choices[0].message.content == text

    # streaming: chunks, then [DONE] (the client stops there); the same text as one answer
    chunks = list(_ask(tuned, prompt, seed=3, stream=True,
                       stream_options={"include_usage": True}))  # fmt: skip
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) >= 2 and "".join(deltas) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == u.total_tokens

    # stop: the text ends before the first stop string, in one answer and in a stream
    word = text.split()[len(text.split()) // 2]
    cut = _ask(tuned, prompt, seed=3, stop=["\x00never", word])
    assert cut.choices[0].message.content == text[: text.index(word)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = _ask(tuned, prompt, seed=3, stop=word, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        == text[: text.index(word)]
    )
    # max_completion_tokens: cut at the length, and said so
    short = _ask(tuned, prompt, seed=3, max_completion_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    several = _ask(tuned, prompt, seed=5, n=3)
    assert [c.index for c in several.choices] == [0, 1, 2]


def test_models_list_and_retrieve(tuned: Served) -> None:
    card = tuned.client.models.retrieve("epoch-15")
    assert card.id == "epoch-15" and card.owned_by == "lima"
    assert [m.id for m in tuned.client.models.list()] == ["epoch-15"]
    with pytest.raises(openai.NotFoundError):
        tuned.client.models.retrieve("gpt-4")


BAD = [
    (b"[1, 2]", "the body must be a JSON object"),
    (b'{"messages": [', "the body is not JSON"),
    (b"[" * 100_000, "the body is not JSON"),
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "only text parts"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "unknown role"),
    ({"n": 0}, "n must be between 1 and 16"),
    ({"n": 17}, "n must be between 1 and 16"),
    ({"n": 1.5}, "n must be an integer"),
    ({"top_p": -0.5}, "top_p must be in (0, 1]"),
    ({"top_p": 0}, "top_p must be in (0, 1]"),
    ({"temperature": 3}, "temperature must be in [0, 2]"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"max_tokens": 0}, "max_tokens must be between 1 and 2,048"),
    ({"max_tokens": 1e9}, "max_tokens must be between 1 and 2,048"),
    ({"max_completion_tokens": -1}, "max_completion_tokens must be between"),
    ({"max_tokens": "64"}, "max_tokens must be an integer"),
    ({"seed": "x"}, "seed must be an integer"),
    ({"stop": [1]}, "stop must be a string or a list of strings"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop takes at most 4 strings"),
    ({"stream": "yes"}, "stream must be true or false"),
    ({"logprobs": True}, "logprobs is not supported"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, "the model's window is 2,048"),
    ({"messages": [{"role": "user", "content": "x" * 1_000_000}]}, "cannot fit the model's window"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_every_bad_field_is_a_400_that_says_which(
    tuned: Served, body: bytes | dict[str, Any], message: str
) -> None:
    if isinstance(body, dict):
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], **body}).encode()
    req = urllib.request.Request(tuned.url + "/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=60)
    assert info.value.code == 400
    error = json.loads(info.value.read())["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_other_origins_and_foreign_hosts_are_refused(tuned: Served) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()
    assert _answer(raw(tuned.port, body) or "") == 200
    assert _answer(raw(tuned.port, body, Origin="http://127.0.0.1:1") or "") == 403
    assert _answer(raw(tuned.port, body, **{"Sec-Fetch-Site": "cross-site"}) or "") == 403
    assert _answer(raw(tuned.port, body, Host="evil.example") or "") == 403
    assert _answer(raw(tuned.port, body, **{"Content-Type": "text/plain"}) or "") == 403


def test_a_token_is_the_api_key(eot_model: Path, prompt: str) -> None:
    s = Served(eot_model / "epoch-15", token="k3y")
    try:
        assert _ask(s, prompt, max_tokens=2).choices[0].message.content is not None
        wrong = openai.OpenAI(base_url=s.url + "/v1", api_key="guess", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="x", messages=[{"role": "user", "content": "x"}])
    finally:
        s.stop()


@pytest.fixture(scope="module")
def untrained(eot_model: Path) -> Iterator[Served]:
    """The random-init epoch 0: it rarely says EOT, so it generates for as long as allowed."""
    s = Served(eot_model / "epoch-0", queue=2, timeout=4)
    yield s
    s.stop()


LONG = json.dumps({"messages": [{"role": "user", "content": "Tell me everything."}],
                   "max_tokens": 2000, "temperature": 0}).encode()  # fmt: skip
SHORT = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()


def _until(check: Any, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_generation_stops_when_the_client_hangs_up_and_when_time_runs_out(
    untrained: Served,
) -> None:
    before = untrained.stats
    raw(untrained.port, LONG, close_after=0.5)
    _until(lambda: untrained.stats["client_gone"] == before["client_gone"] + 1)
    _until(lambda: not untrained.model.lock.locked(), 5)  # the model is free again
    assert _answer(raw(untrained.port, SHORT) or "") == 200
    # Each decoding step is held for 50 ms, so however fast the machine, the long answer (up to
    # the window: well over 80 steps) cannot finish in the 4 s a request may run: 504, and the
    # model is free again.
    assert untrained.model.window - 16 > 80
    hold = untrained.model.model.register_forward_hook(lambda *_: time.sleep(0.05))
    try:
        assert _answer(raw(untrained.port, LONG) or "") == 504
    finally:
        hold.remove()
    assert untrained.stats["timed_out"] == before["timed_out"] + 1
    assert not untrained.model.lock.locked()


def test_a_full_queue_answers_503_and_a_burst_of_250_loses_no_connection(
    untrained: Served,
) -> None:
    def one(_: int) -> str:
        try:
            return raw(untrained.port, SHORT) or "none"
        except OSError as e:
            return f"dropped: {e!r}"

    # one long request holds the model; two may wait; the rest of a burst is told to retry
    long = threading.Thread(target=raw, args=(untrained.port, LONG))
    long.start()
    _until(untrained.model.lock.locked, 10)
    with ThreadPoolExecutor(250) as pool:
        answers = Counter(pool.map(one, range(250)))
    long.join()
    codes = Counter({_answer(k): v for k, v in answers.items() if k.startswith("HTTP/")})
    assert sum(codes.values()) == 250, answers  # every connection got an answer
    assert set(codes) <= {200, 503, 504} and codes[503] >= 240, answers
    assert _answer(raw(untrained.port, SHORT) or "") == 200  # and the server is still up
