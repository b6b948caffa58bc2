"""``lima-eval``: evaluate a checkpoint the way the paper did."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lima import commands
from lima.errors import LimaError

if TYPE_CHECKING:
    from lima.evaluate.judge import Judge
    from lima.evaluate.responses import Response
    from lima.train.recipe import Generation

app = typer.Typer(
    help="Evaluate as in the paper: generate, serve, compare (pairwise judge) and chart, "
    "annotate (people) and export-annotations, agreement, rate (1..6 helpfulness), "
    "absolute (Fail/Pass/Excellent), chat (scripted multi-turn).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root(version: Annotated[bool, commands.version_option("lima-eval")] = False) -> None:
    """Evaluate as in the paper. Exit codes: 0 done, 1 bad input, 2 bad usage."""


def _fail(e: BaseException) -> NoReturn:
    """One line and exit 1 (bad input), or 2 for a ``commands.UsageError`` (bad usage)."""
    commands.fail(e)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console)  # fmt: skip


def _generation(top_p: float, temperature: float, penalty: float, max_new: int) -> Generation:
    from lima.train.recipe import Generation

    return Generation(top_p=top_p, temperature=temperature, repetition_penalty=penalty,
                      max_new_tokens=max_new, batch_size=8)  # fmt: skip


TopP = Annotated[float, typer.Option(help="nucleus sampling p")]
Temp = Annotated[float, typer.Option(help="sampling temperature")]
Penalty = Annotated[float, typer.Option(help="repetition penalty over generated tokens only")]
MaxNew = Annotated[int, typer.Option(help="most new tokens per response")]
BackendOpt = Annotated[str, typer.Option(help="transformers (CPU or GPU), or vllm when installed "
                                         "(its repetition penalty also counts the prompt; rows "
                                         "record penalty_scope)")]  # fmt: skip


@app.command()
def generate(
    model: Annotated[Path, typer.Option(help="a checkpoint directory (lima-train's epoch-K)")],
    prompts: Annotated[Path, typer.Option(help="LIMA JSONL, lima-eval JSONL or AlpacaEval JSON")],
    out: Annotated[Path, typer.Option("--out", "-o", help="responses JSONL (appended, resumable)")],
    samples: Annotated[int, typer.Option(help="responses per prompt (5 for the ablations)")] = 1,
    batch_size: Annotated[int, typer.Option(help="prompts per generate() call")] = 8,
    seed: int = 0,
    top_p: TopP = 0.9,
    temperature: Temp = 0.7,
    repetition_penalty: Penalty = 1.2,
    max_new_tokens: MaxNew = 2048,
    backend: BackendOpt = "transformers",
    alpaca_eval: Annotated[
        Path | None,
        typer.Option(
            help="also write AlpacaEval's model_outputs.json here (instruction, output, generator: "
            "sample 0 of each single-turn prompt, in the prompts' order)"
        ),
    ] = None,
    generator: Annotated[
        str | None, typer.Option(help="the generator name in --alpaca-eval [the checkpoint's name]")
    ] = None,
) -> None:
    """Sample responses with the paper's settings; rerun the same command to resume."""
    from lima.evaluate import backends
    from lima.evaluate.generate import generate as run
    from lima.evaluate.responses import alpaca_eval_outputs, read_prompts
    from lima.io import write_text

    try:
        gen = _generation(top_p, temperature, repetition_penalty, max_new_tokens)
        total = len(read_prompts(prompts)) * samples
        m = backends.load(model, backend)
        with _progress() as bar:
            task = bar.add_task("generating", total=total)
            stats = run(m, prompts, out, gen=gen, samples=samples, batch_size=batch_size,
                        seed=seed, on_batch=lambda k: bar.advance(task, k))  # fmt: skip
            bar.update(task, completed=total)
    except (LimaError, OSError) as e:
        _fail(e)
    console.print(f"wrote {stats['written']} responses to {out} "
                  f"({stats['skipped_done']} already there)")  # fmt: skip
    if alpaca_eval is not None:
        try:
            rows, left_out = alpaca_eval_outputs(out, prompts, generator)
            write_text(alpaca_eval, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        except (LimaError, OSError) as e:
            _fail(e)
        console.print(f"wrote {len(rows)} AlpacaEval outputs to {alpaca_eval}"
                      + (f" ({left_out} multi-turn or missing prompts left out)"
                         if left_out else ""), highlight=False)  # fmt: skip


@app.command()
def serve(
    model: Annotated[Path, typer.Option(help="a checkpoint directory")],
    host: commands.HostOption = "127.0.0.1",
    port: int = 8000,
    top_p: TopP = 0.9,
    temperature: Temp = 0.7,
    repetition_penalty: Penalty = 1.2,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            help="new tokens when a request names no max_completion_tokens (always capped at the "
            "model's window less the prompt)"
        ),
    ] = 2048,
    name: Annotated[
        str | None, typer.Option(help="the model id clients see [the checkpoint folder's name]")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LIMA_TOKEN",
            help="API key clients must send (Authorization: Bearer ...); required off loopback",
        ),
    ] = None,
    queue: Annotated[
        int, typer.Option(min=0, help="requests that may wait while one generates; more get 503")
    ] = 16,
    timeout: Annotated[
        float, typer.Option(min=1, help="seconds a request may take, queueing included; then 504")
    ] = 600.0,
) -> None:
    """An OpenAI-compatible /v1/chat/completions (and /v1/models) over the checkpoint, for the
    official openai client and anything else that speaks the API: streaming, stop, seed, n,
    usage. One request generates at a time; the prompt must fit the model's window."""
    from lima.evaluate.serve import Model
    from lima.evaluate.serve import serve as make
    from lima.web import require_token

    gen = _generation(top_p, temperature, repetition_penalty, max_new_tokens)
    try:
        require_token(host, token)
        served = Model(model, name=name)
        server = make(served, host, port, gen, token=token, queue=queue, timeout=timeout)
    except (LimaError, OSError) as e:
        _fail(e)
    if server.warning:
        err_console.print(f"[yellow]{server.warning}[/yellow]", highlight=False)
    base = server.url("/v1", with_token=False)
    console.print(f"serving {model} as {served.name!r} on {base}/chat/completions"
                  f" (openai.OpenAI(base_url={base!r}, api_key=...))",
                  highlight=False)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


