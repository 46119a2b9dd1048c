"""A study's files as series: group, order, de-duplicate, and pick the series the model is for.

Order of operations for one upload:
1. :func:`header_of` reads each DICOM's header only (no pixels): study/series/instance UIDs,
   position, orientation, instance number, modality, slice thickness, series description
   words that name a sequence. PNG/JPEG/TIFF have no header: they form one series in upload
   order (the site sends files in natural filename order).
2. :func:`group_series` groups by (StudyInstanceUID, SeriesInstanceUID), counts a repeated
   SOPInstanceUID once, and orders each series along its normal (ImagePositionPatient projected
   on the cross product of ImageOrientationPatient's rows), else by InstanceNumber, else upload order.
3. :func:`pick_series` keeps the series the model reads (its modality trained, axial, most
   slices, thinnest) and says why each other series was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SliceHeader:
    index: int  # position of the file in the upload
    is_dicom: bool
    readable: bool = True  # False: not an image format at all (never part of a series)
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    modality: str | None = None
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    instance: int | None = None
    thickness: float | None = None
    description: str = ""


@dataclass
class Series:
    key: tuple[str, str]
    modality: str | None
    slices: list[SliceHeader]  # in stack order
    duplicates: int = 0
    axial: bool = True
    thickness: float | None = None
    description: str = ""
    chosen: bool = False
    reason: str = ""
    number: int = 0  # 1-based, in the order series were first seen

    def report(self) -> dict:
        """What the clinician is told of this series (counts and technical facts only)."""
        return {"series": self.number, "modality": self.modality, "slices": len(self.slices),
                "duplicates": self.duplicates, "axial": self.axial, "slice_thickness": self.thickness,
                "read": self.chosen, "reason": self.reason}


def header_of(index: int, data: bytes) -> SliceHeader:
    """The grouping facts of one file; a file that is not (readable) DICOM has none."""
    if len(data) < 132 or data[128:132] != b"DICM":
        from strokelens.reader.imaging.decode import sniff_format

        return SliceHeader(index=index, is_dicom=False, readable=sniff_format(data) is not None)
    try:
        # Under the decoder's budgets: pydicom's own reader would inflate a deflated file whole.
        from strokelens.reader.imaging.dicom import read_header

        ds = read_header(data)
        position = (float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1]),
                    float(ds.ImagePositionPatient[2])) if "ImagePositionPatient" in ds else None
        orientation = tuple(float(v) for v in ds.ImageOrientationPatient) if "ImageOrientationPatient" in ds else None
        instance = int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None
        thickness = float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None
        return SliceHeader(index=index, is_dicom=True, study_uid=str(ds.get("StudyInstanceUID", "")),
                           series_uid=str(ds.get("SeriesInstanceUID", "")), sop_uid=str(ds.get("SOPInstanceUID", "")),
                           modality=str(ds.get("Modality", "") or "").upper() or None, position=position,
                           orientation=orientation, instance=instance, thickness=thickness,
                           description=str(ds.get("SeriesDescription", "") or "")[:64])
    except Exception:  # an unreadable header: the full decoder will say what is wrong with the file
        return SliceHeader(index=index, is_dicom=False)


def _normal(orientation: tuple[float, ...] | None) -> np.ndarray | None:
    if orientation is None or len(orientation) != 6:
        return None
    n = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 0 else None


def _is_axial(orientation: tuple[float, ...] | None) -> bool:
    n = _normal(orientation)
    return True if n is None else abs(float(n[2])) > 0.8  # the slice normal runs head to foot


def _order(slices: list[SliceHeader]) -> list[SliceHeader]:
    normal = _normal(slices[0].orientation)
    if normal is not None and all(s.position is not None for s in slices):
        return sorted(slices, key=lambda s: (float(np.dot(normal, np.asarray(s.position))), s.index))
    if all(s.instance is not None for s in slices):
        return sorted(slices, key=lambda s: (s.instance, s.index))
    return sorted(slices, key=lambda s: s.index)


def group_series(headers: list[SliceHeader]) -> list[Series]:
    """Series in the order first seen, each de-duplicated and in stack order."""
    groups: dict[tuple[str, str], list[SliceHeader]] = {}
    for h in headers:
        if not h.readable:
            continue
        key = (h.study_uid, h.series_uid) if h.is_dicom else ("", "images")
        groups.setdefault(key, []).append(h)
    out = []
    for number, (key, members) in enumerate(groups.items(), start=1):
        seen: set[str] = set()
        unique = []
        for h in members:
            if h.sop_uid and h.sop_uid in seen:
                continue
            seen.add(h.sop_uid)
            unique.append(h)
        first = unique[0]
        out.append(Series(key=key, modality=first.modality, slices=_order(unique), duplicates=len(members) - len(unique),
                          axial=_is_axial(first.orientation), thickness=first.thickness,
                          description=first.description, number=number))
    return out


@dataclass
class Selection:
    chosen: Series | None
    series: list[Series] = field(default_factory=list)
    mixed_modalities: bool = False


def pick_series(series: list[Series], trained_modalities: tuple[str, ...], declared: str | None = None) -> Selection:
    """The one series to read, and why each other one is not read."""
    modalities = {s.modality or declared for s in series}
    candidates = []
    for s in series:
        modality = s.modality or declared
        if modality is not None and modality not in trained_modalities:
            s.reason = f"{modality} is not read by this model (it reads {', '.join(trained_modalities)})"
        elif not s.axial:
            s.reason = "not an axial series"
        else:
            candidates.append(s)
    # Most slices first (a whole-head series beats a scout or a reformat), then the thinnest.
    candidates.sort(key=lambda s: (-len(s.slices), s.thickness if s.thickness is not None else 99.0, s.number))
    chosen = candidates[0] if candidates else None
    if chosen is not None:
        for s in candidates[1:]:
            s.reason = f"another series of the study was read (series {chosen.number})"
        chosen.chosen, chosen.reason = True, "read"
    return Selection(chosen, series, mixed_modalities=len(modalities - {None}) > 1)
