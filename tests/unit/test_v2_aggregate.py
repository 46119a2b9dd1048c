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
