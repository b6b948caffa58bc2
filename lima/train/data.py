"""The paper's conversation format: every turn, user and assistant, ends with an end-of-turn
token (EOT); the loss covers assistant tokens and their EOT only (or every token).

Sequences longer than ``max_length`` are cut at the end. When the prompt alone would fill the
window, the prompt is cut instead (its head kept), so no example is left without a supervised
token; each example's fate is counted, none is dropped. A turn's text is cut before it is
tokenised to what ``max_length`` tokens can hold (the longest token's characters times
``max_length``, plus a margin), so a 10 MB turn costs what a window does.
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
    #: Row ids whose assistant turn (any of them) is empty or only whitespace.
    empty_responses: list[str] = field(default_factory=list)
    #: Turns cut before tokenising (longer than a window could use).
    turns_cut: int = 0

    @property
    def supervised_tokens(self) -> int:
        return sum(sum(1 for y in e.labels if y != IGNORE) for e in self.examples)


#: Tokens a turn's text is cut past, on top of max_length (the cut must not move the tokens
#: that are kept: only the word at the cut can tokenise differently).
CUT_MARGIN_TOKENS = 64


def longest_token_chars(tok: Any) -> int | None:
    """The most characters one token of ``tok`` stands for (None if it has no vocabulary)."""
    vocab = getattr(tok, "get_vocab", None)
    if vocab is None:
        return None
    tokens = list(vocab())
    texts = tok.convert_tokens_to_string
    return max((len(texts([t])) for t in tokens), default=1) or 1


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
    max_chars: int | None = None,
) -> tuple[Encoded, str]:
    """One conversation as ``input_ids``/``labels`` and what trimming did to it
    (``kept``, ``truncated`` or ``prompt_trimmed``). With ``max_chars``, each turn's text is
    cut to that many characters before it is tokenised."""
    ids: list[int] = [] if bos_id is None else [bos_id]
    labels: list[int] = [IGNORE] * len(ids)
    for i, turn in enumerate(turns):
        if max_chars is not None and len(turn) > max_chars:
            turn = turn[:max_chars]
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
    longest = longest_token_chars(tok)
    max_chars = None if longest is None else (max_length + CUT_MARGIN_TOKENS) * longest
    for rid, turns in rows:
        if max_chars is not None:
            enc.turns_cut += sum(1 for t in turns if len(t) > max_chars)
        if any(not t.strip() for t in turns[1::2]):
            enc.empty_responses.append(rid)
        example, fate = encode_conversation(
            tok,
            turns,
            eot_id=eot_id,
            bos_id=bos_id,
            max_length=max_length,
            loss_on=loss_on,
            min_supervised=min_supervised,
            max_chars=max_chars,
        )
        if all(y == IGNORE for y in example.labels):
            fate = "no_supervised_token"
        enc.examples.append(example)
        enc.counts[fate] += 1
    return enc


def check_encoding(enc: Encoding, path: Path, loss_on: str) -> list[str]:
    """Refuses a training file with nothing to learn; returns the warnings to print."""
    if enc.supervised_tokens == 0:
        what = "every row is a prompt without a response" if loss_on == "assistant" else "empty"
        raise ConfigError(
            f"{path}: no supervised token in {len(enc.examples)} conversation(s) "
            f"(loss_on={loss_on}: {what}); nothing to train on"
        )
    warnings = []
    if enc.empty_responses:
        shown = ", ".join(enc.empty_responses[:5])
        more = f" and {len(enc.empty_responses) - 5} more" if len(enc.empty_responses) > 5 else ""
        warnings.append(
            f"{path}: {len(enc.empty_responses)} conversation(s) with an empty response "
            f"({shown}{more}); each teaches the model to answer with EOT alone"
        )
    if enc.counts.get("no_supervised_token"):
        warnings.append(
            f"{path}: {enc.counts['no_supervised_token']} conversation(s) without a response "
            "carry no loss"
        )
    return warnings


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


#: The key a collator adds for lima's accounting (tokens, padding); the trainer pops it.
LENGTHS = "lima_lengths"


class Collator:
    """Right-pads a micro-batch; padding carries no loss and no attention."""

    padding_free = False

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.pad(batch)
        import torch

        out[LENGTHS] = torch.tensor([len(b["input_ids"]) for b in batch])
        return out

    def pad(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
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


class FlatCollator:
    """Padding-free: the micro-batch's sequences end to end in one row, ``position_ids``
    restarting at 0 for each, so attention stays within a sequence (transformers builds the
    block-diagonal mask, or flash attention's varlen kernel reads the boundaries) and no token is
    padding. Each sequence's first label is masked: it would otherwise be predicted from the
    previous sequence's last token (the padded layout never predicts it either); the model is
    asked for no KV cache, without which transformers reads the boundaries. The examples per
    micro-batch, and so per optimizer step, are exactly those of the padded layout."""

    padding_free = True

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for b in batch:
            n = len(b["input_ids"])
            ids += b["input_ids"]
            labels += [IGNORE, *b["labels"][1:]]
            positions += range(n)
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
            # transformers reads sequence boundaries from position_ids only without a KV cache.
            "use_cache": False,
            LENGTHS: torch.tensor([len(b["input_ids"]) for b in batch]),
        }
