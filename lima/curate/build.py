"""``lima-data build``: scan every configured dump (reusing finished scans),
select the quotas, and write the dataset with its manifest and Table 1."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from lima import __version__, schema
from lima.curate import card, dedup, evalsets, jobs, limits, plots, review
from lima.curate.config import BuildConfig
from lima.curate.select import GroupReport, dedupe_questions, select_stackexchange
from lima.curate.sites import is_meta, load_groups, site_from_path
from lima.curate.sources import authored, dialogues, natural_instructions, reddit, wikihow
from lima.curate.sources.stackexchange import SiteScan, scan_site, total_funnel
from lima.curate.stats import _token_counter, stats_json, table1
from lima.io import (
    atomic_write,
    dumps,
    sha256_file,
    sha256_text,
    write_json,
    write_jsonl,
    write_text,
)


@dataclass
class BuildResult:
    out: Path
    splits: dict[str, pl.DataFrame]
    scans: list[SiteScan]
    selection: dict[str, GroupReport]
    manifest: dict[str, Any]
    run: jobs.PoolStats | None = None


# The build's hash cache while `run` is on (None: hash every file, as a bare call does).
_hashes: jobs.InputHashes | None = None


def _input_record(label: str, path: Path) -> dict[str, Any]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    hashes = _hashes
    listed = [
        {
            "name": f.name if f == path else str(f.relative_to(path)),
            "bytes": f.stat().st_size,
            "sha256": hashes.sha256(f) if hashes is not None else sha256_file(f),
        }
        for f in files
    ]
    # what the input holds, whatever its name: the same bytes given twice are one input
    content = sha256_text(dumps(sorted(f["sha256"] for f in listed)))
    return {"path": label, "files": listed, "content_sha256": content}


def _register(record: dict[str, Any], inputs: list[dict[str, Any]]) -> bool:
    """Adds ``record`` to the manifest's inputs; False (and the record marked
    ``duplicate_of``) when an input already read holds the same bytes."""
    for other in inputs:
        if (
            other.get("content_sha256") == record["content_sha256"]
            and "duplicate_of" not in other
            and record["files"]
        ):
            record["duplicate_of"] = other["path"]
            inputs.append(record)
            return False
    inputs.append(record)
    return True


def _se_task(
    cfg: BuildConfig,
    label: str,
    path: Path,
    groups: dict[str, str],
    cache: Path,
    record: dict[str, Any],
    site: str | None = None,
) -> jobs.ScanTask:
    se = cfg.stackexchange
    settings = cfg.to_dict()["stackexchange"]
    key = {
        "input": record["files"],
        "filters": settings["filters"],
        "markdown": settings["markdown"],
        "site": site,
        "users": se.users,
        "label": label,
        "include_meta": se.include_meta,
        "groups": groups,
        "seed": cfg.seed,
        "on_error": cfg.on_error,
    }

    def compute() -> tuple[pl.DataFrame, dict[str, Any]]:
        scan = scan_site(
            path,
            groups=groups,
            site=site,
            include_meta=se.include_meta,
            filters=se.filters,
            style=se.markdown,
            users=se.users,
            on_error=cfg.on_error,
            seed=cfg.seed,
            label=label,
        )
        return scan.frame, scan.report()

    kind = cache.name
    return jobs.ScanTask(kind, label, cache, path.name, key, compute, jobs.input_cost(path))


def _se_tasks(
    cfg: BuildConfig, out: Path, inputs: list[dict[str, Any]], filters: bool
) -> list[jobs.ScanTask]:
    """One task per Stack Exchange input (filtered, or unfiltered for the quality preset)."""
    groups = _site_groups(cfg)
    name = "stackexchange" if filters else "stackexchange_unfiltered"
    run_cfg = cfg
    if not filters:
        run_cfg = copy.deepcopy(cfg)
        run_cfg.stackexchange.filters.enabled = False
    tasks = []
    for entry in cfg.stackexchange.entries():
        label = entry.path
        path = cfg.resolve(label)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input dump not found (from config entry {label!r})")
        record = _input_record(label, path)
        if filters:
            inputs.append(record)
        cache = out / "candidates" / name
        tasks.append(_se_task(run_cfg, label, path, groups, cache, record, entry.site))
    return tasks


def _reddit_task(
    cfg: BuildConfig,
    label: str,
    path: Path,
    cache: Path,
    record: dict[str, Any],
    settings: dict[str, Any],
) -> jobs.ScanTask:
    key = {"input": record["files"], "settings": settings, "on_error": cfg.on_error}

    def compute() -> tuple[pl.DataFrame, dict[str, Any]]:
        scan = reddit.scan_file(path, on_error=cfg.on_error, **settings)
        scan.path = label
        return scan.frame, scan.report()

    return jobs.ScanTask(cache.name, label, cache, path.name, key, compute, jobs.input_cost(path))


def _reddit_sources(cfg: BuildConfig) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Each Pushshift pool: its input paths and the scan settings."""
    wp, ask = cfg.reddit.writingprompts, cfg.reddit.askreddit
    return {
        "writingprompts": (
            wp.paths,
            {"subreddit": wp.subreddit, "min_comment_score": wp.min_story_score,
             "min_comment_chars": wp.min_story_chars, "top_level_only": True},
        ),
        "askreddit": (
            ask.paths,
            {"subreddit": ask.subreddit, "kind": "submissions",
             "min_submission_score": ask.min_score},
        ),
    }  # fmt: skip


