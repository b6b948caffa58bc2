"""The parts of the training recipe that need no launcher: recipes and their validation, the
EOT format and its loss mask, trimming, the schedule, residual dropout, EOT's mean
initialisation, the repetition penalty over generated tokens, the side-by-side page."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lima.errors import ConfigError  # noqa: E402
from lima.train import cli as train_cli  # noqa: E402
from lima.train.data import IGNORE, encode_conversation, prompt_ids, read_conversations  # noqa: E402
from lima.train.generate import GeneratedTokensRepetitionPenalty, side_by_side  # noqa: E402
from lima.train.model import (  # noqa: E402
    add_residual_dropout,
    add_special_tokens,
    build_tiny_base,
    residual_dropout_modules,
    resize_with_mean_init,
    set_eot,
)
from lima.train.recipe import load_recipe  # noqa: E402
from lima.train.schedule import LimaLinearLR, linear_lr  # noqa: E402

RECIPES = sorted((ROOT / "training" / "recipes").glob("*.yaml"))
TINY = ROOT / "training" / "recipes" / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, demo: object) -> tuple[Path, Path]:
    """The tiny recipe's base model and tokenizer, trained on the demo's train.jsonl."""
    out = tmp_path_factory.mktemp("tiny")
    train = demo.out / "train.jsonl"  # type: ignore[attr-defined]
    recipe = load_recipe(TINY, [f"train_file={train}", f"output_dir={out}"])
    texts = [t for _, turns in read_conversations(train) for t in turns]
    build_tiny_base(recipe, texts, out / "base-model")
    return out / "base-model", train


def _tok(path: Path) -> object:
    tok = transformers.AutoTokenizer.from_pretrained(path)
    add_special_tokens(tok, "<EOT>", "<pad>")
    return tok


# --- recipes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.adam_beta1 == 0.9 and recipe.adam_beta2 == 0.95
    assert recipe.weight_decay == 0.1 and recipe.epochs == 15
    assert (recipe.learning_rate, recipe.final_learning_rate) == (1e-5, 1e-6)
    assert recipe.max_length == 2048
    big = recipe.name.startswith("65b")
    assert recipe.global_batch_size == (32 if big else 64)
    assert recipe.residual_dropout == (0.3 if big else 0.2)
    assert recipe.generation.top_p == 0.9 and recipe.generation.temperature == 0.7
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Launch"), f"{path.name} must open with its launch command"


def test_lima_train_check_validates_recipes_and_deepspeed_configs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    ok = runner.invoke(train_cli.tools_app, ["check", *map(str, RECIPES)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("ok ") == len(RECIPES)
    odd = runner.invoke(train_cli.tools_app, ["check", "--world-size", "3", str(TINY)])
    assert odd.exit_code == 1 and "not a multiple of world size 3" in odd.output
    bad_ds = tmp_path / "ds.json"
    cfg = json.loads((ROOT / "training" / "deepspeed" / "zero3.json").read_text())
    cfg["zero_optimization"]["stage3_prefetch_bucketsize"] = 5
    bad_ds.write_text(json.dumps(cfg))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY.read_text().replace("../deepspeed/zero3-cpu.json", str(bad_ds)))
    bad = runner.invoke(train_cli.tools_app, ["check", str(recipe)])
    assert bad.exit_code == 1
    assert "stage3_prefetch_bucketsize" in bad.output and str(bad_ds) in bad.output


def test_overrides_reach_nested_keys_and_unknown_keys_are_named(tmp_path: Path) -> None:
    r = load_recipe(TINY, ["epochs=3", "generation.max_new_tokens=9", "keep_epochs=[1,3]"])
    assert (r.epochs, r.generation.max_new_tokens, r.keep_epochs) == (3, 9, [1, 3])
    with pytest.raises(ConfigError, match=r"tiny-cpu.yaml: lerning_rate: Extra inputs"):
        load_recipe(TINY, ["lerning_rate=1"])
    with pytest.raises(ConfigError, match=r"keep_epochs must lie in 0\.\.epochs"):
        load_recipe(TINY, ["epochs=3"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nepochs: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:3:1: not valid YAML"):
        load_recipe(broken)


def test_batch_that_does_not_divide_is_a_clear_error() -> None:
    r = load_recipe(TINY)
    assert r.gradient_accumulation(2) == 8
    assert r.gradient_accumulation(16) == 1
    with pytest.raises(
        ConfigError, match=r"64 is not a multiple of world size 3 × micro_batch_size 4"
    ):
        r.gradient_accumulation(3)


def test_deepspeed_config_must_leave_batch_to_the_recipe(tmp_path: Path) -> None:
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"train_batch_size": 16, "zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match='train_batch_size must be "auto"'):
        load_recipe(TINY, [f"deepspeed={ds}"]).deepspeed_config()
    ds.write_text('{"zero_optimization": {"stage": 3}')
    with pytest.raises(ConfigError, match=r"ds.json:1:\d+: not valid JSON"):
        load_recipe(TINY, [f"deepspeed={ds}"]).deepspeed_config()


def test_deepspeed_launcher_local_rank_argument_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(train_cli, "tools_app", lambda argv, prog_name: seen.append(argv))
    for argv in (["--local_rank=3", "check", "x"], ["check", "--local-rank", "3", "x"]):
        monkeypatch.setattr("sys.argv", ["lima-train", *argv])
        train_cli.main()
    assert seen == [["check", "x"], ["check", "x"]]


def test_accelerate_without_use_deepspeed_is_refused() -> None:
    from lima.train.run import check_launcher

    r = load_recipe(TINY)
    with pytest.raises(ConfigError, match="accelerate launch --use_deepspeed"):
        check_launcher(r, {"ACCELERATE_USE_CPU": "true", "ACCELERATE_MIXED_PRECISION": "no"})
    check_launcher(r, {"ACCELERATE_USE_DEEPSPEED": "true"})
    check_launcher(r, {"LOCAL_RANK": "0"})  # torchrun
    check_launcher(load_recipe(TINY, ["deepspeed=null"]), {"ACCELERATE_USE_CPU": "true"})


def test_estimate_counts_llama_parameters_and_memory() -> None:
    from lima.train.estimate import estimate

    seven = estimate(load_recipe(ROOT / "training" / "recipes" / "7b.yaml"))
    assert seven.parameters == 6_738_415_616  # LLaMA-7B, as published with the weights
    assert seven.largest_layer == 32000 * 4096
    # ZeRO-3 without offload: 18 bytes per parameter spread over 8 GPUs, plus one layer.
    assert seven.gpu_bytes_per_rank == pytest.approx(18 * seven.parameters / 8 + 4 * 32000 * 4096)
    tiny = estimate(load_recipe(TINY))
    assert tiny.parameters == 316_224  # as the two-rank run reports for the built model
    off = estimate(load_recipe(ROOT / "training" / "recipes" / "65b-offload.yaml"))
    assert off.offload_optimizer and off.offload_params
    assert off.host_phases["train"] / 2**40 == pytest.approx(1.6, abs=0.05)
    # The peak: rank 0 also holds the gathered 16-bit weights while it saves an epoch.
    assert off.host_bytes_per_node / 2**40 == pytest.approx(1.72, abs=0.01)
    text = (ROOT / "training" / "recipes" / "65b-offload.yaml").read_text()
    assert "1.6 TiB" in text and "1.7 TiB" in text


# --- the conversation format --------------------------------------------------------------


def test_user_tokens_carry_no_loss_and_every_turn_ends_in_eot(base: tuple[Path, Path]) -> None:
    tok = _tok(base[0])
    eot = tok.convert_tokens_to_ids("<EOT>")
    turns = [t for _, c in read_conversations(base[1])[:1] for t in c]
    turns = [*turns, "And in winter?", "Keep it in a cool dry place."]
    enc, fate = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                    max_length=100_000)  # fmt: skip
    assert fate == "kept"
    ends = [i for i, t in enumerate(enc.input_ids) if t == eot]
    assert len(ends) == len(turns)
    start = 1  # after BOS
    for k, end in enumerate(ends):
        span = range(start, end + 1)
        if k % 2 == 0:
            assert all(enc.labels[i] == IGNORE for i in span), f"user turn {k} is supervised"
        else:
            assert [enc.labels[i] for i in span] == [enc.input_ids[i] for i in span]
        start = end + 1
    assert enc.labels[0] == IGNORE
    everything, _ = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                        max_length=100_000, loss_on="all")  # fmt: skip
    assert everything.labels[1:] == everything.input_ids[1:]
    assert (
        prompt_ids(tok, turns[:3], eot_id=eot, bos_id=tok.bos_token_id)
        == enc.input_ids[: ends[2] + 1]
    )


def test_bad_train_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"conversations": ["q", "a"]}\n{"conversations": "q"}\n')
    with pytest.raises(ConfigError, match=r"train.jsonl:2: \"conversations\" must be"):
        read_conversations(bad)
    bad.write_text("\n")
    with pytest.raises(ConfigError, match=r"train.jsonl: no conversations"):
        read_conversations(bad)
    bad.write_text('{"conversations": ["q", "a"]}\n\n{"conv')
    with pytest.raises(ConfigError, match=r"train.jsonl:3:2: not valid JSON"):
        read_conversations(bad)


def test_trimming_never_leaves_an_example_without_supervised_tokens(
    base: tuple[Path, Path],
) -> None:
    tok = _tok(base[0])
    eot = tok.convert_tokens_to_ids("<EOT>")
    fates: dict[str, int] = {}
    for _, turns in read_conversations(base[1]):
        enc, fate = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                        max_length=96, min_supervised=16)  # fmt: skip
        fates[fate] = fates.get(fate, 0) + 1
        assert len(enc.input_ids) == len(enc.labels) <= 96
        assert sum(y != IGNORE for y in enc.labels) >= 16
        if fate == "prompt_trimmed":
            assert enc.input_ids[0] == tok.bos_token_id and eot in enc.input_ids
    assert fates.get("prompt_trimmed", 0) > 0 and fates.get("truncated", 0) > 0


def test_eot_rows_start_at_the_mean_and_eot_ends_generation(base: tuple[Path, Path]) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(base[0])
    tok = transformers.AutoTokenizer.from_pretrained(base[0])
    old = add_special_tokens(tok, "<EOT>", "<pad>")
    before = model.get_input_embeddings().weight.detach().clone()
    resize_with_mean_init(model, old, len(tok))
    eot, pad = tok.convert_tokens_to_ids("<EOT>"), tok.pad_token_id
    set_eot(model, eot, pad)
    for w in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert w.shape[0] == len(tok) == old + 2
        torch.testing.assert_close(w[old:], w[:old].mean(0).expand(2, -1), rtol=0, atol=1e-7)
    assert torch.equal(model.get_input_embeddings().weight[:old], before)
    assert eot != pad and tok.eos_token_id == eot
    assert model.config.eos_token_id == model.generation_config.eos_token_id == eot
    assert model.generation_config.pad_token_id == pad


# --- residual dropout ---------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_residual_dropout_fires_in_train_and_not_in_eval(family: str) -> None:
    cfg = transformers.AutoConfig.for_model(
        family, vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    ids = torch.randint(0, 128, (2, 16))
    model.eval()
    with torch.no_grad():
        clean = model(ids).logits
    rates = add_residual_dropout(model, 0.3)
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert len(list(residual_dropout_modules(model))) == 8
    assert "residual_dropout" not in "".join(model.state_dict())

    outputs: dict[str, torch.Tensor] = {}
    top_mlp = model.model.layers[-1].mlp
    bottom_mlp = model.model.layers[0].mlp
    top_mlp.register_forward_hook(lambda m, a, o: outputs.__setitem__("top", o))
    bottom_mlp.register_forward_hook(lambda m, a, o: outputs.__setitem__("bottom", o))
    model.eval()
    with torch.no_grad():
        e1, e2 = model(ids).logits, model(ids).logits
    assert torch.equal(e1, e2) and torch.equal(e1, clean)
    model.train()
    with torch.no_grad():
        t1, t2 = model(ids).logits, model(ids).logits
    assert not torch.equal(t1, t2)
    zeros = (outputs["top"] == 0).float().mean().item()
    assert zeros == pytest.approx(0.3, abs=0.05)
    assert (outputs["bottom"] == 0).float().mean().item() == 0.0


# --- schedule, sampling, the page ---------------------------------------------------------


def test_schedule_is_linear_from_peak_to_exactly_final() -> None:
    lrs = [linear_lr(s, 151, 1e-5, 1e-6) for s in range(151)]
    assert lrs[0] == 1e-5 and lrs[-1] == 1e-6
    steps = [a - b for a, b in itertools.pairwise(lrs)]
    assert max(steps) - min(steps) < 1e-18 and min(steps) > 0
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    sched = LimaLinearLR(opt, 151, 1e-6)
    seen = []
    for _ in range(151):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == lrs


def test_repetition_penalty_spares_the_prompt() -> None:
    proc = GeneratedTokensRepetitionPenalty(2.0, prompt_width=3)
    ids = torch.tensor([[5, 6, 7, 8]])
    scores = torch.tensor([[1.0] * 5 + [4.0, 4.0, 4.0, -4.0, 4.0]])
    out = proc(ids, scores.clone())
    assert out[0, 5].item() == 4.0 and out[0, 7].item() == 4.0  # prompt tokens untouched
    assert out[0, 8].item() == -8.0  # generated, negative: multiplied
    assert proc(ids[:, :3], scores.clone()).equal(scores)  # nothing generated yet


def test_side_by_side_page_has_every_prompt_and_epoch(tmp_path: Path) -> None:
    gen = tmp_path / "dev_generations"
    gen.mkdir()
    for k in (5, 10):
        rows = [{"id": f"p{i}", "epoch": k, "prompt": f"<q{i}>", "generation": f"a{i} e{k}",
                 "stopped_at_eot": i == 0, "new_tokens": 3} for i in range(3)]  # fmt: skip
        (gen / f"epoch-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    side_by_side(gen, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert "&lt;q2&gt;" in page and "<q2>" not in page
    assert re.findall(r"epoch (\d+)<br>", page) == ["5", "10"]
    assert page.count("<input type=radio") == 6 and "a1 e10" in page
