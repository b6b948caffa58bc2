"""`lima-data build` end to end on the bundled sample dumps."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import run_cli

from lima.curate import build, config
from lima.errors import ConfigError

OUTPUTS = [
    "train.jsonl",
    "dev.jsonl",
    "test.jsonl",
    "test_lima.jsonl",
    "README.md",
    "funnel.png",
    "authored_style.md",
    "manifest.json",
    "stats.md",
    "stats.json",
    "candidates/stackexchange.parquet",
    "candidates/reddit_writingprompts.parquet",
    "candidates/reddit_askreddit.parquet",
    "candidates/wikihow.parquet",
    "candidates/natural_instructions.parquet",
    "duplicates.parquet",
]


def run(out: Path, seed: int = 0, **quota: int) -> build.BuildResult:
    cfg = config.sample_config()
    cfg.seed = seed
    for k, v in quota.items():
        setattr(cfg.stackexchange.quota, k, v)
    return build.run(cfg, out)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> build.BuildResult:
    return run(tmp_path_factory.mktemp("demo") / "out")


def test_outputs_and_quotas(demo: build.BuildResult) -> None:
    for name in OUTPUTS:
        assert (demo.out / name).is_file(), name
    rows = [json.loads(line) for line in (demo.out / "train.jsonl").read_text().splitlines()]
    # the scaled sample quotas: SE 10 + 10, wikiHow 10, WritingPrompts 10, authored 12, and
    # the one generation task among the three sample task files
    assert len(rows) == 53
    by_source = {s: sum(r["source"] == s for r in rows) for s in {r["source"] for r in rows}}
    assert by_source == {
        "stackexchange": 20, "wikihow": 10, "reddit": 10, "authored": 12, "natural_instructions": 1,
    }  # fmt: skip
    groups = [r["group"] for r in rows]
    assert groups.count("stem") == 10 and groups.count("other") == 10
    stories = [r for r in rows if r["source"] == "reddit"]
    assert len(stories) == 10 and all(r["domain"] == "WritingPrompts" for r in stories)
    assert all(
        len(r["conversations"]) == 2 and 500 <= len(r["conversations"][1]) <= 2000 for r in stories
    )
    tests = [json.loads(line) for line in (demo.out / "test.jsonl").read_text().splitlines()]
    assert len(tests) == 22 and all(len(r["conversations"]) == 1 for r in tests)
    assert sum(r["source"] == "reddit" for r in tests) == 10
    assert not {r["conversations"][0] for r in tests} & {r["conversations"][0] for r in rows}
    for r in (r for r in rows if r["source"] == "stackexchange"):
        assert r["source"] == "stackexchange"
        assert len(r["conversations"]) == 2
        prompt, answer = r["conversations"]
        meta = r["meta"]
        assert prompt == (meta["title"] if meta["prompt_field"] == "title" else meta["question"])
        assert 1200 <= len(answer) <= 4096
        assert meta["answer_score"] >= 10
        assert r["id"] == f"se/{r['domain']}/q{meta['question_id']}-a{meta['answer_id']}"
        assert meta["url"].startswith(f"https://{r['domain']}/a/")
        assert r["license"].startswith("CC BY-SA")


def test_manifest_accounts_for_everything(demo: build.BuildResult) -> None:
    m = json.loads((demo.out / "manifest.json").read_text())
    assert m["seed"] == 0 and len(m["config_sha256"]) == 64
    names = {f["name"] for i in m["inputs"] for f in i["files"]}
    assert {"beer.stackexchange.com.7z", "Posts.xml"} <= names
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for i in m["inputs"] for f in i["files"])
    total = m["funnel"]["stackexchange"]["total"]
    assert total["kept"] == 38 == m["outputs"]["candidates/stackexchange.parquet"]["rows"]
    assert total["answers"] == 2277 + 327 + 1060
    sel = m["selection"]
    assert sel["stackexchange/stem"]["got"] == 10 and sel["stackexchange/other"]["short_by"] == 0
    assert sel["natural_instructions"]["short_by"] == 4
    # every source's funnel is in the manifest
    assert m["funnel"]["natural_instructions"]["rejected"] == {"not_generation_task": 2}
    assert m["funnel"]["wikihow"]["files"][0]["funnel"]["articles"] == 223
    # the four prompts WritingPrompts holds twice belong to stories past the length bounds
    assert m["funnel"]["duplicates"] == {}
    # every pool went through the shared limits: wikiHow's longest articles exceed the window
    lim = m["funnel"]["limits"]
    assert lim["wikihow"]["turn_too_long"] == 90 and lim["se"]["turn_too_long"] == 0
    # the classifier's character n-grams know some feature of every title: none uncategorised
    assert m["funnel"]["wikihow"]["uncategorised"] == 0 and lim["wikihow"]["examples"] == 211
    assert m["outputs"]["candidates/wikihow.parquet"]["rows"] == lim["wikihow"]["examples"]
    # temperature 3: p(site) is proportional to n ** (1/3)
    p = sel["stackexchange/other"]["probabilities"]
    assert p["beer.stackexchange.com"] == pytest.approx(
        18 ** (1 / 3) / (18 ** (1 / 3) + 3 ** (1 / 3)), abs=1e-6
    )


def test_stats_md_is_table1(demo: build.BuildResult) -> None:
    text = (demo.out / "stats.md").read_text()
    assert "| Stack Exchange (STEM) | 10 | 42 | 379 |" in text
    assert "| Pushshift r/WritingPrompts | 10 |" in text and "| Pushshift r/AskMen | 10 |" in text
    rows = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.startswith("| ")]
    assert rows[:13] == [
        "Source", "**Training**", "Stack Exchange (STEM)", "Stack Exchange (Other)", "wikiHow",
        "Pushshift r/WritingPrompts", "Natural Instructions", "Authored (Group A)", "Total",
        "**Development**", "Authored (Group A)", "Total", "**Test**",
    ]  # fmt: skip
    assert "| Authored (Group B) | 12 | 22 | N/A |" in text
    assert "Refusals among authored examples: train 2 of 12" in text
    data = json.loads((demo.out / "stats.json").read_text())
    assert data["unit"] == "words" and data["refusals_among_authored"]["train"] == 2
    train = {r["source"]: r for r in data["splits"]["train"]["rows"]}
    assert train["wikiHow"]["examples"] == 10 and train["wikiHow"]["output_chars"] > 0
    assert data["splits"]["test"]["rows"][0]["output_words"] is None  # prompts only
    assert "quantumcomputing.stackexchange.com | stem | 1986 | 1060 |" in text


def test_same_seed_gives_identical_bytes(tmp_path: Path, demo: build.BuildResult) -> None:
    again = run(tmp_path / "again")
    for name in OUTPUTS:
        assert (again.out / name).read_bytes() == (demo.out / name).read_bytes(), name


def test_other_seed_changes_the_selection(tmp_path: Path, demo: build.BuildResult) -> None:
    other = run(tmp_path / "other", seed=1)
    # the prompt (title or body) is drawn per example
    assert (other.out / "train.jsonl").read_bytes() != (demo.out / "train.jsonl").read_bytes()
    # and the sites drawn: with 5 of 20 "other" candidates, the seeds pick different sets
    picks = {
        frozenset(run(tmp_path / f"s{seed}", seed=seed, stem=5, other=5).splits["train"]["id"])
        for seed in range(4)
    }
    assert len(picks) > 1


def test_rerun_reuses_finished_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    first = run(out)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("scanned again")

    monkeypatch.setattr(build, "scan_site", boom)
    second = run(out)
    assert second.splits["train"].equals(first.splits["train"])
    # a changed setting invalidates the cache
    cfg = config.sample_config()
    cfg.stackexchange.filters.min_score = 11
    with pytest.raises(AssertionError, match="scanned again"):
        build.run(cfg, out)


def test_unfillable_quota_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path / "short", stem=25, other=5)
    stem = result.selection["stackexchange/stem"]
    assert (stem.wanted, stem.got, stem.short_by) == (25, 17, 8)
    m = json.loads((result.out / "manifest.json").read_text())
    assert m["selection"]["stackexchange/stem"]["short_by"] == 8
    proc = run_cli(
        "build", "--config", str(write_config(tmp_path, stem=25)), "--out", str(tmp_path / "cli")
    )
    assert proc.returncode == 0, proc.stderr
    assert "short by 8" in proc.stderr


def write_config(tmp_path: Path, stem: int) -> Path:
    samples = Path(config.__file__).parent.parent / "samples" / "stackexchange"
    beer, qc = samples / "beer.stackexchange.com.7z", samples / "quantumcomputing.stackexchange.com"
    cfg = tmp_path / "lima.toml"
    cfg.write_text(
        f"""seed = 0
