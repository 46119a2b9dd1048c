"""Layout discovery (three layouts), groups.csv, and serving-path input loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.datasets import detect_layout, discover, labels_of, load_inputs
from phantoms import write_dataset, write_kaggle_layout


def test_class_layout_with_groups(tmp_path: Path) -> None:
    write_dataset(tmp_path, 3, layout="flat", classes=("hemorrhage", "normal"), size=96)
    (tmp_path / "groups.csv").write_text(
        "group,files,kind\ng1,hemorrhage/phantom_00000.png;normal/phantom_00001.png,cross-class pair\n"
    )
    samples = discover(tmp_path)
    assert detect_layout(tmp_path) == "class"
    assert len(samples) == 6 and labels_of(samples) == ["hemorrhage", "normal"]
    assert {s.modality for s in samples} == {"CT"} and {s.split for s in samples} == {None}
    by_file = {s.path.relative_to(tmp_path).as_posix(): s.group for s in samples}
    assert by_file["hemorrhage/phantom_00000.png"] == by_file["normal/phantom_00001.png"] == "g1"
    assert by_file["normal/phantom_00002.png"] == "normal/phantom_00002.png"


def test_modality_layout(tmp_path: Path) -> None:
    write_dataset(tmp_path, 2, modalities=("CT", "MR"), layout="modality", size=96)
    samples = discover(tmp_path)
    assert detect_layout(tmp_path) == "modality"
    assert labels_of(samples) == ["hemorrhage", "ischemic", "normal"]
    assert {s.modality for s in samples} == {"CT", "MR"}
    assert all(s.modality == ("MR" if "MRI" in s.path.parts else "CT") for s in samples)


@pytest.mark.parametrize("point_at_deep", [False, True])
def test_kaggle_layout(tmp_path: Path, point_at_deep: bool) -> None:
    write_kaggle_layout(tmp_path, 2, size=96)
    root = tmp_path / "deep" if point_at_deep else tmp_path
    samples = discover(root)
    assert detect_layout(root) == "kaggle"
    assert labels_of(samples) == ["normal", "stroke"]
    assert len(samples) == 16
    assert sum(s.split == "train" for s in samples) == 8 and sum(s.split == "test" for s in samples) == 8
    for s in samples:
        assert s.modality == ("MR" if s.path.name.startswith("mr_") else "CT")
        assert s.label == ("stroke" if "troke" in s.path.parent.name else "normal")


def test_unknown_modality_in_mixed_stroke_folder(tmp_path: Path) -> None:
    write_kaggle_layout(tmp_path, 1, size=96)
    stroke = tmp_path / "deep" / "train" / "1- Stroke"
    (stroke / "ct_00000.png").rename(stroke / "image42.png")
    mystery = [s for s in discover(tmp_path) if s.path.name == "image42.png"]
    assert len(mystery) == 1 and mystery[0].modality is None


def test_load_inputs_uses_serving_path_and_skips_bad_files(tmp_path: Path, capsys) -> None:
    write_dataset(tmp_path, 2, layout="flat", classes=("hemorrhage", "normal"), size=96)
    (tmp_path / "normal" / "broken.png").write_bytes(b"not an image")
    samples = discover(tmp_path)
    x, kept = load_inputs(samples, 64)
    assert x.shape == (4, 64, 64) and x.dtype == np.float32 and len(kept) == 4
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert "broken.png" in capsys.readouterr().err
