"""``python -m training.clinical``: patient-level stroke risk from clinical fields.

Example::

    python -m training.clinical --data ../shared/data/clinical/healthcare-dataset-stroke-data.csv \\
        --out functions/strokelens/artifacts/clinical --seed 0

Steps (all deterministic from ``--seed``):

1. Read the CSV with explicit missing values: ``bmi`` "N/A" -> missing (imputed with the
   training median inside the pipeline); ``smoking_status`` "Unknown" stays its own level.
2. Stratified held-out split (25 %); the held-out ``id`` values are saved.
3. 5-fold stratified CV on the training part: class-weighted LogisticRegression (C tuned),
   HistGradientBoosting, RandomForest; the CV winner is chosen by PR AUC, then ROC AUC.
4. The served model is always the calibrated logistic regression (see ``serving_decision``):
   Platt scaling fitted on out-of-fold decision values (CalibratedClassifierCV, sigmoid,
   ``ensemble=False``), exported as numbers to ``clinical.json`` and evaluated by
   ``strokelens.core.clinical`` without scikit-learn.
5. Held-out metrics of the served model with 2000-rep bootstrap CIs, plotly charts, card.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

if importlib.util.find_spec("strokelens") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from strokelens.core import clinical as served  # noqa: E402
from training.evaluate import BOOTSTRAP_REPS, roc_chart, write_charts  # noqa: E402

TEST_FRACTION = 0.25
CV_FOLDS = 5
SPECIFICITY = 0.90
ECE_BINS = 10
# Serving rule: the linear model is "within CV noise" of a tree winner when its mean CV ROC AUC
# is at most NOISE_ROC_AUC below and its mean CV PR AUC at most one SD of the paired per-fold
# PR AUC differences below. Either way the calibrated LR is served (numpy/stdlib-evaluable).
NOISE_ROC_AUC = 0.01
PARITY_TOLERANCE = 1e-6

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
HGB_GRID = (
    {"learning_rate": 0.05, "max_iter": 100, "max_depth": 2, "min_samples_leaf": 40},
    {"learning_rate": 0.05, "max_iter": 100, "max_depth": 3, "min_samples_leaf": 40},
)
RF_GRID = (
    {"n_estimators": 300, "min_samples_leaf": 10},
    {"n_estimators": 300, "min_samples_leaf": 30},
)

NUMERIC = ("age", "avg_glucose_level")
ONE_HOT = ("ever_married", "work_type", "Residence_type", "smoking_status")
GENDER_MAP = {"Male": 1.0, "Female": 0.0}  # "Other" (one patient in the data) -> training mean
COLUMNS = ("id", "gender", "age", "hypertension", "heart_disease", "ever_married", "work_type",
           "Residence_type", "avg_glucose_level", "bmi", "smoking_status", "stroke")
FEATURES = served.REQUIRED + served.OPTIONAL

ARTIFACTS = ("clinical.json", "clinical_pipeline.joblib", "clinical_metrics.json", "clinical_split.json",
             "clinical_card.json", "clinical_card.md")

DATA_ORIGIN = (
    'Public "Stroke Prediction Dataset" (Kaggle, fedesoriano): one row per patient with gender, age, '
    "hypertension, heart disease, ever married, work type, residence type, average glucose level, BMI, "
    "smoking status and a stroke flag. Its publisher does not name the source (one anonymous source). "
    "{n} patients ({pos} with stroke, {rate:.1%}) are used here; some rows are kept aside for "
    "independent evaluation. Research use."
)
LIMITS = [
    "One anonymous source: the publisher does not say where, when or how the patients were collected; "
    "there is no external validation and performance on any real clinical population is unknown.",
    "Cross-sectional: 'stroke' marks a stroke in the record, not a stroke that happened after the "
    "measurements; glucose and BMI may have been taken after the event. The model describes association "
    "in this data set, not a prospective risk or a cause.",
    "Self-reported or loosely defined fields (smoking status, work type, ever married, residence type); "
    "smoking status is 'Unknown' for {unknown_smoking:.0%} of patients (many of them children) and is kept as "
    "its own level.",
    "BMI is missing for {bmi_missing:.1%} of patients, and their stroke rate was {bmi_missing_rate:.1%} against "
    "{bmi_present_rate:.1%} for the rest (missingness depends on the outcome). The served model imputes the "
    "training median and does NOT use a 'BMI missing' flag: such a flag raises CV AUC here but would make a blank "
    "BMI field raise a new patient's risk (see the ablation above and in clinical_metrics.json).",
    "Training data ranges: age {age[0]:g}-{age[1]:g} years, glucose {avg_glucose_level[0]:g}-"
    "{avg_glucose_level[1]:g} mg/dL, BMI {bmi[0]:g}-{bmi[1]:g}. The API accepts wider plausible ranges (age 0-120, "
    "glucose 40-400, BMI 10-100) and notes values outside the training range as extrapolation.",
    "Per-field contributions are associations adjusted for the other fields in this sample, not causal effects; "
    "small ones (under about 0.1 log-odds) are within noise and some may look counter-intuitive.",
    "Gender 'Other' occurs {other_gender} time(s) in the data: it is treated as unknown (gender contributes nothing).",
    "About {prevalence:.0%} positives: the held-out split has {n_test_positive} strokes, so the confidence "
    "intervals are wide.",
    "Not a validated clinical score (unlike e.g. CHA2DS2-VASc or Framingham); not a medical device; not for "
    "diagnosis or treatment decisions.",
]
NO_FUSION = (
    "The clinical risk and the image reading are two separate readings, shown side by side and never combined "
    "into one number. No available data set has head images and clinical fields for the same patients, so any "
    "fused score would be an invented rule whose accuracy and calibration could not be measured. The two also "
    "answer different questions: the image model reads one CT slice for hemorrhage now; the clinical model "
    "describes how strongly risk factors were associated with a recorded stroke in one population."
)


# ---------------------------------------------------------------- data


def load_data(path: Path) -> pd.DataFrame:
    """The CSV with explicit missing values: only ``bmi`` may be missing ("N/A" or empty)."""
    df = pd.read_csv(path, keep_default_na=False, na_values={"bmi": ["N/A", "NA", ""]})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    df = df[list(COLUMNS)].copy()
    for name in ("age", "avg_glucose_level", "bmi"):
        df[name] = pd.to_numeric(df[name], errors="raise").astype(float)
    for name in ("id", "hypertension", "heart_disease", "stroke"):
        df[name] = pd.to_numeric(df[name], errors="raise").astype(int)
    for name, levels in served.CATEGORIES.items():
        bad = sorted(set(df[name]) - set(levels))
        if bad:
            raise ValueError(f"{path}: column {name} has unexpected values {bad}; expected {list(levels)}")
    for name in ("hypertension", "heart_disease", "stroke"):
        if not df[name].isin((0, 1)).all():
            raise ValueError(f"{path}: column {name} must be 0/1")
    if df.drop(columns="bmi").isna().any().any():
        raise ValueError(f"{path}: unexpected missing values outside bmi")
    if not df["id"].is_unique:
        raise ValueError(f"{path}: id is not unique")
    return df


def split_ids(df: pd.DataFrame, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, test): stratified on ``stroke``, in file order."""
    train, test = train_test_split(np.arange(len(df)), test_size=test_fraction, stratify=df["stroke"].to_numpy(),
                                   random_state=seed)
    return np.sort(train), np.sort(test)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- models


