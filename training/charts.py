"""Chart style and files shared by both pipelines: plotly figure JSON under ``charts/``, with
``charts/index.json`` = [{id, title, description}] listing them in display order (served by ``GET /metrics``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import roc_auc_score, roc_curve

from training.metrics import positive_index

Chart = tuple[str, str, str, go.Figure]  # (id, title, description, figure)


def style(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white")
    return fig


def diagonal(top: float, name: str) -> go.Scatter:
    """The dashed y = x reference line (chance on a ROC curve, perfect calibration on a reliability diagram)."""
    return go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dash"}, name=name)


def roc_chart(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> go.Figure:
    """ROC curve of the positive class (two classes) or of every class (one-vs-rest)."""
    fig = go.Figure()
    classes = [positive_index(labels)] if len(labels) == 2 else range(len(labels))
    for k in classes:
        if len(np.unique(y == k)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y == k, proba[:, k])
        auc = roc_auc_score(y == k, proba[:, k])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{labels[k]} (AUC {auc:.2f})"))
    fig.add_trace(diagonal(1, "chance"))
    return style(fig, "ROC curve (test split)", "1 - specificity", "Sensitivity")


def reliability_points(is_positive: np.ndarray, p: np.ndarray, bins: list[np.ndarray]) -> tuple[list, list, list]:
    """(mean predicted, observed rate, count) per non-empty bin of indices."""
    bins = [b for b in bins if len(b)]
    return ([float(p[b].mean()) for b in bins], [float(is_positive[b].mean()) for b in bins], [len(b) for b in bins])


def write_charts(folder: Path, charts: list[Chart]) -> None:
    """Write ``folder/<id>.json`` per figure and ``folder/index.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    for chart_id, _, _, fig in charts:
        (folder / f"{chart_id}.json").write_text(fig.to_json())
    index = [{"id": cid, "title": title, "description": desc} for cid, title, desc, _ in charts]
    (folder / "index.json").write_text(json.dumps(index, indent=1))

