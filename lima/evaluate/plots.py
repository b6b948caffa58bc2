"""Charts a person reads at a glance: the paper's stacked preference bars (Figures 1 and 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from lima.io import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def preference_bars(summaries: list[dict[str, Any]], out: Path, title: str) -> None:
    """One horizontal bar per comparison: A wins, tie, B wins (and unparsed, if any)."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(summaries) + 1.6), dpi=120)
    parts = [("a", "#4C72B0", "{a} wins"), ("tie", "#BBBBBB", "tie"),
             ("b", "#DD8452", "{b} wins"), ("unparsed", "#ffffff", "unparsed")]  # fmt: skip
    labels = [f"vs {s.get('model_b', 'B')}" for s in summaries]
    for i, s in enumerate(summaries):
        left = 0.0
        for key, color, label in parts:
            width = 100 * float(s.get(key, 0.0))
            if width <= 0:
                continue
            name = label.format(a=s.get("model_a", "A"), b="baseline")
            ax.barh(i, width, left=left, color=color, edgecolor="#555555",
                    label=name if i == 0 else None)  # fmt: skip
            if width >= 6:
                ax.text(left + width / 2, i, f"{width:.0f}%", ha="center", va="center")
            left += width
    ax.set_yticks(range(len(summaries)), labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of {summaries[0].get('n', 0)} prompts" if summaries else "%")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, frameon=False)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