def gender_male(frame) -> np.ndarray:
    """Male 1, Female 0, anything else (``Other``) missing -> imputed with the training mean."""
    values = np.asarray(frame, dtype=object).reshape(-1)
    return np.array([GENDER_MAP.get(v, np.nan) for v in values], dtype=float).reshape(-1, 1)


def preprocessor(bmi_indicator: bool = False) -> ColumnTransformer:
    return ColumnTransformer([
        ("numeric", "passthrough", list(NUMERIC)),
        ("bmi", SimpleImputer(strategy="median", add_indicator=bmi_indicator), ["bmi"]),
        ("flags", "passthrough", list(served.FLAGS)),
        ("gender", Pipeline([("map", FunctionTransformer(gender_male)), ("impute", SimpleImputer(strategy="mean"))]),
         ["gender"]),
        ("levels", OneHotEncoder(categories=[list(served.CATEGORIES[c]) for c in ONE_HOT], handle_unknown="error",
                                 sparse_output=False), list(ONE_HOT)),
    ])


def column_names() -> list[str]:
    names = [*NUMERIC, "bmi", *served.FLAGS, "gender=Male"]
    return names + [f"{field}={level}" for field in ONE_HOT for level in served.CATEGORIES[field]]


def linear(c: float, bmi_indicator: bool = False) -> Pipeline:
    return Pipeline([("prep", preprocessor(bmi_indicator)), ("scale", StandardScaler()),
                     ("lr", LogisticRegression(C=c, class_weight="balanced", max_iter=10000))])


def boosting(config: dict, seed: int) -> Pipeline:
    return Pipeline([("prep", preprocessor()),
                     ("model", HistGradientBoostingClassifier(**config, class_weight="balanced", random_state=seed))])


def forest(config: dict, seed: int) -> Pipeline:
    return Pipeline([("prep", preprocessor()),
                     ("model", RandomForestClassifier(**config, max_features="sqrt", class_weight="balanced_subsample",
                                                      n_jobs=-1, random_state=seed))])


def candidates(seed: int) -> dict[str, list[tuple[dict, Pipeline]]]:
    return {
        "logistic_regression": [({"C": c}, linear(c)) for c in C_GRID],
        "hist_gradient_boosting": [(cfg, boosting(cfg, seed)) for cfg in HGB_GRID],
        "random_forest": [(cfg, forest(cfg, seed)) for cfg in RF_GRID],
    }


