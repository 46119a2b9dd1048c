"""Synthetic phantoms: true HU values, lesion placement, determinism, PNG/DICOM writers, layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut

from phantoms import (
    PHI_TAGS,
    Phantom,
    Tissue,
    ct_to_display,
    make_ct_slice,
    make_mr_slice,
    write_dataset,
    write_dicom,
    write_kaggle_layout,
    write_png,
)
from phantoms.cli import main as phantoms_cli

SEEDS = range(6)


def ct(seed: int, lesion: str = "normal", size: int = 256) -> Phantom:
    return make_ct_slice(np.random.default_rng(seed), size, lesion)  # type: ignore[arg-type]


def mr(seed: int, lesion: str = "normal", size: int = 256) -> Phantom:
    return make_mr_slice(np.random.default_rng(seed), size, lesion)  # type: ignore[arg-type]


def eroded(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """Binary erosion with a 3x3 cross: keeps pixels away from partial-volume edges."""
    out = mask.copy()
    for _ in range(steps):
        inner = out.copy()
        inner[1:, :] &= out[:-1, :]
        inner[:-1, :] &= out[1:, :]
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        out = inner
    return out


def tissue_median(ph: Phantom, tissue: Tissue, steps: int = 1) -> float:
    mask = eroded(ph.tissue == tissue, steps)
    assert mask.sum() > 20, f"too few interior {tissue.name} pixels"
    return float(np.median(ph.hu[mask]))


# ----------------------------------------------------------------------------- CT values


@pytest.mark.parametrize("seed", SEEDS)
def test_ct_tissues_have_true_hounsfield_units(seed: int) -> None:
    ph = ct(seed)
    assert ph.hu.dtype == np.float32 and ph.hu.shape == (256, 256)
    assert ph.modality == "CT" and ph.label == "normal" and not ph.lesion_mask.any()
    assert abs(tissue_median(ph, Tissue.AIR, 3) + 1000) < 2
    corner = ph.hu[:8, :8]
    assert np.all(np.abs(corner + 1000) < 40)  # pure air, only noise
    assert 900 <= tissue_median(ph, Tissue.SKULL) <= 1100
    assert np.percentile(ph.hu[ph.tissue == Tissue.SKULL], 90) > 900
    assert 35 <= tissue_median(ph, Tissue.GREY) <= 45
    assert 25 <= tissue_median(ph, Tissue.WHITE) <= 32
    assert tissue_median(ph, Tissue.GREY) - tissue_median(ph, Tissue.WHITE) >= 5
    assert 0 <= tissue_median(ph, Tissue.CSF, 2) <= 10  # ventricle interiors
    assert 30 <= tissue_median(ph, Tissue.SCALP, 0) <= 70  # thin: blurs with skull/air
    noise = np.std(ph.hu[eroded(ph.tissue == Tissue.AIR, 3)])
    assert 2.5 <= noise <= 6.5


def test_ct_geometry_varies_and_head_fits_in_frame() -> None:
    areas = []
    for seed in SEEDS:
        ph = ct(seed)
        head = ph.tissue != Tissue.AIR
        assert not head[0].any() and not head[-1].any() and not head[:, 0].any() and not head[:, -1].any()
        assert np.isin(ph.tissue, (Tissue.CSF,)).sum() > 200  # ventricles exist
        areas.append(int(head.sum()))
    assert len(set(areas)) == len(areas) and max(areas) / min(areas) > 1.1


@pytest.mark.parametrize("seed", range(12))
def test_hemorrhage_is_hyperdense_and_inside_brain(seed: int) -> None:
    ph = ct(seed, "hemorrhage")
    mask = ph.lesion_mask
    assert ph.label == "hemorrhage" and mask.dtype == bool and mask.sum() >= 30
    assert np.all(ph.parenchyma_mask[mask])  # inside brain parenchyma, not in ventricles
    assert 50 <= ph.hu[mask].mean() <= 90
    assert ph.hu[mask].mean() > np.median(ph.hu[ph.parenchyma_mask & ~mask]) + 20


@pytest.mark.parametrize("seed", range(12))
def test_ischemic_wedge_is_hypodense_reaches_cortex_and_is_one_sided(seed: int) -> None:
    ph = ct(seed, "ischemic")
    mask = ph.lesion_mask
    assert ph.label == "ischemic" and mask.sum() >= 200
    assert np.all(ph.parenchyma_mask[mask])
    assert 15 <= ph.hu[mask].mean() <= 25
    assert (mask & (ph.tissue == Tissue.GREY)).sum() > 20  # wedge reaches the cortical ribbon
    assert (mask & (ph.tissue == Tissue.WHITE)).sum() > 20  # ...from the deep white matter
    # One vascular territory: the wedge stays on one side of the midline (fissure columns).
    cols = np.nonzero(mask.any(axis=0))[0]
    head_cols = np.nonzero((ph.tissue != Tissue.AIR).any(axis=0))[0]
    mid = (head_cols[0] + head_cols[-1]) / 2
    assert cols.max() < mid + 15 or cols.min() > mid - 15


def test_lesion_sizes_and_locations_vary() -> None:
    masks = [ct(seed, "hemorrhage").lesion_mask for seed in range(8)]
    sizes = {int(m.sum()) for m in masks}
    centroids = {tuple(np.round(np.argwhere(m).mean(axis=0) / 8)) for m in masks}
    assert len(sizes) == 8 and len(centroids) >= 6


def test_unknown_lesion_is_rejected() -> None:
    with pytest.raises(ValueError):
        ct(0, "tumour")


# ----------------------------------------------------------------------------- MR


@pytest.mark.parametrize("seed", range(4))
def test_mr_dwi_contrast(seed: int) -> None:
    normal = mr(seed)
    assert normal.modality == "MR" and normal.hu.dtype == np.float32 and normal.hu.min() >= 0
    brain = tissue_median(normal, Tissue.WHITE)
    assert 300 <= brain <= 550 and normal.hu.max() < 1500
    assert tissue_median(normal, Tissue.CSF) < 0.4 * brain
    assert tissue_median(normal, Tissue.SKULL) < 0.3 * brain  # signal void
    assert np.percentile(normal.hu[normal.tissue == Tissue.SCALP], 90) > brain  # bright scalp fat
    assert np.median(normal.hu[eroded(normal.tissue == Tissue.AIR, 3)]) < 60  # Rician noise floor > 0

    isch = mr(seed, "ischemic")
    assert np.all(isch.parenchyma_mask[isch.lesion_mask])
    assert isch.hu[isch.lesion_mask].mean() > 1.6 * np.median(isch.hu[isch.parenchyma_mask & ~isch.lesion_mask])

    hem = mr(seed, "hemorrhage")
    m = hem.lesion_mask
    assert np.all(hem.parenchyma_mask[m])
    assert hem.hu[m].mean() < 0.6 * np.median(hem.hu[hem.parenchyma_mask & ~m])
    shell, core = eroded(m, 1) & ~eroded(m, 2), eroded(m, 5)  # 2nd pixel ring vs centre
    assert hem.hu[shell].mean() < 0.35 * np.median(hem.hu[hem.parenchyma_mask & ~m])  # dark rim
    if core.sum() >= 5:
        assert hem.hu[core].mean() > hem.hu[shell].mean() + 40


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("make", [make_ct_slice, make_mr_slice])
def test_deterministic_from_seed(make) -> None:
    a = make(np.random.default_rng(42), 128, "hemorrhage")
    b = make(np.random.default_rng(42), 128, "hemorrhage")
    c = make(np.random.default_rng(43), 128, "hemorrhage")
    assert a.hu.shape == (128, 128)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.lesion_mask, b.lesion_mask)
    assert not np.array_equal(a.hu, c.hu)
    with pytest.raises(ValueError):
        a.hu[0, 0] = 0  # read-only


# ----------------------------------------------------------------------------- PNG


def test_ct_to_display_brain_window() -> None:
    hu = np.array([-1000, 0, 40, 60, 80, 1000], np.float32)
    out = ct_to_display(hu)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 191, 255, 255]
    assert ct_to_display(np.array([0.0]), level=0, width=100).tolist() == [128]


def test_write_png_ct_is_brain_windowed_and_mr_normalised(tmp_path: Path) -> None:
    ph = ct(1, "hemorrhage", 96)
    path = write_png(ph, tmp_path / "a" / "ct.png")
    img = Image.open(path)
    assert img.mode == "L" and img.size == (96, 96)
    assert np.array_equal(np.asarray(img), ct_to_display(ph.hu))

    m = mr(1, "ischemic", 96)
    arr = np.asarray(Image.open(write_png(m, tmp_path / "mr.png")))
    lo, hi = np.percentile(m.hu, [1, 99])
    assert (arr == 0).mean() >= 0.01 and (arr == 255).mean() >= 0.01
    assert np.array_equal(arr[m.hu <= lo], np.zeros((m.hu <= lo).sum(), np.uint8))
    assert np.all(arr[m.hu >= hi] == 255)


# ----------------------------------------------------------------------------- DICOM


@pytest.mark.parametrize(
    ("slope", "intercept", "monochrome1", "signed"),
    [(0.5, -1024.0, False, 0), (1.0, -1024.0, True, 0), (1.0, 0.0, False, 1), (2.0, -2048.0, False, 0)],
)
def test_dicom_round_trip_reproduces_hu(tmp_path: Path, slope, intercept, monochrome1, signed) -> None:
    ph = ct(3, "ischemic", 128)
    path = write_dicom(ph, tmp_path / "x.dcm", slope=slope, intercept=intercept, monochrome1=monochrome1)
    raw = path.read_bytes()
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"

    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2" == ds.SOPClassUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "CT" and ds.RescaleType == "HU" and ds.ManufacturerModelName == "StrokeLens Phantom"
    assert ds.PhotometricInterpretation == ("MONOCHROME1" if monochrome1 else "MONOCHROME2")
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel) == (16, 16, 15, 1)
    assert ds.PixelRepresentation == signed
    assert (ds.Rows, ds.Columns) == (128, 128)
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.5] and float(ds.SliceThickness) == 5
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40, 80)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (slope, intercept)

    hu = apply_modality_lut(ds.pixel_array, ds)
    assert hu.shape == ph.hu.shape
    assert np.max(np.abs(hu - ph.hu)) <= 0.5 * slope + 1e-3


def test_dicom_uids_are_unique(tmp_path: Path) -> None:
    ph = ct(0, size=32)
    a = pydicom.dcmread(write_dicom(ph, tmp_path / "a.dcm"))
    b = pydicom.dcmread(write_dicom(ph, tmp_path / "b.dcm"))
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.StudyInstanceUID != b.StudyInstanceUID


def test_dicom_rejects_values_that_do_not_fit_16_bits(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_dicom(ct(0, size=32), tmp_path / "x.dcm", slope=0.01)


def test_mr_dicom_stores_signal_without_rescale(tmp_path: Path) -> None:
    ph = mr(2, "hemorrhage", 64)
    ds = pydicom.dcmread(write_dicom(ph, tmp_path / "mr.dcm", slope=0.5, intercept=-1024))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"
    assert "RescaleSlope" not in ds and "RescaleType" not in ds
    assert np.max(np.abs(apply_modality_lut(ds.pixel_array, ds) - ph.hu)) <= 0.5 + 1e-3


@pytest.mark.parametrize("phi", [False, True])
def test_phi_tags_present_only_when_requested(tmp_path: Path, phi: bool) -> None:
    ds = pydicom.dcmread(write_dicom(ct(0, size=32), tmp_path / "p.dcm", phi=phi))
    for tag, value in PHI_TAGS.items():
        if phi:
            assert str(ds[tag].value) == value
        else:
            assert tag not in ds
    text = (tmp_path / "p.dcm").read_bytes()
    assert (b"DOE^JANE" in text) is phi and (b"MRN12345" in text) is phi


# ----------------------------------------------------------------------------- layouts


def files_under(root: Path) -> dict[str, list[str]]:
    tree: dict[str, list[str]] = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        tree.setdefault(f.parent.relative_to(root).as_posix(), []).append(f.name)
    return tree


def test_modality_layout(tmp_path: Path) -> None:
    paths = write_dataset(tmp_path, 2, modalities=("CT", "MR"), size=48)
    tree = files_under(tmp_path)
    assert sorted(tree) == [f"{m}/{c}" for m in ("CT", "MRI") for c in ("hemorrhage", "ischemic", "normal")]
    assert all(names == ["phantom_00000.png", "phantom_00001.png"] for names in tree.values())
    assert len(paths) == 12 and all(p.exists() for p in paths)


def test_flat_layout_dicom(tmp_path: Path) -> None:
    paths = write_dataset(tmp_path, 3, layout="flat", fmt="dcm", classes=("ischemic", "normal"), size=32)
    tree = files_under(tmp_path)
    assert sorted(tree) == ["ischemic", "normal"]
    assert tree["normal"] == [f"phantom_{i:05d}.dcm" for i in range(3)]
    assert len(paths) == 6 and pydicom.dcmread(paths[0]).Modality == "CT"


def test_dataset_is_reproducible_and_independent_of_n(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 1, seed=5, size=32)
    b = write_dataset(tmp_path / "b", 2, seed=5, size=32)
    c = write_dataset(tmp_path / "c", 1, seed=6, size=32)
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()


def test_dataset_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_dataset(tmp_path, 1, layout="flat", modalities=("CT", "MR"))
    with pytest.raises(ValueError):
        write_dataset(tmp_path, 1, classes=("tumour",))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        write_dataset(tmp_path, 1, modalities=("PET",))


def test_kaggle_layout(tmp_path: Path) -> None:
    paths = write_kaggle_layout(tmp_path, 2, seed=0, size=32)
    tree = files_under(tmp_path)
    assert tree["deep/train/1- Stroke"] == ["ct_00000.png", "ct_00001.png", "mr_00000.png", "mr_00001.png"]
    for folder, prefix in [
        ("deep/train/2- Control/NormalBT", "ct_"),
        ("deep/train/2- Control/NormalMR", "mr_"),
        ("deep/test/strokeBT", "ct_"),
        ("deep/test/strokeMR", "mr_"),
        ("deep/test/normalBT", "ct_"),
        ("deep/test/normalMR", "mr_"),
    ]:
        assert tree[folder] == [f"{prefix}00000.png", f"{prefix}00001.png"]
    assert len(tree) == 7 and len(paths) == 16


def test_cli_writes_dataset(tmp_path: Path, capsys) -> None:
    assert phantoms_cli([str(tmp_path), "--n", "1", "--layout", "modality", "--format", "png", "--size", "32"]) == 0
    assert len(list(tmp_path.rglob("*.png"))) == 6  # 2 modalities x 3 classes
    assert "wrote 6 images" in capsys.readouterr().out