JudgeURL = Annotated[str, typer.Option(help="OpenAI-compatible base URL, e.g. http://host/v1")]
JudgeModel = Annotated[str, typer.Option(help="model name sent to the judge")]
Out = Annotated[Path, typer.Option("--out", "-o", help="output directory")]
KeyEnv = Annotated[str, typer.Option(help="environment variable with the judge's API key")]
CachePath = Annotated[Path | None, typer.Option(help="SQLite reply cache [OUT/judge_cache.sqlite]")]
Concurrency = Annotated[int, typer.Option(help="requests in flight")]
Rpm = Annotated[float | None, typer.Option(help="at most this many requests a minute")]
Retries = Annotated[int, typer.Option(help="retries of a failed request (a 429/5xx, a timeout, a "
                                      "reply that is not the expected JSON), with backoff that "
                                      "honours Retry-After")]  # fmt: skip
ParseAttempts = Annotated[int, typer.Option(help="asks per item before it counts as unparsed (each "
                                            "re-ask adds a one-line format reminder)")]  # fmt: skip
Prompts = Annotated[
    str,
    typer.Option(
        help="what the judge is asked: paper (the LIMA paper's "
        "Appendix C question and Appendix D rubric), lima (short "
        "one-word prompts) or a TOML file of the same shape"
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        help="seconds one request may take in all (connect, "
        "wait, read), however slowly the server sends"
    ),
]
MaxFailed = Annotated[float, typer.Option(help="fraction of items that may fail (no reply after "
                                          "the retries) with exit 0; past it the rest are not "
                                          "sent and the command exits non-zero")]  # fmt: skip


@dataclass(frozen=True)
class JudgeOptions:
    key_env: str
    cache: Path | None
    rpm: float | None
    retries: int
    parse_attempts: int
    prompts: str
    timeout: float
    max_failed: float


def _options(key_env: str, cache: Path | None, rpm: float | None, retries: int,
             parse_attempts: int, prompts: str, timeout: float,
             max_failed: float) -> JudgeOptions:  # fmt: skip
    if retries < 0 or parse_attempts < 1:
        _fail(commands.UsageError("--retries must be 0 or more and --parse-attempts 1 or more"))
    if not timeout > 0 or (rpm is not None and not rpm > 0):
        _fail(commands.UsageError("--timeout and --rpm must be above 0"))
    if not 0 <= max_failed <= 1:
        _fail(commands.UsageError(f"--max-failed is a fraction from 0 to 1, not {max_failed}"))
    return JudgeOptions(key_env, cache, rpm, retries, parse_attempts, prompts, timeout,
                        max_failed)  # fmt: skip


