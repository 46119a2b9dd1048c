"""Synthetic axial head-slice phantoms: CT in true Hounsfield units and DWI-like MR.

Used by the tests and to prove the training pipeline learns a 3-class
(hemorrhage / ischemic / normal), 2-modality (CT / MR) model without any patient data.
Everything is pure numpy and deterministic from the ``np.random.Generator`` passed in.

Anatomy (shared by both modalities), in a head frame that is randomly scaled, stretched,
rotated and shifted: air, scalp, a skull ring of varying thickness, a thin extra-axial CSF
layer with sulci, a gyral cortical ribbon (grey matter) over white matter, deep grey nuclei,
two lateral ventricles, a third ventricle and the interhemispheric fissure.

Lesions always lie inside brain parenchyma:

* ``hemorrhage`` -- an irregular intraparenchymal blob of random size and location
  (CT 50-90 HU hyperdense with a thin oedema halo; MR dark centre with a darker rim).
* ``ischemic`` -- a vascular-territory wedge (MCA, ACA or PCA, one side) running from near
  the midline out to the cortex (CT 15-25 HU with loss of grey/white differentiation;
  MR bright, restricted diffusion).

CLI: ``python -m training.phantoms OUT --n 20 --layout modality --format png --seed 0``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

Lesion = Literal["normal", "hemorrhage", "ischemic"]
Modality = Literal["CT", "MR"]
LESIONS: tuple[Lesion, ...] = ("hemorrhage", "ischemic", "normal")
MODALITY_DIRS: dict[str, str] = {"CT": "CT", "MR": "MRI"}  # on-disk folder names

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
MODEL_NAME = "StrokeLens Phantom"
PHI_TAGS: dict[str, str] = {
    "PatientName": "DOE^JANE",
    "PatientID": "MRN12345",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "ACC999",
    "InstitutionName": "General Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY",
}


class Tissue(IntEnum):
    """Labels of the (lesion-free) tissue map stored on every phantom."""

    AIR = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GREY = 4
    WHITE = 5
    DEEP_GREY = 6


PARENCHYMA = (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY)
INTRACRANIAL = (Tissue.CSF, *PARENCHYMA)


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic slice. Arrays are read-only.

    ``hu`` holds Hounsfield units for CT and DWI signal in arbitrary units (0..~1000) for MR.
    ``tissue`` is the lesion-free ``Tissue`` label map the image was rendered from.
    """

    hu: np.ndarray  # float32 (size, size)
    lesion_mask: np.ndarray  # bool (size, size), all False for "normal"
    label: Lesion
    modality: Modality
    tissue: np.ndarray  # uint8 (size, size) of Tissue values

    @property
    def brain_mask(self) -> np.ndarray:
        """Intracranial contents (parenchyma + CSF)."""
        return np.isin(self.tissue, INTRACRANIAL)

    @property
    def parenchyma_mask(self) -> np.ndarray:
        return np.isin(self.tissue, PARENCHYMA)


@dataclass(frozen=True)
class _Anatomy:
    tissue: np.ndarray  # uint8 Tissue labels
    p: np.ndarray  # head-normalised lateral coordinate (+ = image right)
    q: np.ndarray  # head-normalised antero-posterior coordinate (+ = posterior, image bottom)
    phi: np.ndarray  # polar angle of (p, q)
    s: np.ndarray  # radius normalised to the inner table of the skull (1 = brain surface)
    px: float  # pixels per head-normalised unit (for resolution-independent smoothing)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _harmonics(rng: np.random.Generator, phi: np.ndarray, orders: Sequence[int], amp: float) -> np.ndarray:
    out = np.zeros_like(phi)
    for k in orders:
        out += rng.uniform(0, amp) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return out


