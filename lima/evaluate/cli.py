"""``lima-eval``: evaluate a checkpoint the way the paper did."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lima.errors import LimaError

app = typer.Typer(
    help="Evaluate as in the paper: generate, serve, compare (pairwise judge), agreement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _fail(e: Exception) -> None:
    err_console.print(f"[red]error:[/red] {e}")
    raise typer.Exit(2)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console)  # fmt: skip


def _generation(top_p: float, temperature: float, penalty: float, max_new: int) -> object:
    from lima.train.recipe import Generation

    return Generation(top_p=top_p, temperature=temperature, repetition_penalty=penalty,
                      max_new_tokens=max_new, batch_size=8)  # fmt: skip


TopP = Annotated[float, typer.Option(help="nucleus sampling p")]
Temp = Annotated[float, typer.Option(help="sampling temperature")]
Penalty = Annotated[float, typer.Option(help="repetition penalty over generated tokens only")]
MaxNew = Annotated[int, typer.Option(help="most new tokens per response")]


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
) -> None:
    """Sample responses with the paper's settings; rerun the same command to resume."""
    from lima.evaluate.generate import generate as run
    from lima.evaluate.responses import read_prompts
    from lima.evaluate.serve import Model

    try:
        gen = _generation(top_p, temperature, repetition_penalty, max_new_tokens)
        total = len(read_prompts(prompts)) * samples
        m = Model(model)
        with _progress() as bar:
            task = bar.add_task("generating", total=total)
            stats = run(m, prompts, out, gen=gen, samples=samples, batch_size=batch_size,  # type: ignore[arg-type]
                        seed=seed, on_batch=lambda k: bar.advance(task, k))  # fmt: skip
            bar.update(task, completed=total)
    except (LimaError, OSError) as e:
        _fail(e)
    console.print(f"wrote {stats['written']} responses to {out} "
                  f"({stats['skipped_done']} already there)")  # fmt: skip


@app.command()
def serve(
    model: Annotated[Path, typer.Option(help="a checkpoint directory")],
    host: str = "127.0.0.1",
    port: int = 8000,
    top_p: TopP = 0.9,
    temperature: Temp = 0.7,
    repetition_penalty: Penalty = 1.2,
    max_new_tokens: MaxNew = 2048,
) -> None:
    """An OpenAI-compatible /v1/chat/completions over the checkpoint."""
    from lima.evaluate.serve import Model
    from lima.evaluate.serve import serve as make

    gen = _generation(top_p, temperature, repetition_penalty, max_new_tokens)
    server = make(Model(model), host, port, gen)  # type: ignore[arg-type]
    console.print(f"serving {model} on http://{host}:{server.server_port}/v1/chat/completions",
                  highlight=False)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="responses of model A (JSONL or AlpacaEval JSON)")],
    b: Annotated[Path, typer.Argument(help="responses of model B, the baseline")],
    judge: Annotated[str, typer.Option(help="OpenAI-compatible base URL, e.g. http://host/v1")],
    judge_model: Annotated[str, typer.Option(help="model name sent to the judge")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    api_key_env: Annotated[str, typer.Option(help="environment variable with the API key")] = (
        "OPENAI_API_KEY"
    ),
    cache: Annotated[Path | None, typer.Option(help="SQLite reply cache")] = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight")] = 4,
    rpm: Annotated[float | None, typer.Option(help="at most this many requests a minute")] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed request, with backoff")] = 5,
    parse_attempts: Annotated[int, typer.Option(help="asks per order before unparsed")] = 3,
    limit: Annotated[int | None, typer.Option(help="judge only the first N pairs")] = None,
) -> None:
    """Pairwise preference (A better / B better / neither), each pair judged in both orders."""
    from lima.evaluate.judge import Cache, Judge, RateLimit, judge_all, summarize
    from lima.evaluate.plots import preference_bars
    from lima.evaluate.responses import pair, read_responses
    from lima.io import write_json, write_jsonl

    try:
        pairs, only_a, only_b = pair(read_responses(a), read_responses(b))
    except LimaError as e:
        _fail(e)
    if not pairs:
        _fail(LimaError(f"{a} and {b} share no prompt (paired by id, else by prompt text)"))
    pairs = pairs[:limit] if limit else pairs
    out.mkdir(parents=True, exist_ok=True)
    store = Cache(cache or out / "judge_cache.sqlite")
    j = Judge(judge, judge_model, api_key=os.environ.get(api_key_env), cache=store,
              retries=retries, parse_attempts=parse_attempts, rate=RateLimit(rpm))  # fmt: skip
    try:
        with _progress() as bar:
            task = bar.add_task("judging pairs", total=len(pairs))
            rows = judge_all(j, pairs, concurrency, on_done=lambda: bar.advance(task))
    except RuntimeError as e:
        _fail(e)
    finally:
        store.close()
    summary = summarize(rows)
    summary.update(unpaired_a=only_a, unpaired_b=only_b, requests_sent=j.sent,
                   cached_replies=j.cached)  # fmt: skip
    write_jsonl(out / "verdicts.jsonl", rows)
    write_json(out / "summary.json", summary)
    preference_bars(
        [summary],
        out / "preference.png",
        f"{summary.get('model_a', 'A')} against a baseline, judged by {judge_model}",
    )
    console.print_json(json.dumps({k: summary[k] for k in ("n", "a", "b", "tie", "unparsed")}))
    console.print(f"{out}/verdicts.jsonl, summary.json, preference.png "
                  f"({j.sent} requests sent, {j.cached} answered from the cache)")  # fmt: skip


@app.command()
def agreement(
    x: Annotated[Path, typer.Argument(help="verdicts.jsonl")],
    y: Annotated[Path, typer.Argument(help="verdicts.jsonl")],
) -> None:
    """Tie-discounted accuracy between two verdict sets (1 agree, 0.5 one tie, 0 else)."""
    from lima.evaluate.agreement import agreement as score
    from lima.evaluate.agreement import read_verdicts

    try:
        result = score(read_verdicts(x), read_verdicts(y))
    except LimaError as e:
        _fail(e)
    console.print_json(json.dumps(result))


def main() -> None:
    app(prog_name="lima-eval")
