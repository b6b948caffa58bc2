"""``lima-eval serve``: an OpenAI-compatible ``/v1/chat/completions`` over a checkpoint, for
chatting with the model and for using it as a judge endpoint; the official ``openai`` client
works against it (``base_url="http://127.0.0.1:8000/v1"``).

Messages become the training format through lima's own code (each turn followed by EOT; a
system message, which LIMA never trained on, is put before the first user turn; ``content``
may be a string or a list of text parts). Sampling defaults are the paper's; a request's
``temperature`` (0: greedy), ``top_p``, ``max_completion_tokens`` (or ``max_tokens``), ``n``,
``stop`` and ``seed`` override them. Without a seed every call draws a fresh sample; with one
the same request gives the same answer. ``stream: true`` sends server-sent events (a chunk per
step, then ``data: [DONE]``); ``usage`` counts prompt, completion and total tokens.

It stays up: every field is checked (400 with a message naming it), the prompt must fit the
model's window and generation stops at the window's end; one request generates at a time
while at most ``queue`` more wait (503 beyond that); a request that outlives ``timeout``
seconds, queueing included, is stopped (504); generation stops as soon as the client hangs
up. ``lima.web`` refuses other origins and foreign ``Host`` names; ``--token`` makes the
token the API key (``Authorization: Bearer``), which binding beyond loopback requires.
"""

from __future__ import annotations

import functools
import json
import math
import secrets
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from lima.train.recipe import Generation
from lima.web import JsonHandler, LocalServer, require_token

MAX_N = 16
MAX_STOP = 4
MAX_BODY = 8 * 2**20


class BadRequest(ValueError):
    """A request the server will not run; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(f"{where}.content[{k}]: only text parts are supported",
                                 "messages")  # fmt: skip
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{where}.content[{k}].text must be a string", "messages")
            parts.append(part["text"])
        return "\n".join(parts)
    raise BadRequest(f"{where}.content must be a string or a list of text parts", "messages")


def messages_to_turns(messages: Any) -> list[str]:
    """OpenAI messages as lima's turns (user first, alternating, ending with the user's)."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    turns: list[str] = []
    system = ""
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object", "messages")
        role = m.get("role")
        content = _text(m.get("content"), where)
        if role in ("system", "developer"):
            system = content
        elif role == "user":
            if turns and len(turns) % 2 == 1:
                raise BadRequest("two user messages in a row", "messages")
            turns.append(f"{system}\n\n{content}" if system and not turns else content)
        elif role == "assistant":
            if len(turns) % 2 == 0:
                raise BadRequest("an assistant message must follow a user message", "messages")
            turns.append(content)
        else:
            raise BadRequest(f"{where}: unknown role {role!r}", "messages")
    if len(turns) % 2 == 0:
        raise BadRequest("the last message must be the user's", "messages")
    return turns


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float,
            lo_open: bool = False) -> float:  # fmt: skip
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number", name)
    if value > hi or value < lo or (lo_open and value == lo):
        left = "(" if lo_open else "["
        raise BadRequest(f"{name} must be in {left}{lo:g}, {hi:g}], not {value:g}", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer", name)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo:,} and {hi:,}, not {value:,}", name)
    return value


@dataclass
class Request:
    """A validated chat-completion request."""

    turns: list[str]
    model: str | None
    temperature: float
    top_p: float
    repetition_penalty: float
    max_tokens: int | None
    n: int
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool


def parse_request(body: Any, gen: Generation, window: int) -> Request:
    """Checks every field of a chat-completion body (``BadRequest`` naming the first wrong)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    turns = messages_to_turns(body.get("messages"))
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", "model")
    limits = {}
    for name in ("max_completion_tokens", "max_tokens"):
        limits[name] = _integer(body, name, 1, window)
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = list(stop)
    else:
        raise BadRequest("stop must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOP or any(not s or len(s) > 256 for s in stops):
        raise BadRequest(f"stop takes at most {MAX_STOP} strings of 1 to 256 characters", "stop")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise BadRequest("stream_options must be an object with a boolean include_usage",
                         "stream_options")  # fmt: skip
    for name in ("logprobs", "tools", "functions", "tool_choice", "logit_bias"):
        if body.get(name) not in (None, False, [], {}, "none"):
            raise BadRequest(f"{name} is not supported by this server", name)
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise BadRequest("only response_format {'type': 'text'} is supported", "response_format")
    return Request(
        turns=turns,
        model=model,
        temperature=_number(body, "temperature", gen.temperature, 0, 2),
        top_p=_number(body, "top_p", gen.top_p, 0, 1, lo_open=True),
        repetition_penalty=_number(body, "repetition_penalty", gen.repetition_penalty, 1, 10),
        max_tokens=limits["max_completion_tokens"] or limits["max_tokens"],
        n=_integer(body, "n", 1, MAX_N) or 1,
        seed=_integer(body, "seed", -(2**63), 2**63 - 1),
        stop=stops,
        stream=bool(stream),
        include_usage=bool(options.get("include_usage", False)),
    )


def _held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` may still turn into a stop string (or an
    unfinished UTF-8 sequence), so a stream must not send them yet."""
    keep = 1 if text.endswith("\ufffd") else 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return keep


class Cancelled(Exception):
    """Generation stopped before the end: the client went away or the time ran out."""


@dataclass
class Watch:
    """Follows a generation step by step: decodes each row, ends rows at EOT or a stop
    string, hands new text to ``emit`` (streaming), and stops everything when ``cancelled``
    says why. Called by transformers' ``generate`` as a stopping criterion."""

    tok: Any
    width: int
    eot_id: int
    n: int
    stops: list[str]
    cancelled: Callable[[], str | None]
    emit: Callable[[int, str], None] | None = None
    texts: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    finish: list[str | None] = field(default_factory=list)
    ids: list[list[int] | None] = field(default_factory=list)
    abort: str | None = None

    def __post_init__(self) -> None:
        self.ids = [None] * self.n
        self.texts = [""] * self.n
        self.sent = [0] * self.n
        self.tokens = [0] * self.n
        self.finish = [None] * self.n

    def step(self, generated: list[list[int]]) -> list[bool]:
        # without stop strings or a stream, nothing needs the text before the end
        follow = bool(self.stops) or self.emit is not None
        for row, ids in enumerate(generated):
            if self.finish[row] is not None:
                continue
            self.tokens[row] = len(ids)
            ended = bool(ids) and ids[-1] == self.eot_id
            if not follow:
                self.ids[row] = ids
                if ended:
                    self.finish[row] = "stop"
                continue
            text = str(self.tok.decode(ids[:-1] if ended else ids, skip_special_tokens=True))
            cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
            if cuts:
                text, ended = text[: min(cuts)], True
            self.texts[row] = text
            if ended:
                self.finish[row] = "stop"
            self._send(row, final=ended)
        self.abort = self.cancelled()
        return [f is not None for f in self.finish]

    def _send(self, row: int, final: bool) -> None:
        if self.emit is None:
            return
        text = self.texts[row]
        upto = len(text) if final else len(text) - _held_back(text, self.stops)
        if upto > self.sent[row]:
            self.emit(row, text[self.sent[row] : upto])
            self.sent[row] = upto

    def close(self) -> None:
        """Rows still open hit the token limit; whatever a stream held back goes out."""
        for row, ids in enumerate(self.ids):
            if ids is not None:
                body = ids[:-1] if ids and ids[-1] == self.eot_id else ids
                self.texts[row] = str(self.tok.decode(body, skip_special_tokens=True))
        for row in range(self.n):
            if self.finish[row] is None:
                self.finish[row] = "length"
                self._send(row, final=True)