[stackexchange]
paths = ["{beer}", "{qc}"]
quota = {{ stem = {stem}, other = 3 }}
"""
    )
    return cfg


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[stackexchange]\nquotas = 3\n")
    with pytest.raises(
        ConfigError, match=r"bad.toml: stackexchange: unknown key\(s\) \['quotas'\]"
    ):
        config.load(bad)
    bad.write_text("[stackexchange]\ntemperature = 'hot'\n")
    with pytest.raises(ConfigError, match=r"stackexchange\.temperature: expected float"):
        config.load(bad)
    bad.write_text("[stackexchange.filters]\nmin_chars = 5000\n")
    with pytest.raises(ConfigError, match="min_chars exceeds max_chars"):
        config.load(bad)
    bad.write_text("seed = [\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        config.load(bad)


def test_config_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, stem=2))
    assert cfg.resolve("x/y.7z") == tmp_path / "x/y.7z"
    assert cfg.stackexchange.quota.stem == 2
    assert cfg.stackexchange.filters.min_score == 10  # the paper's default


def test_candidates_parquet_has_the_schema(demo: build.BuildResult) -> None:
    from lima import schema

    frame = pl.read_parquet(demo.out / "candidates" / "stackexchange.parquet")
    assert frame.schema == schema.SCHEMA
    assert len(frame) == 38
