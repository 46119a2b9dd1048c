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
