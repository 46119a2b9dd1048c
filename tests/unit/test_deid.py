"""Server-side de-identification (pydicom) with the rules the browser uses: nothing identifying
left in the bytes, pixels and reading geometry untouched, UIDs replaced consistently."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread

from strokelens.reader.imaging.deid import check_and_deidentify, deidentify, identifying, replace_uid
from tests.phi_dicom import UID_SECRET, identified_ct, leaked


def _roundtrip(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("kind", [{}, {"frames": 3}, {"compressed": True}, {"implicit": True}])
def test_every_identifier_is_gone_from_the_bytes(kind):
    raw = identified_ct(**kind)
    assert len(leaked(raw)) > 10, "the fixture must really carry identifiers"
    ds = dcmread(io.BytesIO(raw))
    before = ds.pixel_array.copy()
    counts = deidentify(ds, salt="session-1")
    assert {"patient", "institution", "names", "study", "dates", "uids", "private", "overlays"} <= set(counts)
    clean = _roundtrip(ds)
    assert leaked(clean) == []
    again = dcmread(io.BytesIO(clean))
    assert identifying(again) == {}
    np.testing.assert_array_equal(again.pixel_array, before)
    for keyword in ("Modality", "RescaleSlope", "RescaleIntercept", "PixelSpacing", "Rows", "Columns",
                    "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber"):
        assert again.get(keyword) == ds.get(keyword) and again.get(keyword) is not None
    assert again.file_meta.TransferSyntaxUID == dcmread(io.BytesIO(raw)).file_meta.TransferSyntaxUID
    assert again.PatientIdentityRemoved == "YES" and "Basic Profile" in again.DeidentificationMethod


def test_uids_map_consistently_within_a_session_and_differ_across_sessions():
    a1 = dcmread(io.BytesIO(identified_ct(instance=1)))
    a2 = dcmread(io.BytesIO(identified_ct(instance=2)))
    deidentify(a1, "s")
    deidentify(a2, "s")
    assert a1.StudyInstanceUID == a2.StudyInstanceUID == replace_uid(UID_SECRET, "s")
    assert a1.SeriesInstanceUID == a2.SeriesInstanceUID and a1.SOPInstanceUID != a2.SOPInstanceUID
    assert a1.file_meta.MediaStorageSOPInstanceUID == a1.SOPInstanceUID
    assert replace_uid(UID_SECRET, "other") != a1.StudyInstanceUID
    assert len(a1.SOPInstanceUID) <= 64 and a1.SOPInstanceUID.startswith("2.25.")


def test_who_removed_identifiers_is_told_apart():
    ds = dcmread(io.BytesIO(identified_ct()))
    first = check_and_deidentify(ds, "s")
    assert first.removed_by == "server" and first.counts["patient"] >= 3
    browser_like = dcmread(io.BytesIO(_roundtrip(ds)))
    browser_like.DeidentificationMethod = browser_like.DeidentificationMethod.replace("(server)", "(browser)")
    assert check_and_deidentify(browser_like, "s").removed_by == "browser"


def test_an_unlisted_name_or_date_counts_only_when_it_holds_a_value():
    ds = dcmread(io.BytesIO(identified_ct()))
    deidentify(ds, salt="s")
    ds.add_new(0x0040A075, "PN", "")  # VerifyingObserverName, empty
    ds.add_new(0x00400250, "DA", "")  # PerformedProcedureStepEndDate, empty
    assert identifying(ds) == {}, "an empty name or date identifies no one: not 'removed by the server'"
    ds.add_new(0x0040A075, "PN", "Observer^Olga")
    ds.add_new(0x00400250, "DA", "20261129")
    assert identifying(ds) == {"names": 1, "dates": 1}