def _anatomy(rng: np.random.Generator, size: int) -> _Anatomy:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = (xx + 0.5) / size * 2 - 1, (yy + 0.5) / size * 2 - 1
    scale = rng.uniform(0.9, 1.04)
    a = rng.uniform(0.68, 0.78) * scale  # lateral semi-axis (image half-width = 1)
    b = min(rng.uniform(0.82, 0.9) * scale, 0.88)  # antero-posterior semi-axis
    cx, cy = rng.uniform(-0.03, 0.03, size=2)
    rot = rng.uniform(-0.15, 0.15)
    dx, dy = x - cx, y - cy
    p = (np.cos(rot) * dx + np.sin(rot) * dy) / a
    q = (-np.sin(rot) * dx + np.cos(rot) * dy) / b
    phi = np.arctan2(q, p)
    # Slightly egg-shaped (wider posteriorly) with a little random irregularity.
    outline = 1 + rng.uniform(0.0, 0.04) * np.sin(phi) + _harmonics(rng, phi, (3, 4, 5), 0.008)
    r = np.hypot(p, q) / outline

    scalp = rng.uniform(0.03, 0.05)
    skull = rng.uniform(0.045, 0.065) - rng.uniform(0.005, 0.02) * np.cos(2 * phi)  # thicker front/back
    skull = skull + _harmonics(rng, phi, (3, 5, 7), 0.004)
    inner = 1 - scalp - skull
    s = r / inner

    tissue = np.full((size, size), Tissue.AIR, np.uint8)
    tissue[r <= 1] = Tissue.SCALP
    tissue[r <= 1 - scalp] = Tissue.SKULL
    brain = s <= 1
    tissue[brain] = Tissue.WHITE
    # Gyral cortical ribbon with irregular (frequency-modulated) folding; sulci are thin CSF
    # clefts of varying depth at the deepest folds.
    n_gyri = int(rng.integers(18, 28))
    g_phase = n_gyri * phi + rng.uniform(0, 2 * np.pi) + _harmonics(rng, phi, (2, 3, 5), 1.2)
    depth = 0.035 * (1 + _harmonics(rng, phi, (3, 4, 7), 0.4))
    ribbon = rng.uniform(0.84, 0.88) + depth * np.sin(g_phase) + _harmonics(rng, phi, range(9, 60, 4), 0.006)
    tissue[brain & (s > ribbon)] = Tissue.GREY
    sulcus = (np.abs(_wrap(g_phase + np.pi / 2)) < 0.22) & (s > ribbon + 0.03 + 0.03 * np.cos(3 * g_phase / n_gyri))
    tissue[brain & sulcus] = Tissue.CSF
    tissue[brain & (s > 1 - rng.uniform(0.015, 0.035))] = Tissue.CSF  # subarachnoid space
    tissue[brain & (np.abs(p) < 0.012) & (s > 0.55)] = Tissue.CSF  # interhemispheric fissure

    # Deep grey nuclei: lentiform nuclei, caudate heads, thalami (mirrored).
    for sgn in (-1.0, 1.0):
        for (u0, v0, ru, rv) in ((0.22, -0.02, 0.06, 0.13), (0.12, -0.19, 0.045, 0.06), (0.09, 0.14, 0.075, 0.08)):
            tissue[brain & (((p - sgn * u0) / ru) ** 2 + ((q - v0) / rv) ** 2 < 1)] = Tissue.DEEP_GREY

    # Lateral ventricles: frontal horns and atria flaring out, bodies near the septum pellucidum.
    vs = rng.uniform(0.8, 1.3)
    for sgn in (-1.0, 1.0):
        q0 = -0.05 + rng.uniform(-0.02, 0.02)
        t = (q - q0) / (0.25 * np.sqrt(vs))  # -1 frontal horn .. +1 atrium
        centre = sgn * (0.05 + vs * (0.035 * t**2 + 0.04 * np.clip(t, 0, None)))  # ")(" butterfly
        width = vs * (0.042 + 0.018 * (1 - t**2)) * rng.uniform(0.9, 1.1)
        vent = ((p - centre) / width) ** 2 + t**4 < 1
        tissue[brain & vent & (sgn * p > 0.01)] = Tissue.CSF
    tissue[brain & (np.abs(p) < 0.012 * vs) & (q > 0.02) & (q < 0.16)] = Tissue.CSF  # third ventricle
    return _Anatomy(tissue, p, q, phi, s, px=size / 2 * (a + b) / 2)


