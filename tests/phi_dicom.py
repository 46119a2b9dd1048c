"""DICOM files full of identifiers in every category the de-identification rules name (test data)."""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

# Values that must never survive de-identification, anywhere in the bytes.
SECRETS = {
    "PatientName": "Doe^Jane^Q", "PatientID": "MRN-99887766", "PatientBirthDate": "19510317",
    "PatientAddress": "12 Elm Street Springfield", "OtherPatientIDs": "ALT-55443322",
    "InstitutionName": "Saint Example Hospital", "InstitutionAddress": "1 Hospital Way Springfield",
    "ReferringPhysicianName": "House^Gregory", "OperatorsName": "Tech^Tina", "StationName": "CTSTATION07",
    "AccessionNumber": "ACC-20261128-0042", "StudyID": "STUDY-7788", "StudyDescription": "HEAD WO Jane Doe",
    "StudyDate": "20261127", "StudyTime": "231502", "ManufacturerModelName": "Doe Jane scanner",
    "DeviceSerialNumber": "SN-4455667788", "ImageComments": "patient Jane Doe fell at home",
    # named by no list before the value-type rule: any person name, date or time goes
    "ConsultingPhysicianName": "Consult^Carla", "PerformedProcedureStepEndDate": "20261129",
    "PerformedProcedureStepEndTime": "011559", "StudyComments": "fall down stairs, Springfield",
    "PerformedStationName": "ER-BAY-3", "MedicalAlerts": "Penicillin allergy noted",
}
OBSERVER_SECRET = "Observer^Olga"
PRIVATE_SECRET = "PRIVATE-Jane-Doe-0001"
NESTED_SECRET = "Nested^Physician^Name"
UID_SECRET = "1.2.826.0.1.3680043.8.498.123456789"


def identified_ct(study_uid: str = UID_SECRET, series: str = "1", instance: int = 1, frames: int = 1,
                  compressed: bool = False, implicit: bool = False) -> bytes:
    """A CT DICOM (pydicom's CT_small pixels) carrying every identifier above, private tags, an
    overlay, a nested sequence with a name; optionally multi-frame, RLE-compressed or implicit VR."""
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in SECRETS.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = f"{study_uid}.{series}"
    ds.SOPInstanceUID = f"{study_uid}.{series}.{instance}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = instance
    block = ds.private_block(0x0011, "ACME Corp", create=True)
    block.add_new(0x01, "LO", PRIVATE_SECRET)
    ds.add_new(0x60000010, "US", ds.Rows)  # overlay group
    ds.add_new(0x60000011, "US", ds.Columns)
    ref = Dataset()
    ref.PerformingPhysicianName = NESTED_SECRET
    ds.ProcedureCodeSequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([ref])
    observer = Dataset()
    observer.VerifyingObserverName = OBSERVER_SECRET  # a name in a sequence no rule lists
    ds.VerifyingObserverSequence = Sequence([observer])
    if frames > 1:
        pixels = np.stack([ds.pixel_array] * frames)
        ds.NumberOfFrames = frames
        ds.PixelData = pixels.tobytes()
    if compressed:
        ds.compress("1.2.840.10008.1.2.5")  # RLE Lossless: decodable by pydicom alone
    out = io.BytesIO()
    if implicit:  # no VRs in the file: readers take them from the dictionary
        from pydicom.uid import ImplicitVRLittleEndian

        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    else:
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def leaked(data: bytes) -> list[str]:
    """Identifying values still present anywhere in the raw bytes (case-insensitive)."""
    haystack = data.lower()
    values = [*SECRETS.values(), PRIVATE_SECRET, NESTED_SECRET, OBSERVER_SECRET, UID_SECRET, "jane", "doe^"]
    return [v for v in values if v.lower().encode() in haystack]
