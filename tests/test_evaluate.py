"""Evaluation: verdict parsing, judging over real HTTP on loopback (both orders, retries, cache,
unparsed replies counted), agreement on hand-worked cases, AlpacaEval files, `lima-eval serve`
and `generate` on the tiny trained model."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeJudge, lima_eval

from lima.evaluate.agreement import agreement, pair_score
from lima.evaluate.responses import pair, read_prompts, read_responses

ALPACA = ROOT / "tests" / "data" / "alpaca_eval"


# --- agreement ----------------------------------------------------------------------------


def test_agreement_is_tie_discounted_accuracy_on_hand_worked_cases(tmp_path: Path) -> None:
    assert [pair_score(*p) for p in [("a", "a"), ("tie", "tie"), ("a", "tie"), ("tie", "b"),
                                     ("a", "b")]] == [1, 1, 0.5, 0.5, 0]  # fmt: skip
    x = {"1": "a", "2": "b", "3": "tie", "4": "a", "5": "b"}
    y = {"1": "a", "2": "a", "3": "a", "4": "tie", "6": "a"}
    # 1 + 0 + 0.5 + 0.5 over the 4 shared ids
    got = agreement(x, y)
    assert (got["agreement"], got["n"], got["only_in_first"], got["only_in_second"]) == (
        0.5, 4, 1, 1)  # fmt: skip
    assert got["roles"] == "not checked (no model names)"
    fx, fy = tmp_path / "x.jsonl", tmp_path / "y.jsonl"
    fx.write_text("".join(json.dumps({"id": k, "verdict": v}) + "\n" for k, v in x.items()))
    fy.write_text("".join(json.dumps({"id": k, "verdict": v}) + "\n" for k, v in y.items()))
    done = lima_eval("agreement", str(fx), str(fy))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["agreement"] == 0.5
    fy.write_text('{"id": "1", "verdict": "A"}\n')
    bad = lima_eval("agreement", str(fx), str(fy))
    assert bad.returncode != 0 and "y.jsonl:1: verdict must be a, b or tie" in bad.stderr


def _verdict_file(path: Path, rows: list[tuple[str, str]], model_a: str, model_b: str) -> Path:
    path.write_text("".join(json.dumps({"id": i, "verdict": v, "model_a": model_a,
                                        "model_b": model_b}) + "\n" for i, v in rows))  # fmt: skip
    return path


_FLIP = {"a": "b", "b": "a", "tie": "tie"}


def test_agreement_pairs_by_which_model_was_a(tmp_path: Path) -> None:
    """People who annotated `B A` instead of `A B` agree as much as if they had not: their
    verdicts are flipped before they are compared; a file on other models is refused."""
    judge = [("1", "a"), ("2", "b"), ("3", "tie"), ("4", "a"), ("5", "b"), ("6", "a")]
    people = [("1", "a"), ("2", "a"), ("3", "a"), ("4", "tie"), ("5", "b"), ("7", "b")]
    fj = _verdict_file(tmp_path / "judge.jsonl", judge, "lima", "davinci")
    same = _verdict_file(tmp_path / "same.jsonl", people, "lima", "davinci")
    swapped = _verdict_file(tmp_path / "swapped.jsonl", [(i, _FLIP[v]) for i, v in people],
                            "davinci", "lima")  # fmt: skip
    matched = json.loads(lima_eval("agreement", str(fj), str(same)).stdout)
    flipped = json.loads(lima_eval("agreement", str(fj), str(swapped)).stdout)
    # 1 + 0 + 0.5 + 0.5 + 1 over the 5 shared ids
    assert matched["agreement"] == flipped["agreement"] == 3 / 5
    assert matched["n"] == flipped["n"] == 5
    assert (matched["flipped"], flipped["flipped"]) == (0, 5)
    assert flipped["roles"] == "matched by model names"
    # read as they are, without the roles, the swapped file would agree far less
    unflipped = agreement({i: v for i, v in judge}, {i: _FLIP[v] for i, v in people})
    assert unflipped["agreement"] == 2 / 5  # 0 + 1 + 0.5 + 0.5 + 0
    other = _verdict_file(tmp_path / "other.jsonl", people, "lima", "alpaca")
    bad = lima_eval("agreement", str(fj), str(other))
    assert bad.returncode != 0
    assert "compares lima vs davinci" in bad.stderr and "compares lima vs alpaca" in bad.stderr


def test_agreement_pairs_samples_as_compare_and_annotate_name_them(tmp_path: Path) -> None:
    """compare writes id and sample; export-annotations writes the item as id#sample."""
    rows = [{"id": "q1", "sample": 0, "verdict": "a"}, {"id": "q1", "sample": 1, "verdict": "b"}]
    fj = tmp_path / "judge.jsonl"
    fj.write_text("".join(json.dumps({**r, "model_a": "m", "model_b": "n"}) + "\n" for r in rows))
    fp = _verdict_file(tmp_path / "people.jsonl", [("q1#1", "a"), ("q1", "b")], "n", "m")
    got = json.loads(lima_eval("agreement", str(fj), str(fp)).stdout)
    assert got["n"] == 2 and got["agreement"] == 1.0 and got["flipped"] == 2
    fj.write_text(fj.read_text() + fj.read_text().splitlines()[0] + "\n")
    bad = lima_eval("agreement", str(fj), str(fp))
    assert bad.returncode != 0 and "judge.jsonl:3: a second verdict for 'q1'" in bad.stderr


