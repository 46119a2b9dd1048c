"""Study-level aggregation of slice scores (numpy only; chosen in training by grouped CV on ct-ich).

Each rule maps the positive-class slice probabilities of a study's ASSESSABLE slices to one study
probability. ``params`` come from the manifest (``aggregation``):

- ``max``: the largest slice probability;
- ``topk``: mean of the k largest;
- ``noisy_or``: 1 - prod(1 - p_i) over slices, with p_i first tempered (p_i ** t is not used:
  slice probabilities are scaled by ``scale`` in logit space so a 30-slice study does not saturate);
- ``attention``: learned softmax attention over slice logits (MIL pooling):
  z = a * sum_i softmax(beta * l)_i * l_i + b, study probability sigmoid(z).

Every rule is followed by an optional Platt calibration (``a``, ``b``) of its output logit, fitted on
out-of-fold studies.
"""

from __future__ import annotations

import numpy as np

RULES = ("max", "topk", "noisy_or", "attention")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def raw_score(rule: str, p: np.ndarray, params: dict) -> float:
    """The rule's uncalibrated study score, as a logit."""
    p = np.asarray(p, np.float64)
    if rule == "max":
        return float(_logit(np.asarray(p.max())))
    if rule == "topk":
        k = int(params.get("k", 3))
        return float(_logit(np.asarray(np.sort(p)[::-1][:k].mean())))
    if rule == "noisy_or":
        q = _sigmoid(_logit(p) + float(params.get("shift", 0.0)))
        return float(_logit(1.0 - np.exp(np.log1p(-np.clip(q, 0, 1 - 1e-9)).sum())))
    if rule == "attention":
        z = _logit(p)
        w = np.exp(params["beta"] * (z - z.max()))
        return float((w / w.sum()) @ z)
    raise ValueError(f"unknown aggregation {rule!r}")


def study_probability(rule: str, p: np.ndarray, params: dict) -> float:
    """Calibrated study probability (Platt ``a``, ``b`` on the raw logit; identity when absent)."""
    z = raw_score(rule, p, params)
    return float(_sigmoid(params.get("a", 1.0) * z + params.get("b", 0.0)))


def key_slices(p: np.ndarray, rule: str, params: dict, n: int = 3) -> list[int]:
    """Indices of the slices that weigh most in the study score, most suspicious first."""
    p = np.asarray(p, np.float64)
    return [int(i) for i in np.argsort(-p, kind="stable")[:n]]
