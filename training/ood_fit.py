"""Fit the out-of-distribution models served by :mod:`strokelens.model.ood`.

A Mahalanobis model is a Ledoit-Wolf shrinkage covariance of in-distribution features (it stays
invertible with ~120 samples in 128 dimensions) and a threshold at a stated percentile of
OUT-OF-FOLD distances: each grouped fold is scored by a model fitted without it, so the threshold
reflects slices the model has not seen, as at serving.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import GroupKFold

from strokelens.model.ood import MahalanobisModel, image_stats

# Two distances are checked (image statistics, embedding); 98.75% each keeps the expected combined
# false-refusal rate near 2.5%.
PERCENTILE = 98.75


def _model(features: np.ndarray, threshold: float, percentile: float) -> MahalanobisModel:
    lw = LedoitWolf().fit(features)
    return MahalanobisModel(lw.location_, lw.precision_, threshold, percentile)


def fit_mahalanobis(features: np.ndarray, groups: np.ndarray, percentile: float = PERCENTILE,
                    folds: int = 5) -> MahalanobisModel:
    features = np.asarray(features, dtype=np.float64)
    distances = np.empty(len(features))
    for train, held in GroupKFold(n_splits=min(folds, len(set(groups)))).split(features, groups=groups):
        fold_model = _model(features[train], np.inf, percentile)
        distances[held] = [fold_model.distance(f) for f in features[held]]
    return _model(features, float(np.percentile(distances, percentile)), percentile)


def fit_image_model(displays: list[np.ndarray], groups: np.ndarray, percentile: float = PERCENTILE) -> MahalanobisModel:
    """The image-statistics model, fitted on the training slices' display images."""
    return fit_mahalanobis(np.stack([image_stats(d) for d in displays]), groups, percentile)
