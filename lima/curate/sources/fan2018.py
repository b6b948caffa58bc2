"""Turn the WritingPrompts pairs of Fan et al. (2018) into Pushshift-shaped
NDJSON (a submissions file and a comments file), so the real prompts and
stories can exercise the Pushshift path end to end.

The source CSV is tokenised (``[ WP ]``, ````` ``...'' `````, ``do n't``, and the
typographic quotes and apostrophes split off the same way) and carries no votes;
the output undoes the tokenisation and leaves ``score`` out rather than invent
one. Its ``completion`` column is model output and is ignored. Run
``python -m lima.curate.sources.fan2018 CSV OUT_DIR``.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

from lima.io import write_text

_RULES = [
    (re.compile(r"\[\s*([A-Za-z]{2,3})\s*\]"), r"[\1]"),
    (re.compile(r"``\s*"), '"'),
    (re.compile(r"\s*''"), '"'),
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)\b"), r"\1"),
    (re.compile(r" ([.,!?;:%)\]])"), r"\1"),
    (re.compile(r"([(\[$]) "), r"\1"),
    # typographic apostrophes and quotes are split off too ("that _ s", "_ Where", "6 _ 3"):
    # the apostrophe between two letters or digits, the opening quotes before a word and the
    # closing ones after one go back
    (re.compile(r"(\w) \u2019 (\w)"), "\\1\u2019\\2"),
    (re.compile(r"([\u201c\u2018]) "), r"\1"),
    (re.compile(r"(?<=\S) ([\u201d\u2019])(?!\w)"), r"\1"),
    (re.compile(r"< (\w+) >"), r"<\1>"),  # "As < name > enters Hell"
    (re.compile(r"[ \t]+\n"), "\n"),
    (re.compile(r"\n[ \t]+"), "\n"),
    (re.compile(r"[ \t]{2,}"), " "),
]


def detokenize(text: str) -> str:
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text.strip()


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def to_pushshift(
    csv_path: Path, out_dir: Path, subreddit: str = "WritingPrompts"
) -> tuple[Path, Path]:
    csv.field_size_limit(1 << 30)
    subs, comments = [], []
    with csv_path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            n = int(row["row_id"])
            sid = base36(n)
            subs.append(
                {
                    "id": sid,
                    "subreddit": subreddit,
                    "title": detokenize(row["prompt"]),
                    "selftext": "",
                    "author": None,
                }
            )
            comments.append(
                {
                    "id": "c" + sid,
                    "subreddit": subreddit,
                    "link_id": f"t3_{sid}",
                    "parent_id": f"t3_{sid}",
                    "body": detokenize(row["story"]),
                    "author": None,
                }
            )
    sub_path = out_dir / f"{subreddit}_submissions.ndjson"
    com_path = out_dir / f"{subreddit}_comments.ndjson"
    for path, rows in ((sub_path, subs), (com_path, comments)):
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return sub_path, com_path


if __name__ == "__main__":
    for p in to_pushshift(Path(sys.argv[1]), Path(sys.argv[2])):
        print(p)
