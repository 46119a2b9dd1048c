"""pydicom-made CT series for study tests: positions, orientation and UIDs set like a scanner's."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file

from phantoms import set_ct_display


def ct_series(n: int, study_uid: str = "1.2.3.4", series_uid: str = "1.2.3.4.1", thickness: float = 5.0,
              axial: bool = True, modality: str = "CT", z0: float = -50.0,
              images: list[np.ndarray] | None = None) -> list[bytes]:
    """``n`` slices in anatomical order (slice k at z0 + k * thickness), InstanceNumber reversed so
    ordering by it alone would be wrong when positions exist. ``images`` (8-bit brain-window slices,
    e.g. real head CT PNGs) replace pydicom's CT_small pixels: 0-255 is mapped back to 0-80 HU (the
    brain window, level 40 width 80) and stored with the scanner-style rescale (intercept -1024)."""
    base = dcmread(get_testdata_file("CT_small.dcm"))
    out = []
    for k in range(n):
        ds = base.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = f"{series_uid}.{k + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = modality
        ds.InstanceNumber = n - k
        ds.SliceThickness = thickness
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if axial else [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [0.0, 0.0, z0 + k * thickness] if axial else [0.0, z0 + k * thickness, 0.0]
        if images is not None:
            set_ct_display(ds, images[k])
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def sop_uid(data: bytes) -> str:
    return str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
