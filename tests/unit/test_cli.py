"""The command-line predictor runs the serving path and prints one JSON line per file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan
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

    predictor = ServedModel()
    for src in sources:
        line = by_name[src.name]
        served = read_scan(src.read_bytes(), predictor).result
        assert line["status"] == "DONE" and line["model_version"] == predictor.version
        assert line["label"] == served.label
        assert all(set(w) == {"code", "message"} for w in line["warnings"])
        for label, p in served.probabilities.items():
            assert abs(line["probabilities"][label] - p) < 1e-9


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-m", "strokelens", "predict", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_predict_study_prints_one_line_for_the_folder(tmp_path):
    """A folder read as one study: natural order (slice2 before slice10), unreadable files counted,
    key slices are files of the folder, most suspicious first; the study probability is the most
    suspicious slice's (v1) or the manifest's aggregation rule over the assessed slices (v2)."""
    hemorrhage = sorted((CT_DATA / "hemorrhage").glob("*.png"))[:1]
    normal = sorted((CT_DATA / "normal").glob("*.png"))[:2]
    names = {}
    for i, src in zip((2, 10, 1), normal + hemorrhage):
        names[f"slice{i}.png"] = src
        shutil.copy(src, tmp_path / f"slice{i}.png")
    (tmp_path / "slice3.png").write_bytes(b"truncated")
    run = _run("--study", str(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    (line,) = [json.loads(x) for x in run.stdout.splitlines()]
    assert {"probabilities", "label", "key_slices", "counts", "model_version"} <= set(line)
    assert line["files"] == 4 and line["unreadable"] == {str(tmp_path / "slice3.png"): "UNSUPPORTED_FORMAT"}
    assert line["counts"]["unreadable"] == 1
    assert line["counts"]["assessed"] + line["counts"]["not_assessable"] == 3
    model = ServedModel()
    positive = model.manifest.positive_label
    results = {str(tmp_path / name): read_scan(src.read_bytes(), model).result for name, src in names.items()}
    if model.v2 is not None:  # v2: the study's finding is its slices' (all CT here), read with the learned rule
        positive = line["finding_assessed"]
        assert positive == "hemorrhage" and line["stroke_type"] in ("haemorrhagic", "no finding")
    scores = {k: r.probabilities[positive] for k, r in results.items()
              if not r.out_of_distribution and r.assessable is not False}
    assert line["counts"]["assessed"] == len(scores)
    assert line["key_slices"] == sorted(scores, key=lambda k: -scores[k])[:3]
    if model.v2 is not None:
        from strokelens.reader.model.aggregate import study_probability

        agg = model.manifest.raw["aggregation"]
        expected = study_probability(agg["rule"], np.asarray(list(scores.values())), agg["params"])
        assert line["aggregation"] == agg["rule"]
    else:
        expected = max(scores.values())
    assert abs(line["probabilities"][positive] - expected) < 1e-9


def test_declared_modality_is_passed_to_the_reader(tmp_path):
    src = sorted((CT_DATA / "normal").glob("*.png"))[0]
    shutil.copy(src, tmp_path / "a.png")
    run = _run("--modality", "MR", str(tmp_path / "a.png"))
    (line,) = [json.loads(x) for x in run.stdout.splitlines()]
    # The CT model refuses what it is told is an MRI (a PNG has no header to overrule the choice).
    assert line["label"] is None and any(w["code"] == "OUT_OF_DISTRIBUTION" for w in line["warnings"])