def _reddit_tasks(
    cfg: BuildConfig, out: Path, name: str, inputs: list[dict[str, Any]]
) -> list[jobs.ScanTask]:
    paths, settings = _reddit_sources(cfg)[name]
    tasks = []
    for label in paths:
        path = cfg.resolve(label)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input dump not found (from config entry {label!r})")
        record = _input_record(label, path)
        if not _register(record, inputs):
            continue
        tasks.append(_reddit_task(cfg, label, path, out / "candidates" / name, record, settings))
    return tasks


def _reddit(
    cfg: BuildConfig, out: Path, name: str, inputs: list[dict[str, Any]]
) -> tuple[pl.DataFrame, list[reddit.PushshiftScan]]:
    scans = []
    for task in _reddit_tasks(cfg, out, name, inputs):
        frame, report = task.result()
        scans.append(reddit.PushshiftScan(report["path"], report["funnel"], frame))
    rows = pl.concat([s.frame for s in scans]) if scans else pl.DataFrame(schema=reddit.ROW_SCHEMA)
    return rows, scans


SOURCE_RANK = {
    "test": 0, "dev": 0, "authored": 1, "stackexchange": 2, "wikihow": 3, "reddit": 4,
    "natural_instructions": 5, "dialogue": 6,
}  # fmt: skip


@dataclass
class Pools:
    """Every candidate pool of a build, before selection."""

    se: pl.DataFrame
    se_unfiltered: pl.DataFrame | None
    wikihow: pl.DataFrame
    writingprompts: pl.DataFrame
    askreddit: pl.DataFrame
    sni: pl.DataFrame
    authored: pl.DataFrame
    dialogues: pl.DataFrame


def _paths(cfg: BuildConfig, labels: list[str], inputs: list[dict[str, Any]]) -> list[Path]:
    out = []
    for label in labels:
        path = cfg.resolve(label)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input not found (from config entry {label!r})")
        if _register(_input_record(label, path), inputs):
            out.append(path)
    return out


def _site_groups(cfg: BuildConfig) -> dict[str, str]:
    se = cfg.stackexchange
    return load_groups(cfg.resolve(se.sites_file) if se.sites_file else None, se.site_groups)


def _stackexchange(
    cfg: BuildConfig, out: Path, inputs: list[dict[str, Any]], filters: bool
) -> tuple[pl.DataFrame, list[SiteScan], dict[str, Any]]:
    name = "stackexchange" if filters else "stackexchange_unfiltered"
    scans = []
    for task in _se_tasks(cfg, out, inputs, filters):
        frame, report = task.result()
        scans.append(SiteScan(**report, frame=frame))
    frames = [s.frame for s in scans if s.status == "scanned"]
    candidates = pl.concat(frames) if frames else schema.empty()
    # One example per question before the temperature weights see the counts.
    candidates, duplicates = dedupe_questions(candidates)
    atomic_write(out / "candidates" / f"{name}.parquet", candidates.write_parquet)
    return candidates, scans, duplicates