@contextmanager
def _judge(url: str, model: str, out: Path, o: JudgeOptions) -> Iterator[Judge]:
    """A judge whose replies are cached in SQLite; the cache is closed on the way out and a
    judge that refuses the run ends the command with its error."""
    from lima.evaluate.judge import Cache, Judge, JudgeError, RateLimit
    from lima.evaluate.prompts import load

    try:
        prompts = load(o.prompts)
        judge = Judge(url, model, api_key=os.environ.get(o.key_env), prompts=prompts,
                      retries=o.retries, parse_attempts=o.parse_attempts, timeout=o.timeout,
                      rate=RateLimit(o.rpm))  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        store = Cache(o.cache or out / "judge_cache.sqlite")
    except LimaError as e:
        _fail(e)
    judge.cache = store
    try:
        yield judge
    except JudgeError as e:
        _fail(e)
    finally:
        store.close()


def _optional_judge(url: str | None, model: str | None, out: Path,
                    o: JudgeOptions) -> AbstractContextManager[Judge | None]:  # fmt: skip
    """``_judge`` when both --judge and --judge-model are given, else no judge."""
    if (url is None) != (model is None):
        _fail(commands.UsageError("--judge and --judge-model go together"))
    if url is None or model is None:
        out.mkdir(parents=True, exist_ok=True)
        return nullcontext(None)
    return _judge(url, model, out, o)


def _too_many_failed(rows: list[dict[str, Any]], o: JudgeOptions, where: Path) -> None:
    """Exit non-zero (after the outputs are written) when more than --max-failed failed."""
    failed = [r for r in rows if r.get("failed")]
    if failed and len(failed) > o.max_failed * len(rows) + 1e-9:
        first = next((r["error"] for r in failed if not str(r["error"]).startswith("not sent")),
                     failed[0]["error"])  # fmt: skip
        skipped = sum(str(r["error"]).startswith("not sent") for r in failed)
        note = f" ({skipped} not sent once the limit was passed)" if skipped else ""
        _fail(LimaError(f"{len(failed)} of {len(rows)} items failed{note}, more than "
                        f"--max-failed {o.max_failed:g}; first: {first}. The rows are in "
                        f"{where}; rerun to retry them (answers already received come from "
                        "the cache)"))  # fmt: skip


def _read_responses(path: Path) -> list[Response]:
    from lima.evaluate.responses import read_responses

    try:
        return read_responses(path)
    except LimaError as e:
        _fail(e)


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="responses of model A (JSONL or AlpacaEval JSON)")],
    b: Annotated[Path, typer.Argument(help="responses of model B, the baseline")],
    judge: JudgeURL,
    judge_model: JudgeModel,
    out: Out,
    api_key_env: KeyEnv = "OPENAI_API_KEY",
    cache: CachePath = None,
    concurrency: Concurrency = 4,
    rpm: Rpm = None,
    retries: Retries = 5,
    parse_attempts: ParseAttempts = 3,
    prompts: Prompts = "paper",
    timeout: Timeout = 120.0,
    max_failed: MaxFailed = 0.0,
    limit: Annotated[int | None, typer.Option(help="judge only the first N pairs")] = None,
) -> None:
    """Pairwise preference (A better / B better / neither), each pair judged in both orders.
    Samples are paired by (id, sample); the win rate of A has AlpacaEval's standard error."""
    from lima.evaluate.judge import judge_all, leaderboard_csv, summarize
    from lima.evaluate.plots import preference_bars
    from lima.evaluate.responses import match
    from lima.io import write_json, write_jsonl, write_text

    o = _options(api_key_env, cache, rpm, retries, parse_attempts, prompts, timeout, max_failed)
    m = match(_read_responses(a), _read_responses(b))
    if not m.pairs:
        _fail(LimaError(f"{a} and {b} share no prompt (paired by id and sample, else by prompt "
                        "text and sample)"))  # fmt: skip
    pairs = m.pairs[:limit] if limit else m.pairs
    with _judge(judge, judge_model, out, o) as j, _progress() as bar:
        task = bar.add_task("judging pairs", total=len(pairs))
        run = judge_all(j, pairs, concurrency, lambda: bar.advance(task), o.max_failed)
    summary = summarize(run.rows)
    summary.update(paired_by=m.by, unpaired_a=m.unpaired_a, unpaired_b=m.unpaired_b,
                   repeated_a=m.repeated_a, repeated_b=m.repeated_b, prompts=o.prompts,
                   judge_model=judge_model, requests_sent=j.sent,
                   cached_replies=j.cached, faults_retried=j.faults,
                   stopped_early=run.stopped)  # fmt: skip
    write_jsonl(out / "verdicts.jsonl", run.rows)
    write_json(out / "summary.json", summary)
    write_text(out / "leaderboard.csv", leaderboard_csv(summary, pairs))
    preference_bars(
        [summary],
        out / "preference.png",
        f"{summary.get('model_a', 'A')} against a baseline, judged by {judge_model}",
    )
    shown = ("n", "a", "b", "tie", "unparsed", "failed", "win_rate", "standard_error")
    console.print_json(json.dumps({k: summary[k] for k in shown}))
    console.print(f"{out}/verdicts.jsonl, summary.json, leaderboard.csv, preference.png "
                  f"({j.sent} requests sent, {j.cached} answered from the cache)")  # fmt: skip
    if m.unpaired_a or m.unpaired_b or m.repeated_a or m.repeated_b:
        err_console.print(f"note: {m.unpaired_a} rows of {a} and {m.unpaired_b} of {b} have no "
                          f"partner with the same {m.by} and sample; {m.repeated_a} and "
                          f"{m.repeated_b} repeat an earlier row's", highlight=False)  # fmt: skip
    _too_many_failed(run.rows, o, out / "verdicts.jsonl")


