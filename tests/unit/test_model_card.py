"""The committed model matches what its card says: the CLI (served path) on the held-out split
reproduces the card's test ROC AUC, and the card carries its version and the synthetic flag.

Model v2 (a manifest with ``findings``): the CLI is run with no modality declared (the router
decides, as in training's served-path measurement); a slice it refuses has no probabilities and
scores 0, and the number refused is the one recorded. The card's figures are its metrics files'."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sklearn.metrics import roc_auc_score

from strokelens.core.catalogue import Catalogue
from strokelens.core.settings import PACKAGED_MODEL_DIR as DEFAULT_DIR
from tests.conftest import CT_DATA, ROOT


def test_cli_on_the_held_out_split_reproduces_the_card_auc():
    manifest = Catalogue(DEFAULT_DIR).load_manifest()
    split = json.loads((DEFAULT_DIR / "split.json").read_text())
    metrics = json.loads((DEFAULT_DIR / "metrics.json").read_text())
    test = [f for f in split["files"] if f["split"] == "test"]
    assert len(test) == metrics["n_images"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}", "MODEL_DIR": str(DEFAULT_DIR)}
    run = subprocess.run([sys.executable, "-m", "strokelens", "predict", *[str(CT_DATA / f["file"]) for f in test]],
                         capture_output=True, text=True, env=env, timeout=300)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["DONE"] * len(test), run.stderr[-2000:]
    positive = manifest.positive_label or metrics["positive_class"]
    y = [f["label"] == positive for f in test]
    if manifest.raw.get("findings"):  # v2: refused slices carry no probabilities (scored 0, as training did)
        refused = [line for line in lines if line["label"] is None]
        assert len(refused) == metrics["served_refusals"]
        assert all(any(w["code"] == "OUT_OF_DISTRIBUTION" for w in line["warnings"]) for line in refused)
        scores = [line["probabilities"].get(positive, 0.0) if line["label"] is not None else 0.0 for line in lines]
    else:
        scores = [line["probabilities"][positive] for line in lines]
    assert abs(roc_auc_score(y, scores) - metrics["metrics"]["roc_auc"]["value"]) < 1e-9
    assert {line["model_version"] for line in lines} == {manifest.version}


def test_card_names_the_model_it_describes():
    manifest = Catalogue(DEFAULT_DIR).load_manifest()
    card = json.loads((DEFAULT_DIR / "model_card.json").read_text())
    assert card["version"] == manifest.version
    assert manifest.synthetic is False, "the default model is trained on the real CT data"
    text = (DEFAULT_DIR / "model_card.md").read_text().lower()
    assert "not a medical device" in text and manifest.version in text


def test_v2_card_figures_are_its_metrics_files():
    """Every held-out figure the v2 card states is the one training measured (metrics.json: the
    served-path ct-hemorrhage split, and under ``v2`` every source's test split); the previous
    model's figures are kept as history."""
    manifest = Catalogue(DEFAULT_DIR).load_manifest()
    if not manifest.raw.get("findings"):
        pytest.skip("the installed model is v1 (no findings block)")
    card = json.loads((DEFAULT_DIR / "model_card.json").read_text())
    metrics = json.loads((DEFAULT_DIR / "metrics.json").read_text())
    v2, test = metrics["v2"], metrics["v2"]["test"]
    assert card["version"] == manifest.version == metrics["model_version"] == v2["model_version"]
    assert card["metrics"]["ct_hemorrhage_slice_roc_auc_served"] == metrics["metrics"]["roc_auc"]
    assert card["metrics"]["ct_ich_study_roc_auc"] == test["ct_ich_study_auc"]
    assert card["metrics"]["ct_hemorrhage_slice_roc_auc"] == test["ct_hemorrhage_slice_auc"]
    assert card["metrics"]["dwi_slice_roc_auc"] == test["dwi_slice_auc"]
    assert card["operating_points"] == v2["thresholds"]
    assert card["router"]["test_accuracy"] == test["router_test_accuracy"]
    assert card["ood"]["false_refusal_test"] == test["false_refusal"]
    for ci in (m for m in card["metrics"].values() if m):
        assert ci["ci_low"] <= ci["value"] <= ci["ci_high"]
    # What each modality is read for: the card and the manifest agree.
    assert card["findings"] == {m: spec["finding"] for m, spec in manifest.raw["findings"].items()}
    assert manifest.raw["findings"]["CT"]["threshold"] == v2["thresholds"]["slice"]
    assert manifest.raw["findings"]["MR-DWI"]["threshold"] == v2["thresholds"]["dwi"]
    assert manifest.raw["aggregation"]["study_threshold"] == v2["thresholds"]["study"]
    history = card.get("history")
    assert history and history.get("version") and history["version"] != manifest.version, "the previous model is kept"
