"""``clinical.json``: the calibrated logistic regression as plain numbers for
:class:`strokelens.core.clinical.RiskModel` (standard library only), and its parity with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV

from strokelens.core import clinical as served
from training.clinical import GENDER_MAP
from training.clinical.data import payload_of
from training.clinical.models import ONE_HOT, column_names

PARITY_TOLERANCE = 1e-6


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
