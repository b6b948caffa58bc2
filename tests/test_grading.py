"""Grading one response at a time: 1..6 ratings with confidence intervals (checked against
hand-worked numbers), Fail / Pass / Excellent labels, scripted chats on the tiny trained model,
and the vLLM backend's plumbing against a stand-in engine."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from conftest import ROOT, FakeJudge, lima_eval

from lima.errors import ConfigError
from lima.evaluate.chat import read_scripts, run_scripts
from lima.evaluate.grading import mean_ci, parse_label, parse_rating, rating_summary
from lima.train.recipe import Generation

ALPACA = ROOT / "tests" / "data" / "alpaca_eval"
MT_BENCH = ROOT / "lima" / "samples" / "eval" / "mt_bench_question.jsonl"


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("5", 5), (" 3.", 3), ("**4**", 4), ("Rating: 2", 2), ("Score = 6", 6), ("4/6", 4),
        ("I would rate this response a 3 out of 6.", 3), ('{"rating": 1, "why": "wrong"}', 1),
        ('```json\n{"score": "5"}\n```', 5),
        ("7", None), ("0", None), ("Rating: 4.5", None), ("between 2 and 5", None),
        ("10/10", None), ("Rating: 3. Score: 5.", None), ("helpful", None), ("", None),
    ],
)  # fmt: skip
def test_rating_replies_are_parsed(reply: str, rating: int | None) -> None:
    assert parse_rating(reply) == rating


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Excellent", "excellent"), ("fail.", "fail"), ("**Pass**", "pass"),
        ("Label: Pass", "pass"), ("Pass. It does what was asked.", "pass"),
        ("The response is excellent.", "excellent"), ('{"label": "Fail"}', "fail"),
        ("Verdict: failed", "fail"),
        ("pass or fail", None), ("It passes the bar? Hard to say.", None), ("good", None),
    ],
)  # fmt: skip
def test_label_replies_are_parsed(reply: str, label: str | None) -> None:
    assert parse_label(reply) == label


def test_confidence_interval_against_a_known_case() -> None:
    # mean 5, sample sd sqrt(32/7) = 2.13809, t(0.975, 7) = 2.36462: half-width 1.78749
    got = mean_ci([2, 4, 4, 4, 5, 5, 7, 9])
    assert got["mean"] == 5
    assert got["ci_low"] == pytest.approx(3.21251, abs=1e-5)
    assert got["ci_high"] == pytest.approx(6.78749, abs=1e-5)
    assert mean_ci([4])["ci_low"] is None and mean_ci([])["mean"] is None

    given = {"p1": [2, 4], "p2": [6, 6], "p3": [3, 5]}
    rows = [{"id": p, "model": "m", "rating": v} for p, vs in given.items() for v in vs]
    rows.append({"id": "p4", "model": "m", "rating": None})
    # over prompts: means 3, 6, 4; sd 1.52753; t(0.975, 2) = 4.30265; half-width 3.79458
    by_prompt = rating_summary(rows, over="prompts")
    assert by_prompt["mean"] == pytest.approx(13 / 3)
    assert by_prompt["ci_high"] - by_prompt["mean"] == pytest.approx(3.79458, abs=1e-5)
    assert (by_prompt["prompts"], by_prompt["ratings"], by_prompt["unparsed"]) == (3, 6, 1)
    # over ratings: sd sqrt(8/3) = 1.63299; t(0.975, 5) = 2.57058; half-width 1.71372
    by_rating = rating_summary(rows, over="ratings")
    assert by_rating["ci_high"] - by_rating["mean"] == pytest.approx(1.71372, abs=1e-5)
    assert by_rating["histogram"] == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1, "6": 2}


def _graded(content: str) -> str:
    """The reply being graded, in the paper's rubric (the default prompts)."""
    return content.split("\n[Submission]: ", 1)[1].split("\n***\n[Criterion]", 1)[0]


