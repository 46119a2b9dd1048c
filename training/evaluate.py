"""Held-out evaluation of the served model (int8 extractor + numpy head) and its charts.

Every metric carries a grouped bootstrap 95 % CI: groups (not images) are resampled, so
near-duplicates move together, 2000 times with a fixed seed. Charts are plotly figure JSON
under ``charts/`` with ``charts/index.json`` listing them in display order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

BOOTSTRAP_REPS = 2000
NEGATIVE_NAMES = ("normal", "control", "healthy", "no_finding")


def positive_index(labels: list[str]) -> int:
    """For two classes, the finding class (the one not called normal/control); else 1."""
    negatives = [i for i, name in enumerate(labels) if name.lower() in NEGATIVE_NAMES]
    return 1 - negatives[0] if len(labels) == 2 and len(negatives) == 1 else 1


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
        out["ece"] = expected_calibration_error(proba[:, pos], truth)
    return out


def expected_calibration_error(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of (share of images) x |mean p - observed rate|."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    return float(sum((which == b).mean() * abs(p[which == b].mean() - truth[which == b].mean())
                     for b in range(bins) if (which == b).any()))


def grouped_bootstrap(y: np.ndarray, proba: np.ndarray, groups: list[str], labels: list[str], seed: int,
                      reps: int = BOOTSTRAP_REPS, threshold: float | None = None,
                      positive: str | None = None) -> dict[str, dict[str, float]]:
    """{metric: {"value", "ci_low", "ci_high"}}: percentile 95 % CIs over resampled groups."""
    names = sorted(set(groups))
    members = [np.flatnonzero(np.array(groups) == g) for g in names]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(reps):
        idx = np.concatenate([members[j] for j in rng.integers(0, len(names), len(names))])
        for key, value in point_metrics(y[idx], proba[idx], labels, threshold, positive).items():
            draws.setdefault(key, []).append(value)
    result = {}
    for key, value in point_metrics(y, proba, labels, threshold, positive).items():
        values = np.array(draws[key], dtype=float)
        low, high = np.nanpercentile(values, [2.5, 97.5]) if np.isfinite(values).any() else (np.nan, np.nan)
        result[key] = {"value": value, "ci_low": float(low), "ci_high": float(high)}
    return result


def evaluate(y: np.ndarray, proba: np.ndarray, groups: list[str], labels: list[str], seed: int,
             reps: int = BOOTSTRAP_REPS, threshold: float | None = None, positive: str | None = None) -> dict:
    """metrics.json content: metrics with CIs at the operating point, confusion matrix, counts."""
    cm = confusion_matrix(y, predict(proba, labels, threshold, positive), labels=np.arange(len(labels)))
    rule = (f"{positive} when P({positive}) >= {threshold} (operating threshold), else the other class"
            if threshold is not None and positive in labels and len(labels) == 2 else "argmax")
    return {
        "split": "test",
        "n_images": int(len(y)),
        "n_groups": len(set(groups)),
        "labels": labels,
        "positive_class": labels[positive_index(labels)] if len(labels) == 2 else None,
        "decision_rule": rule,
        "bootstrap": {"reps": reps, "unit": "group", "seed": seed, "interval": "percentile 95%"},
        "metrics": grouped_bootstrap(y, proba, groups, labels, seed, reps, threshold, positive),
        "confusion_matrix": {"rows": "true", "columns": "predicted", "values": cm.tolist()},
    }


# ---------------------------------------------------------------- charts


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white")
    return fig


def confusion_chart(cm: list[list[int]], labels: list[str]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=cm, x=labels, y=labels, colorscale="Blues", text=cm, texttemplate="%{text}"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Confusion matrix (test split)", "Predicted", "True")


def roc_chart(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> go.Figure:
    fig = go.Figure()
    classes = [positive_index(labels)] if len(labels) == 2 else range(len(labels))
    for k in classes:
        if len(np.unique(y == k)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y == k, proba[:, k])
        auc = roc_auc_score(y == k, proba[:, k])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{labels[k]} (AUC {auc:.2f})"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="chance"))
    return _layout(fig, "ROC curve (test split)", "1 - specificity", "Sensitivity")


def _reliability_points(y: np.ndarray, p: np.ndarray, k: int, bins: int) -> tuple[list, list, list]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    mean_p, observed, counts = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_p.append(float(p[mask].mean()))
            observed.append(float((y[mask] == k).mean()))
            counts.append(int(mask.sum()))
    return mean_p, observed, counts


def reliability_chart(y: np.ndarray, proba: np.ndarray, labels: list[str], bins: int = 5,
                      series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, k: int | None = None) -> go.Figure:
    """Reliability diagram of P(class k); ``series`` = {name: (y, proba)} adds curves (e.g. OOF before/after Platt)."""
    k = positive_index(labels) if k is None else k
    curves = {"test (served model)": (y, proba), **(series or {})}
    fig = go.Figure()
    for name, (yy, pp) in curves.items():
        mean_p, observed, counts = _reliability_points(yy, pp[:, k], k, bins)
        fig.add_trace(go.Scatter(x=mean_p, y=observed, mode="lines+markers", name=name, text=[f"n={c}" for c in counts]))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="perfect calibration"))
    return _layout(fig, f"Reliability diagram: P({labels[k]})", "Mean predicted probability",
                   f"Observed fraction {labels[k]}")


def class_chart(counts: dict[str, dict[str, int]]) -> go.Figure:
    fig = go.Figure([go.Bar(name=split, x=list(per.keys()), y=list(per.values())) for split, per in counts.items()])
    fig.update_layout(barmode="group")
    return _layout(fig, "Class distribution by split", "Class", "Images")


def size_chart(sizes: list[tuple[int, int]], sample_labels: list[str]) -> go.Figure:
    fig = go.Figure()
    for name in sorted(set(sample_labels)):
        pts = [s for s, lab in zip(sizes, sample_labels) if lab == name]
        fig.add_trace(go.Scatter(x=[w for w, _ in pts], y=[h for _, h in pts], mode="markers", name=name))
    return _layout(fig, "Original image sizes", "Width (px)", "Height (px)")


def intensity_chart(inputs: np.ndarray, sample_labels: list[str]) -> go.Figure:
    edges = np.linspace(0, 1, 51)
    fig = go.Figure()
    for name in sorted(set(sample_labels)):
        values = inputs[np.array(sample_labels) == name]
        values = values[values > 0.02]  # ignore the black background and padding
        hist, _ = np.histogram(values, bins=edges, density=True)
        fig.add_trace(go.Scatter(x=(edges[:-1] + edges[1:]) / 2, y=hist, mode="lines", name=name))
    return _layout(fig, "Model-input intensity by class (foreground)", "Intensity [0, 1]", "Density")


def history_chart(history: dict) -> go.Figure:
    fig = go.Figure()
    for key in ("loss", "val_loss", "val_auc", "cv_loss", "cv_val_auc"):
        if history.get(key):
            fig.add_trace(go.Scatter(y=history[key], x=list(range(1, len(history[key]) + 1)), mode="lines", name=key))
    return _layout(fig, "CNN training curve", "Epoch", "Cross-entropy / ROC AUC")


def heads_chart(rows: list[dict]) -> go.Figure:
    names = [r["head"] for r in rows]
    fig = go.Figure([
        go.Bar(name="OOF ROC AUC", x=names, y=[r["oof_roc_auc"] for r in rows],
               error_y={"type": "data", "array": [r["fold_roc_auc_sd"] for r in rows], "visible": True}),
        go.Bar(name="OOF macro-F1 (argmax)", x=names, y=[r["oof_macro_f1"] for r in rows]),
    ])
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return _layout(fig, "Heads compared (cross-fitted OOF, training split)", "Head", "Score")


def write_charts(folder: Path, charts: list[tuple[str, str, str, go.Figure]]) -> None:
    """Write ``folder/<id>.json`` per figure and ``folder/index.json`` = [{id, title, description}]."""
    folder.mkdir(parents=True, exist_ok=True)
    for chart_id, _, _, fig in charts:
        (folder / f"{chart_id}.json").write_text(fig.to_json())
    index = [{"id": cid, "title": title, "description": desc} for cid, title, desc, _ in charts]
    (folder / "index.json").write_text(json.dumps(index, indent=1))
