"""The clinical model's charts (plotly figure JSON, :mod:`training.charts` style)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import precision_recall_curve

from training.charts import Chart, diagonal, reliability_points, roc_chart, style
from training.metrics import equal_count_bins

DECILES = 10


def _r(values) -> list[float]:
    return [round(float(v), 5) for v in values]


def _ci(entry: dict) -> str:
    return f"{entry['value']:.3f}, 95 % CI {entry['ci_low']:.3f}-{entry['ci_high']:.3f}"


def roc(y: np.ndarray, p: np.ndarray, m: dict) -> go.Figure:
    fig = roc_chart(y, np.stack([1 - p, p], axis=1), ["control", "stroke"])
    fig.add_trace(go.Scatter(x=[1 - m["specificity_at_train_threshold"]["value"]],
                             y=[m["sensitivity_at_90_specificity"]["value"]], mode="markers", marker={"size": 11},
                             name="threshold for 90 % specificity (chosen on training)"))
    fig.update_layout(title=f"Clinical risk: ROC curve, held-out patients (AUC {_ci(m['roc_auc'])})")
    return fig


def precision_recall(y: np.ndarray, p: np.ndarray, m: dict) -> go.Figure:
    precision, recall, _ = precision_recall_curve(y, p)
    fig = go.Figure([
        go.Scatter(x=_r(recall), y=_r(precision), mode="lines", name=f"model (AP {m['pr_auc']['value']:.3f})"),
        go.Scatter(x=[0, 1], y=[y.mean()] * 2, mode="lines", line={"dash": "dash"},
                   name=f"prevalence {y.mean():.3f} (no skill)"),
    ])
    return style(fig, "Clinical risk: precision-recall curve, held-out patients", "Recall (sensitivity)",
                 "Precision (PPV)")


def reliability(y: np.ndarray, p: np.ndarray, m: dict) -> go.Figure:
    """Deciles of predicted risk (equal-count bins: with ~5 % positives most equal-width bins are empty)."""
    bins = equal_count_bins(p, DECILES)
    mean_p, observed, _ = reliability_points(y, p, bins)
    top = max(max(mean_p), max(observed)) * 1.1
    fig = go.Figure([
        go.Scatter(x=_r(mean_p), y=_r(observed), mode="lines+markers", name="calibrated model (deciles of risk)",
                   text=[f"n={len(b)}, strokes={int(y[b].sum())}" for b in bins]),
        diagonal(top, "perfect calibration"),
    ])
    return style(fig, f"Clinical risk: reliability diagram, held-out patients (ECE {_ci(m['ece'])}; "
                      f"Brier {m['brier']['value']:.3f})",
                 "Mean predicted probability (decile of risk)", "Observed stroke fraction")


def comparison(families: dict, decision: dict) -> go.Figure:
    names = list(families)
    label = {f: f.replace("_", " ") + (" (CV winner)" if f == decision["cv_winner"] else "")
             + (" (served)" if f == decision["served"] else "") for f in names}
    fig = go.Figure([
        go.Bar(name="ROC AUC", x=[label[f] for f in names], y=_r(families[f]["best"]["roc_auc"] for f in names),
               error_y={"type": "data", "array": _r(families[f]["best"]["roc_auc_sd"] for f in names)}),
        go.Bar(name="PR AUC", x=[label[f] for f in names], y=_r(families[f]["best"]["pr_auc"] for f in names),
               error_y={"type": "data", "array": _r(families[f]["best"]["pr_auc_sd"] for f in names)}),
    ])
    fig.update_layout(barmode="group")
    return style(fig, "Clinical risk: model comparison, 5-fold CV on the training split (mean ± SD)", "Model",
                 "Score")


def coefficients(spec: dict) -> go.Figure:
    a = spec["calibration"]["a"]
    effects = sorted(zip((c["name"] for c in spec["columns"]), (a * c for c in spec["coef"])), key=lambda t: t[1])
    fig = go.Figure(go.Bar(x=_r(e for _, e in effects), y=[n for n, _ in effects], orientation="h",
                           marker={"color": ["#c0392b" if e > 0 else "#2e86c1" for _, e in effects]}))
    style(fig, "Clinical risk: change in calibrated log-odds per +1 SD of each model column",
          "Log-odds per SD (positive raises risk)", "Column")
    fig.update_layout(height=620, margin={"l": 220})
    return fig


def charts(y: np.ndarray, p: np.ndarray, metrics: dict, families: dict, decision: dict, spec: dict) -> list[Chart]:
    m = metrics["metrics"]
    return [
        ("clinical_roc", "Clinical risk: ROC curve",
         "Held-out patients; ROC AUC with bootstrap 95 % CI; the marker is the 90 %-specificity threshold chosen "
         "on training out-of-fold scores.", roc(y, p, m)),
        ("clinical_pr", "Clinical risk: precision-recall curve",
         "Held-out patients; average precision (PR AUC) against the prevalence baseline.", precision_recall(y, p, m)),
        ("clinical_reliability", "Clinical risk: reliability diagram",
         "Held-out patients in deciles of predicted risk: mean predicted probability against observed stroke "
         "fraction; expected calibration error (ECE) in the title.", reliability(y, p, m)),
        ("clinical_model_comparison", "Clinical risk: model comparison (CV)",
         "Logistic regression, gradient boosting and random forest, best configuration of each, 5-fold "
         "stratified CV on the training split. " + decision["why"], comparison(families, decision)),
        ("clinical_coefficients", "Clinical risk: what raises or lowers the risk",
         "Standardised coefficients of the served logistic regression times the calibration slope: the change "
         "in calibrated log-odds per +1 SD of each column (per-patient contributions are these times the "
         "patient's standardised values).", coefficients(spec)),
    ]
