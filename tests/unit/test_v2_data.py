"""Model v2 loaders (study layout, flat layout, groups.csv ``file`` form), the head crop that removes
the mri-dwi canvas shortcut, and the CT assessability rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phantoms import make_slice
from phantoms.files import png_bytes
from phantoms.slices import to_display
from strokelens.reader.imaging.preprocess import crop_to_head, head_box, to_model_input
from strokelens.reader.model.assess import brain_fraction
from training.datasets import detect_layout, discover, discover_studies, read_groups


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))


def _ct(seed: int, lesion: str = "normal", size: int = 64) -> np.ndarray:
    return to_display(make_slice(np.random.default_rng(seed), "CT", size, lesion))


def test_study_layout(tmp_path: Path) -> None:
    for study, n in (("001", 3), ("002", 2)):
        for k in (1, 2, 10)[:n]:
            _png(tmp_path / "studies" / study / f"{k}.png", _ct(k))
    (tmp_path / "studies.csv").write_text("study,label,slices,slices_with_hemorrhage,subtypes\n"
                                          "001,hemorrhage,3,1,subdural\n002,normal,2,0,\n003,normal,5,0,\n")
    assert detect_layout(tmp_path) == "study"
    studies = discover_studies(tmp_path)
    assert [s.name for s in studies] == ["001", "002"]  # 003 is listed but absent: skipped
    assert [p.name for p in studies[0].slices] == ["1.png", "2.png", "10.png"]  # natural order
    samples = discover(tmp_path)
    assert len(samples) == 5 and {s.group for s in samples} == {"study:001", "study:002"}
    assert {s.label for s in samples if s.group == "study:001"} == {"hemorrhage"}


def test_flat_layout_and_groups_file_form(tmp_path: Path) -> None:
    flat = tmp_path / "other"
    for i in range(3):
        _png(flat / f"t2_{i}.png", _ct(i))
    assert detect_layout(flat) == "flat"
    assert {s.label for s in discover(flat, "MR")} == {"other"}
    dwi = tmp_path / "dwi"
    for cls in ("ischemic", "normal"):
        for i in range(2):
            _png(dwi / cls / f"{cls}{i}.png", _ct(i))
    (dwi / "groups.csv").write_text("file,label,group,original_size\nischemic/ischemic0.png,ischemic,g1,990x632\n"
                                    "normal/normal1.png,normal,g1,990x632\n")
    assert read_groups(dwi) == {"ischemic/ischemic0.png": "g1", "normal/normal1.png": "g1"}
    groups = {s.path.name: s.group for s in discover(dwi, "MR")}
    assert groups["ischemic0.png"] == groups["normal1.png"] == "g1" and groups["normal0.png"] == "normal/normal0.png"


def test_head_crop_removes_canvas_size_and_scale_bar() -> None:
    head = _ct(3, size=96) / 255.0
    wide = np.zeros((120, 300), np.float32)
    wide[12:108, 40:136] = head
    wide[100:104, 250:290] = 1.0  # a burned-in scale bar
    wide[10:14, 200:204] = 1.0  # a letter
    tall = np.zeros((200, 110), np.float32)
    tall[50:146, 7:103] = head
    a, b = to_model_input(wide, 64, crop=True), to_model_input(tall, 64, crop=True)
    assert np.abs(a - b).max() < 1e-5  # same model input whatever the canvas
    assert np.abs(to_model_input(wide, 64) - to_model_input(tall, 64)).max() > 0.1  # without the crop: not
    assert crop_to_head(wide).shape[1] <= 100


def test_assessability_separates_brain_from_non_brain() -> None:
    brain = to_model_input((_ct(5, size=128) / 255.0).astype(np.float32), 128, crop=True)
    assert brain_fraction(brain) > 0.1
    neck = np.zeros((128, 128), np.float32)
    yy, xx = np.mgrid[:128, :128]
    neck[(yy - 64) ** 2 + (xx - 64) ** 2 < 50 ** 2] = 0.5  # soft tissue, no skull around it
    neck[(yy - 80) ** 2 + (xx - 64) ** 2 < 8 ** 2] = 1.0  # a vertebra
    assert brain_fraction(neck) < 0.10
    assert brain_fraction(np.zeros((128, 128), np.float32)) == 0.0


def test_head_crop_keeps_both_halves_of_dark_dwi_parenchyma() -> None:
    # A DWI screen capture: dark brain (0.07) split by a 3-px darker midline, a bright lesion in the
    # right half, a scale bar beside it. The crop must hold the whole brain, not the brighter half.
    wide = np.zeros((140, 360), np.float32)
    yy, xx = np.mgrid[:140, :360]
    brain = ((yy - 70) / 55.0) ** 2 + ((xx - 120) / 45.0) ** 2 < 1
    wide[brain] = 0.07
    wide[:, 119:122] = 0.0  # interhemispheric fissure
    wide[60:75, 140:150] = 0.9  # the lesion
    wide[20:120, 300:302] = 1.0  # scale bar
    top, bottom, left, right = head_box(wide)
    assert left <= 77 and right >= 163 and top <= 17 and bottom >= 123  # both hemispheres
    assert right < 300  # not the scale bar
    crop = crop_to_head(wide)
    assert (crop[:, : crop.shape[1] // 2] > 0.05).mean() > 0.3  # the left half is kept, not zeroed
