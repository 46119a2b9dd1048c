"""Study aggregation rules on synthetic stacks with one known positive slice."""

from __future__ import annotations

import numpy as np
import pytest

from strokelens.reader.model.aggregate import RULES, key_slices, study_probability

PARAMS = {"max": {}, "topk": {"k": 3}, "noisy_or": {"shift": -2.0}, "attention": {"beta": 2.0}}


@pytest.mark.parametrize("rule", RULES)
def test_positive_slice_raises_study_score_and_is_a_key_slice(rule) -> None:
    rng = np.random.default_rng(0)
    negative = rng.uniform(0.02, 0.15, 30)
    positive = negative.copy()
    positive[17] = 0.97
    assert study_probability(rule, positive, PARAMS[rule]) > study_probability(rule, negative, PARAMS[rule])
    assert key_slices(positive, rule, PARAMS[rule])[0] == 17


def test_calibration_and_bounds() -> None:
    p = np.array([0.1, 0.2, 0.9])
    for rule in RULES:
        v = study_probability(rule, p, {**PARAMS[rule], "a": 0.5, "b": -0.2})
        assert 0.0 < v < 1.0
    assert study_probability("max", p, {}) == pytest.approx(0.9)


def test_served_head_is_linear_unless_another_leads_by_more_than_the_margin() -> None:
    from training.v2.fit import served_head

    rows = [{"head": "logistic_regression", "oof_roc_auc": 0.95}, {"head": "random_forest", "oof_roc_auc": 0.96}]
    within = served_head(rows, margin=0.02)
    assert within["served"] == "logistic_regression" and within["within_margin"] and within["best_oof"] == "random_forest"
    beyond = served_head([rows[0], {"head": "svm_rbf", "oof_roc_auc": 0.99}], margin=0.02)
    assert not beyond["within_margin"] and abs(beyond["lead_of_best"] - 0.04) < 1e-9


def test_threshold_for_sensitivity_keeps_the_target_share_of_positives_at_or_above_it() -> None:
    from training.v2.experiment import threshold_for_sensitivity

    scores = np.array([0.6, 0.9123, 0.7, 0.8])
    assert threshold_for_sensitivity(scores, 0.5) == 0.8  # 2 of 4 positives at or above
    assert threshold_for_sensitivity(scores, 0.85) == 0.6  # ceil(3.4) = 4: every positive
    assert threshold_for_sensitivity(scores, 0.2) == 0.912  # floored to 0.001


def test_operating_points_come_from_cross_fitted_scores_when_a_record_matches() -> None:
    from types import SimpleNamespace

    from training.v2.experiment import operating_points, threshold_for_sensitivity

    paths = ["a.png", "b.png", "c.png", "d.png", "e.png", "s1/1.png", "s2/1.png", "s3/1.png", "s4/1.png"]
    table = SimpleNamespace(
        path=np.array(paths),
        label=np.array(["hemorrhage", "hemorrhage", "normal", "ischemic", "normal",
                        "hemorrhage", "hemorrhage", "normal", "normal"]),
        study=np.array(["", "", "", "", "", "s1", "s2", "s3", "s4"]))
    fallback = {"slice": 0.79, "study": 0.46, "dwi": 0.35, "a": 1.7, "b": 1.3}
    points, source = operating_points(table, None, fallback)
    assert points == fallback and "optimistic" in source

    cross_fitted = {"study": {"s1": 2.0, "s2": 0.5, "s3": -1.0, "s4": 0.8},
                    "ct-slices": {"a.png": 0.40, "b.png": 0.90, "c.png": 0.30},
                    "dwi": {"d.png": 0.55, "e.png": 0.10}}
    points, source = operating_points(table, cross_fitted, fallback)
    assert source.startswith("cross-fitted")
    assert points["slice"] == threshold_for_sensitivity(np.array([0.40, 0.90]), 0.85) == 0.4  # both positives kept
    assert points["dwi"] == 0.55
    # the study calibration is re-fitted on the cross-fitted scores (not the fallback's), and the study
    # threshold keeps every haemorrhage study at or above it on that scale
    assert (points["a"], points["b"]) != (fallback["a"], fallback["b"]) and points["a"] > 0
    calibrated = 1 / (1 + np.exp(-(points["a"] * np.array([2.0, 0.5]) + points["b"])))
    assert np.all(calibrated >= points["study"])
    # a record without slice scores (an older scheme) keeps the fallback's slice thresholds
    partial, _ = operating_points(table, {"study": cross_fitted["study"]}, fallback)
    assert (partial["slice"], partial["dwi"]) == (0.79, 0.35)
