"""The CNN's multiple-instance (bag) loss: which rows learn from their own label and which only through
their study's, and what one bag step changes in the network."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from training import cnn
from training.v2.extractor import bags_of


def _table() -> SimpleNamespace:
    """Two ct-ich studies (b: haemorrhage, a: normal), three slices each, then two DWI slices."""
    rng = np.random.default_rng(0)
    source = np.array(["ct-studies"] * 6 + ["dwi"] * 2)
    study = np.array(["b", "b", "b", "a", "a", "a", "", ""])
    label = np.array(["hemorrhage"] * 3 + ["normal"] * 3 + ["ischemic", "normal"])
    return SimpleNamespace(x=rng.random((8, 32, 32)).astype(np.float32), source=source, study=study, label=label)


def test_a_haemorrhage_study_learns_only_as_a_bag_and_a_normal_study_also_slice_by_slice() -> None:
    table = _table()
    rows, bags = bags_of(table, np.arange(8))
    assert rows.tolist() == [3, 4, 5, 6, 7], "the haemorrhage study's slices have no label of their own"
    assert bags is not None
    assert bags.labels.tolist() == [0, 1], "bags in study-name order: a (normal), b (haemorrhage)"
    assert bags.bag.tolist() == [1, 1, 1, 0, 0, 0]
    assert np.array_equal(bags.images, table.x[:6])


def test_rows_without_studies_have_no_bags() -> None:
    table = _table()
    rows, bags = bags_of(table, np.array([6, 7]))
    assert rows.tolist() == [6, 7] and bags is None


def test_a_bag_step_trains_the_weights_and_leaves_the_shared_batchnorm_statistics_alone() -> None:
    pytest.importorskip("tensorflow")
    table = _table()
    _, bags = bags_of(table, np.arange(8))
    config = cnn.CNNConfig(input_size=32, trunks=1, widths=(4, 4, 4, 4), bands=0, epochs=1, bag_k=2)
    cnn.configure(0)
    trainer, _ = cnn.build_models(5, config)
    cnn._compile(trainer, config, steps=10)
    moving = [v.numpy().copy() for v in trainer.non_trainable_variables]
    weights = [v.numpy().copy() for v in trainer.trainable_variables]
    losses = [cnn._bag_step(trainer, bags.images, bags.bag, bags.labels, bags, config.bag_k) for _ in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], "the bag loss falls on a fixed batch"
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(moving, trainer.non_trainable_variables)), \
        "a CT-only bag batch must not move the moving averages every source shares"
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(weights, trainer.trainable_variables))