@app.command()
def chart(
    runs: Annotated[
        list[Path],
        typer.Argument(help="compare output directories (or their summary.json), one per baseline"),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="the PNG to write")],
    title: Annotated[str | None, typer.Option(help="chart title")] = None,
) -> None:
    """One stacked bar per compare run, like the paper's Figure 1, each labelled with its own
    models and number of pairs."""
    from lima.evaluate.plots import preference_bars

    summaries = []
    for run in runs:
        path = run / "summary.json" if run.is_dir() else run
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            _fail(LimaError(f"{path}: no such file (give compare's --out directories)"))
        except UnicodeDecodeError:
            _fail(LimaError(f"{path}: not UTF-8 text (give compare's summary.json)"))
        except json.JSONDecodeError as e:
            _fail(LimaError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}"))
        except RecursionError:
            _fail(LimaError(f"{path}: JSON nested too deeply (give compare's summary.json)"))
        except IsADirectoryError:
            _fail(LimaError(f"{path}: a folder without summary.json (give compare's --out)"))
        if not isinstance(s, dict) or not all(k in s for k in ("a", "b", "tie")):
            _fail(LimaError(f"{path}: not a compare summary (needs a, b and tie)"))
        summaries.append(s)
    models = sorted({str(s.get("model_a")) for s in summaries})
    preference_bars(summaries, out, title or f"{' / '.join(models)} against {len(runs)} "
                    "baselines")  # fmt: skip
    console.print(str(out), highlight=False)


def _labels_for(files: list[Path], labels: list[str] | None) -> list[str]:
    if labels and len(labels) != len(files):
        _fail(commands.UsageError(f"{len(labels)} --label values for {len(files)} files"))
    return labels or [f.stem.removesuffix(".model_outputs") for f in files]


def _grade(kind: str, files: list[Path], names: list[str], judge: Judge | None,
           concurrency: int, o: JudgeOptions,
           out: Path) -> list[tuple[str, Path, list[dict[str, Any]]]]:  # fmt: skip
    """Per input: its label, path and graded rows (read from a labels file as they are). Ends
    the command (after the caller's outputs) when more than --max-failed of them failed."""
    from lima.evaluate.grading import grade_all, read_labels

    runs = []
    for name, f in zip(names, files, strict=True):
        try:
            given = read_labels(f) if kind == "label" else None
        except LimaError as e:
            _fail(e)
        if given is None:
            if judge is None:
                _fail(commands.UsageError(f"{f}: holds responses, not labels; give --judge and "
                                "--judge-model to have them graded"))  # fmt: skip
            todo = _read_responses(f)
            with _progress() as bar:
                task = bar.add_task(f"grading {name}", total=len(todo))
                tick = functools.partial(bar.advance, task)
                run = grade_all(judge, todo, kind, concurrency, tick, o.max_failed)
            given = run.rows
        runs.append((name, f, [{"run": name, **r} for r in given]))
    return runs