def _wikihow(
    cfg: BuildConfig, out: Path, inputs: list[dict[str, Any]]
) -> tuple[pl.DataFrame, dict[str, Any]]:
    w = cfg.wikihow
    paths = _paths(cfg, w.paths, inputs)
    tables = _paths(cfg, w.title_tables, inputs) if paths else []
    scans = [wikihow.read_articles(p, w) for p in paths]
    articles = pl.concat([s.frame for s in scans]) if scans else None
    files = [s.report() for s in scans]
    if articles is None or articles.height == 0:
        return schema.empty(), {"files": files, "kept": 0}
    # the same article in two files: the first file's copy stays
    dup = articles.select(pl.col("key").is_duplicated() & (pl.int_range(pl.len()).over("key") > 0))
    n_dup = int(dup.to_series().sum())
    articles = articles.unique("key", keep="first", maintain_order=True)
    categorised, how = wikihow.categorize(articles, w, tables)
    uncategorised = categorised.filter(pl.col("top").is_null()).height
    frame = wikihow.to_examples(categorised.drop_nulls("top")).sort("id")
    atomic_write(out / "candidates" / "wikihow.parquet", frame.write_parquet)
    funnel = {
        "files": files,
        "articles_in_several_files": n_dup,
        "uncategorised": uncategorised,
        "category_from": how,
        "categories": dict(frame.group_by("domain").len().sort("domain").rows()),
        "kept": frame.height,
    }
    return frame, funnel


def _authored(
    cfg: BuildConfig, out: Path, inputs: list[dict[str, Any]]
) -> tuple[pl.DataFrame, str]:
    paths = _paths(cfg, cfg.authored.paths, inputs)
    examples = authored.parse(paths)
    report = authored.style_report(examples, cfg.authored.style_max_words)
    frame = authored.to_examples(examples, cfg.authored.license)
    return frame, report


def _dialogue_tasks(cfg: BuildConfig, out: Path) -> list[jobs.ScanTask | dict[str, Any]]:
    """One task per site whose comments are mined; a report for each site skipped."""
    labels = cfg.dialogues.paths or [e.path for e in cfg.stackexchange.entries()]
    named = {e.path: e.site for e in cfg.stackexchange.entries() if e.site}
    groups = _site_groups(cfg)
    tasks: list[jobs.ScanTask | dict[str, Any]] = []
    for label in labels:
        path = cfg.resolve(label)
        site = (named.get(label) or site_from_path(path) or "").lower()
        if (is_meta(site) and not cfg.stackexchange.include_meta) or groups.get(site) == "excluded":
            tasks.append({"path": label, "site": site, "skipped": "meta_or_excluded_site"})
            continue
        if path.is_dir() and not any(
            p.name.lower().startswith("comments.xml") for p in path.iterdir()
        ):
            tasks.append({"path": label, "site": site, "skipped": "no_comments_file"})
            continue
        record = _input_record(label, path)
        key = {
            "input": record["files"],
            "min_turns": cfg.dialogues.min_turns,
            "on_error": cfg.on_error,
        }

        def compute(path: Path = path, label: str = label) -> tuple[pl.DataFrame, dict[str, Any]]:
            scan = dialogues.mine(path, min_turns=cfg.dialogues.min_turns, on_error=cfg.on_error)
            scan.path = label
            return scan.frame, scan.report()

        cache = out / "candidates" / "dialogues"
        tasks.append(
            jobs.ScanTask("dialogues", label, cache, path.name, key, compute, jobs.input_cost(path))
        )
    return tasks


def _dialogues(cfg: BuildConfig, out: Path) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    frames, reports = [], []
    for task in _dialogue_tasks(cfg, out):
        if isinstance(task, dict):
            reports.append(task)
            continue
        frame, report = task.result()
        frames.append(frame)
        reports.append(report)
    pool = pl.concat(frames) if frames else schema.empty()
    atomic_write(out / "candidates" / "dialogues.parquet", pool.write_parquet)
    return pool, reports


