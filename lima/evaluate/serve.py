"""``lima-eval serve``: an OpenAI-compatible ``/v1/chat/completions`` over a checkpoint, for
chatting with the model and for using it as a judge endpoint.

Messages become the training format (each turn followed by EOT; a system message, which LIMA
never trained on, is put before the first user turn). Sampling defaults are the paper's and a
request's ``temperature``, ``top_p``, ``max_tokens`` and ``seed`` override them; temperature 0
means greedy decoding. Requests are served one at a time by one model.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lima.train.recipe import Generation
from lima.web import JsonHandler


def messages_to_turns(messages: list[dict[str, Any]]) -> list[str]:
    turns: list[str] = []
    system = ""
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if not isinstance(content, str):
            raise ValueError("each message needs a string content")
        if role == "system":
            system = content
        elif role == "user":
            if turns and len(turns) % 2 == 1:
                raise ValueError("two user messages in a row")
            turns.append(f"{system}\n\n{content}" if system and not turns else content)
        elif role == "assistant":
            if len(turns) % 2 == 0:
                raise ValueError("an assistant message must follow a user message")
            turns.append(content)
        else:
            raise ValueError(f"unknown role {role!r}")
    if len(turns) % 2 == 0:
        raise ValueError("the last message must be the user's")
    return turns


class Model:
    """A checkpoint and its tokenizer, generating in the training format."""

    penalty_scope = "generated"  # the repetition penalty never sees the prompt

    def __init__(self, path: Path, device: str | None = None) -> None:
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
        self.name = path.name
        self.lock = threading.Lock()

    def generate(
        self, prompts: list[list[str]], gen: Generation, seed: int, greedy: bool = False
    ) -> list[tuple[str, bool, int]]:
        """(text, stopped at EOT, new tokens) per prompt, sampled as one batch."""
        from lima.train.data import prompt_ids
        from lima.train.generate import sample

        batch = [prompt_ids(self.tok, t, eot_id=self.eot_id, bos_id=self.tok.bos_token_id)
                 for t in prompts]  # fmt: skip
        with self.lock:
            outs = sample(self.model, batch, gen=gen, eot_id=self.eot_id, pad_id=self.pad_id,
                          seed=seed, greedy=greedy)  # fmt: skip
        rows = []
        for out in outs:
            stopped = bool(out) and out[-1] == self.eot_id
            text = str(self.tok.decode(out[:-1] if stopped else out, skip_special_tokens=True))
            rows.append((text, stopped, len(out)))
        return rows


def make_handler(model: Model, gen: Generation) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        server_version = "lima-eval"

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self.json({"object": "list", "data": [
                    {"id": model.name, "object": "model", "owned_by": "lima"}]}, 200)  # fmt: skip
            elif self.path == "/health":
                self.json({"status": "ok"}, 200)
            else:
                self.json({"error": {"message": f"no route {self.path}"}}, 404)

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self.json({"error": {"message": f"no route {self.path}"}}, 404)
                return
            try:
                req = self.read_json()
                turns = messages_to_turns(req.get("messages") or [])
                temperature = float(req.get("temperature", gen.temperature))
                g = gen.model_copy(update={
                    "temperature": max(temperature, 1e-5),
                    "top_p": float(req.get("top_p", gen.top_p)),
                    "max_new_tokens": int(req.get("max_tokens") or gen.max_new_tokens),
                })  # fmt: skip
                n = int(req.get("n", 1))
                seed = int(req.get("seed", 0))
            except (ValueError, TypeError, json.JSONDecodeError) as e:
                self.json({"error": {"message": str(e), "type": "invalid_request_error"}}, 400)
                return
            rows = model.generate([turns] * n, g, seed, greedy=temperature == 0)
            choices = [
                {"index": i, "message": {"role": "assistant", "content": text},
                 "finish_reason": "stop" if stopped else "length"}
                for i, (text, stopped, _) in enumerate(rows)
            ]  # fmt: skip
            self.json({
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.get("model") or model.name,
                "choices": choices,
                "usage": {"completion_tokens": sum(k for _, _, k in rows)},
            }, 200)  # fmt: skip

    return Handler


def serve(model: Model, host: str, port: int, gen: Generation) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(model, gen))
