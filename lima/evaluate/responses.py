"""Response files: lima-eval's JSONL (``{"id", "prompt", "response", "model"}``) and AlpacaEval's
JSON lists (``instruction``, ``output``, ``generator``), and pairing two of them by (id, sample),
else by (prompt text, sample). Prompt files: LIMA-format JSONL (``conversations``), lima-eval JSONL
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
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a JSONL or JSON file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start} of the file)") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
        except RecursionError:
            raise ConfigError(f"{path}: JSON nested too deeply") from None
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


@dataclass(frozen=True)
class Pairing:
    """Rows of two response files matched by (id, sample), else by (prompt text, sample);
    every row is in a pair or counted: no partner, or a repeat of an earlier row's key."""

    pairs: list[tuple[Response, Response]]
    by: str  # "id" or "prompt"
    unpaired_a: int
    unpaired_b: int
    repeated_a: int
    repeated_b: int


def match(a: list[Response], b: list[Response]) -> Pairing:
    """Pairs by (id, sample) when both files carry ids, else by (exact prompt text, sample):
    sample k of A meets sample k of B, never every sample of A the same sample of B."""
    by_id = all(r.id for r in a) and all(r.id for r in b)

    def key(r: Response) -> tuple[str, int]:
        return (r.id if by_id else r.prompt, r.sample)

    index: dict[tuple[str, int], Response] = {}
    repeated_b = 0
    for r in b:
        if key(r) in index:
            repeated_b += 1
        else:
            index[key(r)] = r
    seen: set[tuple[str, int]] = set()
    pairs = []
    repeated_a = 0
    for r in a:
        if key(r) in seen:
            repeated_a += 1
            continue
        seen.add(key(r))
        if key(r) in index:
            pairs.append((r, index[key(r)]))
    return Pairing(pairs, "id" if by_id else "prompt", len(a) - repeated_a - len(pairs),
                   len(b) - repeated_b - len(pairs), repeated_a, repeated_b)  # fmt: skip


def pair(a: list[Response], b: list[Response]) -> tuple[list[tuple[Response, Response]], int, int]:
    """``match``'s pairs and how many rows of each side are in none."""
    m = match(a, b)
    return m.pairs, m.unpaired_a + m.repeated_a, m.unpaired_b + m.repeated_b


def alpaca_eval_outputs(
    responses: Path, prompts: Path, generator: str | None = None
) -> tuple[list[dict[str, str]], int]:
    """AlpacaEval's ``model_outputs.json`` rows (``instruction``, ``output``, ``generator``)
    from a ``generate`` output: sample 0 of every prompt, in the prompts file's order. Prompts
    with earlier turns have no AlpacaEval form; they are left out and counted (the second
    value), as are prompts with no response yet."""
    got = {(r.id, r.sample): r for r in read_responses(responses)}
    out, left_out = [], 0
    for pid, turns in read_prompts(prompts):
        r = got.get((pid, 0))
        if r is None or len(turns) > 1:
            left_out += 1
            continue
        out.append({"instruction": turns[0], "output": r.response,
                    "generator": generator or r.model})  # fmt: skip
    return out, left_out
