"""Model selection on the TRAINING split only: grouped CV curves for a few CNN configurations.

``python -m training.select --data ../shared/data/ct-hemorrhage --folds 3 --epochs 80`` prints,
per configuration, the mean grouped-CV validation ROC AUC by epoch. The test split is never
touched (it is removed with the same seed and split code as ``training.train``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

if importlib.util.find_spec("strokelens") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from training import cnn, dedup  # noqa: E402
from training.datasets import discover, labels_of, load_inputs  # noqa: E402
from training.split import cv_folds, train_test_split  # noqa: E402

CANDIDATES: dict[str, dict] = {
    "base": {},
    "single_trunk": {"trunks": 1},
    "no_bands": {"bands": 0},
    "double_conv": {"convs_per_block": 2},
}


def cv_curves(x: np.ndarray, y: np.ndarray, groups: list[str], labels: list[str], config: cnn.CNNConfig,
              folds: int, seed: int) -> dict:
    """Per-epoch held-out-fold AUC of the CNN's softmax and training loss, averaged over grouped folds."""
    aucs, losses = [], []
    for tr, val in cv_folds([labels[i] for i in y], groups, folds, seed):
        _, _, hist = cnn.train(x[tr], y[tr], len(labels), config, seed, validation=(x[val], y[val]))
        aucs.append(hist["val_auc"])
        losses.append(hist["loss"])
    return {"val_auc": np.mean(aucs, axis=0).tolist(), "loss": np.mean(losses, axis=0).tolist()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ct-hemorrhage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=cnn.CNNConfig.epochs)
    parser.add_argument("--input-size", type=int, default=128)
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
    for name in args.only:
        config = replace(cnn.CNNConfig(input_size=args.input_size, epochs=args.epochs), **CANDIDATES[name])
        curves = cv_curves(x, y, [s.group for s in samples], labels, config, args.folds, args.seed)
        auc = np.array(curves["val_auc"])
        smooth = np.convolve(auc, np.ones(5) / 5, mode="valid")
        print(json.dumps({"config": name, "best_epoch_smoothed": int(np.argmax(smooth)) + 3,
                          "best_auc_smoothed": round(float(smooth.max()), 4),
                          "auc_every_10": [round(float(a), 3) for a in auc[9::10]]}), flush=True)


if __name__ == "__main__":
    main()
