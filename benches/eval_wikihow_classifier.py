"""Accuracy of the wikiHow title classifier (19 top-level categories) on a held-out part of
the shipped title table, against the majority-class baseline in the same run. The held-out
titles, and their addresses, take no part in training.

    python benches/eval_wikihow_classifier.py --holdout 0.2 --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from lima.curate.sources import wikihow

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cmap = wikihow.load_category_map()
    table = wikihow.load_title_table([ROOT / "lima/data/wikihow_titles.csv"])
    table = table.with_columns(
        top=wikihow.norm_name(pl.col("category")).replace_strict(cmap, default=None)
    ).drop_nulls("top")
    table = table.sample(fraction=1.0, shuffle=True, seed=args.seed)
    n_train = int(table.height * (1 - args.holdout))
    train, test = table[:n_train], table[n_train:]
    model = wikihow.train_classifier(train, cmap)
    pred = test.join(wikihow.classify(test, model), on="key", how="left")
    acc = (pred["predicted"] == pred["top"]).fill_null(False).mean()
    majority = train["top"].mode().sort()[0]
    base = (test["top"] == majority).mean()
    print(f"{test.height} held-out titles of {table.height}; {pred['predicted'].null_count()} "
          "with no known word (counted wrong)")  # fmt: skip
    print(f"logistic regression accuracy {acc:.3f}; majority class ({majority}) {base:.3f}")


if __name__ == "__main__":
    main()
