"""A --quick training run on phantoms yields artifacts the server loads and predicts with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from strokelens.core.catalogue import Catalogue
from strokelens.reader.model.served import ServedModel
from training import train
from phantoms import write_dataset


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
    manifest = Catalogue(out).load_manifest(verify=True)
    assert manifest.synthetic and manifest.input_size == 64 and manifest.labels == ("hemorrhage", "normal")
    raw = manifest.raw
    assert raw["created_by"] == "make train" and raw["head"] == "logistic_regression" and raw["seed"] == 0
    assert (out / "extractor.tflite").stat().st_size < 1_000_000

    predictor = ServedModel(out)
    rng = np.random.default_rng(0)
    prediction = predictor.predictor.predict(rng.uniform(0, 1, (64, 64)).astype(np.float32))
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


def test_three_classes_two_modalities_train_end_to_end(tmp_path: Path) -> None:
    """The pipeline is not tied to the shipped binary CT model: phantoms of CT and MRI with an
    ischemic class (layout ROOT/<modality>/<class>) train a 3-class model the server can load,
    labelled synthetic everywhere."""
    from strokelens.reader.reading import read_scan
    from phantoms import make_mr_slice, write_png

    data, out = tmp_path / "phantoms", tmp_path / "artifacts"
    files = write_dataset(data, 8, modalities=("CT", "MR"), classes=("hemorrhage", "ischemic", "normal"),
                          layout="modality", size=96)
    assert {p.parent.parent.name for p in files} == {"CT", "MRI"}
    train.main(["--data", str(data), "--out", str(out), "--seed", "0", "--input-size", "64", "--quick"])

    manifest = Catalogue(out).load_manifest(verify=True)
    assert manifest.labels == ("hemorrhage", "ischemic", "normal") and manifest.synthetic
    assert manifest.raw["modalities"] == ["CT", "MR"]
    split = json.loads((out / "split.json").read_text())
    assert len(split["files"]) == 48
    slice_png = write_png(make_mr_slice(np.random.default_rng(5), 96, "ischemic"), tmp_path / "mr.png")
    reading = read_scan(slice_png.read_bytes(), ServedModel(out), declared_modality="MR")
    assert set(reading.result.probabilities) == set(manifest.labels)
    assert reading.result.synthetic_model is True and "SYNTHETIC_MODEL" in {w.code for w in reading.warnings}
    assert "MRI" not in (reading.result.ood_reason or ""), "a model trained on MRI does not refuse MRI"
