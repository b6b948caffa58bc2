"""Near-duplicate prompt detection: lima's MinHash/LSH in polars against the script one
writes first, every pair's exact Jaccard over word 3-gram sets in Python, on real prompts
(the 13,050 r/AskMen titles that ship as a sample), in the same run. Reports the speed ratio and
lima's recall of the pairs the exhaustive baseline finds.

    python benches/bench_dedup.py --n 3000
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import re
import time
from pathlib import Path

import polars as pl
import zstandard

from lima.curate import dedup

ROOT = Path(__file__).resolve().parent.parent


def real_prompts(n: int) -> list[str]:
    raw = (ROOT / "lima/samples/reddit/AskMen_submissions.zst").read_bytes()
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(io.BytesIO(raw))
    titles = [json.loads(line)["title"] for line in io.TextIOWrapper(reader, encoding="utf-8")]
    return titles[:n]


def baseline(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    def grams(t: str) -> frozenset[str]:
        w = re.sub(r"[^\w]+", " ", t.lower()).split()
        return frozenset([" ".join(w[i : i + 3]) for i in range(max(len(w) - 2, 1))])

    sets = [grams(t) for t in texts]
    found = set()
    for i, j in itertools.combinations(range(len(sets)), 2):
        a, b = sets[i], sets[j]
        inter = len(a & b)
        if inter and inter / (len(a) + len(b) - inter) >= threshold:
            found.add((i, j))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data" / "dedup-report.json")
    args = ap.parse_args()
    texts = real_prompts(args.n)
    frame = pl.DataFrame({"id": [f"{i:06d}" for i in range(len(texts))], "text": texts,
                          "rank": list(range(len(texts)))})  # fmt: skip
    t = time.perf_counter()
    dropped = dedup.find(frame)
    lima_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = baseline(texts, dedup.DedupSettings().threshold)
    base_s = time.perf_counter() - t
    base_dropped = {j for _, j in pairs}  # the later of each pair goes, as in lima
    got = {int(i) for i in dropped["id"]}
    recall = len(got & base_dropped) / len(base_dropped) if base_dropped else 1.0
    print(f"{len(texts)} real prompts: lima {lima_s:.2f} s, all-pairs Python {base_s:.2f} s")
    print(f"speed ratio (baseline time / lima time): {base_s / lima_s:.1f}x")
    print(f"dropped: lima {len(got)}, baseline {len(base_dropped)}; recall {recall:.3f}")
    args.out.parent.mkdir(exist_ok=True)
    report = {
        "n": len(texts),
        "lima_s": lima_s,
        "baseline_s": base_s,
        "ratio": base_s / lima_s,
        "recall": recall,
    }
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