def scores(model: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Ranking score: decision function when there is one, else P(stroke)."""
    return model.decision_function(X) if hasattr(model, "decision_function") else model.predict_proba(X)[:, 1]


def cross_validate(model: Pipeline, X: pd.DataFrame, y: np.ndarray, cv: StratifiedKFold) -> dict:
    method = "decision_function" if hasattr(model, "decision_function") else "predict_proba"
    oof = cross_val_predict(model, X, y, cv=cv, method=method)
    oof = oof[:, 1] if oof.ndim == 2 else oof
    folds = list(cv.split(X, y))
    roc = [roc_auc_score(y[te], oof[te]) for _, te in folds]
    pr = [average_precision_score(y[te], oof[te]) for _, te in folds]
    return {"roc_auc": float(np.mean(roc)), "roc_auc_sd": float(np.std(roc)), "pr_auc": float(np.mean(pr)),
            "pr_auc_sd": float(np.std(pr)), "roc_auc_folds": [float(v) for v in roc],
            "pr_auc_folds": [float(v) for v in pr], "oof": oof}


def _key(result: dict) -> tuple[float, float]:
    return (round(result["pr_auc"], 12), round(result["roc_auc"], 12))


def compare(X: pd.DataFrame, y: np.ndarray, cv: StratifiedKFold, seed: int) -> dict:
    """CV of every candidate; per family the best config by (PR AUC, ROC AUC)."""
    families = {}
    for family, options in candidates(seed).items():
        results = []
        for config, model in options:
            tick = time.perf_counter()
            result = cross_validate(model, X, y, cv)
            results.append({"config": config, **result})
            print(f"  cv {family:24s} {json.dumps(config):70s} ROC {result['roc_auc']:.4f} PR {result['pr_auc']:.4f}"
                  f"  ({time.perf_counter() - tick:.1f} s)",
                  flush=True)
        best = max(results, key=_key)
        families[family] = {"best": best, "all": results}
    return families


def serving_decision(families: dict) -> dict:
    winner = max(families, key=lambda f: _key(families[f]["best"]))
    lr, top = families["logistic_regression"]["best"], families[winner]["best"]
    roc_gap = top["roc_auc"] - lr["roc_auc"]
    pr_diffs = np.array(top["pr_auc_folds"]) - np.array(lr["pr_auc_folds"])
    pr_gap, pr_noise = float(pr_diffs.mean()), float(pr_diffs.std(ddof=1))
    within = winner == "logistic_regression" or (roc_gap <= NOISE_ROC_AUC and pr_gap <= pr_noise)
    rule = (f"Serve the calibrated logistic regression. It counts as within CV noise of the winner when its mean CV "
            f"ROC AUC is at most {NOISE_ROC_AUC} below and its mean CV PR AUC at most one SD of the paired "
            "per-fold PR AUC differences below; tree models are never served (no scikit-learn in the API function).")
    if winner == "logistic_regression":
        why = "Logistic regression won the CV comparison; it is served, calibrated."
    elif within:
        why = (f"{winner} won the CV comparison, but logistic regression is within CV noise (ROC AUC gap "
               f"{roc_gap:.4f} <= {NOISE_ROC_AUC}, PR AUC gap {pr_gap:.4f} <= {pr_noise:.4f}); the calibrated "
               "logistic regression is served: it is explainable (exact per-field contributions) and evaluates "
               "in a few lines of standard-library code in the API function.")
    else:
        why = (f"{winner} clearly won the CV comparison (ROC AUC gap {roc_gap:.4f}, PR AUC gap {pr_gap:.4f} vs "
               f"per-fold SD {pr_noise:.4f}). The calibrated logistic regression is still served, and this gap is "
               "reported: tree ensembles would need scikit-learn (or a tree runtime) in the API function's package, "
               "and their per-patient explanations would be approximations, whereas a linear model's "
               "contributions are exact.")
    return {"cv_winner": winner, "served": "logistic_regression", "lr_within_cv_noise": bool(within),
            "roc_auc_gap": float(roc_gap), "pr_auc_gap": pr_gap, "pr_auc_gap_sd": pr_noise, "rule": rule,
            "why": why}


# ---------------------------------------------------------------- metrics


def sigmoid(t: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-t))


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS, strategy: str = "quantile") -> float:
    """Expected calibration error: bin-size-weighted |mean predicted - observed| over bins."""
    if strategy == "quantile":
        groups = np.array_split(np.argsort(p, kind="stable"), bins)
    else:
        which = np.clip((p * bins).astype(int), 0, bins - 1)
        groups = [np.flatnonzero(which == b) for b in range(bins)]
    return float(sum(len(g) * abs(p[g].mean() - y[g].mean()) for g in groups if len(g)) / len(p))


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positives at each distinct threshold, highest first (as scikit-learn's ROC/PR curves)."""
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tps = np.cumsum(y)[last]
    return 1 + last - tps, tps


def fast_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, average precision and test-picked sensitivity at 90 % specificity from one sort.

    Same definitions as ``roc_auc_score``, ``average_precision_score`` and ``roc_curve`` (checked
    against them in :func:`point_metrics`), ~20x faster: the bootstrap calls this 2000 times.
    """
    fps, tps = _curve(y, p)
    fpr, tpr = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return {
        "roc_auc": float(np.trapezoid(tpr, fpr)),
        "pr_auc": float(np.sum(np.diff(np.r_[0.0, recall]) * precision)),
        "sensitivity_at_90_specificity_test_picked": float(tpr[fpr <= 1.0 - SPECIFICITY + 1e-12].max()),
    }


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float, check: bool = False) -> dict[str, float]:
    flagged = p >= threshold
    fast = fast_metrics(y, p)
    if check:
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        reference = {"roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p),
                     "sensitivity_at_90_specificity_test_picked": tpr[fpr <= 1.0 - SPECIFICITY + 1e-12].max()}
        for key, value in reference.items():
            if abs(fast[key] - value) > 1e-12:
                raise RuntimeError(f"fast {key} {fast[key]} != scikit-learn {value}")
    return {
        "roc_auc": fast["roc_auc"],
        "pr_auc": fast["pr_auc"],
        "brier": float(np.mean((p - y) ** 2)),
        "ece": ece(y, p),
        "ece_uniform_bins": ece(y, p, strategy="uniform"),
        "sensitivity_at_90_specificity": float(flagged[y == 1].mean()),
        "specificity_at_train_threshold": float((~flagged[y == 0]).mean()),
        "sensitivity_at_90_specificity_test_picked": fast["sensitivity_at_90_specificity_test_picked"],
    }


def bootstrap(y: np.ndarray, p: np.ndarray, threshold: float, seed: int, reps: int) -> dict[str, dict[str, float]]:
    """Percentile 95 % CIs over ``reps`` patient resamples (resamples with one class only are redrawn)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    done = 0
    while done < reps:
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        for key, value in point_metrics(y[idx], p[idx], threshold).items():
            draws.setdefault(key, []).append(value)
        done += 1
    out = {}
    for key, value in point_metrics(y, p, threshold, check=True).items():
        low, high = np.percentile(draws[key], [2.5, 97.5])
        out[key] = {"value": value, "ci_low": float(low), "ci_high": float(high)}
    return out


# ---------------------------------------------------------------- export


def export_spec(calibrated: CalibratedClassifierCV, train: pd.DataFrame, thresholds: dict, seed: int) -> dict:
    """``clinical.json``: everything :class:`strokelens.core.clinical.RiskModel` needs, as plain numbers."""
    pair = calibrated.calibrated_classifiers_[0]
    pipeline, calibrator = pair.estimator, pair.calibrators[0]
    prep, scaler, lr = pipeline.named_steps["prep"], pipeline.named_steps["scale"], pipeline.named_steps["lr"]
    bmi_median = float(prep.named_transformers_["bmi"].statistics_[0])
    male_mean = float(prep.named_transformers_["gender"].named_steps["impute"].statistics_[0])
    columns: list[dict] = [
        {"name": "age", "field": "age", "kind": "numeric", "impute": None},
        {"name": "avg_glucose_level", "field": "avg_glucose_level", "kind": "numeric", "impute": None},
        {"name": "bmi", "field": "bmi", "kind": "numeric", "impute": bmi_median,
         "impute_note": f"BMI missing: imputed with the training median ({bmi_median:g} kg/m²)."},
        {"name": "hypertension", "field": "hypertension", "kind": "numeric", "impute": None},
        {"name": "heart_disease", "field": "heart_disease", "kind": "numeric", "impute": None},
        {"name": "gender=Male", "field": "gender", "kind": "mapped", "map": GENDER_MAP, "impute": male_mean,
         "impute_note": "gender {value!r} is too rare in the training data (one patient) to be modelled: "
                        "treated as unknown, it contributes nothing."},
    ]
    for field in ONE_HOT:
        columns += [{"name": f"{field}={level}", "field": field, "kind": "indicator", "level": level}
                    for level in served.CATEGORIES[field]]
    assert [c["name"] for c in columns] == column_names() and len(columns) == scaler.n_features_in_
    ranges = {name: [float(train[name].min()), float(train[name].max())] for name in ("age", "avg_glucose_level", "bmi")}
    prevalence, t90 = thresholds["prevalence"], thresholds["specificity_90"]
    spec = {
        "format": served.FORMAT,
        "version": "",
        "model": "StandardScaler + LogisticRegression (class_weight=balanced) + Platt scaling on out-of-fold scores",
        "columns": columns,
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in lr.coef_[0]],
        "intercept": float(lr.intercept_[0]),
        "C": float(lr.C),
        "calibration": {"method": "sigmoid (Platt) on 5-fold out-of-fold decision values",
                        "a": float(-calibrator.a_), "b": float(-calibrator.b_),
                        "formula": "p = 1 / (1 + exp(-(a * z + b))), z = intercept + sum(coef * (x - mean) / scale)"},
        "bands": [
            {"name": "low", "upper": prevalence,
             "meaning": f"below the training prevalence ({prevalence:.1%}): lower than the average patient in the data"},
            {"name": "moderate", "upper": t90,
             "meaning": f"from the training prevalence up to the 90 %-specificity threshold ({t90:.1%})"},
            {"name": "high", "upper": None,
             "meaning": f"at or above {t90:.1%}: the top ~10 % of non-stroke training patients' scores "
                        "(90 % specificity on out-of-fold training scores)"},
        ],
        "baseline_meaning": "calibrated log-odds of the average training patient (all standardised columns at 0)",
        "contribution_method": ("exact for a linear model: a * coef_j * (x_j - mean_j) / scale_j summed over the "
                                "field's columns, in calibrated log-odds relative to the average training patient; "
                                "baseline + sum of contributions = log-odds of the probability"),
        "disclaimer": ("Association model fitted on one anonymous public data set; not a validated clinical score "
                       "and not a medical device. Read alongside, never fused with, the image reading."),
        "training": {"seed": seed, "n_train": int(len(train)), "ranges": ranges,
                     "prevalence": prevalence, "scikit_learn": sklearn.__version__},
    }
    spec["version"] = served.spec_hash(spec)
    return spec