@app.command()
def rate(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="response files, one per run (JSONL with "
            "several samples per prompt, or AlpacaEval JSON)"
        ),
    ],
    judge: JudgeURL,
    judge_model: JudgeModel,
    out: Out,
    label: Annotated[list[str] | None, typer.Option(help="name of each run in the chart")] = None,
    x: Annotated[
        str | None,
        typer.Option(
            help="comma-separated x value per run (such as "
            "training-set sizes): a line like Figure 5"
        ),
    ] = None,
    xlabel: Annotated[str, typer.Option(help="x-axis title")] = "",
    ci_over: Annotated[
        str,
        typer.Option(
            help="interval over 'prompts' (samples of a prompt averaged first) or 'ratings'"
        ),
    ] = "prompts",
    api_key_env: KeyEnv = "OPENAI_API_KEY",
    cache: CachePath = None,
    concurrency: Concurrency = 4,
    rpm: Rpm = None,
    retries: Retries = 5,
    parse_attempts: ParseAttempts = 3,
    prompts: Prompts = "paper",
    timeout: Timeout = 120.0,
    max_failed: MaxFailed = 0.0,
) -> None:
    """1..6 helpfulness ratings from a judge (the paper's Appendix D rubric by default): mean
    and 95% interval per run, side by side."""
    from lima.evaluate.grading import rating_summary
    from lima.evaluate.plots import rating_chart
    from lima.io import write_json, write_jsonl

    o = _options(api_key_env, cache, rpm, retries, parse_attempts, prompts, timeout, max_failed)
    if ci_over not in ("prompts", "ratings"):
        _fail(commands.UsageError(f"--ci-over must be prompts or ratings, not {ci_over!r}"))
    names = _labels_for(runs, label)
    xs = None
    if x is not None:
        try:
            xs = [float(v) for v in x.split(",")]
        except ValueError:
            _fail(commands.UsageError(f"--x must be numbers separated by commas, not {x!r}"))
        if len(xs) != len(runs):
            _fail(commands.UsageError(f"--x has {len(xs)} values for {len(runs)} runs"))
    with _judge(judge, judge_model, out, o) as j:
        graded = _grade("rating", runs, names, j, concurrency, o, out)
    summaries = [{"run": n, "file": str(f), **rating_summary(rows, ci_over)}
                 for n, f, rows in graded]  # fmt: skip
    write_jsonl(out / "ratings.jsonl", [r for _, _, rows in graded for r in rows])
    write_json(
        out / "summary.json",
        {
            "judge_model": judge_model,
            "prompts": o.prompts,
            "runs": summaries,
            "requests_sent": j.sent,
            "cached_replies": j.cached,
            "faults_retried": j.faults,
        },
    )
    rating_chart([(s["run"], s) for s in summaries], out / "ratings.png",
                 f"Helpfulness judged by {judge_model}", x=xs, xlabel=xlabel)  # fmt: skip
    for s in summaries:
        ci = ("" if s["ci_low"] is None
              else f" (95% CI {s['ci_low']:.2f} to {s['ci_high']:.2f})")  # fmt: skip
        mean = "n/a" if s["mean"] is None else f"{s['mean']:.2f}"
        console.print(f"{s['run']}: {mean}{ci} over {s['prompts']} prompts, "
                      f"{s['ratings']} ratings, {s['unparsed']} unparsed, "
                      f"{s['failed']} failed")  # fmt: skip
    console.print(f"{out}/ratings.jsonl, summary.json, ratings.png "
                  f"({j.sent} requests sent, {j.cached} answered from the cache)")  # fmt: skip
    _too_many_failed([r for _, _, rows in graded for r in rows], o, out / "ratings.jsonl")


