"""The paper's conversation format: every turn, user and assistant, ends with an end-of-turn
token (EOT); the loss covers assistant tokens and their EOT only (or every token).

Sequences longer than ``max_length`` are cut at the end. When the prompt alone would fill the
window, the prompt is cut instead (its head kept), so no example is left without a supervised
token; each example's fate is counted, none is dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lima.errors import ConfigError
from lima.io import read_jsonl

IGNORE = -100


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass
class Encoding:
    examples: list[Encoded]
    counts: Counter[str] = field(default_factory=Counter)


def read_conversations(path: Path) -> list[tuple[str, list[str]]]:
    """``(id, turns)`` per line of a LIMA-format JSONL file; errors name file and line."""
    rows: list[tuple[str, list[str]]] = []
    for lineno, row in read_jsonl(path):
        turns = row.get("conversations") if isinstance(row, dict) else None
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise ConfigError(
                f'{path}:{lineno}: "conversations" must be a non-empty list of strings'
            )
        rows.append((str(row.get("id", f"line-{lineno}")), turns))
    if not rows:
        raise ConfigError(f"{path}: no conversations")
    return rows


def encode_conversation(
    tok: Tokenizer,
    turns: list[str],
    *,
    eot_id: int,
    bos_id: int | None,
    max_length: int,
    loss_on: str = "assistant",
    min_supervised: int = 64,
) -> tuple[Encoded, str]:
    """One conversation as ``input_ids``/``labels`` and what trimming did to it
    (``kept``, ``truncated`` or ``prompt_trimmed``)."""
    ids: list[int] = [] if bos_id is None else [bos_id]
    labels: list[int] = [IGNORE] * len(ids)
    for i, turn in enumerate(turns):
        piece = [*tok.encode(turn, add_special_tokens=False), eot_id]
        ids += piece
        supervised = loss_on == "all" or i % 2 == 1
        labels += piece if supervised else [IGNORE] * len(piece)
    if len(ids) <= max_length:
        return Encoded(ids, labels), "kept"
    fate = "truncated"
    first = next((j for j, y in enumerate(labels) if y != IGNORE), len(labels))
    total = sum(1 for y in labels if y != IGNORE)
    want = min(min_supervised, total)
    if first + want > max_length:
        # The prompt fills the window: keep its head and its EOT, then the response.
        keep = max_length - want - 1
        ids = [*ids[:keep], eot_id, *ids[first:]]
        labels = [*labels[:keep], IGNORE, *labels[first:]]
        fate = "prompt_trimmed"
    return Encoded(ids[:max_length], labels[:max_length]), fate


def encode_all(
    tok: Tokenizer,
    rows: list[tuple[str, list[str]]],
    *,
    eot_id: int,
    bos_id: int | None,
    max_length: int,
    loss_on: str,
    min_supervised: int,
) -> Encoding:
    enc = Encoding([])
    for _, turns in rows:
        example, fate = encode_conversation(
            tok,
            turns,
            eot_id=eot_id,
            bos_id=bos_id,
            max_length=max_length,
            loss_on=loss_on,
            min_supervised=min_supervised,
        )
        enc.examples.append(example)
        enc.counts[fate] += 1
    return enc


def prompt_ids(tok: Tokenizer, turns: list[str], *, eot_id: int, bos_id: int | None) -> list[int]:
    """The tokens a model continues from to answer the last user turn: every turn up to and
    including the last one at an even index (user), each followed by EOT."""
    upto = len(turns) if len(turns) % 2 == 1 else len(turns) - 1
    ids: list[int] = [] if bos_id is None else [bos_id]
    for turn in turns[:upto]:
        ids += [*tok.encode(turn, add_special_tokens=False), eot_id]
    return ids


def chat_template(eot: str, bos: str | None) -> str:
    """A Jinja chat template that renders the EOT format as training tokenises it, for tools
    that prompt through ``apply_chat_template`` (vLLM, TGI, TRL, lm-eval): the tokenizer's BOS
    when training put one first, then each turn's text and EOT. Turns alternate user and
    assistant, starting with the user (the format has no system turn); the generation prompt
    adds nothing, since an answer begins right after the user's EOT. ``content`` may be a string
    or a list of text parts."""
    eot_literal = json.dumps(eot)
    return (
        ("{{ bos_token }}" if bos is not None else "") + "{% for message in messages %}"
        "{% if message['role'] == 'system' %}"
        "{{ raise_exception('the LIMA format has no system turn') }}"
        "{% endif %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('turns must alternate user, assistant, starting with user') }}"
        "{% endif %}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %}"
        "{% endif %}"
        "{{ " + eot_literal + " }}"
        "{% endfor %}"
    )


class Collator:
    """Right-pads a micro-batch; padding carries no loss and no attention."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