class Model:
    """A checkpoint and its tokenizer, generating in the training format."""

    penalty_scope = "generated"  # the repetition penalty never sees the prompt

    def __init__(self, path: Path, device: str | None = None, name: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tok = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self.model = model.to(self.device).eval()
        self.eot_id = int(self.model.generation_config.eos_token_id)
        pad = self.tok.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eot_id)
        self.name = name or path.name
        self.created = int(path.stat().st_mtime)
        window = getattr(self.model.config, "max_position_embeddings", None)
        self.window = int(window or self.tok.model_max_length)
        self.lock = threading.Lock()

    @functools.cached_property
    def chars_per_token(self) -> int:
        """The longest piece of text one token stands for: a prompt longer than the window
        times this cannot fit, and is refused before it is tokenised."""
        pieces = (self.tok.convert_tokens_to_string([t]) for t in self.tok.get_vocab())
        return max((len(p) for p in pieces), default=1)

    def encode(self, turns: list[str]) -> list[int]:
        from lima.train.data import prompt_ids

        return prompt_ids(self.tok, turns, eot_id=self.eot_id, bos_id=self.tok.bos_token_id)

    def generate(
        self, prompts: list[list[str]], gen: Generation, seed: int, greedy: bool = False
    ) -> list[tuple[str, bool, int]]:
        """(text, stopped at EOT, new tokens) per prompt, sampled as one batch."""
        from lima.train.generate import sample

        batch = [self.encode(t) for t in prompts]
        with self.lock:
            outs = sample(self.model, batch, gen=gen, eot_id=self.eot_id, pad_id=self.pad_id,
                          seed=seed, greedy=greedy)  # fmt: skip
        rows = []
        for out in outs:
            stopped = bool(out) and out[-1] == self.eot_id
            text = str(self.tok.decode(out[:-1] if stopped else out, skip_special_tokens=True))
            rows.append((text, stopped, len(out)))
        return rows

    def complete(self, ids: list[int], n: int, gen: Generation, seed: int, greedy: bool,
                 watch: Watch) -> None:  # fmt: skip
        """Samples ``n`` continuations of ``ids`` as one batch, ``watch`` following each step
        (the caller holds ``lock``)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from lima.train.generate import GeneratedTokensRepetitionPenalty

        width = len(ids)

        class Criterion(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = watch.step(input_ids[:, width:].tolist())
                if watch.abort is not None:
                    done = [True] * len(done)
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        batch = torch.tensor([ids] * n, dtype=torch.long, device=self.device)
        device = batch.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.model.generate(
                input_ids=batch,
                attention_mask=torch.ones_like(batch),
                do_sample=not greedy,
                top_p=None if greedy else gen.top_p,
                top_k=None if greedy else 0,
                temperature=None if greedy else gen.temperature,
                repetition_penalty=1.0,
                logits_processor=[GeneratedTokensRepetitionPenalty(gen.repetition_penalty, width)],
                stopping_criteria=StoppingCriteriaList([Criterion()]),
                max_new_tokens=gen.max_new_tokens,
                eos_token_id=self.eot_id,
                pad_token_id=self.pad_id,
                use_cache=True,
            )
        if watch.abort is not None:
            raise Cancelled(watch.abort)
        watch.close()


def client_gone(sock: socket.socket) -> bool:
    """Whether the peer closed the connection (its end reads as EOF)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class Gate:
    """One request generates at a time; at most ``queue`` more wait for it."""

    def __init__(self, model: Model, queue: int) -> None:
        self.model = model
        self.slots = threading.BoundedSemaphore(queue + 1)
        self.waiting = 0
        self.stats = {"served": 0, "busy": 0, "timed_out": 0, "client_gone": 0}
        self.count_lock = threading.Lock()

    def count(self, key: str) -> None:
        with self.count_lock:
            self.stats[key] += 1