def plan(cfg: BuildConfig, out: Path) -> list[jobs.ScanTask]:
    """Every scan a build of `cfg` into `out` runs, in the order it reads them: the unit
    of `--jobs`, of a Ray task and of a Slurm array task."""
    inputs: list[dict[str, Any]] = []
    tasks = _se_tasks(cfg, out, inputs, filters=True)
    if cfg.preset == "quality":
        tasks += _se_tasks(cfg, out, inputs, filters=False)
    tasks += _reddit_tasks(cfg, out, "writingprompts", inputs)
    tasks += _reddit_tasks(cfg, out, "askreddit", inputs)
    if cfg.dialogues.enabled:
        tasks += [t for t in _dialogue_tasks(cfg, out) if isinstance(t, jobs.ScanTask)]
    return tasks


def _input_paths(cfg: BuildConfig) -> list[Path]:
    """Every configured input path (for hashing them ahead, in parallel)."""
    labels = [e.path for e in cfg.stackexchange.entries()]
    labels += cfg.dialogues.paths + cfg.reddit.writingprompts.paths + cfg.reddit.askreddit.paths
    labels += cfg.wikihow.paths + cfg.wikihow.title_tables + cfg.authored.paths
    labels += cfg.natural_instructions.paths
    if cfg.test.lima_prompts:
        labels.append(cfg.test.lima_prompts)
    files: list[Path] = []
    for label in labels:
        path = cfg.resolve(label)
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file()]
        elif path.is_file():
            files.append(path)
    return files


def gather(
    cfg: BuildConfig, out: Path, inputs: list[dict[str, Any]]
) -> tuple[Pools, list[SiteScan], dict[str, Any]]:
    se_rows, scans, se_dupes = _stackexchange(cfg, out, inputs, filters=True)
    se_unfiltered = None
    if cfg.preset == "quality":
        se_unfiltered, _, _ = _stackexchange(cfg, out, inputs, filters=False)
    wp, ask = cfg.reddit.writingprompts, cfg.reddit.askreddit
    wp_rows, wp_scans = _reddit(cfg, out, "writingprompts", inputs)
    wp_candidates = reddit.writingprompts(wp_rows, wp)
    ask_rows, ask_scans = _reddit(cfg, out, "askreddit", inputs)
    ask_candidates = reddit.askreddit(ask_rows, ask)
    for name, frame in (("writingprompts", wp_candidates), ("askreddit", ask_candidates)):
        atomic_write(out / "candidates" / f"reddit_{name}.parquet", frame.write_parquet)
    wh, wh_funnel = _wikihow(cfg, out, inputs)
    sni_paths = _paths(cfg, cfg.natural_instructions.paths, inputs)
    sni = natural_instructions.scan(sni_paths, cfg.natural_instructions, cfg.seed)
    atomic_write(out / "candidates" / "natural_instructions.parquet", sni.frame.write_parquet)
    auth, style = _authored(cfg, out, inputs)
    write_text(out / "authored_style.md", style)
    if cfg.dialogues.enabled:
        mined, dialogue_reports = _dialogues(cfg, out)
    else:
        mined, dialogue_reports = schema.empty(), []
    funnel = {
        "stackexchange": {
            "files": [s.report() for s in scans],
            "total": total_funnel(scans),
            "duplicates": se_dupes,
        },
        "reddit/writingprompts": {
            "files": [s.report() for s in wp_scans],
            "total": reddit.total_funnel(wp_scans),
            "candidates": len(wp_candidates),
        },
        "reddit/askreddit": {
            "files": [s.report() for s in ask_scans],
            "total": reddit.total_funnel(ask_scans),
            "candidates": len(ask_candidates),
        },
        "wikihow": wh_funnel,
        "natural_instructions": sni.funnel,
        "authored": {
            f"{split}/{source}": n
            for split, source, n in auth.group_by("domain", "source")
            .len()
            .sort("domain", "source")
            .iter_rows()
        },
        "dialogues": dialogue_reports,
    }
    pools = Pools(se_rows, se_unfiltered, wh, wp_candidates, ask_candidates, sni.frame, auth, mined)
    funnel["limits"] = _apply_limits(cfg, pools)
    return pools, scans, funnel


def _apply_limits(cfg: BuildConfig, pools: Pools) -> dict[str, Any]:
    """Control characters out and over-long turns dropped in every pool (``limits``)."""
    count = None
    if cfg.tokenizer and cfg.limits.max_turn_tokens > 0:
        count = _token_counter(cfg.resolve(cfg.tokenizer))
    reports = {}
    for name in POOL_NAMES:
        frame = getattr(pools, name)
        if frame is None:
            continue
        frame, reports[name] = limits.apply(frame, cfg.limits, count)
        setattr(pools, name, frame)
    return reports


