"""``python -m training.install`` copies exactly the catalogue's files of a trained model into the
package folder, replaces the previous model's, and leaves every other file alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from strokelens.core.catalogue import CLINICAL_MODEL_FILES, IMAGE_MODEL_FILES, Catalogue, version_hash
from strokelens.core.settings import PACKAGED_MODEL_DIR
from training import install


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _charts(folder: Path, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for chart_id in ids:
        (folder / f"{chart_id}.json").write_text(json.dumps({"data": [], "id": chart_id}))
    (folder / "index.json").write_text(json.dumps([{"id": c, "title": c, "description": c} for c in ids]))


def _image_model(folder: Path, tag: str, optional: tuple[str, ...] = ()) -> None:
    """A model folder in the catalogue's layout whose manifest hash checks out (the bytes are stand-ins)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "extractor.tflite").write_bytes(f"extractor {tag}".encode())
    (folder / "head.npz").write_bytes(f"head {tag}".encode())
    (folder / "labels.json").write_text('["hemorrhage", "normal"]')
    for name in optional:
        (folder / name).write_bytes(f"{name} {tag}".encode())
    for name in ("head.joblib", "metrics.json", "split.json", "model_card.json", "model_card.md"):
        (folder / name).write_text(f"{name} {tag}")
    (folder / "manifest.json").write_text(json.dumps({"version": version_hash(folder, {"input_size": 64}), "input_size": 64}))
    _charts(folder / "charts", [f"roc_{tag}", "confusion_matrix"])


def test_install_copies_exactly_the_catalogue_files_and_leaves_others(tmp_path: Path) -> None:
    src, dest = tmp_path / "build" / "model", tmp_path / "artifacts"
    _image_model(src, "new", optional=("ood.npz", "ood_image.npz"))
    extra = {"notes.txt", "debug/trace.json", "charts/hand_made.json", "clinical/README.md"}  # not training's
    packaged = PACKAGED_MODEL_DIR / "clinical"  # a real clinical model: its version must check out
    shutil.copytree(packaged, src / "clinical", ignore=lambda d, names: [] if Path(d) != packaged else
                    [n for n in names if n not in CLINICAL_MODEL_FILES and n != "charts"])
    _image_model(dest, "old", optional=("ood.npz", "cam_baseline.npz"))
    for name in extra:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text("someone else's")
    (dest / "clinical" / "clinical.json").write_text("{}")
    _charts(dest / "clinical" / "charts", ["clinical_old"])

    written = install.install(src, dest)

    expected_image = set(IMAGE_MODEL_FILES) - {"cam_baseline.npz", "head_dwi.npz", "router.npz", "ood_dwi.npz",
                                               "ood_ct_slices.npz"} | {"charts/roc_new.json", "charts/confusion_matrix.json",
                                                                        "charts/index.json"}
    src_clinical = _files(src / "clinical")
    assert {p.relative_to(dest).as_posix() for p in written} == expected_image | {f"clinical/{n}" for n in src_clinical}
    assert _files(dest) == expected_image | {f"clinical/{n}" for n in src_clinical} | extra
    assert set(CLINICAL_MODEL_FILES) <= src_clinical and "charts/index.json" in src_clinical
    for name in _files(src):
        assert (dest / name).read_bytes() == (src / name).read_bytes(), name
    assert not (dest / "cam_baseline.npz").exists(), "an optional file of the old model does not survive"
    assert not (dest / "charts" / "roc_old.json").exists(), "the old model's charts are removed"
    assert Catalogue(dest).load_manifest(verify=True).version == json.loads((src / "manifest.json").read_text())["version"]
    for name in extra:
        assert (dest / name).read_text() == "someone else's"


def test_install_refuses_a_model_that_does_not_match_its_manifest(tmp_path: Path) -> None:
    src, dest = tmp_path / "build", tmp_path / "artifacts"
    _image_model(src, "new")
    (src / "head.npz").write_bytes(b"edited after training")
    _image_model(dest, "old")
    before = {name: (dest / name).read_bytes() for name in _files(dest)}
    with pytest.raises(RuntimeError, match="do not match"):
        install.install(src, dest)
    assert {name: (dest / name).read_bytes() for name in _files(dest)} == before, "nothing was touched"


def test_the_version_covers_the_manifest_settings(tmp_path: Path) -> None:
    """A threshold or calibration edited in the manifest changes what results say: it must not keep the
    version every result records."""
    folder = tmp_path / "model"
    _image_model(folder, "new")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert Catalogue(folder).load_manifest(verify=True).version == manifest["version"]
    (folder / "manifest.json").write_text(json.dumps({**manifest, "input_size": 128}))
    with pytest.raises(RuntimeError, match="do not match"):
        Catalogue(folder).load_manifest(verify=True)
    assert version_hash(folder, {**manifest, "input_size": 128}) != manifest["version"]
    assert version_hash(folder, {**manifest, "version": "ignored"}) == manifest["version"]


def test_install_needs_a_trained_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train first"):
        install.install(tmp_path / "empty", tmp_path / "artifacts")
    with pytest.raises(ValueError, match="already the destination"):
        install.install(tmp_path / "empty", tmp_path / "empty")
