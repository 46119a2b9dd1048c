"""Held-out evaluation of the served image model (int8 extractor + numpy head): ``metrics.json``'s core.

Every metric carries a grouped bootstrap 95 % CI (:func:`training.metrics.bootstrap`): groups (not
images) are resampled, so near-duplicates move together, 2000 times with a fixed seed.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from training import metrics
from training.metrics import BOOTSTRAP_REPS, positive_index


def predict(proba: np.ndarray, labels: list[str], threshold: float | None = None, positive: str | None = None) -> np.ndarray:
    """Predicted class indices: for two classes with a ``positive`` label, that class when its
    probability is >= ``threshold`` (the served rule, strokelens Predictor.decide); else argmax."""
    if threshold is not None and positive in labels and len(labels) == 2:
        pos = labels.index(positive)
        return np.where(proba[:, pos] >= threshold, pos, 1 - pos)
    return proba.argmax(axis=1)


def point_metrics(y: np.ndarray, proba: np.ndarray, labels: list[str], threshold: float | None = None,
                  positive: str | None = None) -> dict[str, float]:
    """Accuracy, macro-F1, ROC AUC, one-vs-rest sensitivity/specificity per class at the operating
    point, and (two classes) Brier score and expected calibration error of the positive class."""
    k = len(labels)
    pred = predict(proba, labels, threshold, positive)
    cm = confusion_matrix(y, pred, labels=np.arange(k)).astype(float)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / cm.sum(axis=1)
        precision = tp / cm.sum(axis=0)
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
        spec = (cm.sum() - cm.sum(axis=0) - cm.sum(axis=1) + tp) / (cm.sum() - cm.sum(axis=1))
    out = {"accuracy": float(tp.sum() / cm.sum()), "macro_f1": float(np.nanmean(f1))}
    if len(np.unique(y)) < k:
        out["roc_auc"] = float("nan")
    elif k == 2:
        pos = positive_index(labels)
        out["roc_auc"] = float(roc_auc_score(y == pos, proba[:, pos]))
    else:
        out["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(k)))
    for i, name in enumerate(labels):
        out[f"sensitivity_{name}"] = float(recall[i])
        out[f"specificity_{name}"] = float(spec[i])
    if k == 2:
        pos = positive_index(labels) if positive not in labels else labels.index(positive)
        truth = (y == pos).astype(float)
        out["brier"] = float(np.mean((proba[:, pos] - truth) ** 2))
        out["ece"] = metrics.ece(proba[:, pos], truth)
    return out


def evaluate(y: np.ndarray, proba: np.ndarray, groups: list[str], labels: list[str], seed: int,
             reps: int = BOOTSTRAP_REPS, threshold: float | None = None, positive: str | None = None) -> dict:
    """metrics.json content: metrics with CIs at the operating point, confusion matrix, counts."""
    cm = confusion_matrix(y, predict(proba, labels, threshold, positive), labels=np.arange(len(labels)))
    rule = (f"{positive} when P({positive}) >= {threshold} (operating threshold), else the other class"
            if threshold is not None and positive in labels and len(labels) == 2 else "argmax")
    values = metrics.bootstrap(point_metrics(y, proba, labels, threshold, positive),
                               lambda idx: point_metrics(y[idx], proba[idx], labels, threshold, positive),
                               groups, seed, reps)
    return {
        "split": "test",
        "n_images": int(len(y)),
        "n_groups": len(set(groups)),
        "labels": labels,
        "positive_class": labels[positive_index(labels)] if len(labels) == 2 else None,
        "decision_rule": rule,
        "bootstrap": {"reps": reps, "unit": "group", "seed": seed, "interval": "percentile 95%"},
        "metrics": values,
        "confusion_matrix": {"rows": "true", "columns": "predicted", "values": cm.tolist()},
    }