POOL_NAMES = [
    "se", "se_unfiltered", "wikihow", "writingprompts", "askreddit", "sni", "authored",
    "dialogues",
]  # fmt: skip


def _selectable_chains(cfg: BuildConfig, pools: Pools, decisions: dict[str, list[str]]) -> set[str]:
    """The multi-turn chains a build may select: none without ``dialogues.enabled``; mined
    chains only once accepted in review when ``require_review``."""
    if not cfg.dialogues.enabled or cfg.preset != "lima":
        return set()
    chains = set(pools.authored.filter(pl.col("source") == "dialogue")["id"].to_list())
    mined = pools.dialogues["id"].to_list()
    if cfg.dialogues.require_review:
        mined = [i for i in mined if i in decisions]
    return chains | set(mined)


def _dedup(
    cfg: BuildConfig, pools: Pools, decisions: dict[str, list[str]] | None = None
) -> tuple[Pools, pl.DataFrame]:
    """Drop exact and near-duplicate prompts across every pool; test and dev prompts win,
    so no test prompt reaches a training set.

    Only candidates a build can select compete. Single-turn candidates are deduplicated
    among themselves first; multi-turn chains then only against what survived, and they
    always lose, so ``--with-dialogues`` never changes a single-turn example."""
    selectable = _selectable_chains(cfg, pools, decisions or {})
    parts = []
    for name in POOL_NAMES:
        frame = getattr(pools, name)
        if frame is None or frame.height == 0:
            continue
        if name in ("authored", "dialogues"):
            frame = frame.filter(
                (pl.col("source") != "dialogue") | pl.col("id").is_in(sorted(selectable))
            )
        split = (
            pl.when(pl.col("source") == "authored")
            .then(pl.col("domain"))
            .otherwise(pl.lit("train"))
            if name == "authored"
            else pl.lit("test" if name == "askreddit" else "train")
        )
        parts.append(
            frame.select(
                "id",
                "source",
                text=pl.col("conversations").list.first(),
                split=split,
            )
        )
    if not parts:
        return pools, pl.DataFrame(
            schema={
                "id": pl.String,
                "kept_id": pl.String,
                "kind": pl.String,
                "similarity": pl.Float64,
                "reason": pl.String,
            }
        )
    every = pl.concat(parts).unique("id", keep="first", maintain_order=True)
    ranks = pl.DataFrame({"k": list(SOURCE_RANK), "r": list(SOURCE_RANK.values())})
    every = (
        every.with_columns(k=pl.when(pl.col("split") != "train").then("split").otherwise("source"))
        .join(ranks, on="k", how="left")
        .select("id", "text", "split", rank=pl.col("r"))
    )
    is_chain = pl.col("id").is_in(sorted(selectable))
    single = every.filter(~is_chain)
    dropped = dedup.find(single.select("id", "text", "rank"), cfg.dedup)
    if selectable:
        survivors = pl.concat(
            [single.filter(~pl.col("id").is_in(dropped["id"].to_list())), every.filter(is_chain)]
        )
        chain_drops = dedup.find(survivors.select("id", "text", "rank"), cfg.dedup).filter(is_chain)
        dropped = pl.concat([dropped, chain_drops])
    split_of = every.select("id", "split")
    dropped = (
        dropped.join(split_of, on="id", how="left")
        .join(split_of.rename({"id": "kept_id", "split": "kept_split"}), on="kept_id", how="left")
        .with_columns(
            reason=pl.when((pl.col("split") == "train") & (pl.col("kept_split") != "train"))
            .then(pl.lit("overlaps_test_or_dev"))
            .otherwise(pl.format("{}_duplicate_prompt", "kind"))
        )
        .select("id", "kept_id", "kind", "similarity", "reason")
    )
    gone = dropped["id"].to_list()
    for name in POOL_NAMES:
        frame = getattr(pools, name)
        if frame is not None:
            setattr(pools, name, frame.filter(~pl.col("id").is_in(gone)))
    return pools, dropped


