"""``lima-train`` as a stranger calls it: by the venv's full path with only the system's PATH,
from any working directory; recipes' paths resolve against the recipe; a run that fails before
training leaves no output_dir; DeepSpeed's import-time chatter stays off the terminal; and every
saved checkpoint's chat template gives exactly the ids training used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("deepspeed")

from lima.train.data import (  # noqa: E402
    chat_template,
    encode_conversation,
    prompt_ids,
    read_conversations,
)
from lima.train.model import add_special_tokens, build_tiny_base, chat_template_in_config  # noqa: E402
from lima.train.recipe import load_recipe  # noqa: E402

BIN = Path(sys.executable).parent
LIMA_TRAIN = BIN / "lima-train"
RECIPES = ROOT / "training" / "recipes"
TINY = RECIPES / "tiny-cpu.yaml"
#: What DeepSpeed prints at import when its ops cannot be built (async_io, the accelerator).
DS_NOISE = ("[WARNING]", "async_io", "ds_accelerator", "DeepSpeed", "Setting ds_accelerator")


def _system_env(**extra: str) -> dict[str, str]:
    """`env -i PATH=/usr/bin:/bin HOME=$HOME`: nothing of this venv on PATH."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **extra}


def _call(args: list[str], cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(args, cwd=cwd, env=env or _system_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


# --- paths and working directories ----------------------------------------------------------


def test_recipe_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    r = load_recipe(RECIPES / "7b.yaml")
    assert r.train_file == ROOT / "out" / "lima" / "train.jsonl"
    assert r.output_dir == ROOT / "runs" / "7b"
    assert r.deepspeed == ROOT / "training" / "deepspeed" / "zero3.json"
    assert r.architecture == ROOT / "training" / "models" / "llama-7b.json"
    assert r.model_name_or_path == "huggyllama/llama-7b"  # a Hub id stays one
    # A recipe elsewhere, with a local model folder beside it; overrides stay as typed.
    (tmp_path / "cfg").mkdir()
    recipe = tmp_path / "cfg" / "r.yaml"
    recipe.write_text(
        (RECIPES / "7b.yaml").read_text().replace("huggyllama/llama-7b", "../models/llama")
    )
    moved = load_recipe(recipe, ["dev_file=rel/dev.jsonl"])
    assert moved.model_name_or_path == str(tmp_path / "models" / "llama")
    assert moved.train_file == tmp_path.parent / "out" / "lima" / "train.jsonl"
    assert moved.dev_file == Path("rel/dev.jsonl")


def test_check_and_estimate_work_from_any_directory(tmp_path: Path) -> None:
    for recipe in ("tiny-cpu.yaml", "65b.yaml"):
        done = _call([str(LIMA_TRAIN), "check", str(RECIPES / recipe)], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ok ")
    done = _call([str(LIMA_TRAIN), "estimate", "--config", str(RECIPES / "7b.yaml")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "6,738,415,616" in done.stdout  # read training/models/llama-7b.json from elsewhere


def test_deepspeed_import_warnings_are_not_shown(tmp_path: Path) -> None:
    """DeepSpeed logs a line per unbuildable op and its accelerator choice at import; none of
    that reaches the user of --help, check or estimate (errors still do)."""
    for args in (["--help"], ["check", "--help"], ["check", str(TINY)],
                 ["estimate", "--config", str(TINY)]):  # fmt: skip
        done = _call([str(LIMA_TRAIN), *args], tmp_path)
        assert done.returncode == 0, done.stderr
        noise = [line for line in done.stderr.splitlines() if line.strip()]
        assert not noise, f"lima-train {' '.join(args)} printed: {noise}"
        assert not any(n in done.stdout for n in DS_NOISE[:3]), done.stdout
    bad = tmp_path / "ds.json"
    cfg = json.loads((ROOT / "training" / "deepspeed" / "zero3-cpu.json").read_text())
    cfg["zero_optimization"]["stage3_prefetch_bucketsize"] = 5
    bad.write_text(json.dumps(cfg))
    done = _call([str(LIMA_TRAIN), "check", str(TINY), f"deepspeed={bad}"], tmp_path)
    assert done.returncode == 1 and "stage3_prefetch_bucketsize" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_run_that_fails_validation_leaves_no_output_dir(tmp_path: Path, demo: Any) -> None:
    train = demo.out / "train.jsonl"
    broken = tmp_path / "broken.jsonl"
    broken.write_text(train.read_text().splitlines()[0] + "\n{not json\n")
    bad_ds = tmp_path / "ds.json"
    bad_ds.write_text('{"train_batch_size": 8}')
    cases = {
        "bad train_file": [f"train_file={broken}"],
        "missing dev_file": [f"train_file={train}", f"dev_file={tmp_path / 'nope.jsonl'}"],
        "bad deepspeed": [f"train_file={train}", f"deepspeed={bad_ds}"],
        "missing model": [
            f"train_file={train}",
            "tiny_model=null",
            f"model_name_or_path={tmp_path / 'no-model'}",
        ],
    }
    for name, overrides in cases.items():
        out = tmp_path / "runs" / name.replace(" ", "-")
        done = _call(
            [str(LIMA_TRAIN), "--config", str(TINY), f"output_dir={out}", "report_to=[]",
             *overrides], tmp_path, _system_env(OMP_NUM_THREADS="1"),
        )  # fmt: skip
        assert done.returncode == 1, f"{name}: {done.returncode}: {done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{name}: {done.stderr[-3000:]}"
        assert not out.exists(), f"{name}: left {sorted(p.name for p in out.iterdir())}"


# --- a stranger's first run -----------------------------------------------------------------


def test_full_path_calls_with_the_system_path_check_and_train(tmp_path: Path, demo: Any) -> None:
    """`env -i PATH=/usr/bin:/bin HOME=$HOME .venv/bin/lima-train ...`: DeepSpeed JIT-builds its
    ops with the venv's ninja, found because the process puts its interpreter's bin/ on PATH."""
    found = _call([sys.executable, "-c", "import lima.train, shutil; print(shutil.which('ninja'))"],
                  tmp_path)  # fmt: skip
    assert found.returncode == 0 and found.stdout.strip() == str(BIN / "ninja"), found
    done = _call([str(LIMA_TRAIN), "check", str(TINY)], tmp_path)
    assert done.returncode == 0 and "ok " in done.stdout, done.stderr
    small = tmp_path / "train.jsonl"
    small.write_text("".join((demo.out / "train.jsonl").read_text().splitlines(True)[:16]))
    out = tmp_path / "run"
    overrides = [f"train_file={small}", "dev_file=null", f"output_dir={out}", "epochs=1",
                 "keep_epochs=[1]", "global_batch_size=8", "micro_batch_size=8",
                 "max_length=256", "resumable_checkpoints=0", "report_to=[]"]  # fmt: skip
    done = _call([sys.executable, "-m", "lima.train", "--config", str(TINY), *overrides],
                 tmp_path, _system_env(OMP_NUM_THREADS="1"), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["optimizer_steps"] == 2 and summary["deepspeed_zero_stage"] == 3
    assert summary["kept_epochs"] == [1]
    _assert_template_matches_training(out / "epoch-1", small)


# --- the chat template ----------------------------------------------------------------------


def _messages(turns: list[str]) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
            for i, t in enumerate(turns)]  # fmt: skip


def _assert_template_matches_training(checkpoint: Path, train: Path) -> None:
    config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert "<EOT>" in config["chat_template"]
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint)
    eot = tok.convert_tokens_to_ids("<EOT>")
    for _, turns in read_conversations(train)[:4]:
        want, _ = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                      max_length=10**9)  # fmt: skip
        assert _template_ids(tok, _messages(turns)) == want.input_ids


def _template_ids(tok: Any, messages: list[dict[str, Any]], **kw: Any) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, **kw)
    ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
    return list(ids)


@pytest.fixture(scope="module")
def trained_tok(tmp_path_factory: pytest.TempPathFactory, demo: Any) -> tuple[Any, list[Any]]:
    """The tiny recipe's BPE tokenizer, trained on the fly on the demo's train.jsonl, with EOT
    and pad added and the template set as lima-train sets it, saved and reloaded."""
    out = tmp_path_factory.mktemp("tok")
    train = demo.out / "train.jsonl"
    rows = read_conversations(train)
    recipe = load_recipe(TINY, [f"train_file={train}", f"output_dir={out}"])
    build_tiny_base(recipe, [t for _, turns in rows for t in turns], out / "base")
    tok = transformers.AutoTokenizer.from_pretrained(out / "base")
    add_special_tokens(tok, "<EOT>", "<pad>")
    tok.chat_template = chat_template("<EOT>", tok.bos_token)
    chat_template_in_config(tok)
    tok.save_pretrained(out / "saved")
    config = json.loads((out / "saved" / "tokenizer_config.json").read_text())
    assert config["chat_template"] == tok.chat_template
    return transformers.AutoTokenizer.from_pretrained(out / "saved"), rows


def test_chat_template_gives_the_training_ids(trained_tok: tuple[Any, list[Any]]) -> None:
    tok, rows = trained_tok
    eot = tok.convert_tokens_to_ids("<EOT>")
    # Real multi-turn conversations: the demo's dialogues, else chained single turns.
    multi = [turns for _, turns in rows if len(turns) > 2][:3]
    singles = [turns for _, turns in rows if len(turns) == 2]
    multi += [singles[0] + singles[1], singles[2] + singles[3] + singles[4][:1]]
    for turns in [*singles[:5], *multi]:
        want, fate = encode_conversation(tok, turns, eot_id=eot, bos_id=tok.bos_token_id,
                                         max_length=10**9)  # fmt: skip
        assert fate == "kept"
        if len(turns) % 2 == 0:
            assert _template_ids(tok, _messages(turns)) == want.input_ids
        # The prompt a model answers from: every turn up to the last user turn.
        prompt = prompt_ids(tok, turns, eot_id=eot, bos_id=tok.bos_token_id)
        upto = len(turns) if len(turns) % 2 == 1 else len(turns) - 1
        head = _messages(turns[:upto])
        assert _template_ids(tok, head, add_generation_prompt=True) == prompt
        assert _template_ids(tok, head) == prompt
        assert prompt == want.input_ids[: len(prompt)]
    # Content as a list of text parts renders the same.
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
             for m in _messages(singles[0])]  # fmt: skip
    assert _template_ids(tok, parts) == _template_ids(tok, _messages(singles[0]))


def test_chat_template_refuses_what_training_never_saw(
    trained_tok: tuple[Any, list[Any]],
) -> None:
    tok, rows = trained_tok
    turns = rows[0][1]
    with pytest.raises(Exception, match="no system turn"):
        tok.apply_chat_template([{"role": "system", "content": "x"}, *_messages(turns)])
    with pytest.raises(Exception, match="alternate"):
        tok.apply_chat_template(_messages(turns)[::-1])
