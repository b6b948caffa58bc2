"""Training throughput and model-FLOPs utilisation of `lima-train` on a random-init LLaMA.

    python benches/bench_train.py                      # 1B-class model, ZeRO-3 bf16, one GPU
    python benches/bench_train.py --size tiny --cpu    # the same pipeline on a CPU, to check it

Every sequence is full length (2048 tokens of real text: the demo set's responses, joined), so
tokens/s and MFU are those of the paper's sequence length. The first steps (allocation, kernel
autotuning) are left out of the median. MFU counts 6·N + 12·L·d·T FLOPs per token against the
GPU's peak dense bf16 FLOP/s (`lima.train.run.PEAK_TFLOPS`, or --peak-tflops).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "training" / "recipes" / "tiny-cpu.yaml"

SIZES = {
    # hidden, intermediate, layers, heads: training/models/llama-1b.json (1.3 B parameters)
    "1b": (2048, 5504, 24, 16),
    "tiny": (64, 176, 4, 4),
}


def bench_file(source: Path, out: Path, n: int, min_chars: int) -> None:
    """``n`` two-turn examples whose responses are real responses joined to ``min_chars``."""
    rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    texts = [r["conversations"][1] for r in rows]
    with out.open("w", encoding="utf-8") as fh:
        k = 0
        for i in range(n):
            parts: list[str] = []
            while sum(map(len, parts)) < min_chars:
                parts.append(texts[k % len(texts)])
                k += 1
            prompt = rows[i % len(rows)]["conversations"][0]
            fh.write(
                json.dumps({"id": f"bench-{i}", "conversations": [prompt, "\n\n".join(parts)]})
            )
            fh.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="1b")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3, help="first steps left out of the median")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--cpu", action="store_true", help="gloo, float32, the CPU DeepSpeed config")
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float)
    ap.add_argument("--train", type=Path, default=ROOT / "out" / "demo" / "train.jsonl")
    ap.add_argument("--keep", type=Path, help="keep the run directory here")
    args = ap.parse_args()

    if not args.train.exists():
        sys.exit(f"{args.train}: missing; run `make demo` first")
    hidden, inter, layers, heads = SIZES[args.size]
    work = args.keep or Path(tempfile.mkdtemp(prefix="lima-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "train.jsonl"
    batch = args.micro_batch * args.ranks
    bench_file(args.train, data, batch * args.steps, min_chars=6 * args.seq)
    overrides = [
        f"train_file={data}", "dev_file=null", f"output_dir={work / 'run'}", "epochs=1",
        "keep_epochs=[]", "resumable_checkpoints=0", "report_to=[]", "loss_on=all",
        f"max_length={args.seq}", f"global_batch_size={batch}",
        f"micro_batch_size={args.micro_batch}",
        f"tiny_model.hidden_size={hidden}", f"tiny_model.intermediate_size={inter}",
        f"tiny_model.num_hidden_layers={layers}", f"tiny_model.num_attention_heads={heads}",
        f"tiny_model.num_key_value_heads={heads}", "tiny_model.vocab_size=32000",
        f"gradient_checkpointing={str(not args.no_checkpointing).lower()}",
    ]  # fmt: skip
    if args.cpu:
        overrides += ["dtype=float32", "deepspeed=training/deepspeed/zero3-cpu.json"]
    else:
        overrides += ["dtype=bfloat16", "deepspeed=training/deepspeed/zero3.json"]
    if args.peak_tflops:
        overrides.append(f"peak_tflops={args.peak_tflops}")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={args.ranks}"]  # fmt: skip
    env = {**os.environ, **({"DS_ACCELERATOR": "cpu"} if args.cpu else {})}
    cmd = [*launcher, "-m", "lima.train", "--config", str(RECIPE), *overrides]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)

    log = [json.loads(x) for x in (work / "run" / "train_log.jsonl").open()]
    summary = json.loads((work / "run" / "summary.json").read_text())
    steady = log[args.warmup :] or log
    tps = statistics.median(r["tokens_per_s"] for r in steady)
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    result = {
        "size": args.size,
        "parameters": summary["parameters"],
        "ranks": args.ranks,
        "micro_batch": args.micro_batch,
        "seq": args.seq,
        "gradient_checkpointing": not args.no_checkpointing,
        "steps_measured": len(steady),
        "tokens_per_s": round(tps, 1),
        "tokens_per_s_per_rank": round(tps / args.ranks, 1),
        "mfu": round(statistics.median(mfus), 4) if mfus else None,
        "trimming": summary["trimming"],
    }
    print(json.dumps(result, indent=2))
    (work / "bench_train.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