@app.command()
def absolute(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="response files to grade with --judge, or "
            "labels files (rows with 'label') as they are"
        ),
    ],
    out: Out,
    judge: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL")] = None,
    judge_model: Annotated[str | None, typer.Option(help="model name sent to the judge")] = None,
    label: Annotated[list[str] | None, typer.Option(help="name of each file in the chart")] = None,
    api_key_env: KeyEnv = "OPENAI_API_KEY",
    cache: CachePath = None,
    concurrency: Concurrency = 4,
    rpm: Rpm = None,
    retries: Retries = 5,
    parse_attempts: ParseAttempts = 3,
    prompts: Prompts = "paper",
    timeout: Timeout = 120.0,
    max_failed: MaxFailed = 0.0,
) -> None:
    """Fail / Pass / Excellent per response, from a judge or from people's labels, charted."""
    from lima.evaluate.grading import label_summary
    from lima.evaluate.plots import absolute_bars
    from lima.io import write_json, write_jsonl

    o = _options(api_key_env, cache, rpm, retries, parse_attempts, prompts, timeout, max_failed)
    names = _labels_for(files, label)
    with _optional_judge(judge, judge_model, out, o) as j:
        graded = _grade("label", files, names, j, concurrency, o, out)
    summaries = [{"run": n, "file": str(f), **label_summary(rows)} for n, f, rows in graded]
    write_jsonl(out / "labels.jsonl", [r for _, _, rows in graded for r in rows])
    write_json(out / "summary.json", {"judge_model": judge_model, "runs": summaries,
                                      "prompts": o.prompts if judge_model else None})  # fmt: skip
    by = f"judged by {judge_model}" if judge_model else "labelled by people"
    absolute_bars([(s["run"], s) for s in summaries], out / "absolute.png",
                  f"Absolute quality, {by}")  # fmt: skip
    for s in summaries:
        c = s["counts"]
        console.print(f"{s['run']}: {s['n']} responses: {c['excellent']} excellent, "
                      f"{c['pass']} pass, {c['fail']} fail, {c['unparsed']} unparsed, "
                      f"{c['failed']} failed")  # fmt: skip
    console.print(f"{out}/labels.jsonl, summary.json, absolute.png")
    _too_many_failed([r for _, _, rows in graded for r in rows], o, out / "labels.jsonl")


@app.command()
def agreement(
    x: Annotated[Path, typer.Argument(help="verdicts.jsonl (compare's or an annotator's)")],
    y: Annotated[Path, typer.Argument(help="verdicts.jsonl")],
) -> None:
    """Tie-discounted accuracy between two verdict sets (1 agree, 0.5 one tie, 0 else), paired
    by item and by which model was A: a file with the roles the other way round is flipped."""
    from lima.evaluate.agreement import agreement as score
    from lima.evaluate.agreement import read_verdicts

    try:
        result = score(read_verdicts(x), read_verdicts(y))
    except LimaError as e:
        _fail(e)
    console.print_json(json.dumps(result))


