"""The full recipe on the bundled samples: presets, the paper's test prompts, Table 1 with
tokens, the golden Table 1 of the demo, exports that round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import ROOT, run_cli

from lima.curate import build, config, export

GOLDEN = ROOT / "tests" / "golden" / "demo_stats.md"


def test_demo_table1_is_golden(demo: build.BuildResult) -> None:
    assert (demo.out / "stats.md").read_text() == GOLDEN.read_text()


def test_lima_test_prompts_are_the_papers_300(demo: build.BuildResult) -> None:
    rows = [json.loads(x) for x in (demo.out / "test_lima.jsonl").read_text().splitlines()]
    assert [r["meta"]["post_id"] for r in rows] == [f"lima-{i}" for i in range(300)]
    assert rows[0]["conversations"][0].startswith("I'm writing a NeurIPS paper")


def test_dataset_card_and_funnel_chart(demo: build.BuildResult) -> None:
    card = (demo.out / "README.md").read_text()
    assert "CC BY-NC-SA 3.0" in card and "Attribution (Stack Exchange, CC BY-SA)" in card
    se = demo.splits["train"].filter(pl.col("source") == "stackexchange")
    for m in se["meta"].to_list():  # every answer is credited with author and link
        assert f"]({m['url']}) — answer by " in card
        assert m["author_url"] in card
    png = (demo.out / "funnel.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize("preset", ["diversity", "quality", "quantity"])
def test_every_preset_builds(tmp_path: Path, preset: str) -> None:
    cfg = config.sample_config()
    cfg.preset = preset
    result = build.run(cfg, tmp_path / preset)
    m = json.loads((result.out / "manifest.json").read_text())
    assert m["preset"] == preset
    assert (result.out / "dev.jsonl").is_file() and (result.out / "test.jsonl").is_file()
    if preset == "diversity":
        se, wh = result.splits["train_stackexchange"], result.splits["train_wikihow"]
        assert se.height == 20 and set(se["source"]) == {"stackexchange"}
        assert wh.height == 20 and set(wh["source"]) == {"wikihow"}
    elif preset == "quality":
        train = result.splits["train"]
        assert train.height == 20 and set(train["source"]) == {"stackexchange"}
        scores = train["meta"].struct.field("answer_score")
        lengths = train["conversations"].list.get(1).str.len_chars()
        # unfiltered: answers the paper's filters would drop are in
        assert (scores < 10).any() or ((lengths < 1200) | (lengths > 4096)).any()
    else:
        sets = [set(result.splits[f"train_{n}"]["id"]) for n in (5, 10, 20)]
        assert [len(s) for s in sets] == [5, 10, 20]
        assert sets[0] <= sets[1] <= sets[2]  # nested


def test_table1_counts_tokens_with_a_tokenizer(tmp_path: Path, demo: build.BuildResult) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [t for c in demo.splits["train"]["conversations"].to_list() for t in c]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    cfg = config.sample_config()
    cfg.tokenizer = str(path)
    result = build.run(cfg, tmp_path / "out")
    text = (result.out / "stats.md").read_text()
    assert "Mean lengths in tokens (tokenizer.json)." in text
    data = json.loads((result.out / "stats.json").read_text())
    assert data["unit"] == "tokens"
    wh = next(r for r in data["splits"]["train"]["rows"] if r["source"] == "wikiHow")
    assert wh["output_tokens"] > wh["output_words"]  # a 500-token vocabulary splits words
    row = next(line for line in text.splitlines() if line.startswith("| wikiHow |"))
    assert row == f"| wikiHow | 10 | {wh['input_tokens']:,.0f} | {wh['output_tokens']:,.0f} |"
    # the stats command counts the same tokens
    proc = run_cli("stats", str(result.out / "train.jsonl"), "--tokenizer", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert next(r for r in again["splits"]["train"]["rows"] if r["source"] == "wikiHow") == wh


def test_exports_round_trip(tmp_path: Path, demo: build.BuildResult) -> None:
    import datasets

    src = demo.out / "train.jsonl"
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    for fmt, name in (("messages", "m.jsonl"), ("sharegpt", "s.json"), ("parquet", "p.parquet")):
        proc = run_cli("export", str(src), "--format", fmt, "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [[m["content"] for m in r["messages"]] for r in msgs] == [
        r["conversations"] for r in rows
    ]
    assert {m["role"] for r in msgs for m in r["messages"][1::2]} == {"assistant"}
    share = json.loads((tmp_path / "s.json").read_text())
    assert [[t["value"] for t in r["conversations"]] for r in share] == [
        r["conversations"] for r in rows
    ]
    back = pl.read_parquet(tmp_path / "p.parquet")
    assert back["conversations"].to_list() == [r["conversations"] for r in rows]
    assert [json.loads(m) for m in back["meta"]] == [r["meta"] for r in rows]
    # what trainers load: the datasets library reads both JSON files
    ds = datasets.load_dataset("json", data_files=str(src), split="train")
    assert ds.num_rows == len(rows) and ds[0]["conversations"] == rows[0]["conversations"]
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "m.jsonl"), split="train")
    assert ds[0]["messages"][0]["role"] == "user"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(src.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(Exception, match=r"bad\.jsonl:2:2: not valid JSON"):
        export.export(bad, "messages", tmp_path / "x.jsonl")


def test_with_dialogues_leaves_the_single_turn_rows_byte_identical(
    tmp_path: Path, demo: build.BuildResult
) -> None:
    cfg = config.sample_config()
    cfg.dialogues.enabled = True
    cfg.dialogues.require_review = False  # every mined chain selectable: the hardest case
    with_chains = build.run(cfg, tmp_path / "chains")
    rows = (with_chains.out / "train.jsonl").read_text().splitlines()
    single = [r for r in rows if json.loads(r)["source"] != "dialogue"]
    assert single == (demo.out / "train.jsonl").read_text().splitlines()
    chains = [json.loads(r) for r in rows if json.loads(r)["source"] == "dialogue"]
    assert len(chains) == 2 + 3  # the sample quotas: 2 authored, 3 mined
    assert all(len(r["conversations"]) >= 4 for r in chains)


def test_an_input_given_twice_is_one_input(tmp_path: Path, demo: build.BuildResult) -> None:
    cfg = config.sample_config()
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in cfg.resolve(cfg.natural_instructions.paths[0]).glob("*.json"):
        (copy / f.name).write_bytes(f.read_bytes())
    cfg.natural_instructions.paths += [str(copy), cfg.natural_instructions.paths[0]]
    cfg.wikihow.paths = cfg.wikihow.paths * 2
    result = build.run(cfg, tmp_path / "twice")
    assert (result.out / "train.jsonl").read_bytes() == (demo.out / "train.jsonl").read_bytes()
    m = json.loads((result.out / "manifest.json").read_text())
    dupes = {i["path"]: i["duplicate_of"] for i in m["inputs"] if "duplicate_of" in i}
    sni = config.sample_config().natural_instructions.paths[0]
    assert dupes == {str(copy): sni, sni: sni, cfg.wikihow.paths[0]: cfg.wikihow.paths[0]}


def test_control_characters_and_over_long_turns_are_counted(tmp_path: Path) -> None:
    from lima.curate import limits

    demo_rows = pl.read_parquet(
        build.run(config.sample_config(), tmp_path / "d").out / "candidates" / "wikihow.parquet"
    ).sort(pl.col("conversations").list.get(1).str.len_chars(), "id")
    # a real article with NUL and an escape byte in it, and one repeated past the window
    first = demo_rows["conversations"][0].to_list()
    dirty = [first[0], first[1][:100] + "\x00\x1b" + first[1][100:]]
    huge = [first[0], first[1] * 40]
    frame = demo_rows.head(3).with_columns(
        conversations=pl.Series([dirty, huge, demo_rows["conversations"][2]])
    )
    out, report = limits.apply(frame, limits.LimitSettings())
    assert report == {"examples": 3, "examples_with_control_chars": 1,
                      "control_chars_removed": 2, "turn_too_long": 1}  # fmt: skip
    assert out.height == 2 and out["conversations"][0].to_list() == first
    unlimited, report = limits.apply(frame, limits.LimitSettings(max_turn_tokens=0))
    assert unlimited.height == 3 and report["turn_too_long"] == 0


def test_build_cli_flags(tmp_path: Path) -> None:
    proc = run_cli("build", "--out", str(tmp_path / "d"), "--with-dialogues")
    assert proc.returncode == 0, proc.stderr
    assert "dialogue/stackexchange wanted 3, got 0" in proc.stderr
    assert "accepted in `lima-data review`" in proc.stderr
    train = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert sum(r["source"] == "dialogue" for r in train) == 2  # the authored chains
    assert (tmp_path / "d" / "candidates" / "dialogues.parquet").is_file()
    proc = run_cli("check-authored", str(ROOT / "lima" / "samples" / "authored"))
    assert proc.returncode == 0 and "31 examples" in proc.stderr, proc.stderr
