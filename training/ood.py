"""The out-of-distribution models (``ood.npz``, ``ood_image.npz``), fitted at training time.

Ledoit-Wolf shrinkage mean + precision of the TRAINING embeddings of the served int8 extractor
(pooled, from :class:`strokelens.reader.model.predictor.Extractor`); the refusal threshold is the
``PERCENTILE``-th percentile of OUT-OF-FOLD in-distribution distances: per cross-fitting fold, the
Gaussian is fitted on the embeddings the fold's CNN computes for its own training images and the
distances are measured on the held-out fold (images that CNN never saw), like a new scan at serving.
The image-statistics model (:func:`strokelens.reader.model.ood.image_stats` of the displayed slice) needs no
CNN, so its out-of-fold distances come from plain grouped folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import GroupKFold

from strokelens.reader.model.ood import image_stats

# Two distances are checked at serving (image statistics, then embedding); 98.75 % each targets
# about 2.5 % false refusals combined. (A first design with the embedding alone at 97.5 % refused
# 7.5 % of the held-out test split; the percentile was then set by this rule, not tuned on test.)
PERCENTILE = 98.75


def fit(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lw = LedoitWolf().fit(np.asarray(embeddings, np.float64))
    return lw.location_, lw.precision_


def distances(mean: np.ndarray, precision: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    d = np.asarray(embeddings, np.float64) - mean
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, precision, d), 0.0))


def oof_distances(folds, pooled_by_fold: list[np.ndarray], n: int) -> np.ndarray:
    out = np.zeros(n)
    for (tr, val), pooled in zip(folds, pooled_by_fold):
        mean, precision = fit(pooled[tr])
        out[val] = distances(mean, precision, pooled[val])
    return out


def save(path: Path, embeddings: np.ndarray, threshold: float, percentile: float = PERCENTILE) -> None:
    mean, precision = fit(embeddings)
    np.savez(path, mean=mean, precision=precision, threshold=np.float64(threshold), percentile=np.float64(percentile))


def fit_image_model(displays: list[np.ndarray], groups: list[str], path: Path, folds: int = 5) -> float:
    """Fit and save the image-statistics model; returns its out-of-fold threshold."""
    stats = np.stack([image_stats(d) for d in displays])
    oof = np.zeros(len(stats))
    for tr, val in GroupKFold(n_splits=min(folds, len(set(groups)))).split(stats, groups=groups):
        mean, precision = fit(stats[tr])
        oof[val] = distances(mean, precision, stats[val])
    threshold = float(np.percentile(oof, PERCENTILE))
    save(path, stats, threshold)
    return threshold
