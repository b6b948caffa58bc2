"""Hand-written examples: train pairs (refusals among them), multi-turn chains, and the dev and
test prompts, in one plain-text format that is easy to write and to diff.

Format (``docs`` in the README; a ``.txt`` file, UTF-8)::

    # comment lines (only before the first example)
    @@ example train sourdough-starter
    @@ user
    My sourdough starter stopped rising. What should I do?
    @@ assistant
    A starter that stops rising is usually cold or underfed. ...

    @@ example train lockpick refusal
    @@ user
    ...
    @@ example train planning-a-trip dialogue
    @@ user
    ... (user and assistant turns alternate; a chain has 4 or more turns)
    @@ example test budget-question
    @@ user
    How do I start a budget?

``split`` is ``train``, ``dev`` or ``test``; an id is lowercase letters, digits and hyphens,
unique across all files; tags are ``refusal`` and ``dialogue``. Dev and test examples are one
user turn. Turn text is kept as written (Markdown), minus blank lines at its edges; a text line
that begins with ``@@`` is written ``\\@@``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from lima import schema
from lima.errors import LimaError

SPLITS = ("train", "dev", "test")
TAGS = ("refusal", "dialogue")
_ID = re.compile(r"[a-z0-9][a-z0-9-]*\Z")


class AuthoredFormatError(LimaError):
    """Every problem found in the files, one ``file:line: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        n = len(problems)
        super().__init__(
            f"{n} problem{'s' if n != 1 else ''} in authored examples:\n" + "\n".join(problems)
        )


@dataclass
class Authored:
    split: str
    id: str
    tags: list[str]
    turns: list[str]
    roles: list[str]
    file: str
    line: int
    turn_lines: list[int] = field(default_factory=list)


def _finish(ex: Authored | None, text: list[str], out: list[Authored]) -> None:
    if ex is None:
        return
    if ex.roles and len(ex.turns) < len(ex.roles):
        ex.turns.append("\n".join(text).strip("\n"))
    out.append(ex)


