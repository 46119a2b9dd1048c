"""The numpy LinearHead reproduces the scikit-learn pipeline (binary and 3-class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from strokelens.model.head import LinearHead
from training.export import check_parity, linear_head, make_head, save_head


@pytest.mark.parametrize("n_classes", [2, 3])
def test_head_parity(tmp_path: Path, n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    y = np.arange(90) % n_classes
    x = rng.normal(size=(90, 16)) * rng.uniform(0.1, 5, 16) + rng.normal(size=16) + y[:, None] * 0.7
    pipeline = make_head(0.3, seed=0).fit(x, y)
    labels = [f"c{k}" for k in range(n_classes)]
    save_head(pipeline, labels, tmp_path, x)
    head = LinearHead.load(tmp_path / "head.npz")
    probe = rng.normal(size=(50, 16)) * 3
    assert np.max(np.abs(head.predict_proba(probe) - pipeline.predict_proba(probe))) < 1e-6
    assert head.predict_proba(probe).shape == (50, n_classes)
    assert check_parity(pipeline, linear_head(pipeline), probe) < 1e-6
    assert (tmp_path / "head.joblib").is_file() and (tmp_path / "labels.json").read_text() == str(labels).replace("'", '"')
