"""Prompt sets (the paper's by default, lima's, a file), what compare sends and reads with
them, compare's pairing by (id, sample), AlpacaEval's win rate, standard error and leaderboard
row, chart labels, AlpacaEval model outputs, and the guidelines people see."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeJudge, lima_eval

from lima.errors import ConfigError
from lima.evaluate.judge import summarize, win_rate
from lima.evaluate.plots import preference_bars
from lima.evaluate.prompts import load, parse
from lima.evaluate.responses import Response, alpaca_eval_outputs, match

ALPACA = ROOT / "tests" / "data" / "alpaca_eval"


def test_the_paper_set_holds_appendix_c_and_d() -> None:
    paper = load("paper")
    pairwise = paper.get("pairwise").messages(task="Q", transcript="[User]\nQ", answer_a="x",
                                               answer_b="y")  # fmt: skip
    assert len(pairwise) == 1 and pairwise[0]["role"] == "user"  # no system message
    text = pairwise[0]["content"]
    assert text.startswith("Imagine that you have a super-intelligent AI assistant, and that you "
                           "require help with the following question.")  # fmt: skip
    assert "Answer A:\nx\n\nAnswer B:\ny" in text and text.endswith(
        "Neither is significantly better.")  # fmt: skip
    rating = paper.get("rating").fill(task="T", transcript="", submission="S")
    assert "[Task]: T\n***\n[Submission]: S\n***\n[Criterion]: helpfulness:" in rating
    assert all(f'"{k}": "' in rating for k in "123456")
    assert rating.endswith("repeat just the selected choice again by itself on a new line.")
    lima = load("lima")
    assert lima.get("pairwise").system.startswith("You are an impartial judge")
    # a value holding a slot name is not filled twice
    assert "{answer_b}" in paper.get("pairwise").fill(task="Q", answer_a="{answer_b}", answer_b="")


def test_a_prompt_file_is_checked(tmp_path: Path) -> None:
    ok = parse('[rating]\nuser = "Rate {task}: {submission}"\nreminder = "Just the number."\n',
               "mine.toml")  # fmt: skip
    assert ok.get("rating").fill(task="t", submission="s") == "Rate t: s"
    with pytest.raises(ConfigError, match=r"mine.toml: has no \[pairwise\] prompt"):
        ok.get("pairwise")
    bad = {
        '[rating]\nuser = "Rate {task}: {answer}"\n': r"unknown field \{answer\}",
        '[rating]\nuser = "Rate {task}"\n': r"needs \{submission\}",
        '[pairwise]\nuser = "{answer_a} {answer_b}"\n': r"needs \{task\} or \{transcript\}",
        '[rating]\nuser = "{task} {submission}"\nreminder = "a\\nb"\n': "must be one line",
        '[rating]\nuser = "{task} {submission}"\nmax_tokens = 0\n': "max_tokens: must be",
        '[ratings]\nuser = "x"\n': "unknown table or key 'ratings'",
        "[rating\n": "mine.toml: ",
        'name = "x"\n': "defines none of",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse(text, "mine.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load(str(tmp_path / "nowhere.toml"))


def _alpaca(tmp_path: Path, n: int) -> tuple[Path, Path]:
    a = json.loads((ALPACA / "alpaca-7b.model_outputs.json").read_text())[:n]
    b = json.loads((ALPACA / "text_davinci_003.model_outputs.json").read_text())[:n]
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return tmp_path / "a.json", tmp_path / "b.json"


def test_compare_asks_with_the_chosen_set_and_writes_a_leaderboard_row(tmp_path: Path) -> None:
    a, b = _alpaca(tmp_path, 4)
    judge = FakeJudge(lambda content, n: (200, "Reasoning...\nAnswer A is significantly better."
                                          if len(content) % 3 else "Neither"))  # fmt: skip
    try:
        base = ["compare", str(a), str(b), "--judge", judge.url, "--judge-model", "fake"]
        paper = lima_eval(*base, "--out", str(tmp_path / "paper"))
        assert paper.returncode == 0, paper.stderr
        sent = list(judge.requests)
        lima = lima_eval(*base, "--out", str(tmp_path / "lima"), "--prompts", "lima")
        assert lima.returncode == 0, lima.stderr
    finally:
        judge.close()
    assert all(len(r["messages"]) == 1 for r in sent)
    assert sent[0]["messages"][0]["content"].startswith("Imagine that you have")
    assert sent[0]["max_tokens"] == 1024
    later = judge.requests[len(sent) :]
    assert later[0]["messages"][0]["role"] == "system" and "[Response A]" in later[0][
        "messages"][1]["content"]  # fmt: skip
    summary = json.loads((tmp_path / "paper" / "summary.json").read_text())
    assert summary["prompts"] == "paper" and summary["n_total"] == 4
    with (tmp_path / "paper" / "leaderboard.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row[""] == "alpaca-7b" and row["mode"] == "community"
    assert float(row["win_rate"]) == pytest.approx(summary["win_rate"])
    assert int(row["n_total"]) == 4 and row["discrete_win_rate"] == row["win_rate"]
    lengths = [len(x["output"]) for x in json.loads(a.read_text())]
    assert int(row["avg_length"]) == round(sum(lengths) / 4)


def test_win_rate_and_standard_error_as_alpaca_eval_computes_them() -> None:
    # 44 wins of 100, no ties: 44.0 +- sqrt(.44 * .56 / 99) * 100 = 4.98888 (AlpacaEval's
    # published row for such a run reads 44.0, 4.988876515698589)
    got = win_rate({"a": 44, "b": 56, "tie": 0})
    assert got["win_rate"] == pytest.approx(44.0)
    assert got["standard_error"] == pytest.approx(4.988876515698589)
    # 3 wins, 1 tie, 1 loss: scores 1,1,1,.5,0; mean .7; squared deviations sum to .8;
    # sd sqrt(.8/4) = .44721; se .44721/sqrt(5) = .2
    got = win_rate({"a": 3, "b": 1, "tie": 1})
    assert got["win_rate"] == pytest.approx(70.0)
    assert got["standard_error"] == pytest.approx(100 * math.sqrt(0.8 / 4) / math.sqrt(5))
    assert (got["n_wins"], got["n_wins_base"], got["n_draws"], got["n_total"]) == (3, 1, 1, 5)
    assert win_rate({"a": 1, "b": 0, "tie": 0})["standard_error"] is None
    rows = [{"verdict": v, "failed": f, "model_a": "m", "model_b": "n"}
            for v, f in [("a", False), ("b", False), (None, True), (None, False)]]  # fmt: skip
    s = summarize(rows)
    assert s["counts"] == {"a": 1, "b": 1, "tie": 0, "unparsed": 1, "failed": 1}
    assert s["n_total"] == 2 and s["win_rate"] == 50.0  # over the pairs with a verdict


def _r(pid: str, sample: int, model: str, prompt: str = "p") -> Response:
    return Response(pid, prompt, f"{model} answer {sample}", model, sample)


def test_compare_pairs_sample_k_with_sample_k() -> None:
    a = [_r(q, s, "lima") for q in ("q1", "q2") for s in range(3)]
    b = [_r(q, s, "base") for q in ("q1", "q2") for s in range(2)] + [_r("q3", 0, "base")]
    m = match(a, b)
    assert [(x.id, x.sample, y.sample) for x, y in m.pairs] == [
        ("q1", 0, 0), ("q1", 1, 1), ("q2", 0, 0), ("q2", 1, 1)]  # fmt: skip
    assert (m.by, m.unpaired_a, m.unpaired_b, m.repeated_a, m.repeated_b) == ("id", 2, 1, 0, 0)
    # no ids (AlpacaEval files): by prompt text and sample; a repeated row is counted
    a2 = [Response("", "p1", "x", "m"), Response("", "p1", "x again", "m"),
          Response("", "p2", "y", "m")]  # fmt: skip
    m2 = match(a2, [Response("", "p1", "z", "n")])
    assert (len(m2.pairs), m2.by, m2.unpaired_a, m2.repeated_a) == (1, "prompt", 1, 1)


def test_chart_labels_each_bar_with_its_models_and_n(tmp_path: Path) -> None:
    s1 = {"model_a": "lima", "model_b": "davinci", "n": 300, "a": 0.5, "b": 0.3, "tie": 0.2}
    s2 = {"model_a": "lima", "model_b": "gpt-4", "n": 298, "a": 0.2, "b": 0.5, "tie": 0.3}
    s3 = {"model_a": "alpaca", "model_b": "gpt-4", "n": 12, "a": 0.1, "b": 0.8, "tie": 0.1}
    assert preference_bars([s1, s2], tmp_path / "f.png", "t") == [
        "vs davinci (n=300)", "vs gpt-4 (n=298)"]  # fmt: skip
    assert preference_bars([s1, s3], tmp_path / "g.png", "t") == [
        "lima vs davinci (n=300)", "alpaca vs gpt-4 (n=12)"]  # fmt: skip


def test_alpaca_eval_model_outputs_from_generated_rows(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "conversations": ["What is beer?"]},
            {"id": "b", "conversations": ["Hi", "Hello!", "How are you?"]},
            {"id": "c", "conversations": ["Name a color."]},
            {"id": "d", "conversations": ["Not generated yet."]}]  # fmt: skip
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "responses.jsonl"
    got: list[dict[str, Any]] = [
        {"id": "c", "sample": 1, "prompt": "Name a color.", "response": "Blue.", "model": "m"},
        {"id": "c", "sample": 0, "prompt": "Name a color.", "response": "Red.", "model": "m"},
        {"id": "a", "sample": 0, "prompt": "What is beer?", "response": "A drink.", "model": "m"},
        {"id": "b", "sample": 0, "prompt": "How are you?", "response": "Fine.", "model": "m"},
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in got))
    outputs, left_out = alpaca_eval_outputs(out, prompts, "lima-7b")
    assert outputs == [
        {"instruction": "What is beer?", "output": "A drink.", "generator": "lima-7b"},
        {"instruction": "Name a color.", "output": "Red.", "generator": "lima-7b"},
    ]
    assert left_out == 2  # the conversation and the prompt with no response


def test_the_annotation_page_shows_the_judges_instructions(tmp_path: Path) -> None:
    from lima.evaluate.annotate import App

    a, b = _alpaca(tmp_path, 2)
    info = App([a, b], tmp_path / "p.sqlite").info()
    g = info["guidelines"]
    assert g["prompts"] == "paper" and g["text"][0].startswith("Imagine that you have")
    assert list(g["choices"]) == ["1", "2", "neither"] == info["choices"]
    assert g["choices"]["neither"] == "Neither is significantly better."
    absolute = App([a], tmp_path / "q.sqlite", prompts="lima").info()["guidelines"]
    assert absolute["prompts"] == "lima" and list(absolute["choices"]) == [
        "fail", "pass", "excellent"]  # fmt: skip
