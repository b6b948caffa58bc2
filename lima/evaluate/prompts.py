"""Prompt sets for the judge: what it is asked for a pairwise verdict, a 1..6 rating and a
Fail / Pass / Excellent label, the line added when a reply has to be asked again, and what
people on the annotation page are told.

Two sets ship in ``lima/data/prompts/``: ``paper`` (the default: the LIMA paper's Appendix C
question and Appendix D rubric; the file says which parts are reconstructed) and ``lima``
(short one-word-answer prompts). ``--prompts FILE`` reads a TOML file of the same shape, which
may define only the kinds it is used for.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lima.errors import ConfigError
from lima.evaluate.responses import Response

BUILTIN = ("paper", "lima")
KINDS = ("pairwise", "rating", "absolute")

_CONTEXT = ("task", "transcript")
FIELDS = {
    "pairwise": (*_CONTEXT, "answer_a", "answer_b"),
    "rating": (*_CONTEXT, "submission"),
    "absolute": (*_CONTEXT, "submission"),
}
CHOICES = {"pairwise": ("1", "2", "neither"), "absolute": ("fail", "pass", "excellent")}
_FIELD = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Prompt:
    """One kind of request: an optional system message, the user message with ``{field}``
    slots, a one-line reminder for re-asks, and the most tokens the judge may reply with."""

    kind: str
    user: str
    system: str = ""
    reminder: str = ""
    max_tokens: int = 512
    guidelines: tuple[str, ...] = ()
    choices: tuple[tuple[str, str], ...] = ()

    def fill(self, **values: str) -> str:
        """The user message with each slot replaced once (text inside the values is never
        read as a slot)."""
        return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), self.user)

    def messages(self, **values: str) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        return [*out, {"role": "user", "content": self.fill(**values)}]


@dataclass(frozen=True)
class PromptSet:
    name: str
    source: str
    prompts: dict[str, Prompt]

    def get(self, kind: str) -> Prompt:
        if kind not in self.prompts:
            raise ConfigError(f"{self.source}: has no [{kind}] prompt")
        return self.prompts[kind]

    def guidelines(self, kind: str) -> dict[str, Any] | None:
        """What people are told for ``kind`` (pairwise or absolute): paragraphs and the meaning
        of each choice; ``None`` when the set says nothing for it."""
        p = self.prompts.get(kind)
        if p is None or not (p.guidelines or p.choices):
            return None
        return {"prompts": self.name, "text": list(p.guidelines), "choices": dict(p.choices)}


def load(spec: str) -> PromptSet:
    """``paper``, ``lima`` or the path of a TOML prompt file."""
    if spec in BUILTIN:
        ref = resources.files("lima.data").joinpath(f"prompts/{spec}.toml")
        return parse(ref.read_text(encoding="utf-8"), f"prompts/{spec}.toml")
    path = Path(spec)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ConfigError(f"--prompts {spec}: {what} (give paper, lima or a TOML file)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start})") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> PromptSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: TOML nested too deeply") from None
    unknown = set(data) - {"name", *KINDS}
    if unknown:
        raise ConfigError(f"{source}: unknown table or key {sorted(unknown)[0]!r}")
    prompts = {k: _prompt(k, data[k], source) for k in KINDS if k in data}
    if not prompts:
        raise ConfigError(f"{source}: defines none of [pairwise], [rating], [absolute]")
    return PromptSet(str(data.get("name", Path(source).stem)), source, prompts)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    v = table.get(key, "")
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return v.strip()


def _prompt(kind: str, table: Any, source: str) -> Prompt:
    where = f"{source}: [{kind}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    allowed = {"user", "system", "reminder", "max_tokens", "guidelines", "choices"}
    if set(table) - allowed:
        raise ConfigError(f"{where}: unknown key {sorted(set(table) - allowed)[0]!r}")
    user = _text(table, "user", where)
    if not user:
        raise ConfigError(f"{where}: needs a 'user' message")
    slots = set(_FIELD.findall(user))
    bad = slots - set(FIELDS[kind])
    if bad:
        raise ConfigError(f"{where}: unknown field {{{sorted(bad)[0]}}} "
                          f"(known: {', '.join('{' + f + '}' for f in FIELDS[kind])})")  # fmt: skip
    missing = [f"{{{f}}}" for f in FIELDS[kind] if f not in _CONTEXT and f not in slots]
    if not slots & set(_CONTEXT):
        missing.append("{task} or {transcript}")
    if missing:
        raise ConfigError(f"{where}: the user message needs {missing[0]}")
    reminder = _text(table, "reminder", where)
    if "\n" in reminder:
        raise ConfigError(f"{where}.reminder: must be one line")
    max_tokens = table.get("max_tokens", 512)
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not (1 <= max_tokens <= 32768)
    ):
        raise ConfigError(f"{where}.max_tokens: must be an integer from 1 to 32768")
    guidelines = table.get("guidelines", [])
    if not isinstance(guidelines, list) or not all(isinstance(g, str) for g in guidelines):
        raise ConfigError(f"{where}.guidelines: must be a list of strings")
    choices = table.get("choices", {})
    if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
        raise ConfigError(f"{where}.choices: must be a table of strings")
    if choices and set(choices) != set(CHOICES.get(kind, ())):
        raise ConfigError(f"{where}.choices: needs exactly {', '.join(CHOICES.get(kind, ()))}")
    ordered = tuple((c, choices[c]) for c in CHOICES.get(kind, ()) if c in choices)
    return Prompt(kind, user, _text(table, "system", where), reminder, max_tokens,
                  tuple(guidelines), ordered)  # fmt: skip


def transcript(r: Response) -> str:
    """Every turn labelled, the user's last message at the end."""
    parts = [f"[{'User' if i % 2 == 0 else 'Assistant'}]\n{t}" for i, t in enumerate(r.context)]
    return "\n\n".join([*parts, f"[User]\n{r.prompt}"])


def task(r: Response) -> str:
    """The user's message alone, or after the conversation's earlier turns."""
    return transcript(r) if r.context else r.prompt