def check_parity(model: served.RiskModel, calibrated: CalibratedClassifierCV, X: pd.DataFrame) -> float:
    mine = np.array([model.predict(served.validate(payload_of(row)))["probability"] for row in X.to_dict("records")])
    theirs = calibrated.predict_proba(X)[:, 1]
    gap = float(np.max(np.abs(mine - theirs)))
    if gap > PARITY_TOLERANCE:
        raise RuntimeError(f"numpy/stdlib model differs from scikit-learn by {gap:g} > {PARITY_TOLERANCE}")
    return gap


def payload_of(row: dict) -> dict:
    """A data row as an API payload (missing BMI -> null)."""
    payload = {name: row[name] for name in FEATURES}
    payload["bmi"] = None if pd.isna(payload["bmi"]) else float(payload["bmi"])
    for name in ("hypertension", "heart_disease"):
        payload[name] = int(payload[name])
    for name in ("age", "avg_glucose_level"):
        payload[name] = float(payload[name])
    return payload


# ---------------------------------------------------------------- charts


def _style(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white")
    return fig


def _r(values) -> list[float]:
    return [round(float(v), 5) for v in values]


def charts(y: np.ndarray, p: np.ndarray, metrics: dict, families: dict, decision: dict, spec: dict) -> list:
    m = metrics["metrics"]
    roc = roc_chart(y, np.stack([1 - p, p], axis=1), ["control", "stroke"])
    roc.add_trace(go.Scatter(x=[1 - m["specificity_at_train_threshold"]["value"]],
                             y=[m["sensitivity_at_90_specificity"]["value"]], mode="markers", marker={"size": 11},
                             name="threshold for 90 % specificity (chosen on training)"))
    roc.update_layout(title=f"Clinical risk: ROC curve, held-out patients (AUC {m['roc_auc']['value']:.3f}, "
                            f"95 % CI {m['roc_auc']['ci_low']:.3f}-{m['roc_auc']['ci_high']:.3f})")

    precision, recall, _ = precision_recall_curve(y, p)
    pr = go.Figure([
        go.Scatter(x=_r(recall), y=_r(precision), mode="lines", name=f"model (AP {m['pr_auc']['value']:.3f})"),
        go.Scatter(x=[0, 1], y=[y.mean()] * 2, mode="lines", line={"dash": "dash"},
                   name=f"prevalence {y.mean():.3f} (no skill)"),
    ])
    _style(pr, "Clinical risk: precision-recall curve, held-out patients", "Recall (sensitivity)", "Precision (PPV)")

    groups = np.array_split(np.argsort(p, kind="stable"), ECE_BINS)
    mean_p = [float(p[g].mean()) for g in groups]
    observed = [float(y[g].mean()) for g in groups]
    top = max(max(mean_p), max(observed)) * 1.1
    rel = go.Figure([
        go.Scatter(x=_r(mean_p), y=_r(observed), mode="lines+markers", name="calibrated model (deciles of risk)",
                   text=[f"n={len(g)}, strokes={int(y[g].sum())}" for g in groups]),
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dash"}, name="perfect calibration"),
    ])
    _style(rel, f"Clinical risk: reliability diagram, held-out patients (ECE {m['ece']['value']:.3f}, "
                f"95 % CI {m['ece']['ci_low']:.3f}-{m['ece']['ci_high']:.3f}; Brier {m['brier']['value']:.3f})",
           "Mean predicted probability (decile of risk)", "Observed stroke fraction")

    names = list(families)
    label = {f: f.replace("_", " ") + (" (CV winner)" if f == decision["cv_winner"] else "")
             + (" (served)" if f == decision["served"] else "") for f in names}
    comparison = go.Figure([
        go.Bar(name="ROC AUC", x=[label[f] for f in names], y=_r(families[f]["best"]["roc_auc"] for f in names),
               error_y={"type": "data", "array": _r(families[f]["best"]["roc_auc_sd"] for f in names)}),
        go.Bar(name="PR AUC", x=[label[f] for f in names], y=_r(families[f]["best"]["pr_auc"] for f in names),
               error_y={"type": "data", "array": _r(families[f]["best"]["pr_auc_sd"] for f in names)}),
    ])
    comparison.update_layout(barmode="group")
    _style(comparison, "Clinical risk: model comparison, 5-fold CV on the training split (mean ± SD)", "Model",
           "Score")

    a = spec["calibration"]["a"]
    effects = sorted(zip((c["name"] for c in spec["columns"]), (a * c for c in spec["coef"])), key=lambda t: t[1])
    coefficients = go.Figure(go.Bar(x=_r(e for _, e in effects), y=[n for n, _ in effects], orientation="h",
                                    marker={"color": ["#c0392b" if e > 0 else "#2e86c1" for _, e in effects]}))
    _style(coefficients, "Clinical risk: change in calibrated log-odds per +1 SD of each model column",
           "Log-odds per SD (positive raises risk)", "Column")
    coefficients.update_layout(height=620, margin={"l": 220})

    return [
        ("clinical_roc", "Clinical risk: ROC curve",
         "Held-out patients; ROC AUC with bootstrap 95 % CI; the marker is the 90 %-specificity threshold chosen "
         "on training out-of-fold scores.", roc),
        ("clinical_pr", "Clinical risk: precision-recall curve",
         "Held-out patients; average precision (PR AUC) against the prevalence baseline.", pr),
        ("clinical_reliability", "Clinical risk: reliability diagram",
         "Held-out patients in deciles of predicted risk: mean predicted probability against observed stroke "
         "fraction; expected calibration error (ECE) in the title.", rel),
        ("clinical_model_comparison", "Clinical risk: model comparison (CV)",
         "Logistic regression, gradient boosting and random forest, best configuration of each, 5-fold "
         "stratified CV on the training split. " + decision["why"], comparison),
        ("clinical_coefficients", "Clinical risk: what raises or lowers the risk",
         "Standardised coefficients of the served logistic regression times the calibration slope: the change "
         "in calibrated log-odds per +1 SD of each column (per-patient contributions are these times the "
         "patient's standardised values).", coefficients),
    ]


# ---------------------------------------------------------------- card


def data_facts(df: pd.DataFrame, spec: dict, n_test_positive: int) -> dict:
    """The numbers the limitations quote, computed from the data rather than typed in."""
    missing = df["bmi"].isna()
    return {"unknown_smoking": float((df["smoking_status"] == "Unknown").mean()),
            "bmi_missing": float(missing.mean()), "bmi_missing_rate": float(df.loc[missing, "stroke"].mean()),
            "bmi_present_rate": float(df.loc[~missing, "stroke"].mean()),
            "other_gender": int((df["gender"] == "Other").sum()), "prevalence": float(df["stroke"].mean()),
            "n_test_positive": n_test_positive, **spec["training"]["ranges"]}


def build_card(spec: dict, metrics: dict, decision: dict, data_path: str, command: str) -> dict:
    d = metrics["data"]
    return {
        "name": "StrokeLens clinical stroke-risk model",
        "version": spec["version"],
        "intended_use": (
            "Research demonstration: shows next to (never fused with) the image reading how strongly a patient's "
            "recorded risk factors were associated with stroke in one public data set. NOT a medical device and "
            "not a validated clinical score; not for diagnosis, triage or treatment decisions."),
        "data": {"origin": DATA_ORIGIN.format(n=d["n_rows"], pos=d["n_positive"], rate=d["n_positive"] / d["n_rows"]),
                 "path": data_path, "sha256": d["sha256"]},
        "split": (f"Stratified (on stroke) held-out split, {TEST_FRACTION:.0%} test, seed {spec['training']['seed']}; "
                  "the held-out patient ids are in clinical_split.json. Model selection, C, calibration, the "
                  "90 %-specificity threshold and the risk bands use the training split only (5-fold stratified CV); "
                  "the held-out split is used once, for the numbers below."),
        "preprocessing": (
            "BMI 'N/A' -> missing -> training median; smoking 'Unknown' kept as its own level; gender Male/Female "
            "-> 1/0 (the single 'Other' -> training mean); one-hot for ever_married, work_type, Residence_type, "
            "smoking_status (all levels); StandardScaler; class imbalance handled by class_weight='balanced', "
            "then probabilities recalibrated."),
        "model": {"served": spec["model"], "C": spec["C"], "calibration": spec["calibration"],
                  "selection": decision, "cv": metrics["cv"]},
        "metrics": {"n_test": metrics["n_test"], "n_test_positive": metrics["n_test_positive"],
                    "bootstrap": metrics["bootstrap"], "values": metrics["metrics"],
                    "threshold": metrics["threshold"], "bands": metrics["bands"]},
        "serving": {"route": "POST /risk", "output": "calibrated probability, risk band, per-field contributions "
                    "(exact, calibrated log-odds relative to the average training patient), notes",
                    "bands": spec["bands"], "dependencies": "Python standard library only (strokelens/core/clinical.py)"},
        "not_fused_with_images": NO_FUSION,
        "limitations": [item.format(**d["facts"]) for item in LIMITS],
        "training": {"command": command, "seed": spec["training"]["seed"], "scikit_learn": sklearn.__version__},
    }


def to_markdown(card: dict) -> str:
    names = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC (average precision)", "brier": "Brier score",
             "ece": f"ECE ({ECE_BINS} equal-count bins)", "ece_uniform_bins": f"ECE ({ECE_BINS} equal-width bins)",
             "sensitivity_at_90_specificity": "Sensitivity at 90 % specificity (threshold from training OOF)",
             "specificity_at_train_threshold": "Specificity achieved at that threshold",
             "sensitivity_at_90_specificity_test_picked":
                 "Sensitivity at 90 % specificity (threshold picked on the test set; reference only, optimistic)"}
    values = card["metrics"]["values"]
    rows = "\n".join(f"| {names[k]} | {v['value']:.3f} | {v['ci_low']:.3f} - {v['ci_high']:.3f} |"
                     for k, v in values.items())
    cv = card["model"]["cv"]
    cv_rows = "\n".join(
        f"| {f.replace('_', ' ')} | {json.dumps(r['config'])} | {r['roc_auc']:.3f} ± {r['roc_auc_sd']:.3f} | "
        f"{r['pr_auc']:.3f} ± {r['pr_auc_sd']:.3f} | {r.get('test_roc_auc', float('nan')):.3f} | "
        f"{r.get('test_pr_auc', float('nan')):.3f} |" for f, r in cv["families"].items())
    abl = cv["ablation_bmi_missing_indicator"]
    bands = "\n".join(f"| {b['name']} | {b['range']} | {b['n']} | {b['strokes']} | {b['observed_rate']:.3f} |"
                      for b in card["metrics"]["bands"])
    m, sel, cal = card["metrics"], card["model"]["selection"], card["model"]["calibration"]
    return f"""## Clinical stroke-risk model (tabular)

Version `{card['version']}` — {card['intended_use']}

### Two readings, not one number
{card['not_fused_with_images']}

### Data
{card['data']['origin']}

**Split:** {card['split']}

**Preprocessing:** {card['preprocessing']}

### Model selection (5-fold stratified CV on the training split)
| model | best configuration | CV ROC AUC | CV PR AUC | held-out ROC AUC (reference) | held-out PR AUC (reference) |
|---|---|---|---|---|---|
{cv_rows}

CV winner by PR AUC (tie-break ROC AUC): **{sel['cv_winner'].replace('_', ' ')}**. Served: **calibrated logistic
regression** (C = {card['model']['C']:g}). {sel['why']}

Rule: {sel['rule']} Held-out numbers of the other models are shown for reference only; they played no part in the choice.

Ablation (not served): adding a "BMI missing" flag gives CV ROC AUC {abl['roc_auc']:.3f} and PR AUC {abl['pr_auc']:.3f}
(vs {cv['families']['logistic_regression']['roc_auc']:.3f} / {cv['families']['logistic_regression']['pr_auc']:.3f}); the gain comes from
missingness that depends on the outcome in this data set, so the flag is left out.

Calibration: {cal['method']}; a = {cal['a']:.4f}, b = {cal['b']:.4f} ({cal['formula']}).

### Held-out metrics (served model)
{m['n_test']} patients, {m['n_test_positive']} with stroke; 95 % CIs from a patient bootstrap
({m['bootstrap']['reps']} reps, seed {m['bootstrap']['seed']}, percentile).

| metric | value | 95 % CI |
|---|---|---|
{rows}

The 90 %-specificity threshold ({m['threshold']['value']:.4f}) was chosen on out-of-fold training scores and applied
unchanged to the held-out patients. Brier score of always predicting the training prevalence:
{m['threshold']['brier_prevalence_reference']:.4f}.

### Risk bands (thresholds from the training split)
| band | probability | held-out patients | strokes | observed rate |
|---|---|---|---|---|
{bands}

### Known limitations
""" + "\n".join(f"- {item}" for item in card["limitations"]) + f"""

### Reproduce
`{card['training']['command']}` (seed {card['training']['seed']}, scikit-learn {card['training']['scikit_learn']}).
"""


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/clinical/healthcare-dataset-stroke-data.csv")
    parser.add_argument("--out", default="functions/strokelens/artifacts/clinical")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=BOOTSTRAP_REPS, help="bootstrap repetitions")
    return parser.parse_args(argv)


