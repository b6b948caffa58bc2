"""Issue 17 (items 1-4) without a launcher: the padding-free collator against the padded one,
the save check at the cost of a few tensors, the estimate's phases and disk, one optimizer rule
for every recipe, generation within the window, training files with nothing to learn, cutting
before tokenising, resuming past a torn checkpoint, the output_dir lock, DeepSpeed's own config
check. Real data: the demo's train.jsonl and a tiny model trained on it (test_train_units)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("deepspeed")

from lima.errors import ConfigError  # noqa: E402
from lima.train.data import (  # noqa: E402
    CUT_MARGIN_TOKENS,
    IGNORE,
    Collator,
    FlatCollator,
    check_encoding,
    encode_all,
    encode_conversation,
    longest_token_chars,
    read_conversations,
)
from lima.train.model import add_special_tokens, build_tiny_base, resize_with_mean_init  # noqa: E402
from lima.train.recipe import load_recipe, resumable_epochs  # noqa: E402

RECIPES = ROOT / "training" / "recipes"
TINY = RECIPES / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, demo: Any) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("fit")
    train = demo.out / "train.jsonl"
    recipe = load_recipe(TINY, [f"train_file={train}", f"output_dir={out}"])
    texts = [t for _, turns in read_conversations(train) for t in turns]
    build_tiny_base(recipe, texts, out / "base-model")
    return out / "base-model", train


def _tok(path: Path) -> Any:
    tok = transformers.AutoTokenizer.from_pretrained(path)
    add_special_tokens(tok, "<EOT>", "<pad>")
    return tok


def _examples(tiny: tuple[Path, Path], max_length: int = 256) -> tuple[Any, list[dict[str, Any]]]:
    tok = _tok(tiny[0])
    enc = encode_all(tok, read_conversations(tiny[1]), eot_id=tok.convert_tokens_to_ids("<EOT>"),
                     bos_id=tok.bos_token_id, max_length=max_length, loss_on="assistant",
                     min_supervised=16)  # fmt: skip
    return tok, [{"input_ids": e.input_ids, "labels": e.labels} for e in enc.examples]


# --- 17.3: padding-free micro-batches -----------------------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_loss_equals_the_padded_loss(tiny: tuple[Path, Path], attn: str) -> None:
    """The same micro-batches of demo examples, padded and flattened: the same loss and the same
    gradients, to float tolerance, and none of the flattened positions is padding."""
    tok, rows = _examples(tiny, max_length=512)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny[0], attn_implementation=attn)
    resize_with_mean_init(model, len(tok) - 2, len(tok))
    model.eval()
    padded, flat = Collator(tok.pad_token_id), FlatCollator()
    batches = [rows[10:14], rows[25:29]]  # each with one short example among long ones
    pad_positions = 0
    for batch in batches:
        a, b = padded(batch), flat(batch)
        assert int(a.pop("lima_lengths").sum()) == int(b.pop("lima_lengths").sum())
        assert b["input_ids"].numel() == sum(len(r["input_ids"]) for r in batch)
        pad_positions += a["input_ids"].numel() - b["input_ids"].numel()
        model.zero_grad()
        loss_a = model(**a).loss
        loss_a.backward()
        grads_a = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        loss_b = model(**b).loss
        loss_b.backward()
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
        for ga, p in zip(grads_a, model.parameters(), strict=True):
            torch.testing.assert_close(p.grad, ga, rtol=1e-4, atol=1e-6)
    assert pad_positions > 0  # the padded layout did pad these batches


def test_flat_collator_restarts_positions_and_masks_each_first_label(
    tiny: tuple[Path, Path],
) -> None:
    _, rows = _examples(tiny)
    batch = rows[:3]
    out = FlatCollator()(batch)
    pos = out["position_ids"][0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0]
    lengths = [len(r["input_ids"]) for r in batch]
    assert starts == [0, lengths[0], lengths[0] + lengths[1]]
    assert all(out["labels"][0, s].item() == IGNORE for s in starts)
    assert out["lima_lengths"].tolist() == lengths and "attention_mask" not in out
    assert out["use_cache"] is False


# --- 17.4: one optimizer rule, generation within the window, files with nothing to learn ---


def test_every_recipe_gets_the_same_parameter_groups_no_decay_on_norms(
    tiny: tuple[Path, Path],
) -> None:
    from lima.train.run import optimizer_groups

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny[0])
    decay, no_decay = optimizer_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert undecayed == {n for n, _ in model.named_parameters() if "norm" in n}
    assert all(p.dim() == 2 for p in decay["params"])
    # No recipe hands the optimizer to DeepSpeed (one flat group, lr logged a step ahead).
    for path in RECIPES.glob("*.yaml"):
        assert "optimizer" not in (load_recipe(path).deepspeed_config() or {})


def test_a_deepspeed_optimizer_block_is_refused(tmp_path: Path) -> None:
    cfg = json.loads((ROOT / "training" / "deepspeed" / "zero3-offload.json").read_text())
    cfg["optimizer"] = {"type": "AdamW", "params": {"lr": "auto"}}
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r'ds.json: remove "optimizer"'):
        load_recipe(TINY, [f"deepspeed={ds}"]).deepspeed_config()


def test_generation_stops_at_the_window_not_window_plus_max_new_tokens(
    tiny: tuple[Path, Path],
) -> None:
    from lima.train.generate import new_token_budget, sample
    from lima.train.recipe import Generation

    gen = Generation(max_new_tokens=2048)
    assert new_token_budget(gen, 1500, 2048) == 548
    assert new_token_budget(gen, 10, 2048) == 2048 - 10
    with pytest.raises(ValueError, match="no room in the model's window of 2048"):
        new_token_budget(gen, 2048, 2048)
    tok = _tok(tiny[0])
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny[0]).eval()
    resize_with_mean_init(model, len(tok) - 2, len(tok))
    model.config.max_position_embeddings = 40
    eot = tok.convert_tokens_to_ids("<EOT>")
    prompt = tok.encode(read_conversations(tiny[1])[0][1][0], add_special_tokens=False)[:30]
    # A random model rarely says EOT: it runs to the budget, which is the window's rest.
    (out,) = sample(model, [prompt], gen=Generation(max_new_tokens=500), eot_id=eot,
                    pad_id=tok.pad_token_id, seed=1)  # fmt: skip
    assert len(out) <= 10


def test_a_file_with_no_supervised_token_is_an_error_and_empty_responses_are_counted(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    tok = _tok(tiny[0])
    eot = tok.convert_tokens_to_ids("<EOT>")
    rows = read_conversations(tiny[1])
    prompts_only = [(rid, turns[:1]) for rid, turns in rows[:6]]
    enc = encode_all(tok, prompts_only, eot_id=eot, bos_id=tok.bos_token_id, max_length=256,
                     loss_on="assistant", min_supervised=16)  # fmt: skip
    assert enc.counts == {"no_supervised_token": 6}
    with pytest.raises(ConfigError, match=r"train.jsonl: no supervised token in 6 conv"):
        check_encoding(enc, tmp_path / "train.jsonl", "assistant")
    mixed = [(rows[0][0], [rows[0][1][0], "  "]), *rows[1:4], prompts_only[4]]
    enc = encode_all(tok, mixed, eot_id=eot, bos_id=tok.bos_token_id, max_length=256,
                     loss_on="assistant", min_supervised=16)  # fmt: skip
    warnings = check_encoding(enc, tmp_path / "train.jsonl", "assistant")
    assert enc.empty_responses == [rows[0][0]]
    assert any(f"1 conversation(s) with an empty response ({rows[0][0]})" in w for w in warnings)
    assert any("1 conversation(s) without a response carry no loss" in w for w in warnings)


def test_turns_are_cut_before_tokenising_without_changing_what_is_kept(
    tiny: tuple[Path, Path],
) -> None:
    tok = _tok(tiny[0])
    eot = tok.convert_tokens_to_ids("<EOT>")
    longest = longest_token_chars(tok)
    assert longest is not None and longest > 1
    seen: list[int] = []

    class Counting:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            seen.append(len(text))
            return list(tok.encode(text, add_special_tokens=add_special_tokens))

        get_vocab = tok.get_vocab
        convert_tokens_to_string = tok.convert_tokens_to_string

    rows = read_conversations(tiny[1])
    # A 2 MB answer from real text: the demo's answers end to end.
    huge = " ".join(turns[1] for _, turns in rows) * 4
    huge = huge * (2_000_000 // len(huge) + 1)
    convo = [(rows[0][0], [rows[0][1][0], huge])]
    enc = encode_all(Counting(), convo, eot_id=eot, bos_id=tok.bos_token_id, max_length=128,
                     loss_on="assistant", min_supervised=16)  # fmt: skip
    assert max(seen) == (128 + CUT_MARGIN_TOKENS) * longest < len(huge)
    assert enc.turns_cut == 1 and enc.counts == {"truncated": 1}
    full, _ = encode_conversation(tok, convo[0][1], eot_id=eot, bos_id=tok.bos_token_id,
                                  max_length=128, min_supervised=16)  # fmt: skip
    assert enc.examples[0].input_ids == full.input_ids
    # And on every demo row at a short window, cutting changes nothing that is kept.
    for _, turns in rows:
        cut, _ = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                     max_length=64, min_supervised=16,
                                     max_chars=(64 + CUT_MARGIN_TOKENS) * longest)  # fmt: skip
        whole, _ = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                       max_length=64, min_supervised=16)  # fmt: skip
        assert cut == whole


# --- 17.4: resume, lock, summary loss, DeepSpeed's config check ------------------------------


def _fake_checkpoint(d: Path, step: int, ranks: int = 2, state: bool = True) -> Path:
    """The files transformers + DeepSpeed write for a checkpoint, as names and sizes only."""
    c = d / f"checkpoint-{step}"
    (c / f"global_step{step}").mkdir(parents=True)
    (c / "latest").write_text(f"global_step{step}")
    for r in range(ranks):
        (
            c / f"global_step{step}" / f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt"
        ).write_bytes(b"x")
        (c / f"rng_state_{r}.pth").write_bytes(b"x")
    if state:
        (c / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return c


def test_resume_last_passes_over_a_torn_checkpoint(tmp_path: Path) -> None:
    from lima.train.run import checkpoint_problem, last_complete_checkpoint

    good = _fake_checkpoint(tmp_path, 2)
    no_state = _fake_checkpoint(tmp_path, 4, state=False)
    assert checkpoint_problem(good) is None
    assert checkpoint_problem(no_state) == "no readable trainer_state.json"
    found, torn = last_complete_checkpoint(tmp_path)
    assert found == good and [t for t, _ in torn] == [no_state]
    half = _fake_checkpoint(tmp_path, 6)
    (half / "rng_state_1.pth").unlink()
    assert checkpoint_problem(half) == "1 RNG states for 2 ranks"
    empty = _fake_checkpoint(tmp_path, 8)
    next((empty / "global_step8").glob("*rank_1*")).write_bytes(b"")
    assert "empty" in (checkpoint_problem(empty) or "")
    found, torn = last_complete_checkpoint(tmp_path)
    assert found == good and [t for t, _ in torn] == [empty, half, no_state]
    shutil.rmtree(good)
    assert last_complete_checkpoint(tmp_path)[0] is None


def test_a_second_run_on_the_same_output_dir_is_refused(tmp_path: Path) -> None:
    from lima.train.run import OutputLock

    first, second = OutputLock(tmp_path / "run"), OutputLock(tmp_path / "run")
    assert first.acquire() is None
    why = second.acquire()
    assert why is not None and "another lima-train run holds" in why and "pid " in why
    first.release()
    assert second.acquire() is None
    second.release()


def test_summary_loss_is_the_mean_over_every_step() -> None:
    from lima.train.run import mean_loss_over_steps

    # Logged every 2 steps, then a last window of 1 step; a resumed log repeats no step.
    history = [{"step": 2, "loss": 3.0}, {"step": 4, "loss": 2.0}, {"epoch": 1},
               {"step": 5, "loss": 1.0}, {"step": 5, "train_loss": 9.0}]  # fmt: skip
    assert mean_loss_over_steps(history) == (pytest.approx((6 + 4 + 1) / 5), 5)
    assert mean_loss_over_steps([]) == (None, 0)


def test_check_runs_deepspeeds_own_config_class(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lima.train import cli as train_cli

    runner = CliRunner()
    cfg = json.loads((ROOT / "training" / "deepspeed" / "zero3.json").read_text())
    cfg["bf16"] = {"enabled": True}
    cfg["fp16"] = {"enabled": True}  # outside zero_optimization: only DeepSpeedConfig sees it
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps(cfg))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY.read_text().replace("../deepspeed/zero3-cpu.json", str(ds)))
    bad = runner.invoke(train_cli.tools_app, ["check", str(recipe)])
    assert bad.exit_code == 1, bad.output
    assert "DeepSpeed rejects it" in bad.output and "bfloat16 and fp16" in bad.output
    cfg = json.loads((ROOT / "training" / "deepspeed" / "zero3-hpz.json").read_text())
    ds.write_text(json.dumps(cfg))
    hpz = runner.invoke(train_cli.tools_app, ["check", str(recipe)])  # 2 GPUs, hpZ of 8
    assert hpz.exit_code == 1 and "zero_hpz_partition_size 8 must divide" in hpz.output
    cfg["zero_optimization"]["stage3_max_live_parameters"] = "auto"
    ds.write_text(json.dumps(cfg))
    auto = runner.invoke(train_cli.tools_app, ["check", str(recipe)])
    assert auto.exit_code == 1 and 'stage3_max_live_parameters is "auto"' in auto.output


# --- 17.1: the save check, estimate's phases and disk, resumable checkpoints ---------------


def test_save_check_reads_a_few_tensors_and_catches_a_difference(
    tiny: tuple[Path, Path],
) -> None:
    from lima.train import savecheck

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny[0])
    shapes = savecheck.live_shapes(model)
    names = savecheck.pick(shapes)
    live = savecheck.gather_live(model, names, 0)
    ok = savecheck.check_saved(tiny[0], shapes, live)
    assert ok.ok and ok.max_abs_diff == 0.0 and ok.tensors_in_file == len(shapes)
    assert set(ok.compared) == set(names)
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} <= set(names)
    assert "model.layers.1.mlp.up_proj.weight" not in names  # a middle layer is not read
    file_bytes = (tiny[0] / "model.safetensors").stat().st_size
    assert ok.bytes_read == savecheck.compared_bytes(shapes, 4) < file_bytes / 3
    live["model.layers.0.input_layernorm.weight"][3] += 1e-3
    bad = savecheck.check_saved(tiny[0], shapes, live)
    assert not bad.ok and bad.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    wrong = {**shapes, "model.extra.weight": (2,), "lm_head.weight": (1, 1)}
    worse = savecheck.check_saved(tiny[0], wrong, live)
    assert "model.extra.weight: missing from the saved weights" in worse.problems
    assert any(p.startswith("lm_head.weight: saved") for p in worse.problems)


def test_estimate_reports_host_memory_per_phase_and_disk_per_epoch() -> None:
    from lima.train.estimate import estimate

    gib = 2**30
    seven = estimate(load_recipe(RECIPES / "7b.yaml"))
    p = seven.parameters
    assert set(seven.host_phases) == {"load", "train", "save", "check"}
    assert seven.host_phases["save"] == 2 * p  # rank 0's 16-bit state dict
    assert seven.host_phases["check"] < 0.2 * gib  # not a 4-byte-per-parameter reload
    assert seven.host_phases["load"] >= 8 * seven.shard_bytes
    assert seven.epoch_weights_bytes == 2 * p and seven.resumable_bytes == 16 * p
    assert seven.resumable_epochs == [10, 15]  # the last kept epoch and the end
    assert [k for k, _ in seven.disk_per_epoch(15)] == [5, 6, 7, 8, 9, 10, 15]
    # Activations for 4 × 2048 fit 80 GB without recomputation at 7B on 8 GPUs ...
    assert not seven.gradient_checkpointing
    assert seven.activation_bytes_per_rank == seven.activation_bytes_without_checkpointing
    # ... and not at 65B with one sequence per GPU on 32.
    big = estimate(load_recipe(RECIPES / "65b.yaml"))
    assert big.gradient_checkpointing
    assert big.host_phases["check"] < 0.5 * gib < 100 * gib < big.host_phases["save"]
    off = estimate(load_recipe(RECIPES / "65b-offload.yaml"))
    assert off.host_phases["train"] / 2**40 == pytest.approx(1.6, abs=0.05)  # offloaded states
    assert off.host_phases["save"] == off.host_phases["train"] + 2 * off.parameters


def test_resumable_checkpoints_every_k_epochs_and_always_at_the_end() -> None:
    r = load_recipe(TINY)
    assert resumable_epochs(r) == [10, 15]
    assert resumable_epochs(load_recipe(TINY, ["checkpoint_every_epochs=4"])) == [4, 8, 12, 15]
    assert resumable_epochs(load_recipe(TINY, ["keep_epochs=[]"])) == [15]
    assert resumable_epochs(load_recipe(TINY, ["resumable_checkpoints=0"])) == []