def _drop_rejected(pools: Pools, rejected: set[str]) -> tuple[Pools, int]:
    """Takes the candidates a reviewer rejected out of every pool; returns how many went."""
    if not rejected:
        return pools, 0
    gone = sorted(rejected)
    removed = 0
    for name in ("se", "se_unfiltered", "wikihow", "writingprompts", "askreddit", "sni",
                 "dialogues"):  # fmt: skip
        frame = getattr(pools, name)
        if frame is not None:
            kept = frame.filter(~pl.col("id").is_in(gone))
            removed += frame.height - kept.height
            setattr(pools, name, kept)
    return pools, removed


def _reviewed_or(pool: pl.DataFrame, decisions: dict[str, list[str]]) -> pl.DataFrame:
    chosen = apply_review(pool, decisions)
    return pool if chosen is None else chosen


def prepare(cfg: BuildConfig, out: Path, n_jobs: int = 1) -> list[jobs.ScanTask]:
    """Hash the inputs (`n_jobs` files at a time, each once: the hashes are cached by
    size and mtime) and plan the scans."""
    hashes = jobs.InputHashes(out / "candidates" / "input_hashes.json")
    hashes.prefetch(_input_paths(cfg), n_jobs)
    with _hashing(hashes):
        tasks = plan(cfg, out)
    hashes.save()
    return tasks


class _hashing:
    """Input records read hashes from `hashes` while on."""

    def __init__(self, hashes: jobs.InputHashes) -> None:
        self.hashes = hashes

    def __enter__(self) -> None:
        global _hashes
        _hashes = self.hashes

    def __exit__(self, *exc: object) -> None:
        global _hashes
        _hashes = None


