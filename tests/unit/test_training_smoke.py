"""A --quick training run on phantoms yields artifacts the server loads and predicts with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from strokelens.model.artifacts import Manifest
from strokelens.model.predictor import Predictor
from training import train
from training.phantoms import write_dataset


def test_quick_training_produces_served_artifacts(tmp_path: Path) -> None:
    data, out = tmp_path / "phantoms", tmp_path / "artifacts"
    write_dataset(data, 12, layout="flat", classes=("hemorrhage", "normal"), size=96)
    (out / "charts").mkdir(parents=True)
    (out / "charts" / "stale.json").write_text("{}")
    (out / "charts" / "index.json").write_text('[{"id": "stale", "title": "", "description": ""}]')
    (out / "metrics.json").write_text("{}")
    (out / "other_tool.json").write_text("{}")
    train.main(["--data", str(data), "--out", str(out), "--seed", "0", "--input-size", "64", "--quick"])

    assert not (out / "charts" / "stale.json").exists() and (out / "other_tool.json").exists()
    manifest = Manifest.load(out, verify=True)
    assert manifest.synthetic and manifest.input_size == 64 and manifest.labels == ("hemorrhage", "normal")
    raw = manifest.raw
    assert raw["created_by"] == "make train" and raw["head"] == "logistic_regression" and raw["seed"] == 0
    assert (out / "extractor.tflite").stat().st_size < 1_000_000

    predictor = Predictor(out)
    rng = np.random.default_rng(0)
    prediction = predictor.predict(rng.uniform(0, 1, (64, 64)).astype(np.float32))
    assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-6
    assert prediction.label in manifest.labels and prediction.model_version == manifest.version

    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "roc_auc", "sensitivity_hemorrhage", "specificity_normal"} <= set(metrics["metrics"])
    for m in metrics["metrics"].values():
        assert set(m) == {"value", "ci_low", "ci_high"}
    index = json.loads((out / "charts" / "index.json").read_text())
    assert {c["id"] for c in index} >= {"confusion_matrix", "roc_curve", "reliability", "class_distribution",
                                        "image_sizes", "intensity_histogram"}
    for chart in index:
        assert "data" in json.loads((out / "charts" / f"{chart['id']}.json").read_text())
    card = json.loads((out / "model_card.json").read_text())
    assert card["version"] == manifest.version and card["synthetic"] is True
    assert "NOT a medical device" in (out / "model_card.md").read_text()
    split = json.loads((out / "split.json").read_text())
    assert len(split["files"]) == 24