def _rating_of(text: str) -> int:
    return min(6, 1 + len(text) // 150)


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run 1: two samples per prompt (alpaca-7b's and text-davinci-003's answers to the first
    8 AlpacaEval prompts); run 2: text-davinci-003's alone."""
    a = json.loads((ALPACA / "alpaca-7b.model_outputs.json").read_text())[:8]
    b = json.loads((ALPACA / "text_davinci_003.model_outputs.json").read_text())[:8]
    run1, run2 = tmp_path / "mixed.jsonl", tmp_path / "davinci.jsonl"
    with run1.open("w") as fh:
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            for s, r in enumerate((x, y)):
                row = {"id": f"q{i}", "sample": s, "prompt": r["instruction"],
                       "response": r["output"], "model": "mixed"}  # fmt: skip
                fh.write(json.dumps(row) + "\n")
    with run2.open("w") as fh:
        for i, y in enumerate(b):
            fh.write(json.dumps({"id": f"q{i}", "prompt": y["instruction"],
                                 "response": y["output"], "model": "davinci"}) + "\n")  # fmt: skip
    return run1, run2


def test_rate_end_to_end_with_a_judge_on_loopback(tmp_path: Path) -> None:
    run1, run2 = _two_runs(tmp_path)
    styles = ["{}", "Rating: {}", '{{"rating": {}}}', "I would rate this a {} out of 6."]

    def policy(content: str, n: int) -> tuple[int, str]:
        if n == 3:
            return 200, "It is hard to say."  # unreadable once: asked again
        return 200, styles[n % 4].format(_rating_of(_graded(content)))

    judge = FakeJudge(policy)
    out = tmp_path / "rated"
    args = ["rate", str(run1), str(run2), "--judge", judge.url, "--judge-model", "fake",
            "--out", str(out), "--label", "mixed", "--label", "davinci",
            "--concurrency", "2"]  # fmt: skip
    try:
        done = lima_eval(*args)
        assert done.returncode == 0, done.stderr
        # 16 responses in run 1, one asked twice; run 2's are run 1's second samples, cached
        assert len(judge.requests) == 16 + 1
        again = lima_eval(*args)  # every reply comes from the cache
        assert again.returncode == 0 and len(judge.requests) == 17
    finally:
        judge.close()

    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "ratings.jsonl").open()]
    assert len(rows) == 24 and not any(r["unparsed"] for r in rows)
    for run, path in (("mixed", run1), ("davinci", run2)):
        per_prompt: dict[str, list[int]] = {}
        for line in path.open():
            r = json.loads(line)
            per_prompt.setdefault(r["id"], []).append(_rating_of(r["response"]))
        want = mean_ci([sum(v) / len(v) for v in per_prompt.values()])
        (got,) = [s for s in summary["runs"] if s["run"] == run]
        assert got["mean"] == pytest.approx(want["mean"])
        assert got["ci_low"] == pytest.approx(want["ci_low"])
        assert got["prompts"] == 8 and got["ratings"] == len(per_prompt) * (
            2 if run == "mixed" else 1
        )
    image = matplotlib.image.imread(out / "ratings.png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert "mixed: " in done.stdout and "95% CI" in done.stdout


def test_rate_draws_a_line_over_sizes_and_refuses_bad_options(tmp_path: Path) -> None:
    run1, run2 = _two_runs(tmp_path)
    judge = FakeJudge(lambda content, n: (200, str(_rating_of(_graded(content)))))
    try:
        base = ["rate", str(run1), str(run2), "--judge", judge.url, "--judge-model", "fake"]
        line = lima_eval(*base, "--out", str(tmp_path / "line"), "--x", "2000,4000",
                         "--xlabel", "training examples")  # fmt: skip
        assert line.returncode == 0, line.stderr
        assert matplotlib.image.imread(tmp_path / "line" / "ratings.png").shape[0] > 100
        bad = lima_eval(*base, "--out", str(tmp_path / "bad"), "--x", "2000")
        assert bad.returncode == 2 and "--x has 1 values for 2 runs" in bad.stderr
        bad = lima_eval(*base, "--out", str(tmp_path / "bad"), "--ci-over", "samples")
        assert bad.returncode == 2 and "--ci-over must be prompts or ratings" in bad.stderr
    finally:
        judge.close()


def test_truncated_responses_and_a_corrupt_cache_are_named(tmp_path: Path) -> None:
    run1, _ = _two_runs(tmp_path)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(run1.read_bytes()[:1500])
    judge = FakeJudge(lambda content, n: (200, "4"))
    try:
        base = ["--judge", judge.url, "--judge-model", "fake"]
        done = lima_eval("rate", str(cut), *base, "--out", str(tmp_path / "r"))
        assert done.returncode == 1
        assert done.stderr.count("error:") == 1 and re.search(r"cut.jsonl:\d+:\d+: not valid JSON",
                                                              done.stderr)  # fmt: skip
        corrupt = tmp_path / "cache.sqlite"
        corrupt.write_bytes(b"not a database " * 100)
        done = lima_eval("rate", str(run1), *base, "--out", str(tmp_path / "r"),
                         "--cache", str(corrupt))  # fmt: skip
        assert done.returncode == 1 and "cache.sqlite: not a judge cache" in done.stderr
        assert not judge.requests
    finally:
        judge.close()


def _label_of(text: str) -> str:
    return "fail" if len(text) < 200 else "excellent" if len(text) > 600 else "pass"


def test_absolute_from_a_judge_then_from_labels(tmp_path: Path) -> None:
    src = ALPACA / "alpaca-7b.model_outputs.json"
    rows = json.loads(src.read_text())[:12]
    (tmp_path / "alpaca-7b.json").write_text(json.dumps(rows))
    formats = ["{}", "Label: {}", '{{"label": "{}"}}', "The response is {}."]

    def policy(content: str, n: int) -> tuple[int, str]:
        return 200, formats[n % 4].format(_label_of(_graded(content)).capitalize())

    judge = FakeJudge(policy)
    out = tmp_path / "abs"
    try:
        done = lima_eval("absolute", str(tmp_path / "alpaca-7b.json"), "--judge", judge.url,
                         "--judge-model", "fake", "--out", str(out))  # fmt: skip
    finally:
        judge.close()
    assert done.returncode == 0, done.stderr
    want = [_label_of(r["output"]) for r in rows]
    summary = json.loads((out / "summary.json").read_text())["runs"][0]
    assert summary["counts"] == {k: want.count(k) for k in ("fail", "pass", "excellent")} | {
        "unparsed": 0,
        "failed": 0,
    }
    assert len(set(want)) == 3  # the case exercises every label
    assert matplotlib.image.imread(out / "absolute.png").shape[0] > 100

    # the labels file reads back as it is, no judge needed
    again = lima_eval("absolute", str(out / "labels.jsonl"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    back = json.loads((tmp_path / "again" / "summary.json").read_text())["runs"][0]
    assert back["counts"] == summary["counts"]
    # responses without a judge: told what to do
    bad = lima_eval("absolute", str(tmp_path / "alpaca-7b.json"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "give --judge and --judge-model" in bad.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "label": "fail"}\n{"id": "2", "label": "great"}\n')
    bad = lima_eval("absolute", str(broken), "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "broken.jsonl:2: label must be fail, pass or excellent" in (
        bad.stderr
    )


class Recorder:
    """A generator that answers each turn with a tag and records the contexts it was given."""

    name = "recorder"
    penalty_scope = "generated"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def generate(
        self, prompts: list[list[str]], gen: Generation, seed: int, greedy: bool = False
    ) -> list[tuple[str, bool, int]]:
        self.seen += prompts
        return [(f"answer {len(p) // 2 + 1} to {p[-1][:20]}", True, 5) for p in prompts]


def test_chat_plays_each_script_with_its_own_history(tmp_path: Path) -> None:
    scripts = read_scripts(MT_BENCH)
    assert len(scripts) == 80 and scripts[0][0] == "81" and len(scripts[0][1]) == 2
    uneven = [("one", ["a single question"]), *scripts[:3]]
    model = Recorder()
    rows = run_scripts(model, uneven, Generation(), batch_size=2)
    assert [(r["script"], r["turn"]) for r in rows][:3] == [("one", 1), ("81", 1), ("81", 2)]
    assert len(rows) == 1 + 3 * 2
    second = next(r for r in rows if r["script"] == "82" and r["turn"] == 2)
    first = next(r for r in rows if r["script"] == "82" and r["turn"] == 1)
    assert second["context"] == [first["prompt"], first["response"]]
    assert [first["prompt"], first["response"], second["prompt"]] in model.seen
    bad = tmp_path / "scripts.jsonl"
    bad.write_text('{"id": 1, "turns": ["hi"]}\n{"id": 2, "turns": []}\n')
    with pytest.raises(ConfigError, match=r"scripts.jsonl:2: 'turns' must be a non-empty list"):
        read_scripts(bad)


def test_chat_on_the_tiny_model_labels_every_turn(eot_model: Path, tmp_path: Path) -> None:
    seen: list[str] = []

    def policy(content: str, n: int) -> tuple[int, str]:
        seen.append(content)
        return 200, "Fail" if "[Assistant]" in content else "Pass"  # later turns fail

    judge = FakeJudge(policy)
    out = tmp_path / "chat"
    try:
        done = lima_eval("chat", "--model", str(eot_model / "epoch-15"), "--scripts",
                         str(MT_BENCH), "--limit", "3", "--max-new-tokens", "24", "--judge",
                         judge.url, "--judge-model", "fake", "--out", str(out))  # fmt: skip
    finally:
        judge.close()
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (out / "chats.jsonl").open()]
    assert [(r["script"], r["turn"]) for r in rows] == [
        (s, t) for s in ("81", "82", "83") for t in (1, 2)
    ]
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert second["context"] == [first["prompt"], first["response"]]
        # the judge saw the model's own first answer before grading the second
        assert any(f"[Assistant]\n{first['response']}\n\n[User]\n{second['prompt']}" in c
                   for c in seen)  # fmt: skip
    assert [r["label"] for r in rows] == ["pass", "fail"] * 3
    assert all(r["new_tokens"] <= 24 and r["penalty_scope"] == "generated" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["per_turn"]["1"]["pass"] == 1 and summary["per_turn"]["2"]["fail"] == 1
    assert summary["first_fail"] == {"81": 2, "82": 2, "83": 2}
    assert summary["failed_within_3_turns"] == 3
    assert matplotlib.image.imread(out / "chat.png").shape[0] > 100
    assert "**Fail**" in (out / "chats.md").read_text()


def test_vllm_backend_against_a_stand_in_engine(
    eot_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM is not installed here (it needs a GPU); a stand-in with its API checks what the
    backend sends it and how the rows read."""
    from transformers import AutoTokenizer

    from lima.evaluate import backends
    from lima.evaluate.generate import generate
    from lima.train.data import prompt_ids

    ckpt = eot_model / "epoch-15"
    tok = AutoTokenizer.from_pretrained(ckpt)
    eot = tok.eos_token_id
    calls: dict[str, Any] = {}

    class SamplingParams:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    class LLM:
        def __init__(self, **kw: Any) -> None:
            calls["engine"] = kw

        def generate(self, requests: list[Any], params: list[Any], use_tqdm: bool) -> list[Any]:
            calls["requests"], calls["params"] = requests, params
            answer = tok.encode("Hello there", add_special_tokens=False)
            done = types.SimpleNamespace(token_ids=[*answer, eot], finish_reason="stop")
            return [types.SimpleNamespace(outputs=[done]) for _ in requests]

    monkeypatch.setitem(
        sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)
    )
    model = backends.load(ckpt, "vllm")
    assert model.penalty_scope == "prompt+generated"
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p", "conversations": ["What is beer?"]}) + "\n")
    out = tmp_path / "vllm.jsonl"
    generate(model, prompts, out, gen=Generation(), samples=2, batch_size=2, seed=7)
    want_ids = prompt_ids(tok, ["What is beer?"], eot_id=eot, bos_id=tok.bos_token_id)
    assert [r["prompt_token_ids"] for r in calls["requests"]] == [want_ids, want_ids]
    kw = calls["params"][0].kw
    assert (kw["top_p"], kw["temperature"], kw["repetition_penalty"], kw["max_tokens"]) == (
        0.9, 0.7, 1.2, 2048)  # fmt: skip
    assert kw["stop_token_ids"] == [eot]
    assert calls["params"][0].kw["seed"] != calls["params"][1].kw["seed"]
    rows = [json.loads(x) for x in out.open()]
    assert [r["response"] for r in rows] == ["Hello there"] * 2
    assert all(r["stopped_at_eot"] and r["penalty_scope"] == "prompt+generated" for r in rows)

    # a file sampled by the other backend is not resumed into
    from lima.evaluate.serve import Model

    with pytest.raises(ConfigError, match=re.escape(f"{out}:1: sampled with the repetition")):
        generate(Model(ckpt), prompts, out, gen=Generation(), samples=3)
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="--backend vllm needs vLLM"):
        backends.load(ckpt, "vllm")
