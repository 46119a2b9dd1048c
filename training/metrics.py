"""The numbers both pipelines (image: ``training.train``; clinical: ``training.clinical``) report, defined once.

- :func:`sigmoid`, and :data:`C_GRID`, the inverse L2 strengths tried for every logistic regression;
- :func:`roc_auc`: ROC AUC of class 1 (binary) or macro one-vs-rest, for out-of-fold model comparison;
- :func:`positive_index`: which of two classes is the finding (not called normal/control);
- binning: :func:`equal_width_bins` and :func:`equal_count_bins` (the clinical reliability diagram's
  deciles of risk);
- :func:`ece`: the expected calibration error, one definition: ``ECE_BINS`` = 10 EQUAL-WIDTH bins on
  [0, 1] (bin b holds b/10 <= p < (b+1)/10, the last bin also p = 1); ECE = sum over non-empty bins
  of (share of the samples in the bin) x |mean predicted probability - observed rate|;
- :func:`bootstrap`: percentile 95 % confidence intervals from resampling GROUPS with replacement
  (all rows of a drawn group together): near-duplicate groups for the images, one group per
  patient for the clinical model; ``BOOTSTRAP_REPS`` = 2000 resamples with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

BOOTSTRAP_REPS = 2000
ECE_BINS = 10
# Image head: C up to 1 (as the served model was selected); the clinical model also tries 3.
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
NEGATIVE_NAMES = ("normal", "control", "healthy", "no_finding")


def sigmoid(t: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-t))


def positive_index(labels: Sequence[str]) -> int:
    """For two classes, the finding class (the one not called normal/control); else 1."""
    negatives = [i for i, name in enumerate(labels) if name.lower() in NEGATIVE_NAMES]
    return 1 - negatives[0] if len(labels) == 2 and len(negatives) == 1 else 1


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC of class 1 (binary) or macro one-vs-rest; NaN when a class is missing from ``y``."""
    if len(np.unique(y)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    k = proba.shape[1]
    if len(np.unique(y)) < k:
        return float("nan")
    return float(roc_auc_score(y, proba / proba.sum(axis=1, keepdims=True), multi_class="ovr", labels=np.arange(k)))


def equal_width_bins(p: np.ndarray, bins: int) -> list[np.ndarray]:
    """Indices of ``p`` per equal-width bin of [0, 1] (bin b: b/bins <= p < (b+1)/bins; p = 1 in the last)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    return [np.flatnonzero(which == b) for b in range(bins)]


def equal_count_bins(p: np.ndarray, bins: int) -> list[np.ndarray]:
    """Indices of ``p`` in ``bins`` groups of (nearly) equal size, lowest scores first (quantiles of risk)."""
    return np.array_split(np.argsort(p, kind="stable"), bins)


def ece(p: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of probabilities ``p`` against 0/1 ``truth`` (equal-width bins)."""
    n = len(p)
    return float(sum(len(b) / n * abs(p[b].mean() - truth[b].mean()) for b in equal_width_bins(p, bins) if len(b)))


def bootstrap(values: dict[str, float], statistic: Callable[[np.ndarray], dict[str, float]], groups: Sequence,
              seed: int, reps: int = BOOTSTRAP_REPS,
              accept: Callable[[np.ndarray], bool] | None = None) -> dict[str, dict[str, float]]:
    """{name: {"value", "ci_low", "ci_high"}} for the point estimates ``values``.

    Each of ``reps`` resamples draws ``len(set(groups))`` groups with replacement (in sorted
    group order) and evaluates ``statistic`` on the row indices of the drawn groups; a resample
    that ``accept`` rejects (e.g. one holding a single class) is redrawn. Intervals are the 2.5th
    and 97.5th percentiles of the draws, ignoring NaN draws (NaN when every draw is NaN).
    """
    names = sorted(set(groups))
    codes = np.asarray(groups)
    members = [np.flatnonzero(codes == g) for g in names]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    done = 0
    while done < reps:
        idx = np.concatenate([members[j] for j in rng.integers(0, len(names), len(names))])
        if accept is not None and not accept(idx):
            continue
        for key, value in statistic(idx).items():
            draws.setdefault(key, []).append(value)
        done += 1
    out = {}
    for key, value in values.items():
        sample = np.array(draws[key], dtype=float)
        low, high = np.nanpercentile(sample, [2.5, 97.5]) if np.isfinite(sample).any() else (np.nan, np.nan)
        out[key] = {"value": value, "ci_low": float(low), "ci_high": float(high)}
    return out