def scan_inputs(
    cfg: BuildConfig,
    out: Path,
    n_jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> jobs.PoolStats:
    """Run every scan of the build not yet cached: here on `n_jobs` threads within the
    config's memory budget, or one Ray task each (`executor="ray"`)."""
    tasks = prepare(cfg, out, n_jobs)
    if executor == "ray":
        from lima.curate import ray_exec

        return ray_exec.run(cfg, out, tasks, address)
    return jobs.run_pool(tasks, n_jobs, jobs.memory_budget(cfg.memory_budget_mb))


def run(
    cfg: BuildConfig,
    out: Path,
    *,
    n_jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> BuildResult:
    """The whole build. The scans run first (see `scan_inputs`); everything after reads
    only their cached results, in config order, so `n_jobs` and the executor change how
    long it takes, never a byte of the output (run.json, the one file that says how the
    build ran, aside)."""
    stats = scan_inputs(cfg, out, n_jobs, executor, address)
    hashes = jobs.InputHashes(out / "candidates" / "input_hashes.json")
    with _hashing(hashes):
        result = _select_and_write(cfg, out)
    hashes.save()
    stats.peak_rss_bytes = max(stats.peak_rss_bytes, jobs.peak_rss())
    write_json(out / "run.json", stats.to_dict())
    result.run = stats
    return result


def _select_and_write(cfg: BuildConfig, out: Path) -> BuildResult:
    inputs: list[dict[str, Any]] = []
    pools, scans, funnel = gather(cfg, out, inputs)
    decisions = review.accepted(out)
    pools, dropped = _dedup(cfg, pools, decisions)
    atomic_write(out / "duplicates.parquet", dropped.write_parquet)
    pools, rejected_removed = _drop_rejected(pools, review.rejected(out))
    edited = review.edited(out)
    se = cfg.stackexchange
    selection: dict[str, GroupReport] = {}
    reviewed_labels: dict[str, dict[str, int]] = {}

    def note_review(label: str, taken: pl.DataFrame, automatic: pl.DataFrame) -> None:
        ids = taken["id"].to_list()
        auto = automatic["id"].to_list()
        reviewed_labels[label] = {
            "from_review": len(ids),
            "edited": sum(i in edited for i in ids),
            "differs_from_automatic": len(set(ids) - set(auto)),
            "automatic_left_out": len(set(auto) - set(ids)),
        }

    def draw_se(pool: pl.DataFrame, quotas: dict[str, int], label: str) -> pl.DataFrame:
        chosen, reports = select_stackexchange(
            pool, quotas, se.temperature, cfg.seed, se.not_self_contained_words,
            se.min_title_words, se.pronoun_words, se.question_words,
        )  # fmt: skip
        for group, r in reports.items():
            reviewed = apply_review(pool.filter(pl.col("group") == group), decisions)
            if reviewed is not None:
                automatic = chosen.filter(pl.col("group") == group)
                chosen = pl.concat(
                    [chosen.filter(pl.col("group") != group), reviewed.head(quotas[group])]
                )
                r = _top(reviewed, quotas[group], r.candidates)
                note_review(f"{label}/{group}", reviewed.head(quotas[group]), automatic)
            selection[f"{label}/{group}"] = r
        return chosen

    def take(
        label: str, pool: pl.DataFrame, quota: int, sampled: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        automatic = pool if sampled is None else sampled
        chosen = apply_review(pool, decisions)
        if chosen is None:
            chosen = automatic
        else:
            note_review(label, chosen.head(quota), automatic.head(quota))
        selection[label] = _top(chosen, quota, len(pool))
        return chosen.head(quota)

    authored_train = pools.authored.filter(
        (pl.col("domain") == "train") & (pl.col("source") == "authored")
    )
    authored_chains = pools.authored.filter(pl.col("source") == "dialogue")
    trains: dict[str, pl.DataFrame] = {}
    ab = cfg.ablation
    if cfg.preset == "lima":
        parts = [
            draw_se(pools.se, {"stem": se.quota.stem, "other": se.quota.other}, "stackexchange"),
            take("wikihow", pools.wikihow, cfg.wikihow.quota,
                 wikihow.sample(pools.wikihow, cfg.wikihow.quota, cfg.seed)),
            take("reddit/writingprompts", pools.writingprompts, cfg.reddit.writingprompts.quota),
            take("natural_instructions", pools.sni, cfg.natural_instructions.quota,
                 natural_instructions.sample(pools.sni, cfg.natural_instructions.quota, cfg.seed)),
            take("authored", authored_train, cfg.authored.train_quota),
        ]  # fmt: skip
        if cfg.dialogues.enabled:
            d = cfg.dialogues
            parts.append(take("dialogue/authored", authored_chains, d.authored_quota))
            mined = apply_review(pools.dialogues, decisions)
            if mined is None and not d.require_review:
                mined = pools.dialogues
            mined = mined if mined is not None else pools.dialogues.clear()
            selection["dialogue/stackexchange"] = _top(mined, d.mined_quota, len(pools.dialogues))
            parts.append(mined.head(d.mined_quota))
        trains["train"] = pl.concat(parts)
    elif cfg.preset == "diversity":
        half = ab.diversity_size // 2
        trains["train_stackexchange"] = draw_se(
            pools.se, {"stem": half, "other": ab.diversity_size - half}, "stackexchange"
        )
        trains["train_wikihow"] = take(
            "wikihow",
            pools.wikihow,
            ab.diversity_size,
            wikihow.sample(pools.wikihow, ab.diversity_size, cfg.seed),
        )
    elif cfg.preset == "quality":
        assert pools.se_unfiltered is not None
        half = ab.quality_size // 2
        trains["train"] = draw_se(
            pools.se_unfiltered,
            {"stem": half, "other": ab.quality_size - half},
            "stackexchange_unfiltered",
        )
    else:  # quantity: nested sets from one draw
        top = max(ab.quantity_sizes)
        drawn = draw_se(pools.se, {"stem": top // 2, "other": top - top // 2}, "stackexchange")
        drawn = drawn.with_columns(_k=pl.int_range(pl.len()).over("group"))
        for n in sorted(ab.quantity_sizes):
            want = {"stem": n // 2, "other": n - n // 2}
            trains[f"train_{n}"] = drawn.filter(
                pl.col("_k") < pl.col("group").replace_strict(want, default=0)
            ).drop("_k")
    dev = pools.authored.filter(pl.col("domain") == "dev").head(cfg.authored.dev_quota)
    ask = take("reddit/askreddit", pools.askreddit, cfg.reddit.askreddit.quota)
    test_authored = pools.authored.filter(pl.col("domain") == "test").head(cfg.authored.test_quota)
    selection["authored/dev"] = _top(dev, cfg.authored.dev_quota, dev.height)
    selection["authored/test"] = _top(test_authored, cfg.authored.test_quota, test_authored.height)
    test = pl.concat([ask, test_authored])
    splits = {name: frame.sort("source", "id") for name, frame in trains.items()}
    splits["dev"] = dev.sort("id")
    splits["test"] = test.sort("source", "id")
    outputs: dict[str, Any] = {}
    for name, frame in splits.items():
        rows = [schema.Example.from_row(r).to_lima_json() for r in frame.iter_rows(named=True)]
        write_jsonl(out / f"{name}.jsonl", rows)
        outputs[f"{name}.jsonl"] = {"rows": len(rows), "sha256": sha256_file(out / f"{name}.jsonl")}
    if cfg.test.lima_prompts:
        path = _paths(cfg, [cfg.test.lima_prompts], inputs)[0]
        lima_test = evalsets.lima_test_prompts(path)
        write_jsonl(out / "test_lima.jsonl", lima_test)
        outputs["test_lima.jsonl"] = {
            "rows": len(lima_test),
            "sha256": sha256_file(out / "test_lima.jsonl"),
        }
    for f in sorted((out / "candidates").glob("*.parquet")):
        outputs[f"candidates/{f.name}"] = {
            "rows": pl.scan_parquet(f).select(pl.len()).collect().item()
        }
    tokenizer = cfg.resolve(cfg.tokenizer) if cfg.tokenizer else None
    stats_md = table1(splits, scans, selection, tokenizer=tokenizer)
    write_text(out / "stats.md", stats_md)
    write_json(out / "stats.json", stats_json(splits, tokenizer))
    funnel["duplicates"] = dict(dropped.group_by("reason").len().sort("reason").rows())
    plots.funnel_chart(
        funnel,
        selection,
        out / "funnel.png",
        subreddits={
            "writingprompts": cfg.reddit.writingprompts.subreddit,
            "askreddit": cfg.reddit.askreddit.subreddit,
        },
    )
    manifest = {
        "tool": "lima",
        "version": __version__,
        "preset": cfg.preset,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "config_sha256": sha256_text(dumps(cfg.to_dict())),
        "inputs": inputs,
        "funnel": funnel,
        "selection": {k: v.to_dict() for k, v in selection.items()},
        "outputs": outputs,
    }
    if decisions or rejected_removed or (out / review.DB_NAME).exists():
        manifest["review"] = {
            "database": review.DB_NAME,
            "changed_selection": bool(reviewed_labels or rejected_removed),
            "accepted": len(decisions),
            "edited": len(edited),
            "rejected_removed_from_candidates": rejected_removed,
            "selection": reviewed_labels,
            "examples_from_review": sum(r["from_review"] for r in reviewed_labels.values()),
            "examples_differing_from_automatic": sum(
                r["differs_from_automatic"] for r in reviewed_labels.values()
            ),
            "automatic_examples_left_out": sum(
                r["automatic_left_out"] for r in reviewed_labels.values()
            ),
        }
    write_json(out / "manifest.json", manifest)
    write_text(out / "README.md", card.dataset_card(manifest, splits))
    return BuildResult(out, splits, scans, selection, manifest)


def _top(chosen: pl.DataFrame, quota: int, candidates: int) -> GroupReport:
    """The first `quota` of ranked (or reviewed) rows."""
    got = min(quota, len(chosen))
    sites = chosen.head(quota)["domain"].value_counts().sort("domain").rows()
    return GroupReport(wanted=quota, got=got, candidates=candidates, sites=dict(sites))


def apply_review(pool: pl.DataFrame, decisions: dict[str, list[str]]) -> pl.DataFrame | None:
    """The accepted rows of `pool` with their edited turns, or None when no
    row of it was accepted (then the automatic selection stands)."""
    ids = [i for i in pool["id"].to_list() if i in decisions]
    if not ids:
        return None
    edits = pl.DataFrame(
        {"id": ids, "_turns": [decisions[i] for i in ids]},
        schema={"id": pl.String, "_turns": pl.List(pl.String)},
    )
    return (
        pool.join(edits, on="id", how="inner", maintain_order="left")
        .with_columns(conversations=pl.col("_turns"))
        .drop("_turns")
    )
