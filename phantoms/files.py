"""Phantoms on disk: 8-bit PNG and Part-10 DICOM writers, and the data-set layouts the training reads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from phantoms.slices import LESIONS, Lesion, Modality, Phantom, ct_from_display, make_slice, parse_modality, to_display

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


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit image (grayscale or RGB) encoded as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def set_ct_display(ds, image: np.ndarray) -> None:
    """Replace a CT data set's pixels with ``image``, an 8-bit brain-window slice (e.g. a real head CT
    PNG): 0-255 back to 0-80 HU (:func:`phantoms.slices.ct_from_display`), stored with the scanner-style
    rescale (slope 1, intercept -1024) as signed 16-bit, so a reader windowing it sees the same image.
    ``ds`` must already describe 16-bit signed monochrome pixels (pydicom's ``CT_small.dcm`` does)."""
    hu = ct_from_display(image)
    ds.Rows, ds.Columns = hu.shape
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (np.round(hu) + 1024).astype("<i2").tobytes()


def write_png(phantom: Phantom, path: str | Path) -> Path:
    """8-bit grayscale PNG: CT brain-windowed (L40/W80), MR percentile 1-99 normalised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(to_display(phantom)))
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
    mods = [parse_modality(m) for m in modalities]
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
