"""A fitted linear scikit-learn head (StandardScaler + LogisticRegression) evaluated in numpy.

Keeping scikit-learn and scipy out of the inference package saves ~120 MB and ~2 s of import.
The arrays are exported by ``training/export.py``; ``tests`` check parity with
``predict_proba`` to 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LinearHead:
    mean: np.ndarray  # (D,) scaler mean
    scale: np.ndarray  # (D,) scaler scale
    coef: np.ndarray  # (1, D) for two classes, (K, D) otherwise
    intercept: np.ndarray  # (1,) or (K,)

    @classmethod
    def load(cls, path: Path) -> "LinearHead":
        with np.load(path) as arrays:
            return cls(**{k: arrays[k].astype(np.float64) for k in ("mean", "scale", "coef", "intercept")})

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Linear scores, (N, 1) or (N, K): scale first, then the affine map."""
        x = (np.atleast_2d(features).astype(np.float64) - self.mean) / self.scale
        return x @ self.coef.T + self.intercept

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K), as LogisticRegression.predict_proba computes them."""
        z = self.decision(features)
        if z.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
