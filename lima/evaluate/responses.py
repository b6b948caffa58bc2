"""Response files: lima-eval's JSONL (``{"id", "prompt", "response", "model"}``) and AlpacaEval's
JSON lists (``instruction``, ``output``, ``generator``), and pairing two of them by id, else by
the exact prompt text. Prompt files: LIMA-format JSONL (``conversations``), lima-eval JSONL
(``prompt``), or AlpacaEval JSON (``instruction``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.io import read_jsonl


@dataclass(frozen=True)
class Response:
    id: str
    prompt: str
    response: str
    model: str
    sample: int = 0
    context: tuple[str, ...] = ()  # earlier turns of a conversation, user first

    @property
    def key(self) -> str:
        """The row's id, or for files without ids (AlpacaEval) a hash of the prompt, so
        verdicts from a judge and from people on the same prompts line up."""
        if self.id:
            return self.id
        return "prompt-" + hashlib.sha1(self.prompt.encode()).hexdigest()[:12]


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or index, object) of a JSONL file or a JSON list; errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
        return list(enumerate(data, 1))
    return list(read_jsonl(path))


def _str(row: dict[str, Any], keys: tuple[str, ...], path: Path, where: int) -> str:
    for k in keys:
        v = row.get(k)
        if isinstance(v, str):
            return v
    raise ConfigError(f"{path}:{where}: needs a string field, one of {', '.join(keys)}")


def read_responses(path: Path) -> list[Response]:
    out = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{where}: expected an object")
        prompt = _str(row, ("prompt", "instruction"), path, where)
        response = _str(row, ("response", "output"), path, where)
        model = row.get("model") or row.get("generator") or path.stem
        rid = row.get("id")
        context = row.get("context") or []
        if not isinstance(context, list) or not all(isinstance(t, str) for t in context):
            raise ConfigError(f"{path}:{where}: context must be a list of strings")
        sample = row.get("sample", 0)
        if not isinstance(sample, int):
            raise ConfigError(f"{path}:{where}: sample must be an integer")
        out.append(Response(str(rid) if rid is not None else "", prompt, response, str(model),
                            sample, tuple(context)))  # fmt: skip
    if not out:
        raise ConfigError(f"{path}: no responses")
    return out


def read_prompts(path: Path) -> list[tuple[str, list[str]]]:
    """(id, turns) per prompt; a single-turn prompt is ``[text]``."""
    out = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{where}: expected an object")
        turns = row.get("conversations")
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            # A LIMA test row holds the prompt only; a train/dev row ends with the answer.
            turns = turns if len(turns) % 2 == 1 else turns[:-1]
        else:
            turns = [_str(row, ("prompt", "instruction"), path, where)]
        rid = row.get("id")
        out.append((str(rid) if rid is not None else f"{path.stem}-{where}", turns))
    if not out:
        raise ConfigError(f"{path}: no prompts")
    return out


def pair(a: list[Response], b: list[Response]) -> tuple[list[tuple[Response, Response]], int, int]:
    """Pairs by id when both files carry ids, else by exact prompt text. Returns the pairs and
    how many rows of each side found no partner."""
    by_id = all(r.id for r in a) and all(r.id for r in b)
    key = (lambda r: r.id) if by_id else (lambda r: r.prompt)
    index: dict[str, Response] = {}
    for r in b:
        index.setdefault(key(r), r)
    pairs = [(r, index[key(r)]) for r in a if key(r) in index]
    return pairs, len(a) - len(pairs), len(b) - len(pairs)
