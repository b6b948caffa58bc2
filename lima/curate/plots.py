"""The funnel chart: for every source, how many records were read, rejected by reason,
offered as candidates, and selected. One PNG a person can take in at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lima.io import atomic_write

if TYPE_CHECKING:
    from lima.curate.select import GroupReport


def funnel_stages(
    funnel: dict[str, Any],
    selection: dict[str, GroupReport],
    subreddits: dict[str, str] | None = None,
) -> list[tuple[str, list[tuple[str, int]]]]:
    """(source, [(stage, count), ...]) in the order the chart draws them; the quota of each
    source is a stage of its own, drawn beside what was selected. ``subreddits`` names the
    subreddits actually read (the panels' titles)."""
    subs = {"writingprompts": "WritingPrompts", "askreddit": "AskReddit", **(subreddits or {})}
    lim = funnel.get("limits", {})

    def within(*pools: str) -> int:
        return sum(lim.get(p, {}).get("turn_too_long", 0) for p in pools)

    se = funnel["stackexchange"]["total"]
    wp = funnel["reddit/writingprompts"]
    ask = funnel["reddit/askreddit"]
    wh = funnel["wikihow"]
    sni = funnel["natural_instructions"]

    def picked(prefix: str) -> int:
        return sum(r.got for k, r in selection.items() if k == prefix or k.startswith(prefix + "/"))

    def quota(prefix: str) -> int:
        return sum(
            r.wanted for k, r in selection.items() if k == prefix or k.startswith(prefix + "/")
        )

    out = [
        ("Stack Exchange", [
            ("answers read", se.get("answers", 0)),
            ("top answers", se.get("top_answers", 0)),
            ("pass filters", se.get("kept", 0)),
            ("turn too long", within("se")),
            ("quota", quota("stackexchange")),
            ("selected", picked("stackexchange")),
        ]),
        ("wikiHow", [
            ("articles read", sum(f["funnel"]["articles"] for f in wh.get("files", []))),
            ("usable", sum(f["funnel"]["kept"] for f in wh.get("files", []))),
            ("categorised", wh.get("kept", 0)),
            ("turn too long", within("wikihow")),
            ("quota", quota("wikihow")),
            ("selected", picked("wikihow")),
        ]),
        (f"r/{subs['writingprompts']}", [
            ("lines read", wp["total"].get("lines_read", 0)),
            ("candidates", wp.get("candidates", 0)),
            ("turn too long", within("writingprompts")),
            ("quota", quota("reddit/writingprompts")),
            ("selected", picked("reddit/writingprompts")),
        ]),
        ("Super-Natural Instr.", [
            ("task files", sni.get("task_files", 0)),
            ("generation tasks", sni.get("kept", 0)),
            ("quota", quota("natural_instructions")),
            ("selected", picked("natural_instructions")),
        ]),
        (f"r/{subs['askreddit']} (test)", [
            ("lines read", ask["total"].get("lines_read", 0)),
            ("candidates", ask.get("candidates", 0)),
            ("quota", quota("reddit/askreddit")),
            ("selected", picked("reddit/askreddit")),
        ]),
    ]  # fmt: skip
    return out


def funnel_chart(
    funnel: dict[str, Any],
    selection: dict[str, GroupReport],
    path: Path,
    subreddits: dict[str, str] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = funnel_stages(funnel, selection, subreddits)
    fig, axes = plt.subplots(
        len(stages), 1, figsize=(8, 1.3 * sum(len(s) for _, s in stages) / 2 + 1)
    )
    for ax, (source, rows) in zip(axes, stages, strict=True):
        labels = [r[0] for r in rows][::-1]
        counts = [r[1] for r in rows][::-1]
        bars = ax.barh(labels, [max(c, 0.8) for c in counts], color="#4c72b0", log=True)
        bars[0].set_color("#dd8452")
        for bar, label in zip(bars, labels, strict=True):
            if label == "quota":  # the target, drawn hollow next to what was selected
                bar.set_color("none")
                bar.set_edgecolor("#55a868")
                bar.set_hatch("//")
            elif label == "turn too long":
                bar.set_color("#c44e52")
        for bar, c in zip(bars, counts, strict=True):
            ax.text(
                bar.get_width() * 1.05,
                bar.get_y() + bar.get_height() / 2,
                f"{c:,}",
                va="center",
                fontsize=8,
            )
        ax.set_title(source, fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        ax.set_xlim(0.7, max(max(counts), 1) * 8)
    fig.suptitle("lima build: records read, kept and selected per source (log scale)", fontsize=11)
    fig.tight_layout()
    # Fixed metadata so the same build gives the same bytes.
    atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    )
    plt.close(fig)
