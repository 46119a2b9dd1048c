"""The embedding part of the out-of-distribution model (``ood.npz``), fitted at training time.

Ledoit-Wolf shrinkage mean + precision of the TRAINING embeddings of the served int8 extractor
(pooled, from :class:`strokelens.model.predictor.Extractor`); the refusal threshold is the
``PERCENTILE``-th percentile of OUT-OF-FOLD in-distribution distances: per cross-fitting fold, the
Gaussian is fitted on the embeddings the fold's CNN computes for its own training images and the
distances are measured on the held-out fold (images that CNN never saw), like a new scan at serving.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf

PERCENTILE = 97.5


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
