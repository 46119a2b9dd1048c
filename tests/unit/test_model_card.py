"""The committed model matches what its card says: the CLI (served path) on the held-out split
reproduces the card's test ROC AUC, and the card carries its version and the synthetic flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
