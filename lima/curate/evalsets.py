"""Ready-made test sets: the paper's own 300 test prompts.

just-eval's ``example_data.json`` is a JSON list of records with ``instruction``,
``source_id`` and ``dataset``; the LIMA test prompts are those with ``dataset == "lima"``
(``source_id`` ``lima-0`` ... ``lima-299``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lima.errors import LimaError


def lima_test_prompts(path: Path) -> list[dict[str, Any]]:
    """The LIMA test prompts as one-turn test rows, in ``lima-N`` order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LimaError(f"{path}: line {e.lineno}, column {e.colno}: {e.msg}") from e
    if not isinstance(data, list):
        raise LimaError(f"{path}: byte 0: expected a JSON list of records")
    rows = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or rec.get("dataset") != "lima":
            continue
        sid = str(rec.get("source_id", ""))
        prompt = rec.get("instruction")
        if not sid.startswith("lima-") or not isinstance(prompt, str):
            raise LimaError(
                f"{path}: record {i}: a 'lima' record needs source_id lima-N and an instruction"
            )
        rows.append(
            {
                "id": f"lima-test/{sid}",
                "conversations": [prompt],
                "source": "lima_test",
                "domain": "lima",
                "group": None,
                "license": None,
                "meta": {"post_id": sid, "category": rec.get("category")},
            }
        )
    rows.sort(key=lambda r: int(str(r["id"]).removeprefix("lima-test/lima-")))
    if not rows:
        raise LimaError(f"{path}: no record with dataset == 'lima'")
    return rows
