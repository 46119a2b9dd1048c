"""Model v2 end to end on phantoms (CI smoke run): every source layout, the shared int8 extractor,
per-finding heads, router, OOD per modality, the aggregation comparison, the artifact folder, and the
served reading through ``read_study`` and the CLI (``predict --study`` output schema)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from phantoms import make_slice, write_dataset
from phantoms.files import png_bytes
from phantoms.slices import to_display
from strokelens import cli
from strokelens.core.catalogue import Catalogue
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan, read_study


def _studies(root: Path, n_per_class: int = 5, slices: int = 5) -> None:
    rows = ["study,label,slices,slices_with_hemorrhage,subtypes"]
    for s in range(2 * n_per_class):
        label = "hemorrhage" if s < n_per_class else "normal"
        for k in range(slices):
            lesion = "hemorrhage" if label == "hemorrhage" and k == 2 else "normal"
            ph = make_slice(np.random.default_rng([7, s, k]), "CT", 96, lesion)
            path = root / "studies" / f"{s:03d}" / f"{k + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(to_display(ph)))
        rows.append(f"{s:03d},{label},{slices},{1 if label == 'hemorrhage' else 0},")
    (root / "studies.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def v2_model(tmp_path_factory) -> Path:
    from training.v2 import train

    tmp = tmp_path_factory.mktemp("v2")
    write_dataset(tmp / "ct", 8, classes=("hemorrhage", "normal"), layout="flat", size=96)
    _studies(tmp / "ct-ich")
    write_dataset(tmp / "dwi", 8, modalities=("MR",), classes=("ischemic", "normal"), layout="flat", size=96)
    write_dataset(tmp / "other", 8, seed=3, modalities=("MR",), classes=("normal",), layout="flat", size=96)
    out = tmp / "model"
    train.main(["--ct-slices", str(tmp / "ct"), "--ct-studies", str(tmp / "ct-ich"), "--dwi", str(tmp / "dwi"),
                "--mr-other", str(tmp / "other" / "normal"), "--out", str(out), "--epochs", "1",
                "--input-size", "64", "--synthetic", "--assess-cut", "0.0"])
    return out


def test_v2_artifacts_load_and_read_per_finding(v2_model: Path) -> None:
    manifest = Catalogue(v2_model).load_manifest(verify=True)
    assert manifest.raw["findings"]["CT"]["finding"] == "hemorrhage"
    assert manifest.raw["aggregation"]["rule"] in ("max", "topk", "noisy_or", "attention")
    metrics = json.loads((v2_model / "v2_metrics.json").read_text())
    assert {row["rule"] for row in metrics["aggregation"]} == {"max", "topk", "noisy_or", "attention"}
    model = ServedModel(v2_model)
    ct = png_bytes(to_display(make_slice(np.random.default_rng(1), "CT", 96, "hemorrhage")))
    reading = read_scan(ct, model, "CT")
    r = reading.result
    # A CT phantom like the training ones is read, not refused (deterministic: seeded phantoms and training;
    # its feature distance sits at about half the OOD threshold).
    assert not r.out_of_distribution, (r.ood_reason, r.ood_distance, r.ood_threshold)
    assert r.routed_as == "CT" and r.ood_distance is not None and r.ood_distance <= r.ood_threshold
    assert r.finding_assessed == "hemorrhage" and set(r.probabilities) == {"hemorrhage", "normal"}
    assert r.not_assessed == ["ischemic"] and r.stroke_type in ("haemorrhagic", "no finding", "not assessed")
    assert any(w.code == "FINDING_NOT_ASSESSED" and "not assessed on" in w.message for w in reading.warnings)


def test_cli_study_output_schema(v2_model: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    for k in range(4):
        ph = make_slice(np.random.default_rng([9, k]), "CT", 96, "hemorrhage" if k == 1 else "normal")
        (study / f"{k}.png").write_bytes(png_bytes(to_display(ph)))
    out = io.StringIO()
    cli.predict_study(str(study), str(v2_model), "CT", out=out)
    line = json.loads(out.getvalue())
    assert {"study", "files", "label", "probabilities", "model_version", "aggregation", "key_slices", "counts",
            "unreadable", "series", "finding_assessed", "not_assessed", "stroke_type", "routed_as"} <= set(line)
    assert line["files"] == 4 and {"assessed", "not_assessable", "outside_brain"} <= set(line["counts"])
    assert line["stroke_type"] in ("haemorrhagic", "no finding", "not assessed")
    assert set(line["probabilities"]) <= {"hemorrhage", "normal"}
    reading = read_study([p.read_bytes() for p in sorted(study.iterdir())], ServedModel(v2_model), "CT")
    assert len(reading.result.key_slices) <= 3


def test_card_has_calibration_and_heat_map_faithfulness(v2_model: Path) -> None:
    card = json.loads((v2_model / "model_card.json").read_text())
    cal = card["calibration"]
    assert set(cal) == {"ct_hemorrhage_slices", "ct_ich_studies", "dwi_slices"}
    for c in cal.values():
        assert c["bins"] == 10 and c["n"] >= 1 and 0 <= c["n_positive"] <= c["n"]
        assert 0 <= c["ece"]["value"] <= 1 and 0 <= c["brier"]["value"] <= 1
        assert sum(c["reliability"]["count"]) == c["n"]
    assert cal["ct_ich_studies"]["unit"] == "study"
    heat = card["heatmaps"]
    assert set(heat["phantoms"]) == {"ct_hemorrhage_phantoms", "dwi_ischemic_phantoms"}
    for f in heat["phantoms"].values():
        s, m = f["served"], f["finding_map"]
        assert sum(s["routed_as"].values()) == f["phantoms"] and s["called_positive"] <= f["phantoms"] - s["refused"]
        assert m["measured"] >= 1
        for block in (s, m):
            for key in ("heat_mass_inside_lesion", "lesion_share_of_brain", "pointing_game"):
                assert block[key] is None or 0 <= block[key] <= 1
    for r in heat["real_test_positives"].values():
        assert r["slices"] >= 1 and 0 <= r["heat_mass_inside_head"] <= 1
    eye = heat["checked_by_eye"]
    assert (v2_model / eye["montage"]).is_file() and eye["files"]
    assert {f["declared"] for f in eye["files"]} == {"CT", "MR"}
    assert "calibration" in {c["id"] for c in json.loads((v2_model / "charts" / "index.json").read_text())}
    text = (v2_model / "model_card.md").read_text()
    assert "## Calibration per modality" in text and "## Heat maps checked by eye" in text


def test_crossfit_scores_every_training_study_once_with_a_cnn_that_never_saw_it(v2_model: Path, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """The cross-fitted estimate re-trains the CNN per fold without the fold's studies and slices."""
    from training.v2 import crossfit, data

    seen: list[set] = []
    seen_paths: list[set] = []
    real_fit = crossfit._fit_export

    def spy(table, rows, calib_rows, config, seed, path, log, counts=None):
        seen.append(set(table.study[rows]) - {""})
        seen_paths.append(set(table.path[rows]))
        return real_fit(table, rows, calib_rows, config, seed, path, log, counts)

    monkeypatch.setattr(crossfit, "_fit_export", spy)
    out = tmp_path / "cf"
    args = crossfit.parse_args(["--cache", str(v2_model / "cache.npz"), "--metrics", str(v2_model / "v2_metrics.json"),
                                "--out", str(out), "--folds", "2", "--epochs", "1", "--input-size", "64",
                                "--assess-cut", "0.0", "--round2", "--save-maps", str(tmp_path / "maps")])
    result = crossfit.run(args)
    table = data.load(json.loads((v2_model / "v2_metrics.json").read_text())["sources"], 64, 0,
                      cache=v2_model / "cache.npz")
    train_studies = set(table.study[(table.source == "ct-studies") & (table.split == "train")])
    scored = result["oof"]["round1"][result["served_rule"]]
    assert set(scored) == train_studies and len(seen) == 2 * result["folds_total"] == 4  # two MIL rounds per fold
    _, _, folds = crossfit.study_folds(table, 0.0, 2, 0)
    studies = np.array(sorted(train_studies))
    for cnn_studies, (_, held) in zip(seen, [fold for fold in folds for _ in range(2)]):
        assert cnn_studies and not cnn_studies & set(studies[held])  # no held-out study reached its CNN
        assert cnn_studies | set(studies[held]) == train_studies
    # every ct-hemorrhage and DWI training slice is scored once, by a fold whose CNN never saw it
    for source in ("ct-slices", "dwi"):
        paths = set(table.path[(table.source == source) & (table.split == "train")])
        assert set(result["oof_slices"]["round1"][source]) == paths
    for k in range(result["folds_total"]):
        with np.load(tmp_path / "maps" / f"maps_fold{k}.npz") as saved:
            held_rows = saved["held_rows"]
        assert set(table.source[held_rows]) == {"ct-slices", "dwi"}
        assert not set(table.path[held_rows]) & seen_paths[2 * k]
    # the head study re-uses the saved maps: its served candidate is the record's served scores
    from training.v2 import headstudy

    study = headstudy.run(headstudy.parse_args(["--maps", str(tmp_path / "maps"), "--cache", str(v2_model / "cache.npz"),
                                                "--metrics", str(v2_model / "v2_metrics.json"), "--input-size", "64",
                                                "--assess-cut", "0.0", "--out", str(out / "headstudy.json")]))
    served_auc = study["candidates"]["served"]["study_roc_auc"][result["served_rule"]]["value"]
    assert served_auc == pytest.approx(result["summary"][f"round1/{result['served_rule']}"]["value"])
    assert set(study["candidates"]) == set(headstudy.CANDIDATES)
    summary = result["summary"][f"round1/{result['served_rule']}"]
    assert summary["n_studies"] == len(train_studies) and 0.0 <= summary["value"] <= 1.0
    assert "(served rule)" in (out / "crossfit.md").read_text()
    assert result["model_version"] == json.loads((v2_model / "v2_metrics.json").read_text())["model_version"]
    again = crossfit.run(args)  # resumes: every fold done, nothing re-trained
    assert len(seen) == 4 and again["summary"] == result["summary"]
    # the card shows the record for the build it measured, and only for it
    import shutil

    from training.v2 import train

    folder = tmp_path / "model"
    shutil.copytree(v2_model, folder)
    train.main(["--out", str(folder), "--card-only", "--crossfit", str(out / "crossfit.json")])
    card = json.loads((folder / "model_card.json").read_text())
    built = json.loads((folder / "v2_metrics.json").read_text())
    chosen, rule = built["extractor_rounds"]["chosen"], built["aggregation_chosen"]
    installed = result["summary"][f"round{chosen}/{rule}"]  # the build's own MIL round and pooling
    assert card["cross_fitted"]["ct_ich_study_roc_auc"] == installed
    assert "cross_fitted" not in json.dumps(card["metrics"])  # the metrics table holds test-split figures only
    assert f"{installed['value']:.3f} with it re-trained per fold" in card["limitations"][0]
    assert "Cross-fitted ct-ich study estimate" in (folder / "model_card.md").read_text()
    # a build of the recipe the record measured takes its operating points from the cross-fitted scores
    from training.v2.experiment import threshold_for_sensitivity

    sources = json.loads((folder / "v2_metrics.json").read_text())["sources"]
    train.main([*(f"--{k}={v}" for k, v in sources.items()), "--out", str(folder), "--reuse-extractor",
                "--epochs", "1", "--input-size", "64", "--synthetic", "--assess-cut", "0.0",
                "--crossfit", str(out / "crossfit.json")])
    rebuilt = json.loads((folder / "v2_metrics.json").read_text())
    assert rebuilt["operating_points_from"].startswith("cross-fitted")
    assert "cross-fitted" in rebuilt["aggregation_chosen_by"]  # the pooling too: the best cross-fitted rule
    by_rule = {r: result["summary"][f"round{chosen}/{r}"]["value"] for r in crossfit.RULES}
    assert by_rule[rebuilt["aggregation_chosen"]] == max(by_rule.values())
    cf_slices = result["oof_slices"][f"round{chosen}"]["ct-slices"]
    positives = [p for path, p in cf_slices.items() if table.label[table.path == path][0] == "hemorrhage"]
    assert rebuilt["thresholds"]["slice"] == threshold_for_sensitivity(np.array(positives), 0.85)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["findings"]["CT"]["threshold"] == rebuilt["thresholds"]["slice"]
    assert "cross-fitted" in (folder / "model_card.md").read_text().split("## Operating points")[1]
    record = json.loads((out / "crossfit.json").read_text())
    (out / "other.json").write_text(json.dumps({**record, "recipe": {**record["recipe"], "epochs": 15}}))
    train.main(["--out", str(folder), "--card-only", "--crossfit", str(out / "other.json")])
    assert "cross_fitted" not in json.loads((folder / "model_card.json").read_text())
