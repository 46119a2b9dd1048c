"""Model v2's trust figures (``training.v2.trust``) on hand-made examples: the ECE of a perfectly
calibrated toy is 0 and of a known miscalibration is its gap; heat-map mass, pointing game and the
lesion mask's trip through the head crop behave as defined."""

from __future__ import annotations

import numpy as np
import pytest

from training.v2.trust import calibration_of, mask_in_model_space, mass_inside, pointing_hit


def test_perfectly_calibrated_toy_has_zero_ece() -> None:
    # in every bin, the observed rate equals the (single) predicted probability
    p, y = [], []
    for value, n, positives in ((0.05, 20, 1), (0.25, 20, 5), (0.5, 10, 5), (0.75, 8, 6), (0.95, 20, 19)):
        p += [value] * n
        y += [1] * positives + [0] * (n - positives)
    report = calibration_of(np.array(p), np.array(y), np.arange(len(p)), seed=0, reps=50)
    assert report["ece"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert report["n"] == 78 and report["n_positive"] == 36 and report["bins"] == 10
    r = report["reliability"]
    assert r["mean_predicted"] == pytest.approx(r["observed_rate"]) and sum(r["count"]) == 78
    assert 0 <= report["ece"]["ci_low"] <= report["ece"]["ci_high"] <= 1


def test_known_miscalibration_gives_its_gap() -> None:
    p = np.full(40, 0.9)
    y = np.array([1, 0] * 20)  # observed 0.5 where 0.9 was predicted
    report = calibration_of(p, y, np.arange(40) // 2, seed=0, reps=50)
    assert report["ece"]["value"] == pytest.approx(0.4)
    assert report["brier"]["value"] == pytest.approx(0.5 * 0.01 + 0.5 * 0.81)


def test_heat_mass_and_pointing_game() -> None:
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    inside = np.where(mask, 0.7, 0.0)
    assert mass_inside(inside, mask) == pytest.approx(1.0)
    assert mass_inside(np.ones((32, 32)), mask) == pytest.approx(mask.mean())  # flat map: the area share
    assert mass_inside(np.zeros((32, 32)), mask) is None
    assert pointing_hit(inside, mask, 0)
    far = np.zeros((32, 32))
    far[28, 28] = 1.0
    assert not pointing_hit(far, mask, 12) and pointing_hit(far, mask, 13)  # mask ends at 15, peak at 28


def test_mask_follows_the_head_crop() -> None:
    display = np.zeros((100, 200), np.float32)
    display[20:80, 60:140] = 0.6  # the head: a bright block off-centre in a wide capture
    mask = np.zeros((100, 200), bool)
    mask[40:60, 90:110] = True  # the centre of the head
    moved = mask_in_model_space(mask, display, 64)
    ys, xs = np.nonzero(moved)
    assert abs(ys.mean() - 31.5) < 2 and abs(xs.mean() - 31.5) < 2
    # the crop zooms in: the lesion covers a larger share of the model input than of the capture
    assert moved.mean() > mask.mean()