def clean(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "charts", ignore_errors=True)


def band_table(spec: dict, y: np.ndarray, p: np.ndarray) -> list[dict]:
    rows, lower = [], 0.0
    for band in spec["bands"]:
        upper = band["upper"]
        mask = (p >= lower) & (p < upper) if upper is not None else p >= lower
        rows.append({"name": band["name"], "range": f"[{lower:.4f}, {'1' if upper is None else f'{upper:.4f}'})",
                     "n": int(mask.sum()), "strokes": int(y[mask].sum()),
                     "observed_rate": float(y[mask].mean()) if mask.any() else float("nan")})
        lower = upper if upper is not None else lower
    return rows


def main(argv: list[str] | None = None) -> dict:
    # Single-threaded OpenMP: on 3,000 rows gradient boosting is 3-7x faster than with threads
    # competing for a busy machine, and the results are identical.
    with threadpool_limits(limits=1, user_api="openmp"):
        return run(parse_args(argv))


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    data_path, out = Path(args.data), Path(args.out)
    df = load_data(data_path)
    train_idx, test_idx = split_ids(df, args.seed)
    train, test = df.iloc[train_idx].reset_index(drop=True), df.iloc[test_idx].reset_index(drop=True)
    X_train, y_train = train[list(FEATURES)], train["stroke"].to_numpy()
    X_test, y_test = test[list(FEATURES)], test["stroke"].to_numpy()
    print(f"data: {len(df)} rows ({int(df['stroke'].sum())} strokes); train {len(train)}, test {len(test)} "
          f"({int(y_test.sum())} strokes)", flush=True)

    cv = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=args.seed)
    families = compare(X_train, y_train, cv, args.seed)
    decision = serving_decision(families)
    print(f"[{time.perf_counter() - started:.0f} s] cv winner: {decision['cv_winner']}; served: logistic regression. {decision['why']}", flush=True)
    best_c = families["logistic_regression"]["best"]["config"]["C"]
    ablation = cross_validate(linear(best_c, bmi_indicator=True), X_train, y_train, cv)

    calibrated = CalibratedClassifierCV(linear(best_c), method="sigmoid", cv=cv, ensemble=False).fit(X_train, y_train)
    pair = calibrated.calibrated_classifiers_[0]
    a, b = -pair.calibrators[0].a_, -pair.calibrators[0].b_
    oof_p = sigmoid(a * families["logistic_regression"]["best"]["oof"] + b)  # same folds as the calibration
    prevalence = float(y_train.mean())
    t90 = float(np.quantile(oof_p[y_train == 0], SPECIFICITY))
    if not 0 < prevalence < t90 < 1:
        raise RuntimeError(f"risk bands not monotone: prevalence {prevalence} vs 90 %-specificity threshold {t90}")
    spec = export_spec(calibrated, train, {"prevalence": prevalence, "specificity_90": t90}, args.seed)

    clean(out)
    (out / "clinical.json").write_text(json.dumps(spec, indent=1))
    model = served.RiskModel.load(out)
    gap = check_parity(model, calibrated, X_test)
    p_test = np.array([model.predict(served.validate(payload_of(r)))["probability"] for r in X_test.to_dict("records")])

    for family, result in families.items():  # reference only: refit each family's best config on train
        best = result["best"]
        if family == "logistic_regression":
            ref = p_test
        else:
            fitted = dict(candidates(args.seed))[family][[r["config"] for r in result["all"]].index(best["config"])][1]
            ref = scores(fitted.fit(X_train, y_train), X_test)
        best["test_roc_auc"] = float(roc_auc_score(y_test, ref))
        best["test_pr_auc"] = float(average_precision_score(y_test, ref))

    print(f"[{time.perf_counter() - started:.0f} s] exported {spec['version']}; bootstrap ({args.reps} reps)", flush=True)
    values = bootstrap(y_test, p_test, t90, args.seed, args.reps)
    metrics = {
        "split": "held-out (test)",
        "n_test": int(len(y_test)), "n_test_positive": int(y_test.sum()),
        "data": {"path": str(args.data), "sha256": file_sha256(data_path), "n_rows": int(len(df)),
                 "n_positive": int(df["stroke"].sum()), "facts": data_facts(df, spec, int(y_test.sum()))},
        "bootstrap": {"reps": args.reps, "unit": "patient", "seed": args.seed, "interval": "percentile 95%"},
        "metrics": values,
        "threshold": {"value": t90, "chosen_on": "training out-of-fold calibrated scores",
                      "rule": "90th percentile of non-stroke patients' scores; flagged when p >= threshold",
                      "brier_prevalence_reference": float(np.mean((prevalence - y_test) ** 2))},
        "calibration": {"mean_predicted": float(p_test.mean()), "observed_rate": float(y_test.mean()),
                        "a": a, "b": b},
        "bands": band_table(spec, y_test, p_test),
        "cv": {"folds": CV_FOLDS, "seed": args.seed, "selection": "PR AUC, tie-break ROC AUC",
               "families": {f: {k: v for k, v in r["best"].items() if k != "oof"} for f, r in families.items()},
               "all": {f: [{k: v for k, v in c.items() if k not in ("oof", "roc_auc_folds", "pr_auc_folds")}
                           for c in r["all"]] for f, r in families.items()},
               "ablation_bmi_missing_indicator": {"C": best_c, "roc_auc": ablation["roc_auc"],
                                                  "pr_auc": ablation["pr_auc"], "served": False}},
        "decision": decision,
        "parity_max_abs_diff": gap,
        "model_version": spec["version"],
    }
    split = {"seed": args.seed, "test_fraction": TEST_FRACTION, "stratify": "stroke",
             "method": "sklearn.model_selection.train_test_split(row positions, stratify=stroke, random_state=seed)",
             "data_sha256": metrics["data"]["sha256"], "n_train": int(len(train)), "n_test": int(len(test)),
             "test_ids": sorted(int(i) for i in test["id"])}
    command = (f"python -m training.clinical --data {args.data} --out {args.out} --seed {args.seed}"
               + (f" --reps {args.reps}" if args.reps != BOOTSTRAP_REPS else ""))
    card = build_card(spec, metrics, decision, str(args.data), command)

    (out / "clinical_metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "clinical_split.json").write_text(json.dumps(split))
    (out / "clinical_card.json").write_text(json.dumps(card, indent=1))
    (out / "clinical_card.md").write_text(to_markdown(card))
    joblib.dump(calibrated, out / "clinical_pipeline.joblib", compress=3)
    write_charts(out / "charts", charts(y_test, p_test, metrics, families, decision, spec))

    v = values
    print(f"held-out: ROC AUC {v['roc_auc']['value']:.3f} [{v['roc_auc']['ci_low']:.3f}, {v['roc_auc']['ci_high']:.3f}]"
          f"  PR AUC {v['pr_auc']['value']:.3f}  Brier {v['brier']['value']:.4f}  ECE {v['ece']['value']:.4f}"
          f"  sens@90spec {v['sensitivity_at_90_specificity']['value']:.3f}  parity {gap:.2e}"
          f"  version {spec['version']}  ({time.perf_counter() - started:.0f} s)", flush=True)
    return metrics


if __name__ == "__main__":
    # Run the importable module, so the pickled pipeline refers to training.clinical, not __main__.
    from training.clinical import main as _main

    _main()
