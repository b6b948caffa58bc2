"""Accuracy of the wikiHow title classifier (19 top-level categories) on a held-out part of
the shipped title table, against the majority-class baseline in the same run. The held-out
titles, and their addresses, take no part in training.

    python benches/eval_wikihow_classifier.py --holdout 0.2 --seed 1
    python benches/eval_wikihow_classifier.py --holdout 0.2 --seed 1 --cv 5 --c 0.6 1 1.5

``--cv K`` reports K-fold cross-validation accuracy on the training part alone, for each
value of the inverse penalty ``--c``: that is how the settings in
``lima.curate.sources.wikihow`` (``c``, ``CHAR_NGRAMS``, ``BLOCK_WEIGHTS``) were chosen, so
the held-out part played no part in choosing them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from lima.curate.sources import wikihow

ROOT = Path(__file__).resolve().parent.parent


def accuracy(train: pl.DataFrame, test: pl.DataFrame, cmap: dict[str, str], c: float) -> float:
    model = wikihow.train_classifier(train, cmap, c=c)
    pred = test.join(wikihow.classify(test, model), on="key", how="left")
    return float((pred["predicted"] == pred["top"]).fill_null(False).mean() or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cv", type=int, default=0, help="folds on the training part (0: none)")
    ap.add_argument("--c", type=float, nargs="+", default=[1.0], help="inverse L2 penalty")
    args = ap.parse_args()
    cmap = wikihow.load_category_map()
    table = wikihow.load_title_table([ROOT / "lima/data/wikihow_titles.csv"])
    table = table.with_columns(
        top=wikihow.norm_name(pl.col("category")).replace_strict(cmap, default=None)
    ).drop_nulls("top")
    table = table.sample(fraction=1.0, shuffle=True, seed=args.seed)
    n_train = int(table.height * (1 - args.holdout))
    train, test = table[:n_train], table[n_train:]
    if args.cv:
        fold = pl.int_range(pl.len()) % args.cv
        for c in args.c:
            accs = [
                accuracy(train.filter(fold != f), train.filter(fold == f), cmap, c)
                for f in range(args.cv)
            ]
            print(f"c={c:g}: {args.cv}-fold accuracy on the {train.height} training titles "
                  f"{sum(accs) / len(accs):.3f}")  # fmt: skip
        return
    c = args.c[0]
    start = time.perf_counter()
    model = wikihow.train_classifier(train, cmap, c=c)
    seconds = time.perf_counter() - start
    pred = test.join(wikihow.classify(test, model), on="key", how="left")
    acc = (pred["predicted"] == pred["top"]).fill_null(False).mean()
    majority = train["top"].mode().sort()[0]
    base = (test["top"] == majority).mean()
    print(f"{test.height} held-out titles of {table.height}; {pred['predicted'].null_count()} "
          "with no known feature (counted wrong)")  # fmt: skip
    print(f"trained in {seconds:.1f} s ({len(model.vocab)} features)")
    print(f"linear SVM accuracy {acc:.3f}; majority class ({majority}) {base:.3f}")


if __name__ == "__main__":
    main()