def make_handler(model: Model, gen: Generation, gate: Gate, timeout: float) -> type[JsonHandler]:
    class Handler(JsonHandler):
        server_version = "lima-eval"
        kind = "api"

        def error(self, status: int, message: str, kind: str = "invalid_request_error",
                  param: str | None = None, code: str | None = None) -> None:  # fmt: skip
            self.json({"error": {"message": message, "type": kind, "param": param,
                                 "code": code}}, status)  # fmt: skip

        def authorized(self) -> bool:
            if self.bearer_ok():
                return True
            self.error(HTTPStatus.UNAUTHORIZED, "missing or wrong API key (the server's "
                       "--token, as Authorization: Bearer ...)", "authentication_error",
                       code="invalid_api_key")  # fmt: skip
            return False

        def model_card(self) -> dict[str, Any]:
            return {"id": model.name, "object": "model", "created": model.created,
                    "owned_by": "lima", "context_window": model.window}  # fmt: skip

        def get(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/health":
                self.json({"status": "ok", **gate.stats, "waiting": gate.waiting})
                return
            if not self.authorized():
                return
            if path in ("/v1/models", "/models"):
                self.json({"object": "list", "data": [self.model_card()]})
            elif path.startswith(("/v1/models/", "/models/")):
                name = path.split("/models/", 1)[1]
                if name == model.name:
                    self.json(self.model_card())
                else:
                    self.error(HTTPStatus.NOT_FOUND, f"no model {name!r} here; this server "
                               f"serves {model.name!r}", code="model_not_found")  # fmt: skip
            else:
                self.error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

        def post(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self.error(HTTPStatus.NOT_FOUND, f"no route {self.path}")
                return
            if not self.authorized():
                return
            start = time.monotonic()
            try:
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    raise BadRequest("Content-Length is not a number") from None
                if length > MAX_BODY:
                    raise BadRequest(f"the body must be at most {MAX_BODY // 2**20} MiB")
                try:
                    body = self.read_json()
                except (ValueError, RecursionError) as e:
                    raise BadRequest(f"the body is not JSON: {e}") from None
                req = parse_request(body, gen, model.window)
                chars = sum(len(t) for t in req.turns)
                if chars > model.window * model.chars_per_token:
                    raise BadRequest(f"the prompt ({chars:,} characters) cannot fit the model's "
                                     f"window of {model.window:,} tokens", "messages",
                                     "context_length_exceeded")  # fmt: skip
                ids = model.encode(req.turns)
                if len(ids) >= model.window:
                    raise BadRequest(f"the prompt is {len(ids):,} tokens; the model's window is "
                                     f"{model.window:,}", "messages",
                                     "context_length_exceeded")  # fmt: skip
            except BadRequest as e:
                self.error(HTTPStatus.BAD_REQUEST, str(e), param=e.param, code=e.code)
                return
            self.run(req, ids, start)

        def run(self, req: Request, ids: list[int], start: float) -> None:
            if not gate.slots.acquire(blocking=False):
                gate.count("busy")
                self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
                body = json.dumps(
                    {
                        "error": {
                            "message": "the server is busy (its queue is full); try again shortly",
                            "type": "server_busy",
                        }
                    }
                ).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(body)
                return
            try:
                with gate.count_lock:
                    gate.waiting += 1
                try:
                    got = self.wait_turn(start)
                finally:
                    with gate.count_lock:
                        gate.waiting -= 1
                if got:
                    try:
                        self.generate(req, ids, start)
                    finally:
                        model.lock.release()
            finally:
                gate.slots.release()

        def wait_turn(self, start: float) -> bool:
            while not model.lock.acquire(timeout=0.2):
                if client_gone(self.connection):
                    gate.count("client_gone")
                    return False
                if time.monotonic() - start > timeout:
                    gate.count("timed_out")
                    self.error(HTTPStatus.GATEWAY_TIMEOUT, f"waited past the request timeout "
                               f"of {timeout:g} s in the queue", "timeout")  # fmt: skip
                    return False
            return True

        def generate(self, req: Request, ids: list[int], start: float) -> None:
            room = model.window - len(ids)
            wanted = req.max_tokens if req.max_tokens is not None else gen.max_new_tokens
            g = gen.model_copy(update={
                "temperature": max(req.temperature, 1e-5),
                "top_p": req.top_p,
                "repetition_penalty": req.repetition_penalty,
                "max_new_tokens": min(wanted, room),
            })  # fmt: skip
            seed = req.seed if req.seed is not None else secrets.randbits(63)
            meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                    "model": req.model or model.name}  # fmt: skip
            gone = threading.Event()

            def cancelled() -> str | None:
                if gone.is_set() or client_gone(self.connection):
                    return "client_gone"
                if time.monotonic() - start > timeout:
                    return "timed_out"
                return None

            emit = self.stream_to(meta, gone) if req.stream else None
            watch = Watch(model.tok, len(ids), model.eot_id, req.n, req.stop, cancelled, emit)
            if req.stream:
                self.open_stream(meta, req.n, gone)
            try:
                model.complete(ids, req.n, g, seed, req.temperature == 0, watch)
            except Cancelled as e:
                gate.count(str(e))
                if str(e) == "timed_out":
                    message = f"generation ran past the request timeout of {timeout:g} s"
                    if req.stream:
                        self.event({"error": {"message": message, "type": "timeout"}}, gone)
                    else:
                        self.error(HTTPStatus.GATEWAY_TIMEOUT, message, "timeout")
                return
            gate.count("served")
            usage = {"prompt_tokens": len(ids), "completion_tokens": sum(watch.tokens),
                     "total_tokens": len(ids) + sum(watch.tokens)}  # fmt: skip
            if req.stream:
                for i in range(req.n):
                    self.chunk(meta, gone, i, {}, watch.finish[i])
                if req.include_usage:
                    self.event({**meta, "object": "chat.completion.chunk", "choices": [],
                                "usage": usage}, gone)  # fmt: skip
                self.write_raw(b"data: [DONE]\n\n", gone)
                return
            choices = [
                {"index": i, "message": {"role": "assistant", "content": watch.texts[i]},
                 "finish_reason": watch.finish[i], "logprobs": None}
                for i in range(req.n)
            ]  # fmt: skip
            self.json({**meta, "object": "chat.completion", "choices": choices, "usage": usage})

        # -- server-sent events --------------------------------------------------------------

        def open_stream(self, meta: dict[str, Any], n: int, gone: threading.Event) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            for i in range(n):
                self.chunk(meta, gone, i, {"role": "assistant", "content": ""})

        def stream_to(
            self, meta: dict[str, Any], gone: threading.Event
        ) -> Callable[[int, str], None]:
            def emit(row: int, text: str) -> None:
                self.chunk(meta, gone, row, {"content": text})

            return emit

        def chunk(self, meta: dict[str, Any], gone: threading.Event, index: int,
                  delta: dict[str, Any], finish: str | None = None) -> None:  # fmt: skip
            choice = {"index": index, "delta": delta, "finish_reason": finish}
            self.event({**meta, "object": "chat.completion.chunk", "choices": [choice]}, gone)

        def event(self, obj: dict[str, Any], gone: threading.Event) -> None:
            self.write_raw(b"data: " + json.dumps(obj).encode() + b"\n\n", gone)

        def write_raw(self, data: bytes, gone: threading.Event) -> None:
            if gone.is_set():
                return
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:
                gone.set()

    return Handler


def serve(model: Model, host: str, port: int, gen: Generation, *, token: str | None = None,
          queue: int = 16, timeout: float = 600.0) -> LocalServer:  # fmt: skip
    """The server (call ``serve_forever`` on the result); ``server.gate.stats`` counts what
    happened to requests."""
    require_token(host, token)
    gate = Gate(model, queue)
    server = LocalServer(host, port, make_handler(model, gen, gate, timeout), token)
    server.gate = gate  # type: ignore[attr-defined]
    return server