@app.command()
def chat(
    model: Annotated[Path, typer.Option(help="a checkpoint directory")],
    scripts: Annotated[
        Path,
        typer.Option(
            help="JSONL of {id, turns: [user turns]}; MT-bench's question.jsonl reads as it is"
        ),
    ],
    out: Out,
    judge: Annotated[str | None, typer.Option(help="label each turn with this judge (URL)")] = None,
    judge_model: Annotated[str | None, typer.Option(help="model name sent to the judge")] = None,
    limit: Annotated[int | None, typer.Option(help="play only the first N scripts")] = None,
    batch_size: Annotated[int, typer.Option(help="conversations advanced together")] = 8,
    seed: int = 0,
    top_p: TopP = 0.9,
    temperature: Temp = 0.7,
    repetition_penalty: Penalty = 1.2,
    max_new_tokens: MaxNew = 2048,
    backend: BackendOpt = "transformers",
    api_key_env: KeyEnv = "OPENAI_API_KEY",
    cache: CachePath = None,
    concurrency: Concurrency = 4,
    rpm: Rpm = None,
    retries: Retries = 5,
    parse_attempts: ParseAttempts = 3,
    prompts: Prompts = "paper",
    timeout: Timeout = 120.0,
    max_failed: MaxFailed = 0.0,
) -> None:
    """Scripted multi-turn conversations; each model turn labelled Fail / Pass / Excellent by a
    judge, or left for people (`lima-eval annotate OUT/chats.jsonl`)."""
    from lima.evaluate import backends
    from lima.evaluate.chat import chat_summary, read_scripts, run_scripts, transcript
    from lima.evaluate.grading import grade_all
    from lima.evaluate.plots import absolute_bars
    from lima.evaluate.responses import Response
    from lima.io import write_json, write_jsonl, write_text

    jo = _options(api_key_env, cache, rpm, retries, parse_attempts, prompts, timeout, max_failed)
    judging = _optional_judge(judge, judge_model, out, jo)
    try:
        plays = read_scripts(scripts)
        plays = plays[:limit] if limit else plays
        gen = _generation(top_p, temperature, repetition_penalty, max_new_tokens)
        m = backends.load(model, backend)
        with _progress() as bar:
            task = bar.add_task("playing turns", total=sum(len(t) for _, t in plays))
            rows = run_scripts(m, plays, gen, seed=seed, batch_size=batch_size,
                               on_turn=functools.partial(bar.advance, task))  # fmt: skip
    except (LimaError, OSError) as e:
        _fail(e)
    with judging as j:
        if j is not None:
            todo = [Response(r["id"], r["prompt"], r["response"], r["model"], 0,
                             tuple(r["context"])) for r in rows]  # fmt: skip
            with _progress() as bar:
                task = bar.add_task("labelling turns", total=len(todo))
                tick = functools.partial(bar.advance, task)
                graded = grade_all(j, todo, "label", concurrency, tick, jo.max_failed).rows
            for r, g in zip(rows, graded, strict=True):
                r.update(label=g["label"], unparsed=g["unparsed"], failed=g["failed"],
                         error=g["error"], replies=g["replies"])  # fmt: skip
    write_jsonl(out / "chats.jsonl", rows)
    write_text(out / "chats.md", transcript(rows))
    summary = chat_summary(rows)
    write_json(out / "summary.json", summary)
    if judge_model:
        bars = [(f"turn {t}", s) for t, s in summary["per_turn"].items()]
        absolute_bars([*bars, ("all turns", summary["overall"])], out / "chat.png",
                      f"{m.name} in scripted conversations, judged by {judge_model}")  # fmt: skip
        o = summary["overall"]["counts"]
        console.print(f"{summary['turns']} turns in {summary['conversations']} conversations: "
                      f"{o['excellent']} excellent, {o['pass']} pass, {o['fail']} fail, "
                      f"{o['unparsed']} unparsed; {summary['conversations_with_a_fail']} "
                      "conversations have a failed turn")  # fmt: skip
    console.print(f"{out}/chats.jsonl, chats.md, summary.json" + (", chat.png" if judge else ""))
    _too_many_failed(rows, jo, out / "chats.jsonl")


@app.command()
def annotate(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="two response files: pairwise (1 / 2 / "
            "neither); one: absolute (Fail / Pass / Excellent)"
        ),
    ],
    db: Annotated[Path, typer.Option(help="SQLite file the answers are kept in")] = Path(
        "annotations.sqlite"
    ),
    host: commands.HostOption = "127.0.0.1",
    port: int = 8766,
    seed: Annotated[int, typer.Option(help="draws which side each annotator sees first")] = 0,
    token: commands.PageTokenOption = None,
    prompts: Prompts = "paper",
) -> None:
    """A page where people judge responses: the sides shuffled per annotator, models hidden,
    the guidelines shown, a comment per answer, each person resumed at their first unanswered
    item, several annotators in one SQLite file. Export with `lima-eval export-annotations`."""
    from lima.evaluate.annotate import serve as make

    try:
        server = make(files, db, host, port, seed, token, prompts)
    except LimaError as e:
        _fail(e)
    if server.warning:
        err_console.print(f"[yellow]{server.warning}[/yellow]", highlight=False)
    console.print(f"annotating {' vs '.join(str(f) for f in files)} into {db}: {server.url()}  "
                  "(add ?annotator=NAME before any # to the link you hand out; Ctrl-C to stop)",
                  highlight=False)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("export-annotations")
def export_annotations(
    db: Annotated[Path, typer.Argument(help="the annotation SQLite file")],
    out: Out,
    task: Annotated[
        str | None, typer.Option(help="which task, when the file holds several")
    ] = None,
) -> None:
    """Each annotator's answers as OUT/NAME.verdicts.jsonl (pairwise, the format of compare's
    verdicts) or OUT/NAME.labels.jsonl (absolute)."""
    from lima.evaluate.annotate import export

    try:
        written = export(db, out, task)
    except LimaError as e:
        _fail(e)
    if not written:
        _fail(LimaError(f"{db}: no answers yet"))
    for path in written:
        console.print(str(path), highlight=False)


def main() -> None:
    commands.run(functools.partial(app, prog_name="lima-eval"))
