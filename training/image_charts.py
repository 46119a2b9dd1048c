"""The image model's charts (plotly figure JSON, :mod:`training.charts` style)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from training.charts import diagonal, reliability_points, style
from training.metrics import equal_width_bins, positive_index

RELIABILITY_BINS = 5  # tens of test images: 5 equal-width bins keep a few per point


def confusion_chart(cm: list[list[int]], labels: list[str]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=cm, x=labels, y=labels, colorscale="Blues", text=cm, texttemplate="%{text}"))
    fig.update_yaxes(autorange="reversed")
    return style(fig, "Confusion matrix (test split)", "Predicted", "True")


def reliability_chart(y: np.ndarray, proba: np.ndarray, labels: list[str], bins: int = RELIABILITY_BINS,
                      series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, k: int | None = None) -> go.Figure:
    """Reliability diagram of P(class k); ``series`` = {name: (y, proba)} adds curves (e.g. OOF before/after Platt)."""
    k = positive_index(labels) if k is None else k
    curves = {"test (served model)": (y, proba), **(series or {})}
    fig = go.Figure()
    for name, (yy, pp) in curves.items():
        mean_p, observed, counts = reliability_points(yy == k, pp[:, k], equal_width_bins(pp[:, k], bins))
        fig.add_trace(go.Scatter(x=mean_p, y=observed, mode="lines+markers", name=name, text=[f"n={c}" for c in counts]))
    fig.add_trace(diagonal(1, "perfect calibration"))
    return style(fig, f"Reliability diagram: P({labels[k]})", "Mean predicted probability",
                 f"Observed fraction {labels[k]}")


def class_chart(counts: dict[str, dict[str, int]]) -> go.Figure:
    fig = go.Figure([go.Bar(name=split, x=list(per.keys()), y=list(per.values())) for split, per in counts.items()])
    fig.update_layout(barmode="group")
    return style(fig, "Class distribution by split", "Class", "Images")


def size_chart(sizes: list[tuple[int, int]], sample_labels: list[str]) -> go.Figure:
    fig = go.Figure()
    for name in sorted(set(sample_labels)):
        pts = [s for s, lab in zip(sizes, sample_labels) if lab == name]
        fig.add_trace(go.Scatter(x=[w for w, _ in pts], y=[h for _, h in pts], mode="markers", name=name))
    return style(fig, "Original image sizes", "Width (px)", "Height (px)")


def intensity_chart(inputs: np.ndarray, sample_labels: list[str]) -> go.Figure:
    edges = np.linspace(0, 1, 51)
    fig = go.Figure()
    for name in sorted(set(sample_labels)):
        values = inputs[np.array(sample_labels) == name]
        values = values[values > 0.02]  # ignore the black background and padding
        hist, _ = np.histogram(values, bins=edges, density=True)
        fig.add_trace(go.Scatter(x=(edges[:-1] + edges[1:]) / 2, y=hist, mode="lines", name=name))
    return style(fig, "Model-input intensity by class (foreground)", "Intensity [0, 1]", "Density")


def history_chart(history: dict) -> go.Figure:
    fig = go.Figure()
    for key in ("loss", "val_loss", "val_auc", "cv_loss", "cv_val_auc"):
        if history.get(key):
            fig.add_trace(go.Scatter(y=history[key], x=list(range(1, len(history[key]) + 1)), mode="lines", name=key))
    return style(fig, "CNN training curve", "Epoch", "Cross-entropy / ROC AUC")


def heads_chart(rows: list[dict]) -> go.Figure:
    names = [r["head"] for r in rows]
    fig = go.Figure([
        go.Bar(name="OOF ROC AUC", x=names, y=[r["oof_roc_auc"] for r in rows],
               error_y={"type": "data", "array": [r["fold_roc_auc_sd"] for r in rows], "visible": True}),
        go.Bar(name="OOF macro-F1 (argmax)", x=names, y=[r["oof_macro_f1"] for r in rows]),
    ])
    fig.update_layout(barmode="group", yaxis_range=[0, 1])
    return style(fig, "Heads compared (cross-fitted OOF, training split)", "Head", "Score")