def _hemorrhage(rng: np.random.Generator, an: _Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Irregular parenchymal blob. Returns (mask, radial fraction 0 centre .. 1 edge)."""
    paren = np.isin(an.tissue, PARENCHYMA)
    candidates = np.flatnonzero(paren & (an.s < 0.8))
    for _ in range(20):
        centre = rng.choice(candidates)
        p0, q0 = an.p.flat[centre], an.q.flat[centre]
        radius = rng.uniform(0.06, 0.15)
        stretch = rng.uniform(0.7, 1.0)
        dp, dq = an.p - p0, an.q - q0
        ang = np.arctan2(dq, dp)
        edge = radius * (1 + _harmonics(rng, ang, (2, 3, 4), 0.12))
        frac = np.hypot(dp, dq * stretch) / edge
        mask = (frac < 1) & paren
        if mask.sum() >= 0.5 * np.pi * (radius * an.px) ** 2 * stretch:  # mostly parenchymal
            return mask, frac
    return mask, frac


def _ischemic(rng: np.random.Generator, an: _Anatomy) -> np.ndarray:
    """Vascular-territory wedge from near the midline to the cortex, on one side."""
    sgn = rng.choice([-1.0, 1.0])
    territory = rng.choice(["MCA", "ACA", "PCA"], p=[0.6, 0.2, 0.2])
    if territory == "MCA":  # lateral convexity
        centre, half, s0 = (0.0 if sgn > 0 else np.pi) + rng.uniform(-0.25, 0.25), rng.uniform(0.35, 0.65), 0.25
    elif territory == "ACA":  # paramedian frontal
        centre, half, s0 = -np.pi / 2 + sgn * 0.3, rng.uniform(0.2, 0.3), 0.3
    else:  # PCA: paramedian occipital
        centre, half, s0 = np.pi / 2 - sgn * 0.35, rng.uniform(0.22, 0.35), 0.35
    half = half * (1 + _harmonics(rng, an.s * 6, (1, 2), 0.08))  # ragged lateral borders
    wedge = (np.abs(_wrap(an.phi - centre)) < half) & (an.s > s0 + rng.uniform(0, 0.15))
    return wedge & (np.sign(an.p) == sgn) & np.isin(an.tissue, PARENCHYMA)


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding."""
    if sigma <= 0:
        return img
    rad = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma) ** 2)
    k /= k.sum()
    out = img
    for axis in (0, 1):
        padded = np.pad(out, [(rad, rad) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return out


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion with a 3x3 cross."""
    out = mask.copy()
    for _ in range(steps):
        prev = out.copy()
        out[1:] &= prev[:-1]
        out[:-1] &= prev[1:]
        out[:, 1:] &= prev[:, :-1]
        out[:, :-1] &= prev[:, 1:]
    return out


def _lesion(rng: np.random.Generator, an: _Anatomy, lesion: Lesion) -> tuple[np.ndarray, np.ndarray | None]:
    if lesion == "hemorrhage":
        return _hemorrhage(rng, an)
    if lesion == "ischemic":
        return _ischemic(rng, an), None
    if lesion == "normal":
        return np.zeros(an.tissue.shape, bool), None
    raise ValueError(f"unknown lesion {lesion!r}; expected one of {LESIONS}")


def _freeze(img: np.ndarray, mask: np.ndarray, lesion: Lesion, modality: Modality, an: _Anatomy) -> Phantom:
    arrays = (img.astype(np.float32), mask.copy(), an.tissue.copy())
    for arr in arrays:
        arr.setflags(write=False)
    return Phantom(hu=arrays[0], lesion_mask=arrays[1], label=lesion, modality=modality, tissue=arrays[2])


def make_ct_slice(rng: np.random.Generator, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """Non-contrast head CT slice in Hounsfield units."""
    an = _anatomy(rng, size)
    mask, frac = _lesion(rng, an, lesion)
    lut = np.array([-1000, 40, 1000, 5, 40, 28, 38], np.float64)
    lut[Tissue.SCALP] = rng.uniform(35, 45)
    lut[Tissue.SKULL] = rng.uniform(960, 1040)
    lut[Tissue.CSF] = rng.uniform(2, 8)
    lut[Tissue.GREY] = rng.uniform(37, 43)
    lut[Tissue.WHITE] = rng.uniform(26, 31)
    lut[Tissue.DEEP_GREY] = lut[Tissue.GREY] - rng.uniform(0, 3)
    img = lut[an.tissue]
    if lesion == "hemorrhage":
        assert frac is not None
        halo = (frac >= 1) & (frac < 1.35) & np.isin(an.tissue, PARENCHYMA)
        img[halo] -= rng.uniform(5, 9)  # perihaematomal oedema
        img[mask] = rng.uniform(62, 80) + 4 * (1 - frac[mask]) + rng.normal(0, 2, mask.sum())
    elif lesion == "ischemic":
        img[mask] = rng.uniform(18, 22) + 0.25 * (img[mask] - 32)  # grey/white differentiation lost
    img = _gaussian_blur(img, rng.uniform(0.5, 0.9) * an.px / 100)
    img = img + rng.normal(0, rng.uniform(3, 6), img.shape)
    return _freeze(np.clip(img, -1024, 3071), mask, lesion, "CT", an)


def make_mr_slice(rng: np.random.Generator, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """DWI-like (b=1000 trace) MR slice in arbitrary units, roughly 0..1000."""
    an = _anatomy(rng, size)
    mask, _ = _lesion(rng, an, lesion)
    lut = np.array([0, 550, 12, 60, 450, 380, 430], np.float64)
    lut[Tissue.SCALP] = rng.uniform(500, 650)  # scalp fat
    lut[Tissue.CSF] = rng.uniform(40, 80)
    lut[Tissue.GREY] = rng.uniform(420, 480)
    lut[Tissue.WHITE] = rng.uniform(350, 400)
    lut[Tissue.DEEP_GREY] = lut[Tissue.GREY] - rng.uniform(0, 30)
    img = lut[an.tissue]
    if lesion == "hemorrhage":
        img[mask] = rng.uniform(130, 230)  # deoxyhaemoglobin centre
        rim = mask & ~_erode(mask, max(2, round(3 * mask.shape[0] / 256)))
        img[rim] = rng.uniform(20, 50)  # susceptibility rim
    elif lesion == "ischemic":
        img[mask] = rng.uniform(820, 980) + 0.3 * (img[mask] - 420)
    angle = rng.uniform(0, 2 * np.pi)  # receive-coil bias field
    img = img * (1 + rng.uniform(0, 0.1) * (np.cos(angle) * an.p + np.sin(angle) * an.q))
    img = _gaussian_blur(img, rng.uniform(0.8, 1.3) * an.px / 100)
    sigma = rng.uniform(10, 20)  # Rician noise: magnitude of a complex Gaussian signal
    img = np.hypot(img + rng.normal(0, sigma, img.shape), rng.normal(0, sigma, img.shape))
    return _freeze(img, mask, lesion, "MR", an)


def make_slice(rng: np.random.Generator, modality: str, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """Dispatch on modality ("CT", "MR" or "MRI")."""
    mod = _modality(modality)
    return (make_ct_slice if mod == "CT" else make_mr_slice)(rng, size, lesion)


def _modality(modality: str) -> Modality:
    m = modality.upper()
    if m == "CT":
        return "CT"
    if m in ("MR", "MRI"):
        return "MR"
    raise ValueError(f"unknown modality {modality!r}; expected CT or MR")


# ----------------------------------------------------------------------------- writing


def ct_to_display(hu: np.ndarray, level: float = 40, width: float = 80) -> np.ndarray:
    """Window CT (default brain window L40/W80) to uint8."""
    scaled = np.clip((np.asarray(hu, np.float64) - (level - width / 2)) / width, 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def mr_to_display(signal: np.ndarray) -> np.ndarray:
    """Percentile 1-99 normalisation of MR signal to uint8."""
    lo, hi = np.percentile(signal, [1, 99])
    scaled = np.clip((np.asarray(signal, np.float64) - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def to_display(phantom: Phantom) -> np.ndarray:
    return ct_to_display(phantom.hu) if phantom.modality == "CT" else mr_to_display(phantom.hu)


def write_png(phantom: Phantom, path: str | Path) -> Path:
    """8-bit grayscale PNG: CT brain-windowed (L40/W80), MR percentile 1-99 normalised."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_display(phantom)).save(path, format="PNG")
    return path


def write_dicom(
    phantom: Phantom,
    path: str | Path,
    *,
    slope: float = 1.0,
    intercept: float = -1024.0,
    monochrome1: bool = False,
    phi: bool = False,
) -> Path:
    """Write a valid Part-10 DICOM file (explicit VR little endian, preamble + "DICM").

    CT stores round((hu - intercept) / slope) so the modality LUT gives back HU; MR stores the
    rounded signal with no rescale (``slope``/``intercept`` are ignored). ``monochrome1`` only
    changes PhotometricInterpretation (stored values, hence HU, are unchanged; viewers invert).
    PHI tags (patient name/ID/birth date, accession, institution, referring physician) and
    study dates are written only when ``phi`` is True.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    ct = phantom.modality == "CT"
    if not ct:
        slope, intercept = 1.0, 0.0
    if not slope > 0:
        raise ValueError("slope must be positive")
    stored = np.rint((phantom.hu.astype(np.float64) - intercept) / slope)
    if stored.min() >= 0 and stored.max() <= 0xFFFF:
        pixels, signed = stored.astype("<u2"), 0
    elif stored.min() >= -0x8000 and stored.max() <= 0x7FFF:
        pixels, signed = stored.astype("<i2"), 1
    else:
        raise ValueError("values do not fit 16 bits with this slope/intercept")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sop_class = CT_IMAGE_STORAGE if ct else MR_IMAGE_STORAGE
    sop_instance = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Modality = phantom.modality
    ds.Manufacturer = "StrokeLens"
    ds.ManufacturerModelName = MODEL_NAME
    ds.SeriesDescription = f"{MODEL_NAME} {phantom.label}"
    ds.BodyPartExamined = "HEAD"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceLocation = 0.0
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5
    if ct:
        ds.KVP = 120
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 80
    else:
        ds.MagneticFieldStrength = 1.5
        ds.ScanningSequence, ds.SequenceVariant = "EP", "SK"
        lo, hi = np.percentile(phantom.hu, [1, 99])
        ds.WindowCenter, ds.WindowWidth = round((lo + hi) / 2), max(round(hi - lo), 1)
    if phi:
        for tag, value in PHI_TAGS.items():
            setattr(ds, tag, value)
        ds.StudyDate = ds.SeriesDate = "20240101"
        ds.StudyTime = "120000"

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = signed
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- data sets


def _write(phantom: Phantom, path: Path, fmt: str) -> Path:
    if fmt == "png":
        return write_png(phantom, path.with_suffix(".png"))
    if fmt == "dcm":
        return write_dicom(phantom, path.with_suffix(".dcm"))
    raise ValueError(f"unknown format {fmt!r}; expected png or dcm")


def write_dataset(
    root: str | Path,
    n_per_class: int,
    *,
    seed: int = 0,
    modalities: Sequence[str] = ("CT",),
    classes: Sequence[Lesion] = LESIONS,
    layout: Literal["flat", "modality"] = "modality",
    fmt: Literal["png", "dcm"] = "png",
    size: int = 256,
) -> list[Path]:
    """Write ``ROOT/<class>/phantom_NNNNN.<fmt>`` ("flat", one modality) or
    ``ROOT/<CT|MRI>/<class>/phantom_NNNNN.<fmt>`` ("modality").

    Each image has its own generator seeded from (seed, modality, class, index), so
    the images do not depend on ``n_per_class`` or on the other classes/modalities.
    """
    mods = [_modality(m) for m in modalities]
    if layout not in ("flat", "modality"):
        raise ValueError(f"unknown layout {layout!r}")
    if layout == "flat" and len(mods) != 1:
        raise ValueError("the flat layout holds exactly one modality")
    for c in classes:
        if c not in LESIONS:
            raise ValueError(f"unknown class {c!r}; expected one of {LESIONS}")
    root = Path(root)
    paths = []
    for mod in mods:
        for cls in classes:
            folder = root / cls if layout == "flat" else root / MODALITY_DIRS[mod] / cls
            for i in range(n_per_class):
                rng = np.random.default_rng([seed, ("CT", "MR").index(mod), LESIONS.index(cls), i])
                paths.append(_write(make_slice(rng, mod, size, cls), folder / f"phantom_{i:05d}", fmt))
    return paths


def write_kaggle_layout(root: str | Path, n: int, seed: int = 0, *, size: int = 256) -> list[Path]:
    """Mimic the seed Kaggle data set's layout with ``n`` PNGs per folder and modality::

        deep/train/1- Stroke/{ct,mr}_NNNNN.png      (CT and MR mixed, 2n files)
        deep/train/2- Control/NormalBT|NormalMR/
        deep/test/strokeBT|strokeMR|normalBT|normalMR/

    Stroke images alternate between ischemic and hemorrhage phantoms; BT means CT.
    """
    deep = Path(root) / "deep"
    plan: list[tuple[Path, Modality, bool, str]] = [
        (deep / "train" / "1- Stroke", "CT", True, "ct_"),
        (deep / "train" / "1- Stroke", "MR", True, "mr_"),
        (deep / "train" / "2- Control" / "NormalBT", "CT", False, "ct_"),
        (deep / "train" / "2- Control" / "NormalMR", "MR", False, "mr_"),
        (deep / "test" / "strokeBT", "CT", True, "ct_"),
        (deep / "test" / "strokeMR", "MR", True, "mr_"),
        (deep / "test" / "normalBT", "CT", False, "ct_"),
        (deep / "test" / "normalMR", "MR", False, "mr_"),
    ]
    paths = []
    for j, (folder, mod, stroke, prefix) in enumerate(plan):
        for i in range(n):
            rng = np.random.default_rng([seed, 100 + j, i])
            lesion: Lesion = ("ischemic", "hemorrhage")[i % 2] if stroke else "normal"
            paths.append(write_png(make_slice(rng, mod, size, lesion), folder / f"{prefix}{i:05d}.png"))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.phantoms", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output root folder")
    parser.add_argument("--n", type=int, default=20, help="images per class (per folder for kaggle)")
    parser.add_argument("--layout", choices=("flat", "modality", "kaggle"), default="modality")
    parser.add_argument("--format", dest="fmt", choices=("png", "dcm"), default="png")
    parser.add_argument("--modalities", nargs="+", default=None, help="CT and/or MR (default: CT MR; CT if flat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    if args.layout == "kaggle":
        if args.fmt != "png":
            parser.error("the kaggle layout is PNG only")
        paths = write_kaggle_layout(args.out, args.n, args.seed, size=args.size)
    else:
        mods = args.modalities or (["CT"] if args.layout == "flat" else ["CT", "MR"])
        paths = write_dataset(
            args.out, args.n, seed=args.seed, modalities=mods, layout=args.layout, fmt=args.fmt, size=args.size
        )
    print(f"wrote {len(paths)} images under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
