"""The tiny recipe end to end, as a user launches it: two ranks of DeepSpeed ZeRO-3 on gloo via
torchrun on the demo's train.jsonl (dev generations after training, from each epoch-K/), a
resume from a mid-run checkpoint past a torn later one (dev generations inside ZeRO-3), and one
plain process that trains long enough to learn to stop at EOT."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import launch_training

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("deepspeed")

from lima.train.data import IGNORE, encode_all, read_conversations  # noqa: E402

EPOCHS = 4
#: Short sequences keep the run to a minute on two cores and exercise trimming.
COMMON = [f"epochs={EPOCHS}", "max_length=512", "keep_epochs=[0,2,4]", "peak_tflops=0.05"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo: Any) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    launch_training([f"train_file={demo.out / 'train.jsonl'}", f"dev_file={demo.out / 'dev.jsonl'}",
             f"output_dir={out}", f"resumable_checkpoints={EPOCHS}", "checkpoint_every_epochs=2",
             *COMMON], 2, out.parent / "log.txt")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def resumed(run: Path) -> Path:
    """A copy of the run as it stood after epoch 2, with a torn checkpoint-4 (killed before
    transformers wrote trainer_state.json), resumed to the end with in-ZeRO-3 generations."""
    out = run.parent / "resumed"
    shutil.copytree(run / "base-model", out / "base-model")
    shutil.copytree(run / "checkpoints" / "checkpoint-2", out / "checkpoints" / "checkpoint-2")
    torn = out / "checkpoints" / "checkpoint-4"
    shutil.copytree(run / "checkpoints" / "checkpoint-4", torn)
    (torn / "trainer_state.json").unlink()
    rows = (run / "train_log.jsonl").read_text().splitlines()
    (out / "train_log.jsonl").write_text(
        "".join(r + "\n" for r in rows if json.loads(r)["step"] <= 2)
    )
    demo_dir = Path(json.loads((run / "recipe.json").read_text())["train_file"]).parent
    launch_training([f"train_file={demo_dir / 'train.jsonl'}", f"dev_file={demo_dir / 'dev.jsonl'}",
             f"output_dir={out}", f"resumable_checkpoints={EPOCHS}", "resume_from_checkpoint=last",
             "checkpoint_every_epochs=2", "dev_generation=in_training", *COMMON], 2,
            run.parent / "resumed.txt")  # fmt: skip
    return out


def _log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_outputs_follow_the_contract(run: Path) -> None:
    for k in (0, 2, 4):
        assert (run / f"epoch-{k}" / "model.safetensors").exists()
        assert (run / f"epoch-{k}" / "tokenizer.json").exists()
        rows = [json.loads(x) for x in (run / "dev_generations" / f"epoch-{k}.jsonl").open()]
        assert len(rows) == 5 and {r["epoch"] for r in rows} == {k}
        assert all(r["generation"] is not None and r["new_tokens"] > 0 for r in rows)
    assert not (run / "epoch-1").exists() and not (run / "epoch-3").exists()
    page = (run / "dev_generations.html").read_text()
    assert re.findall(r"epoch (\d+)<br>", page) == ["0", "2", "4"]
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # 53 examples, batch 64: a step an epoch
    assert all(set(r) >= {"step", "epoch", "loss", "lr", "tokens_per_s", "padding_fraction"}
               for r in log)  # fmt: skip
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in log)
    assert all(0 <= r["padding_fraction"] < 0.5 for r in log)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["gradient_accumulation_steps"] == 8
    assert summary["deepspeed_zero_stage"] == 3
    assert sum(summary["trimming"].values()) == summary["examples"] == 53
    assert summary["trimming"].get("truncated", 0) > 0
    assert summary["batching"] == "group_by_length" and summary["dev_generation"] == "after"
    assert summary["failed_save_checks"] == [] and summary["train_loss_steps"] == 4
    # Full checkpoints at epochs 2 and 4 only (checkpoint_every_epochs=2), epoch 1 and 3 none.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "checkpoint-2", "checkpoint-4"]  # fmt: skip
    assert not (run / ".lock").exists() or (run / ".lock").read_text().startswith("pid ")


def test_lr_is_paper_peak_at_first_step_and_final_at_last(run: Path) -> None:
    lrs = [r["lr"] for r in _log(run)]
    assert lrs[0] == 1e-5 and lrs[-1] == 1e-6
    assert lrs == sorted(lrs, reverse=True)


def test_every_parameter_changes(run: Path) -> None:
    before, after = _weights(run / "epoch-0"), _weights(run / "epoch-4")
    assert before.keys() == after.keys()
    for name, w in before.items():
        changed = (w != after[name]).float().mean().item()
        assert changed > 0.99, f"{name}: only {changed:.1%} of its entries changed"


def _mean_loss(model_dir: Path, train_file: Path) -> float:
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    enc = encode_all(tok, read_conversations(train_file), eot_id=tok.eos_token_id,
                     bos_id=tok.bos_token_id, max_length=512, loss_on="assistant",
                     min_supervised=64)  # fmt: skip
    total = n = 0.0
    with torch.no_grad():
        for e in enc.examples:
            labels = torch.tensor([e.labels])
            loss = model(input_ids=torch.tensor([e.input_ids]), labels=labels).loss
            k = int((labels[:, 1:] != IGNORE).sum())
            total, n = total + loss.item() * k, n + k
    return total / n


def test_loss_falls(run: Path) -> None:
    # The logged loss is per batch and under residual dropout, so one step against another is
    # noise at this learning rate; the measure is the trained model on fixed tokens.
    assert all(math.isfinite(r["loss"]) for r in _log(run))
    train_file = Path(json.loads((run / "recipe.json").read_text())["train_file"])
    # Without dropout, on the same tokens: the trained model beats its own start.
    assert _mean_loss(run / "epoch-4", train_file) < _mean_loss(run / "epoch-0", train_file) - 1e-4


def test_saved_model_reloads_without_deepspeed_with_the_same_logits(run: Path) -> None:
    import numpy as np

    probe = json.loads((run / "checks" / "probe.json").read_text())
    for k in (0, 4):
        model = transformers.AutoModelForCausalLM.from_pretrained(run / f"epoch-{k}").eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([probe])).logits.numpy()
        live = np.load(run / "checks" / f"epoch-{k}-logits.npy")  # computed under ZeRO-3
        np.testing.assert_allclose(logits, live, rtol=0, atol=1e-5)
    checks = [json.loads(x) for x in (run / "checks" / "save_checks.jsonl").open()]
    assert [c["epoch"] for c in checks] == [0, 2, 4]
    # Every tensor's name and shape from the headers; a few tensors' values, exactly.
    assert all(c["ok"] and c["max_abs_diff"] == 0.0 and c["problems"] == [] for c in checks)
    assert all(c["tensors_in_file"] == 39 and 0 < c["tensors_compared"] < 39 for c in checks)


def test_new_token_rows_start_at_the_mean_under_zero3(run: Path) -> None:
    """epoch-0 is the model after the EOT/pad rows were added on ZeRO-3 shards, before a step."""
    base, start = _weights(run / "base-model"), _weights(run / "epoch-0")
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        old = base[name].shape[0]
        assert start[name].shape[0] == old + 2
        assert torch.equal(start[name][:old], base[name])
        mean = base[name].mean(0)
        torch.testing.assert_close(start[name][old:], mean.expand(2, -1), rtol=0, atol=1e-7)


def test_eot_is_the_models_end_of_sequence(run: Path) -> None:
    cfg = json.loads((run / "epoch-4" / "config.json").read_text())
    gen = json.loads((run / "epoch-4" / "generation_config.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(run / "epoch-4")
    eot = tok.convert_tokens_to_ids("<EOT>")
    assert cfg["eos_token_id"] == gen["eos_token_id"] == tok.eos_token_id == eot
    assert cfg["pad_token_id"] == tok.pad_token_id != eot
    assert cfg["vocab_size"] == len(tok)


def test_resume_from_a_mid_run_checkpoint_gives_the_same_final_weights(
    run: Path, resumed: Path
) -> None:
    a, b = _weights(run / "epoch-4"), _weights(resumed / "epoch-4")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert [r["loss"] for r in _log(resumed)] == [r["loss"] for r in _log(run)]
    assert not (resumed / "epoch-0").exists()  # epoch 0 belongs to the first run
    from lima.train.run import checkpoint_problem

    # The torn checkpoint-4 was named, removed, and written again whole by the resumed run.
    assert "checkpoint-4: torn (no readable trainer_state.json)" in (
        resumed.parent / "resumed.txt").read_text()  # fmt: skip
    assert checkpoint_problem(resumed / "checkpoints" / "checkpoint-4") is None
    first, second = (json.loads((d / "summary.json").read_text()) for d in (run, resumed))
    # The loss over all four steps, the two before the resume included.
    assert second["train_loss_steps"] == 4
    assert second["train_loss"] == pytest.approx(first["train_loss"], rel=1e-12)
    rows = [json.loads(x) for x in (resumed / "dev_generations" / "epoch-4.jsonl").open()]
    assert len(rows) == 5 and second["dev_generation"] == "in_training"


def test_a_trained_model_stops_at_eot(eot_model: Path) -> None:
    """One process (DeepSpeed with a world of one, no launcher) on the demo's prompts with their
    first response sentence, at a rate a random-init model learns from (conftest.eot_model)."""

    def stopped(k: int) -> float:
        path = eot_model / "dev_generations" / f"epoch-{k}.jsonl"
        gens = [json.loads(x) for x in path.open()]
        assert len(gens) == 53
        return sum(g["stopped_at_eot"] for g in gens) / len(gens)

    assert stopped(0) < 0.2
    assert stopped(15) > 0.8
    assert json.loads((eot_model / "summary.json").read_text())["world_size"] == 1