# --- response files -----------------------------------------------------------------------


def test_alpaca_eval_outputs_pair_by_prompt_text() -> None:
    a = read_responses(ALPACA / "alpaca-7b.model_outputs.json")
    b = read_responses(ALPACA / "text_davinci_003.model_outputs.json")
    assert len(a) == len(b) == 805 and a[0].model == "alpaca-7b"
    pairs, only_a, only_b = pair(a, b)
    assert len(pairs) == 805 - only_a and only_a == only_b
    assert all(x.prompt == y.prompt for x, y in pairs)
    prompts = read_prompts(ALPACA / "alpaca-7b.model_outputs.json")
    assert prompts[0][1] == [a[0].prompt]


# --- a judge on loopback ------------------------------------------------------------------


@pytest.fixture
def responses(tmp_path: Path) -> tuple[Path, Path]:
    """The first 6 AlpacaEval prompts: alpaca-7b against text-davinci-003."""
    a = json.loads((ALPACA / "alpaca-7b.model_outputs.json").read_text())[:6]
    b = json.loads((ALPACA / "text_davinci_003.model_outputs.json").read_text())[:6]
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return tmp_path / "a.json", tmp_path / "b.json"


def _compare(judge: FakeJudge, a: Path, b: Path, out: Path, *extra: str) -> Any:
    done = lima_eval("compare", str(a), str(b), "--judge", judge.url, "--judge-model", "fake",
                 "--out", str(out), "--concurrency", "3", *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads((out / "summary.json").read_text())


def _answers(content: str) -> tuple[str, str]:
    """The two answers in the paper's pairwise prompt (Answer A, Answer B)."""
    m = re.search(r"\n\nAnswer A:\n(.*)\n\nAnswer B:\n(.*)\n\nComparing these two answers", content,
                  flags=re.DOTALL)  # fmt: skip
    assert m, content
    return m.group(1), m.group(2)


def _first_response(content: str) -> str:
    return _answers(content)[0]


def test_a_judge_that_always_prefers_the_first_position_yields_only_ties(
    tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    judge = FakeJudge(lambda content, n: (200, "A"))
    try:
        summary = _compare(judge, *responses, tmp_path / "out")
    finally:
        judge.close()
    assert summary["n"] == 6 and summary["tie"] == 1.0 and summary["a"] == summary["b"] == 0
    assert len(judge.requests) == 12  # each pair in both orders
    rows = [json.loads(x) for x in (tmp_path / "out" / "verdicts.jsonl").open()]
    assert all(r["a_first"] == "a" and r["b_first"] == "b" for r in rows)
    from PIL import Image

    with Image.open(tmp_path / "out" / "preference.png") as im:
        assert im.format == "PNG" and im.size[0] > 500


def test_consistent_judge_retries_garbage_and_rate_limits_and_caches(
    tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    a_texts = {r["output"] for r in json.loads(responses[0].read_text())}
    seen: dict[str, int] = {}

    def policy(content: str, n: int) -> tuple[int, str]:
        if n == 1:
            return 429, "slow down"
        first = _first_response(content)
        seen[first] = seen.get(first, 0) + 1
        if seen[first] == 1:
            return 200, "Hmm, let me think about both of these carefully."  # garbage first
        better = "A" if first in a_texts else "B"
        return 200, {0: better, 1: f"Response {better} is better.",
                     2: json.dumps({"verdict": better})}[n % 3]  # fmt: skip

    judge = FakeJudge(policy)
    try:
        summary = _compare(judge, *responses, tmp_path / "out", "--retries", "2")
        sent = len(judge.requests)
        again = _compare(judge, *responses, tmp_path / "out")
    finally:
        judge.close()
    # The judge always prefers the alpaca-7b answer (model A) once it answers sensibly.
    assert summary["a"] == 1.0 and summary["unparsed"] == 0
    assert sent == 1 + 12 * 2  # one 429, then every order asked twice (garbage, then a verdict)
    assert summary["faults_retried"] == 1  # the 429
    assert len(judge.requests) == sent and again == {**summary, "requests_sent": 0,
                                                     "cached_replies": 24,
                                                     "faults_retried": 0}  # fmt: skip


def test_unparseable_verdicts_are_counted_never_dropped(
    tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    judge = FakeJudge(lambda content, n: (200, "I would rather not say."))
    try:
        summary = _compare(judge, *responses, tmp_path / "out", "--parse-attempts", "2")
    finally:
        judge.close()
    assert summary["n"] == 6 and summary["unparsed"] == 1.0
    assert summary["counts"] == {"a": 0, "b": 0, "tie": 0, "unparsed": 6, "failed": 0}
    rows = [json.loads(x) for x in (tmp_path / "out" / "verdicts.jsonl").open()]
    assert len(rows) == 6 and all(r["verdict"] is None and len(r["replies"][0]) == 2 for r in rows)


def test_chart_sets_several_baselines_side_by_side(
    tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    """Figure 1: one bar per baseline. The judge prefers the longer response; the second
    baseline is text-davinci-003 cut to 40 characters, so model A wins every pair there."""
    short = [dict(r, output=r["output"][:40], generator="davinci-cut")
             for r in json.loads(responses[1].read_text())]  # fmt: skip
    (tmp_path / "cut.json").write_text(json.dumps(short))

    def policy(content: str, n: int) -> tuple[int, str]:
        first, second = _answers(content)
        return 200, "A" if len(first) > len(second) else "B"

    judge = FakeJudge(policy)
    try:
        one = _compare(judge, responses[0], responses[1], tmp_path / "vs-davinci")
        two = _compare(judge, responses[0], tmp_path / "cut.json", tmp_path / "vs-cut")
    finally:
        judge.close()
    assert two["a"] == 1.0 and one["a"] < 1.0
    cut_summary = tmp_path / "vs-cut" / "summary.json"
    done = lima_eval("chart", str(tmp_path / "vs-davinci"), str(cut_summary),
                     "--out", str(tmp_path / "fig1.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    from PIL import Image

    with Image.open(tmp_path / "fig1.png") as im:
        assert im.format == "PNG" and im.size[1] > 200
    bad = lima_eval("chart", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png"))
    assert bad.returncode == 1 and "nowhere: no such file" in bad.stderr


# --- the trained tiny model: serve and generate -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(eot_model: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lima.evaluate.cli import main; main()", "serve",
         "--model", str(eot_model / "epoch-15"), "--port", str(port), "--max-new-tokens", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _chat(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_answers_chat_completions_from_the_checkpoint(server: str, demo: Any) -> None:
    prompt = json.loads((demo.out / "train.jsonl").open().readline())["conversations"][0][:300]
    code, body = _chat(server, {"model": "x", "messages": [{"role": "user", "content": prompt}],
                                "n": 3, "seed": 1})  # fmt: skip
    assert code == 200 and len(body["choices"]) == 3
    assert sum(c["finish_reason"] == "stop" for c in body["choices"]) >= 2  # it learned EOT
    greedy = [_chat(server, {"messages": [{"role": "user", "content": prompt}],
                             "temperature": 0})[1] for _ in range(2)]  # fmt: skip
    assert greedy[0]["choices"] == greedy[1]["choices"]
    code, err = _chat(server, {"messages": [{"role": "assistant", "content": "hi"}]})
    assert code == 400 and "must follow a user message" in err["error"]["message"]


def test_the_served_model_as_a_judge_is_parsed_or_counted(
    server: str, tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    """A tiny model is a poor judge: whatever it says is parsed or counted as unparsed."""
    done = lima_eval("compare", str(responses[0]), str(responses[1]), "--judge", server + "/v1",
                 "--judge-model", "tiny", "--out", str(tmp_path / "o"), "--parse-attempts", "1",
                 "--limit", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["n"] == 2 and sum(s["counts"].values()) == 2 and s["requests_sent"] == 4


def test_generate_stops_at_eot_samples_and_resumes(
    eot_model: Path, tmp_path: Path, demo: Any
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [json.loads(x) for x in (demo.out / "train.jsonl").open()][:6]
    lines = [json.dumps({"id": r["id"], "conversations": [r["conversations"][0][:300]]})
             for r in rows]  # fmt: skip
    prompts.write_text("".join(x + "\n" for x in lines))
    out = tmp_path / "responses.jsonl"
    args = ["generate", "--model", str(eot_model / "epoch-15"), "--prompts", str(prompts),
            "--out", str(out), "--samples", "2", "--batch-size", "4",
            "--max-new-tokens", "64"]  # fmt: skip
    first = lima_eval(*args, "--alpaca-eval", str(tmp_path / "model_outputs.json"),
                      "--generator", "tiny-lima")  # fmt: skip
    assert first.returncode == 0, first.stderr
    got = [json.loads(x) for x in out.open()]
    outputs = json.loads((tmp_path / "model_outputs.json").read_text())
    by_id = {r["id"]: r for r in got if r["sample"] == 0}
    assert outputs == [{"instruction": r["conversations"][0][:300], "output":
                        by_id[r["id"]]["response"], "generator": "tiny-lima"}
                       for r in rows]  # fmt: skip
    assert len(got) == 12 and {(r["id"], r["sample"]) for r in got} == {
        (r["id"], s) for r in rows for s in (0, 1)}  # fmt: skip
    assert sum(r["stopped_at_eot"] for r in got) >= 9
    assert all(r["new_tokens"] < 64 for r in got if r["stopped_at_eot"])
    # A run killed mid-write: the torn line is cut and only the missing rows are generated.
    kept = out.read_text().splitlines()[:5]
    out.write_text("\n".join(kept) + '\n{"id": "torn')
    again = lima_eval(*args)
    assert again.returncode == 0, again.stderr
    assert "wrote 7 responses" in again.stdout and "(5 already there)" in again.stdout
    assert len(out.read_text().splitlines()) == 12


# --- bad input ----------------------------------------------------------------------------


def test_truncated_and_malformed_response_files_name_file_and_place(tmp_path: Path) -> None:
    from lima.errors import ConfigError

    text = (ALPACA / "alpaca-7b.model_outputs.json").read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(ConfigError, match=r"cut\.json:\d+:\d+: not valid JSON"):
        read_responses(cut)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "1", "prompt": "p", "response": "r"}\n{"id": "2", "prompt": "p"}\n')
    with pytest.raises(ConfigError, match=r"rows\.jsonl:2: needs a string field, one of response"):
        read_responses(rows)
    rows.write_text('{"id": "1", "prompt": "p", "response": "r"}\n["not", "an", "object"]\n')
    with pytest.raises(ConfigError, match=r"rows\.jsonl:2: expected an object"):
        read_prompts(rows)
    rows.write_text("\n\n")
    with pytest.raises(ConfigError, match=r"rows\.jsonl: no responses"):
        read_responses(rows)


def test_a_judge_that_keeps_failing_stops_compare_with_the_endpoint_named(
    tmp_path: Path, responses: tuple[Path, Path]
) -> None:
    judge = FakeJudge(lambda content, n: (500, "overloaded"))
    try:
        done = lima_eval("compare", str(responses[0]), str(responses[1]), "--judge", judge.url,
                     "--judge-model", "x", "--out", str(tmp_path / "o"), "--retries", "1",
                     "--concurrency", "1")  # fmt: skip
    finally:
        judge.close()
    assert done.returncode != 0
    assert f"{judge.url}/chat/completions: HTTP 500" in done.stderr
    assert "6 of 6 items failed (5 not sent" in done.stderr
    # The failing pair asked twice (one retry); with the default --max-failed 0 the other pairs
    # are not sent to a dead endpoint, but every pair is in the output, counted as failed.
    assert len(judge.requests) == 2
    rows = [json.loads(x) for x in (tmp_path / "o" / "verdicts.jsonl").open()]
    assert len(rows) == 6 and all(r["failed"] and r["verdict"] is None for r in rows)
    assert "HTTP 500" in rows[0]["error"] and rows[1]["error"].startswith("not sent")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["counts"]["failed"] == 6 and summary["failed"] == 1.0


def test_serve_rejects_a_malformed_body(server: str) -> None:
    req = urllib.request.Request(server + "/v1/chat/completions", data=b'{"messages": [',
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400
    assert json.loads(e.value.read())["error"]["type"] == "invalid_request_error"
