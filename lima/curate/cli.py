"""``lima-data``: the data toolkit's command line."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from lima import commands, schema
from lima.errors import ConfigError

app = typer.Typer(
    help="Curate a LIMA-style alignment set from raw public dumps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scan_app = typer.Typer(
    help="Scan raw dumps into candidate files (Parquet, the shared example schema).",
    no_args_is_help=True,
)
app.add_typer(scan_app, name="scan")


@app.callback()
def _root(
    version: Annotated[bool, commands.version_option("lima-data")] = False,
) -> None:
    """Curate a LIMA-style alignment set from raw public dumps.

    Exit codes: 0 done, 1 bad input (the message names the file and where in it), 2 bad
    usage, 130 interrupted.
    """


err_console = Console(stderr=True, soft_wrap=True)

# The ranges the native scanners take (u64 seeds, i64 scores and lengths).
U64 = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class OnError(enum.StrEnum):
    fail = "fail"
    skip = "skip"


def _funnel_table(title: str, funnel: dict[str, Any]) -> Table:
    t = Table(title=title, show_header=True)
    t.add_column("stage")
    t.add_column("count", justify="right")
    for key in (
        "rows_read", "questions", "answers", "malformed_rows", "duplicate_ids",
        "answers_orphaned", "answers_not_top", "questions_unanswered", "top_answers",
    ):  # fmt: skip
        t.add_row(key, str(funnel.get(key, 0)))
    for kind, n in sorted(funnel.get("other_post_types", {}).items()):
        t.add_row(f"  other post type {kind}", str(n))
    for reason, n in funnel.get("rejected", {}).items():
        t.add_row(f"  rejected: {reason}", str(n))
    t.add_row("[bold]kept[/bold]", f"[bold]{funnel.get('kept', 0)}[/bold]")
    for reason, n in funnel.get("files_skipped", {}).items():
        t.add_row(f"files skipped: {reason}", str(n))
    if funnel.get("archive_errors"):
        t.add_row("[red]archive errors[/red]", str(funnel["archive_errors"]))
        t.add_row("  bytes lost", str(funnel.get("bytes_lost", 0)))
    return t


@scan_app.command("stackexchange")
def scan_stackexchange(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Site dumps: a .7z archive, a folder holding Posts.xml, or a Posts.xml."
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output Parquet file.")],
    stats: Annotated[
        Path | None, typer.Option("--stats", help="Write the funnel (counts per reason) as JSON.")
    ] = None,
    no_filters: Annotated[
        bool, typer.Option("--no-filters", help="Keep every top answer (the unfiltered ablation).")
    ] = False,
    include_meta: Annotated[
        bool, typer.Option("--include-meta", help="Scan meta sites too (skipped by default).")
    ] = False,
    site: Annotated[
        str | None,
        typer.Option("--site", help="Site host name, when the file name does not tell it."),
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(
            "--on-error", help="fail: stop at the first bad record; skip: count it, go on."
        ),
    ] = OnError.fail,
    seed: Annotated[
        int, typer.Option(min=0, max=U64, help="Seed of the title-or-body prompt choice.")
    ] = 0,
    min_score: Annotated[
        int, typer.Option(min=I64_MIN, max=I64_MAX, help="Lowest top-answer score kept.")
    ] = 10,
    min_chars: Annotated[
        int, typer.Option(min=0, max=I64_MAX, help="Shortest answer kept, in characters.")
    ] = 1200,
    max_chars: Annotated[
        int, typer.Option(min=0, max=I64_MAX, help="Longest answer kept, in characters.")
    ] = 4096,
    sites_file: Annotated[
        Path | None,
        typer.Option(help="CSV (site,group) that overrides the shipped STEM/other table."),
    ] = None,
) -> None:
    """Write one row per (question, top answer) pair that passes LIMA's filters.

    The top answer is the highest-scored (ties: the accepted one, then the
    lowest id). Filters: score >= 10, 1200..4096 characters, no first-person
    words in the author's prose (not code, math or quotes), no references to
    other answers or posters, no pointer at a removed image, not mostly bare
    links. Every answer read is counted in the funnel under the reason it was
    dropped. Authors and askers are named from the dump's Users.xml.
    """
    from lima.curate.sites import load_groups
    from lima.curate.sources.stackexchange import FilterSettings, scan_site, total_funnel
    from lima.io import atomic_write, write_json

    if site and len(paths) > 1:
        raise ConfigError("--site names the site of one dump; pass one PATH with it")
    groups = load_groups(sites_file)
    filters = FilterSettings(
        enabled=not no_filters, min_score=min_score, min_chars=min_chars, max_chars=max_chars
    )
    scans = []
    for path in paths:
        s = scan_site(
            path,
            groups=groups,
            site=site,
            include_meta=include_meta,
            filters=filters,
            on_error=on_error.value,
            seed=seed,
        )
        if s.status == "skipped":
            err_console.print(f"[yellow]skipped[/yellow] {path}: {s.reason} ({s.site})")
        else:
            err_console.print(
                f"{s.site} ({s.group}): {s.funnel['kept']} kept of {s.funnel['answers']} answers"
            )
            for msg in s.funnel.get("errors", []):
                err_console.print(f"  [yellow]skipped record[/yellow] {msg}")
        scans.append(s)
    frames = [s.frame for s in scans if s.status == "scanned"]
    frame = pl.concat(frames) if frames else schema.empty()
    atomic_write(out, lambda tmp: frame.write_parquet(tmp))
    total = total_funnel(scans)
    if stats:
        write_json(stats, {"files": [s.report() for s in scans], "total": total})
    err_console.print(_funnel_table(f"Stack Exchange funnel → {out} ({len(frame)} rows)", total))


class Kind(enum.StrEnum):
    auto = "auto"
    submissions = "submissions"
    comments = "comments"


@scan_app.command("pushshift")
def scan_pushshift(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Pushshift dumps: RS_*/RC_* or *_submissions/*_comments .zst, or NDJSON."
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output Parquet file.")],
    subreddit: Annotated[
        str | None, typer.Option("--subreddit", help="Keep only this subreddit (case-insensitive).")
    ] = None,
    kind: Annotated[
        Kind, typer.Option("--kind", help="auto: from the file name, else per record.")
    ] = Kind.auto,
    stats: Annotated[
        Path | None, typer.Option("--stats", help="Write the funnel (counts per reason) as JSON.")
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option("--on-error", help="fail: stop at the first bad line; skip: count it, go on."),
    ] = OnError.fail,
    min_score: Annotated[
        int | None,
        typer.Option(
            min=I64_MIN, max=I64_MAX, help="Drop submissions and comments scored below this."
        ),
    ] = None,
) -> None:
    """Write the submissions and comments of a subreddit, one row each.

    Zstandard archives are read with the 2 GiB window Pushshift used. Lines of
    other subreddits are skipped before any JSON parse; deleted and removed
    content is counted and dropped; HTML entities are decoded.
    """
    from lima.curate.sources import reddit
    from lima.io import atomic_write, write_json

    scans = []
    for path in paths:
        s = reddit.scan_file(
            path,
            subreddit=subreddit,
            kind=kind.value,
            on_error=on_error.value,
            min_submission_score=min_score,
            min_comment_score=min_score,
        )
        f = s.funnel
        err_console.print(
            f"{path.name}: {f['kept_submissions']} submissions, {f['kept_comments']} comments kept "
            f"of {f['lines_read']} lines"
        )
        for msg in f.get("errors", []):
            err_console.print(f"  [yellow]skipped[/yellow] {msg}")
        scans.append(s)
    frame = pl.concat([s.frame for s in scans])
    atomic_write(out, lambda tmp: frame.write_parquet(tmp))
    total = reddit.total_funnel(scans)
    if stats:
        write_json(stats, {"files": [s.report() for s in scans], "total": total})
    t = Table(title=f"Pushshift funnel → {out} ({len(frame)} rows)")
    t.add_column("stage")
    t.add_column("count", justify="right")
    for key in ("lines_read", "blank", "malformed", "other_subreddit", "submissions", "comments"):
        t.add_row(key, str(total.get(key, 0)))
    for reason, n in total["dropped"].items():
        t.add_row(f"  dropped: {reason}", str(n))
    if total.get("archive_errors"):
        t.add_row("[red]archive errors[/red]", str(total["archive_errors"]))
        t.add_row("  bytes lost", str(total.get("bytes_lost", 0)))
    t.add_row(
        "[bold]kept[/bold]", str(total.get("kept_submissions", 0) + total.get("kept_comments", 0))
    )
    err_console.print(t)


class Executor(enum.StrEnum):
    local = "local"
    ray = "ray"


class Preset(enum.StrEnum):
    lima = "lima"
    diversity = "diversity"
    quality = "quality"
    quantity = "quantity"


@app.command()
def build(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="lima.toml; without it, the bundled sample dumps are used."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out"),
    seed: Annotated[
        int | None, typer.Option(min=0, max=U64, help="Override the config's seed.")
    ] = None,
    preset: Annotated[
        Preset | None,
        typer.Option(
            help="lima: the paper's 1,000 examples; the section 5 ablations: diversity "
            "(2,000 Stack Exchange vs 2,000 wikiHow), quality (2,000 unfiltered Stack "
            "Exchange), quantity (2k..32k filtered Stack Exchange, nested)."
        ),
    ] = None,
    with_dialogues: Annotated[
        bool,
        typer.Option(
            "--with-dialogues",
            help="Add the 30 multi-turn chains (10 authored, 20 reviewed from Stack Exchange "
            "comment threads): the paper's 1,030-example variant.",
        ),
    ] = False,
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="A tokenizer.json: Table 1 gains mean input/output length in tokens."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=0,
            max=4096,
            help="Inputs scanned at once (0: every core), within the config's memory_budget_mb. "
            "The output is the same bytes for any value.",
        ),
    ] = 0,
    executor: Annotated[
        Executor,
        typer.Option(
            help="local: scan here on --jobs threads. ray: one Ray task per input on the "
            "cluster at --address (pip install 'lima[ray]'; out/ and the inputs on a shared "
            "filesystem); the select/write step then runs here.",
        ),
    ] = Executor.local,
    address: Annotated[
        str | None,
        typer.Option(help="The Ray cluster for --executor ray (host:port, or 'auto')."),
    ] = None,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Hash the inputs, list the scans (one per input, numbered from 0) and stop: "
            "the first step of a Slurm array (examples/slurm/).",
        ),
    ] = False,
    scan_task: Annotated[
        int | None,
        typer.Option(
            "--scan-task",
            min=0,
            help="Run scan K of --plan (e.g. $SLURM_ARRAY_TASK_ID) into the cache and stop.",
        ),
    ] = None,
) -> None:
    """Run the whole curation: scan every source, drop duplicate prompts (and any
    training prompt that matches a test or dev prompt), select the quotas, and
    write train/dev/test.jsonl, manifest.json, stats.md, README.md (the dataset
    card), funnel.png and candidates/*.parquet.

    A rerun reuses every finished scan of unchanged inputs.
    """
    from lima.curate import build as build_mod
    from lima.curate import config as config_mod

    if config is None:
        cfg = config_mod.sample_config()
        err_console.print(
            "[cyan]no --config: building from the sample dumps bundled with lima, "
            "with quotas scaled down to what they can fill[/cyan]"
        )
    else:
        cfg = config_mod.load(config)
    if seed is not None:
        cfg.seed = seed
    if preset is not None:
        cfg.preset = preset.value
    if with_dialogues:
        cfg.dialogues.enabled = True
    if tokenizer is not None:
        cfg.tokenizer = str(tokenizer.resolve())
    cfg.validate("command line")
    from lima.curate import jobs as jobs_mod

    n_jobs = jobs or jobs_mod.default_jobs()
    if executor is Executor.ray and address is None:
        raise commands.UsageError("--executor ray needs --address (host:port, or 'auto')")
    if plan_only or scan_task is not None:
        tasks = build_mod.prepare(cfg, out, n_jobs)
        if scan_task is not None:
            if scan_task >= len(tasks):
                last = len(tasks) - 1
                raise commands.UsageError(
                    f"--scan-task {scan_task}: the plan has {len(tasks)} scans (0..{last})"
                )
            task = tasks[scan_task]
            cached = task.finished()
            task.run()
            err_console.print(
                f"scan {scan_task} ({task.kind}: {task.label}) "
                + ("was cached" if cached else "done")
                + f"; peak memory {jobs_mod.peak_rss() // jobs_mod.MiB} MiB"
            )
            return
        for i, task in enumerate(tasks):
            state = "cached" if task.finished() else "to scan"
            typer.echo(f"{i}\t{task.kind}\t{task.label}\t{state}")
        err_console.print(f"{len(tasks)} scans; run each with --scan-task K, then build")
        return
    result = build_mod.run(cfg, out, n_jobs=n_jobs, executor=executor.value, address=address)
    for label, r in result.selection.items():
        if r.short_by:
            err_console.print(
                f"[yellow]quota not filled[/yellow]: {label} wanted {r.wanted}, "
                f"got {r.got} ({r.candidates} candidates) — short by {r.short_by}"
                + (
                    "; mined chains enter once accepted in `lima-data review`"
                    if label == "dialogue/stackexchange" and r.candidates
                    else ""
                )
            )
    typer.echo((out / "stats.md").read_text(encoding="utf-8"))
    written = ", ".join(
        f"{name} ({info['rows']})"
        for name, info in result.manifest["outputs"].items()
        if not name.startswith("candidates/")
    )
    err_console.print(
        f"[green]wrote[/green] {out}/: {written}; manifest.json, stats.md, README.md, "
        "funnel.png, authored_style.md, run.json, candidates/"
    )
    if result.run is not None:
        st = result.run
        plural = "s" * (st.jobs != 1)
        where = f"{st.jobs} job{plural}" if st.executor == "local" else f"Ray at {address}"
        err_console.print(
            f"scans: {st.ran} run on {where}, {st.cached} cached, {st.seconds:.1f} s; "
            f"peak memory {st.peak_rss_bytes // jobs_mod.MiB} MiB "
            f"(budget {st.budget_bytes // jobs_mod.MiB} MiB, at most "
            f"{st.max_charged_bytes // jobs_mod.MiB} MiB charged at once)"
        )


class ExportFormat(enum.StrEnum):
    messages = "messages"
    sharegpt = "sharegpt"
    parquet = "parquet"


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="A train/dev/test .jsonl written by build.")],
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="messages: OpenAI-style {'messages': [{'role', 'content'}]} JSONL; "
            "sharegpt: a JSON list of {'conversations': [{'from', 'value'}]}; "
            "parquet: the build's columns as Parquet.",
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file.")],
    system: Annotated[
        str | None, typer.Option(help="A system message to put first (messages, sharegpt).")
    ] = None,
) -> None:
    """Convert a build output to the format a trainer reads."""
    from lima.curate import export as export_mod

    n = export_mod.export(file, format.value, out, system=system)
    err_console.print(f"[green]wrote[/green] {out} ({n} examples, {format.value})")


@app.command("check-authored")
def check_authored(
    paths: Annotated[list[Path], typer.Argument(help="Authored example files or folders.")],
    max_words: Annotated[
        int, typer.Option(help="Longest acknowledgement sentence the style report accepts.")
    ] = 30,
) -> None:
    """Validate hand-written example files (errors name file and line) and print the
    style report: responses that do not open with a short acknowledgement."""
    from lima.curate.sources import authored

    examples = authored.parse(paths)
    counts: dict[str, int] = {}
    for e in examples:
        key = e.split + (" (" + ", ".join(e.tags) + ")" if e.tags else "")
        counts[key] = counts.get(key, 0) + 1
    err_console.print(
        f"[green]ok[/green]: {len(examples)} examples: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    typer.echo(authored.style_report(examples, max_words))


@app.command("review")
def review_cmd(
    out: Annotated[Path, typer.Argument(help="A build output folder (holding candidates/).")],
    host: commands.HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the page.")] = 8765,
    reviewer: Annotated[
        str | None, typer.Option(help="Your name, stored with each decision.")
    ] = None,
    token: commands.PageTokenOption = None,
) -> None:
    """Review candidates in a local web page: accept, reject or edit each one.

    Decisions are kept in OUT/review.sqlite and survive a restart; the next
    `lima-data build --out OUT` uses the accepted examples of every bucket you
    reviewed and never a rejected one. The page opens at the first undecided
    candidate. Keys: a accept, r reject, e edit, Ctrl+Enter save, u undo,
    j/k move, n next undecided, / search.
    """
    from lima.curate import review

    server = review.serve(out, host, port, reviewer, token)
    if server.warning:
        err_console.print(f"[yellow]{server.warning}[/yellow]", highlight=False)
    err_console.print(f"reviewing {out}: {server.url()}  (Ctrl-C to stop)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("config")
def config_cmd(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="lima.toml to fill in; without it, the paper's defaults."),
    ] = None,
    samples: Annotated[
        bool,
        typer.Option(
            "--samples", help="Print the config `build` uses without --config (the bundled dumps)."
        ),
    ] = False,
) -> None:
    """Print the effective build config as TOML: every key, defaults included.

    Save it as a starting point (`lima-data config > lima.toml`) or check what a config
    leaves to the defaults. examples/lima.toml is the paper's recipe with every key explained.
    """
    from lima.curate import config as config_mod

    if config is not None and samples:
        raise commands.UsageError("--config and --samples name two different configs; give one")
    if config is not None:
        cfg = config_mod.load(config)
        where = f"{config} with the defaults filled in; relative paths resolve against " + str(
            config.resolve().parent
        )
    elif samples:
        cfg = config_mod.sample_config()
        where = "the bundled sample dumps (what `lima-data build` uses without --config)"
    else:
        cfg = config_mod.BuildConfig()
        where = "the paper's defaults (no inputs given)"
    typer.echo(f"# lima-data config: {where}\n" + cfg.to_toml(), nl=False)


@app.command()
def stats(
    file: Annotated[Path, typer.Argument(help="A train/dev/test .jsonl or a candidates .parquet.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="A tokenizer.json: lengths in tokens instead of words."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the numbers as JSON (what stats.json holds).")
    ] = False,
) -> None:
    """Print the paper's Table 1 for one dataset file: a build's .jsonl, its `messages` or
    ShareGPT export, or a candidates .parquet. Lengths are means in words (split on
    whitespace), or in tokens with --tokenizer."""
    from lima.curate.export import read_dataset
    from lima.curate.stats import stats_json, table1

    frame = read_dataset(file)
    if frame.height == 0:
        raise ConfigError(f"{file}: holds no examples")
    if tokenizer is not None and not tokenizer.is_file():
        raise ConfigError(f"{tokenizer}: tokenizer file not found")
    split = file.stem if file.stem in ("train", "dev", "test") else file.name
    if as_json:
        typer.echo(json.dumps(stats_json({split: frame}, tokenizer), indent=2))
    else:
        typer.echo(table1({split: frame}, tokenizer=tokenizer))


def main() -> None:
    commands.run(app)


if __name__ == "__main__":
    main()
