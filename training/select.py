"""Model selection on the TRAINING split only: grouped-CV comparison of a few CNN configurations.

``python -m training.select --data ../shared/data/ct-hemorrhage --folds 3 --epochs 20 --trunks 1`` prints,
per configuration, one JSON line with

- ``head_oof_auc``: OOF ROC AUC of the served head (logistic regression on the pooled last feature
  map, C chosen on the pooled OOF scores from ``heads.LOGREG_C_GRID`` exactly as ``heads.cross_fit``), and
  its mean +- SD over the grouped folds; ``trunks_only_oof_auc`` the same without the band channels;
- ``softmax_oof_auc`` / ``softmax_fold_auc``: the CNN's own softmax (does the trunk learn?);
- the per-epoch held-out-fold AUC of the softmax (every 5th epoch) and the runtime.

This is a reduced protocol (float Keras features instead of the int8 export, no other heads); confirm a
winner with ``training.train``'s cross-fitted heads table. The test split is never touched (it is removed
with the same seed and split code as ``training.train``); every configuration sees the same folds and seed.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from training import cnn, dedup, heads
from training.datasets import discover, labels_of, load_inputs
from training.metrics import roc_auc
from training.split import cv_folds, train_test_split

CANDIDATES: dict[str, dict] = {
    "base": {},
    "bn_momentum_0.99": {"bn_momentum": 0.99},  # Keras' default: the moving statistics lag a few-hundred-step run
    "no_bands": {"bands": 0},
    "single_conv": {"convs_per_block": 1},  # the pre-2026-11 default
    "batch_8": {"batch_size": 8},
}


def logistic_oof(folds: list[tuple[np.ndarray, np.ndarray]], pooled: list[np.ndarray], y: np.ndarray,
                 seed: int) -> dict:
    """OOF ROC AUC of the logistic head over per-fold pooled features (C as in ``heads.cross_fit``)."""
    grid = {c: np.zeros((len(y), int(y.max()) + 1)) for c in heads.LOGREG_C_GRID}
    for (tr, val), feats in zip(folds, pooled):
        for c in heads.LOGREG_C_GRID:
            grid[c][val] = heads.make_logreg(c, seed).fit(feats[tr], y[tr]).predict_proba(feats[val])
    scores = {c: roc_auc(y, grid[c]) for c in heads.LOGREG_C_GRID}
    best = max(scores, key=lambda c: (scores[c], -c))
    per_fold = [roc_auc(y[val], grid[best][val]) for _, val in folds]
    return {"oof_auc": round(scores[best], 4), "fold_mean": round(float(np.mean(per_fold)), 4),
            "fold_sd": round(float(np.std(per_fold)), 4), "C": best}


def evaluate_config(x: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
                    config: cnn.CNNConfig, seed: int) -> dict:
    """Train one CNN per grouped fold; head and softmax OOF AUCs, softmax validation curve, runtime."""
    started = time.perf_counter()
    pooled, curves, softmax = [], [], np.zeros((len(y), n_classes))
    for tr, val in folds:
        trainer, extractor, hist = cnn.train(x[tr], y[tr], n_classes, config, seed, validation=(x[val], y[val]))
        curves.append(hist["val_auc"])
        softmax[val] = cnn.ensemble_proba(trainer, x[val])
        pooled.append(np.asarray(extractor.predict(x[..., None], batch_size=64, verbose=0)).mean(axis=(1, 2)))
    k = config.trunks * config.widths[-1]
    head, trunks_only = logistic_oof(folds, pooled, y, seed), logistic_oof(folds, [p[:, :k] for p in pooled], y, seed)
    curve = np.mean(curves, axis=0)
    return {"head_oof_auc": head["oof_auc"], "head_fold_auc": f"{head['fold_mean']:.3f} +- {head['fold_sd']:.3f}",
            "head_C": head["C"], "trunks_only_oof_auc": trunks_only["oof_auc"],
            "softmax_oof_auc": round(roc_auc(y, softmax), 4),
            "softmax_fold_auc": [round(roc_auc(y[val], softmax[val]), 3) for _, val in folds],
            "softmax_val_auc_every_5": [round(float(a), 3) for a in curve[4::5]],
            "runtime_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ct-hemorrhage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=cnn.CNNConfig.epochs)
    parser.add_argument("--trunks", type=int, default=cnn.CNNConfig.trunks)
    parser.add_argument("--input-size", type=int, default=cnn.CNNConfig.input_size)
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES))
    args = parser.parse_args(argv)
    samples = discover(args.data)
    labels = labels_of(samples)
    x, samples = load_inputs(samples, args.input_size)
    merged = dedup.merge_groups([s.group for s in samples], dedup.find_duplicates(x))  # as training.train does
    samples = [replace(s, group=g) for s, g in zip(samples, merged)]
    keep = np.array([sp == "train" for sp in train_test_split(samples, args.seed)])
    x, samples = x[keep], [s for s, k in zip(samples, keep) if k]
    y = np.array([labels.index(s.label) for s in samples])
    folds = cv_folds([s.label for s in samples], [s.group for s in samples], args.folds, args.seed)
    base = cnn.CNNConfig(input_size=args.input_size, epochs=args.epochs, trunks=args.trunks)
    for name in args.only:
        result = evaluate_config(x, y, folds, len(labels), replace(base, **CANDIDATES[name]), args.seed)
        print(json.dumps({"config": name, **result}), flush=True)


if __name__ == "__main__":
    main()
