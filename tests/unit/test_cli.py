"""The command-line predictor runs the serving path and prints one JSON line per file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from strokelens.model.predictor import Predictor
from strokelens.reading import read_scan
from tests.conftest import CT_DATA, ROOT


def test_predict_folder_prints_served_readings(tmp_path):
    sources = sorted((CT_DATA / "hemorrhage").glob("*.png"))[:2] + sorted((CT_DATA / "normal").glob("*.png"))[:1]
    for src in sources:
        shutil.copy(src, tmp_path / src.name)  # a temporary folder, deleted with the test
    (tmp_path / "notes.png").write_bytes(b"not really a png")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}"}
    run = subprocess.run([sys.executable, "-m", "strokelens", "predict", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 1, "a file that failed makes the exit status non-zero"
    by_name = {os.path.basename(line["file"]): line for line in lines}
    assert set(by_name) == {s.name for s in sources} | {"notes.png"}
    assert by_name["notes.png"]["status"] == "FAILED" and by_name["notes.png"]["error"]["code"] == "UNSUPPORTED_FORMAT"

    predictor = Predictor()
    for src in sources:
        line = by_name[src.name]
        served = read_scan(src.read_bytes(), predictor).result
        assert line["status"] == "DONE" and line["model_version"] == predictor.version
        assert line["label"] == served["label"]
        for label, p in served["probabilities"].items():
            assert abs(line["probabilities"][label] - p) < 1e-9
