"""Exact and near-duplicate prompts, across sources and against the test set.

Prompts are normalised (lowercase, letters and digits only). Equal normalised prompts are
exact duplicates. Near duplicates are found with MinHash over word 3-shingles and banded
locality-sensitive hashing (``bands`` x ``rows`` signature rows), and confirmed by the true
Jaccard similarity of the shingle sets (>= ``threshold``). Pairs are joined into clusters; in
each cluster the row of lowest ``rank`` stays and the others are dropped under a reason.
Everything runs as polars expressions, so a 30,000-prompt pool takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

_P = (1 << 61) - 1  # Mersenne prime for the universal hash family


@dataclass
class DedupSettings:
    threshold: float = 0.8
    shingle: int = 3
    bands: int = 16
    rows: int = 4


def normalise(text: pl.Expr) -> pl.Expr:
    return text.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def _shingles(frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """(row, shingle hash) for every distinct word k-gram (the whole text when shorter)."""
    words = frame.select("_row", w=pl.col("_norm").str.split(" "))
    last = (pl.col("w").list.len().cast(pl.Int64) - k).clip(lower_bound=0)
    starts = words.with_columns(start=pl.int_ranges(0, last + 1)).explode("start")
    grams = starts.select("_row", g=pl.col("w").list.slice(pl.col("start"), k).list.join(" "))
    return grams.select("_row", h=pl.col("g").hash(seed=7)).unique()


def find(frame: pl.DataFrame, settings: DedupSettings | None = None) -> pl.DataFrame:
    """``frame`` has ``id``, ``text`` and ``rank`` (lower wins). Returns one row per dropped
    id: ``id``, ``kept_id``, ``kind`` (exact / near) and ``similarity``."""
    s = settings or DedupSettings()
    f = frame.select("id", "rank", _norm=normalise(pl.col("text"))).with_row_index("_row")
    f = f.with_columns(pl.col("_row").cast(pl.Int64))
    # exact: the same normalised prompt
    exact_pairs = (
        f.sort("rank", "id")
        .with_columns(_first=pl.col("_row").first().over("_norm"))
        .filter(pl.col("_row") != pl.col("_first"))
        .select(a="_first", b="_row", sim=pl.lit(1.0), kind=pl.lit("exact"))
    )
    # near: MinHash + LSH over the distinct normalised prompts
    sh = _shingles(f.filter(pl.col("_norm") != ""), s.shingle)
    n_hash = s.bands * s.rows
    coeffs = pl.DataFrame(
        {
            "j": list(range(n_hash)),
            "ca": [(0x9E3779B97F4A7C15 * (j + 1)) % _P | 1 for j in range(n_hash)],
            "cb": [(0xC2B2AE3D27D4EB4F * (j + 7)) % _P for j in range(n_hash)],
        },
        schema={"j": pl.Int64, "ca": pl.UInt64, "cb": pl.UInt64},
    )
    # (a*h + b) with wrapping u64 arithmetic is a fine permutation family for MinHash.
    sig = (
        sh.join(coeffs, how="cross")
        .with_columns(v=pl.col("h") * pl.col("ca") + pl.col("cb"))
        .group_by("_row", "j")
        .agg(pl.col("v").min())
    )
    bands = (
        sig.with_columns(band=pl.col("j") // s.rows)
        .sort("_row", "j")
        .group_by("_row", "band", maintain_order=True)
        .agg(pl.col("v"))
        .with_columns(key=pl.col("v").hash())
    )
    cand = (
        bands.join(bands, on=["band", "key"], suffix="_b")
        .filter(pl.col("_row") < pl.col("_row_b"))
        .select(a="_row", b="_row_b")
        .unique()
    )
    inter = (
        cand.join(sh, left_on="a", right_on="_row")
        .join(sh, left_on=["b", "h"], right_on=["_row", "h"])
        .group_by("a", "b")
        .len("inter")
    )
    sizes = sh.group_by("_row").len("n")
    near = (
        inter.join(sizes, left_on="a", right_on="_row")
        .join(sizes, left_on="b", right_on="_row", suffix="_b")
        .with_columns(sim=pl.col("inter") / (pl.col("n") + pl.col("n_b") - pl.col("inter")))
        .filter(pl.col("sim") >= s.threshold)
        .select("a", "b", "sim", kind=pl.lit("near"))
    )
    pairs = pl.concat([exact_pairs, near.with_columns(pl.col("sim").cast(pl.Float64))])
    return _clusters(f, pairs)


def _clusters(f: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Union-find over the pairs; the lowest (rank, id) of each cluster stays."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    best: dict[tuple[int, int], tuple[float, str]] = {}
    for a, b, sim, kind in pairs.iter_rows():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        best.setdefault((min(a, b), max(a, b)), (sim, kind))
    if not parent:
        return pl.DataFrame(
            schema={
                "id": pl.String,
                "kept_id": pl.String,
                "kind": pl.String,
                "similarity": pl.Float64,
            }
        )
    info = {r: (rank, i) for r, rank, i in f.select("_row", "rank", "id").iter_rows()}
    members: dict[int, list[int]] = {}
    for x in {x for ab in best for x in ab}:
        members.setdefault(root(x), []).append(x)
    rows = []
    for group in members.values():
        keep = min(group, key=lambda r: info[r])
        for r in group:
            if r == keep:
                continue
            direct = best.get((min(r, keep), max(r, keep)))
            if direct is None:  # joined to the kept prompt through a third one
                direct = max(v for ab, v in best.items() if r in ab)
            sim, kind = direct
            rows.append(
                {
                    "id": info[r][1],
                    "kept_id": info[keep][1],
                    "kind": kind,
                    "similarity": round(sim, 4),
                }
            )
    return pl.DataFrame(
        rows,
        schema={"id": pl.String, "kept_id": pl.String, "kind": pl.String, "similarity": pl.Float64},
    ).sort("id")
