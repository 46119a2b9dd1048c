"""The CNN's targets for ct-ich studies: naive study labels (the served recipe) or the study's share of
slices with blood (the ``share`` candidate), and that ``cnn.train`` takes soft targets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from training import cnn
from training.v2.crossfit import recipe
from training.v2.extractor import cnn_config, cnn_targets


def _table() -> SimpleNamespace:
    """ct-ich study b (haemorrhage, 4 slices), study a (normal, 2), a ct-hemorrhage slice, a DWI lesion."""
    rng = np.random.default_rng(0)
    source = np.array(["ct-studies"] * 6 + ["ct-slices", "dwi"])
    study = np.array(["b"] * 4 + ["a"] * 2 + ["", ""])
    label = np.array(["hemorrhage"] * 4 + ["normal"] * 2 + ["hemorrhage", "ischemic"])
    return SimpleNamespace(x=rng.random((8, 32, 32)).astype(np.float32), source=source, study=study, label=label)


def test_naive_targets_call_every_slice_of_a_haemorrhage_study_haemorrhage() -> None:
    y = cnn_targets(_table(), np.arange(8), cnn_config())
    assert y.tolist() == [1, 1, 1, 1, 0, 0, 1, 3]


def test_share_targets_give_a_haemorrhage_study_its_share_of_slices_with_blood() -> None:
    table = _table()
    y = cnn_targets(table, np.arange(8), cnn_config(study_targets="share"), counts={"b": 1, "a": 0})
    assert y.shape == (8, 5) and np.allclose(y.sum(axis=1), 1.0)
    assert np.allclose(y[:4, 1], 0.25) and np.allclose(y[:4, 0], 0.75), "1 slice with blood among 4"
    assert np.array_equal(y[4:], np.eye(5)[[0, 0, 1, 3]]), "normal studies and labelled slices stay one-hot"
    # the share is over the study's rows the CNN learns from (assessable training slices), at most 1
    y2 = cnn_targets(table, np.array([0, 1, 6]), cnn_config(study_targets="share"), counts={"b": 3})
    assert np.allclose(y2[:2, 1], 1.0)


def test_share_targets_need_the_studies_annotated_counts() -> None:
    with pytest.raises(ValueError, match="annotated count"):
        cnn_targets(_table(), np.arange(8), cnn_config(study_targets="share"), counts={})
    with pytest.raises(ValueError, match="naive or share"):
        cnn_config(study_targets="soft")
    with pytest.raises(ValueError, match="bag loss"):
        cnn_config(study_targets="share", bag_k=3)


def test_a_haemorrhage_study_counted_with_no_slice_still_targets_one() -> None:
    y = cnn_targets(_table(), np.arange(8), cnn_config(study_targets="share"), counts={"b": 0})
    assert np.allclose(y[:4, 1], 0.25)


def test_the_default_recipe_does_not_name_study_targets_so_its_records_still_match() -> None:
    sources = {"ct-slices": "", "ct-studies": "", "dwi": "", "mr-other": ""}
    base = recipe(sources, 128, 0, 15, 0.1, 0.01)
    assert "study_targets" not in base
    assert recipe(sources, 128, 0, 15, 0.1, 0.01, study_targets="naive") == base
    assert recipe(sources, 128, 0, 15, 0.1, 0.01, study_targets="share")["study_targets"] == "share"


def test_cnn_train_learns_from_soft_targets() -> None:
    pytest.importorskip("tensorflow")
    table = _table()
    soft = cnn_targets(table, np.arange(8), cnn_config(study_targets="share"), counts={"b": 1})
    config = cnn.CNNConfig(input_size=32, trunks=1, widths=(4, 4, 4, 4), bands=0, epochs=3, augment=False,
                           batch_size=8, label_smoothing=0.0)
    _, _, hist = cnn.train(table.x, soft, 5, config, seed=0)
    assert len(hist["loss"]) == 3 and all(np.isfinite(hist["loss"]))
    assert hist["loss"][-1] < hist["loss"][0]
