"""Exact and near-duplicate prompts, and the train/test overlap check, on constructed
collisions of real prompts."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from lima.curate import build, config, dedup


def test_exact_and_near_duplicates_keep_the_lowest_rank() -> None:
    base = "How do I keep a sourdough starter alive while I am away for two weeks on holiday?"
    frame = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": [
                base,
                base.upper() + "!!",  # exact after normalisation
                base + " Thanks in advance.",  # near: a few words added
                "What is the difference between a dubbel and a tripel?",
                base,
            ],
            "rank": [2, 1, 3, 0, 5],
        }
    )
    got = {r["id"]: r for r in dedup.find(frame).iter_rows(named=True)}
    assert set(got) == {"a", "c", "e"}  # b has the lowest rank of the cluster
    assert got["a"]["kept_id"] == "b" and got["a"]["kind"] == "exact"
    assert got["c"]["kept_id"] == "b" and got["c"]["kind"] == "near"
    assert 0.8 <= got["c"]["similarity"] < 1.0
    strict = dedup.DedupSettings(threshold=0.99)
    assert "c" not in set(dedup.find(frame, strict)["id"])


def test_prompts_shorter_than_a_shingle_are_compared_whole() -> None:
    frame = pl.DataFrame(
        {"id": ["a", "b", "c"], "text": ["Hello there", "hello, there!", "Hi"], "rank": [0, 1, 2]}
    )
    got = dedup.find(frame)
    assert got["id"].to_list() == ["b"] and got["kept_id"].to_list() == ["a"]


def test_no_test_prompt_reaches_train(tmp_path: Path) -> None:
    """An authored test prompt equal to a Stack Exchange training prompt: the training
    example is dropped under overlaps_test_or_dev, and the quota refilled."""
    first = build.run(config.sample_config(), tmp_path / "first")
    se = [json.loads(x) for x in (first.out / "train.jsonl").read_text().splitlines()]
    victim = next(r for r in se if r["source"] == "stackexchange")
    extra = tmp_path / "extra.txt"
    extra.write_text(
        "@@ example test collision\n@@ user\n" + victim["conversations"][0] + "\n"
        "@@ example test near-collision\n@@ user\n"
        + victim["conversations"][0].rstrip("?")
        + " please?\n"
    )
    cfg = config.sample_config()
    cfg.authored.paths.append(str(extra))
    cfg.authored.test_quota = 20
    second = build.run(cfg, tmp_path / "second")
    train = second.splits["train"]
    assert victim["id"] not in set(train["id"])
    assert train.filter(pl.col("source") == "stackexchange").height == 20  # refilled
    prompts = {c[0] for c in second.splits["test"]["conversations"]}
    assert victim["conversations"][0] in prompts
    dups = pl.read_parquet(second.out / "duplicates.parquet")
    row = dups.filter(pl.col("id") == victim["id"]).row(0, named=True)
    assert row["reason"] == "overlaps_test_or_dev"
    train_prompts = {c[0] for c in train["conversations"]}
    assert not train_prompts & prompts
