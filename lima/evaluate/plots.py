"""Charts a person reads at a glance: the paper's stacked preference bars (Figures 1 and 2), its
Fail / Pass / Excellent bars (Figure 3) and its helpfulness ratings with confidence intervals
(Figures 5 and 6). Every chart is written atomically as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from lima.io import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _save(fig: Figure, out: Path) -> None:
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def stacked_bars(
    rows: list[tuple[str, dict[str, Any]]],
    parts: list[tuple[str, str, str]],
    out: Path,
    title: str,
    xlabel: str,
) -> None:
    """One horizontal bar per row, its fractions stacked in the order of ``parts``
    (key, colour, legend); segments of 6% or more carry their percentage."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.8), dpi=120)
    shown: set[str] = set()
    for i, (_, fractions) in enumerate(rows):
        left = 0.0
        for key, color, legend in parts:
            width = 100 * float(fractions.get(key, 0.0))
            if width <= 0:
                continue
            ax.barh(i, width, left=left, color=color, edgecolor="#555555",
                    label=None if legend in shown else legend)  # fmt: skip
            shown.add(legend)
            if width >= 6:
                ax.text(left + width / 2, i, f"{width:.0f}%", ha="center", va="center")
            left += width
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=len(parts), frameon=False)
    _save(fig, out)


def preference_bars(summaries: list[dict[str, Any]], out: Path, title: str) -> list[str]:
    """Figures 1 and 2: one bar per compare run, A wins / tie / B wins (and unparsed, failed);
    each bar is labelled with its own models and number of pairs."""
    models = sorted({str(s.get("model_a", "A")) for s in summaries})
    same_a = len(models) == 1
    first = models[0] if same_a else "model A"
    parts = [("a", "#4C72B0", f"{first} wins"), ("tie", "#BBBBBB", "tie"),
             ("b", "#DD8452", "baseline wins"), ("unparsed", "#ffffff", "unparsed"),
             ("failed", "#EEEEEE", "failed")]  # fmt: skip
    rows = [(_pair_label(s, same_a), s) for s in summaries]
    stacked_bars(rows, parts, out, title, "% of pairs")
    return [label for label, _ in rows]


def _pair_label(s: dict[str, Any], same_a: bool) -> str:
    """``vs B (n=300)`` when every bar has the same model A, else ``A vs B (n=300)``."""
    b = s.get("model_b", "B")
    head = f"vs {b}" if same_a else f"{s.get('model_a', 'A')} vs {b}"
    return f"{head} (n={s.get('n', 0)})"


def absolute_bars(summaries: list[tuple[str, dict[str, Any]]], out: Path, title: str) -> None:
    """Figure 3: Fail / Pass / Excellent per model (or per turn of a conversation)."""
    parts = [("fail", "#C44E52", "Fail"), ("pass", "#DDCC77", "Pass"),
             ("excellent", "#55A868", "Excellent"), ("unparsed", "#ffffff", "unparsed"),
             ("failed", "#EEEEEE", "failed")]  # fmt: skip
    stacked_bars(summaries, parts, out, title, "% of responses")


def rating_chart(
    runs: list[tuple[str, dict[str, Any]]],
    out: Path,
    title: str,
    x: list[float] | None = None,
    xlabel: str = "",
) -> None:
    """Figures 5 and 6: mean helpfulness (1..6) with its 95% interval per run. With ``x`` (say,
    training-set sizes) the runs are a line over a log axis, else bars side by side."""
    means = [float(s["mean"]) if s.get("mean") is not None else float("nan") for _, s in runs]
    lows = [m - s["ci_low"] if s.get("ci_low") is not None else 0.0
            for m, (_, s) in zip(means, runs, strict=True)]  # fmt: skip
    highs = [s["ci_high"] - m if s.get("ci_high") is not None else 0.0
             for m, (_, s) in zip(means, runs, strict=True)]  # fmt: skip
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(runs) + 2), 4), dpi=120)
    if x is not None:
        ax.errorbar(x, means, yerr=[lows, highs], marker="o", capsize=4, color="#4C72B0")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{v:g}" for v in x])
        for xi, m in zip(x, means, strict=True):
            ax.annotate(f"{m:.2f}", (xi, m), textcoords="offset points", xytext=(0, 8),
                        ha="center")  # fmt: skip
        ax.set_xlabel(xlabel)
    else:
        pos = list(range(len(runs)))
        ax.bar(pos, means, yerr=[lows, highs], capsize=5, color="#4C72B0", edgecolor="#333333")
        ax.set_xticks(pos, [label for label, _ in runs], rotation=20, ha="right")
        for p, m in zip(pos, means, strict=True):
            ax.text(p, 1.05, f"{m:.2f}", ha="center", va="bottom", color="white")
        if xlabel:
            ax.set_xlabel(xlabel)
    ax.set_ylim(1, 6)
    ax.set_ylabel("helpfulness (1-6), mean and 95% CI")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, out)
