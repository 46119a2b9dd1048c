"""Grouped, label-stratified splits: the held-out test set and the CV folds for model selection.

A group (near-duplicates, adjacent slices, one patient's panels) never straddles a split;
a group whose members carry different labels stays whole too (StratifiedGroupKFold assigns
whole groups). Preset splits (Kaggle layout) are honoured as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from training.datasets import Sample

TEST_FRACTION = 0.25


def _codes(values: list[str]) -> np.ndarray:
    names = sorted(set(values))
    return np.array([names.index(v) for v in values])


def train_test_split(samples: list[Sample], seed: int, test_fraction: float = TEST_FRACTION) -> list[str]:
    """"train"/"test" for each sample: the preset split if every sample has one, else grouped + stratified."""
    if all(s.split in ("train", "test") for s in samples):
        return [str(s.split) for s in samples]
    n_splits = max(2, round(1.0 / test_fraction))
    y, groups = _codes([s.label for s in samples]), _codes([s.group for s in samples])
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, test_idx = next(folds.split(np.zeros(len(samples)), y, groups))
    out = ["train"] * len(samples)
    for i in test_idx:
        out[i] = "test"
    return out


def cv_folds(labels: list[str], groups: list[str], n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped stratified (train_idx, val_idx) folds; fewer folds when there are few groups per class."""
    y, g = _codes(labels), _codes(groups)
    smallest = min(len({gg for gg, yy in zip(g, y) if yy == c}) for c in set(y))
    n_splits = max(2, min(n_splits, smallest))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y, g))


def save_split(samples: list[Sample], splits: list[str], root: Path, path: Path, seed: int) -> None:
    """Write ``split.json``: file paths relative to the data root, with label, group and split."""
    rows = [
        {"file": s.path.relative_to(root).as_posix(), "label": s.label, "group": s.group, "split": sp}
        for s, sp in zip(samples, splits)
    ]
    method = "preset" if all(s.split for s in samples) else "StratifiedGroupKFold"
    path.write_text(json.dumps({"seed": seed, "method": method, "test_fraction": TEST_FRACTION, "files": rows}, indent=1))