def parse_file(path: Path, seen: dict[str, str] | None = None) -> tuple[list[Authored], list[str]]:
    """Examples and problems (``file:line: message``) of one file."""
    seen = {} if seen is None else seen
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        return [], [f"{path}: byte {e.start}: not UTF-8"]
    out: list[Authored] = []
    ex: Authored | None = None
    text: list[str] = []
    for n, line in enumerate(lines, start=1):
        where = f"{path}:{n}"
        if line.startswith("@@"):
            words = line[2:].split()
            kind = words[0] if words else ""
            if kind == "example":
                _finish(ex, text, out)
                ex, text = None, []
                if len(words) < 3:
                    problems.append(f"{where}: want '@@ example SPLIT ID [TAG ...]'")
                    continue
                split, ident, tags = words[1], words[2], words[3:]
                if split not in SPLITS:
                    problems.append(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
                if not _ID.match(ident):
                    problems.append(f"{where}: id {ident!r} must be lowercase letters, digits, '-'")
                if ident in seen:
                    problems.append(f"{where}: id {ident!r} already used at {seen[ident]}")
                seen.setdefault(ident, where)
                for t in tags:
                    if t not in TAGS:
                        problems.append(f"{where}: unknown tag {t!r} (known: {', '.join(TAGS)})")
                ex = Authored(split, ident, tags, [], [], str(path), n)
            elif kind in ("user", "assistant") and len(words) == 1:
                if ex is None:
                    problems.append(f"{where}: '@@ {kind}' before any '@@ example'")
                    continue
                if ex.roles and len(ex.turns) < len(ex.roles):
                    ex.turns.append("\n".join(text).strip("\n"))
                text = []
                ex.roles.append(kind)
                ex.turn_lines.append(n)
            else:
                problems.append(
                    f"{where}: unknown directive {line.strip()!r} "
                    "(want '@@ example', '@@ user' or '@@ assistant'; escape text as '\\@@')"
                )
            continue
        if ex is None:
            if line.strip() and not line.startswith("#"):
                problems.append(f"{where}: text before the first '@@ example'")
            continue
        if not ex.roles:
            if line.strip():
                problems.append(f"{where}: text before the first '@@ user' of example {ex.id!r}")
            continue
        text.append(line[1:] if line.startswith("\\@@") else line)
    _finish(ex, text, out)
    for item in out:
        problems.extend(_check(item))
    return out, problems


def _check(e: Authored) -> list[str]:
    where = f"{e.file}:{e.line}"
    p: list[str] = []
    if not e.roles:
        return [f"{where}: example {e.id!r} has no turns"]
    for i, role in enumerate(e.roles):
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            p.append(f"{e.file}:{e.turn_lines[i]}: turn {i + 1} of {e.id!r} is {role}, want {want}")
            break
    for i, t in enumerate(e.turns):
        if not t.strip():
            p.append(f"{e.file}:{e.turn_lines[i]}: turn {i + 1} of {e.id!r} is empty")
    if e.split == "train":
        if len(e.roles) < 2 or e.roles[-1] != "assistant":
            p.append(f"{where}: train example {e.id!r} must end with an assistant turn")
        if "dialogue" in e.tags and len(e.roles) < 4:
            p.append(f"{where}: dialogue {e.id!r} needs at least 4 turns")
        if "dialogue" not in e.tags and len(e.roles) > 2:
            p.append(f"{where}: {e.id!r} has {len(e.roles)} turns; tag it 'dialogue'")
    else:
        if e.roles != ["user"]:
            p.append(f"{where}: {e.split} example {e.id!r} must be exactly one user turn")
        if e.tags:
            p.append(f"{where}: tags are for train examples only")
    return p


def parse(paths: list[Path]) -> list[Authored]:
    """Every example of every file (folders: their ``*.txt``), or raise with every problem."""
    seen: dict[str, str] = {}
    examples: list[Authored] = []
    problems: list[str] = []
    for path in paths:
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not files:
            problems.append(f"{path}: a folder with no *.txt example files")
        for f in files:
            ex, pr = parse_file(f, seen)
            examples.extend(ex)
            problems.extend(pr)
    if problems:
        raise AuthoredFormatError(problems)
    return examples


# Markup a response should not open with: the paper's authored answers start by acknowledging
# the question in a sentence, then answer.
_MARKUP_START = re.compile(r"\s*(?:[-*+]\s|\d+[.)]\s|#|```|\||>)")
_SENTENCE = re.compile(r"(.+?(?:[.!?:](?=\s|$)|\n|$))", re.S)


def style_problems(ex: Authored, max_words: int = 30) -> list[str]:
    """Assistant turns that do not open with a short acknowledgement sentence."""
    out = []
    for i, (role, turn) in enumerate(zip(ex.roles, ex.turns, strict=True)):
        if role != "assistant":
            continue
        where = f"{ex.file}:{ex.turn_lines[i]}"
        if _MARKUP_START.match(turn):
            out.append(f"{where}: {ex.id} turn {i + 1} opens with markup, not a sentence")
            continue
        m = _SENTENCE.match(turn.strip())
        first = m.group(1) if m else turn
        words = len(first.split())
        if words > max_words:
            out.append(f"{where}: {ex.id} turn {i + 1} opens with a {words}-word sentence")
    return out


def style_report(examples: list[Authored], max_words: int = 30) -> str:
    problems = [p for e in examples if e.split == "train" for p in style_problems(e, max_words)]
    n = sum(1 for e in examples if e.split == "train")
    head = (
        "# Style report: authored responses\n\n"
        "Responses should open with a short acknowledgement of the question (one sentence of at "
        f"most {max_words} words, not a list, heading, table or code), then answer. "
        "This is a report, not a gate.\n\n"
        f"{len(problems)} of the turns in {n} train examples do not.\n"
    )
    return head + ("\n" + "\n".join(f"- {p}" for p in problems) + "\n" if problems else "")


def to_examples(examples: list[Authored], license: str) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for e in examples:
        source = "dialogue" if "dialogue" in e.tags else "authored"
        rows.append(
            {
                "id": f"authored/{e.id}",
                "source": source,
                "domain": e.split,
                "group": None,
                "conversations": e.turns,
                "meta": {"tags": e.tags, "file": Path(e.file).name, "line": e.line},
                "license": license,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={**dict(schema.SCHEMA), "meta": pl.Struct(
            {"tags": pl.List(pl.String), "file": pl.String, "line": pl.Int64})},
    )  # fmt: skip
    return schema.conform(frame)
