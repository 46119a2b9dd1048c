"""Model v2 routing: DICOM tags decide, a declared modality is checked by the learned router, and
other MRI sequences are refused with a reason, never read as DWI."""

from __future__ import annotations

import pytest

from strokelens.reader.model.findings import Route, decide_route, stroke_type


@pytest.mark.parametrize("router", [None, "CT", "MR-DWI"])
def test_dicom_ct_header_wins(router) -> None:
    route = decide_route("CT", None, "MR", router)
    assert route.modality == "CT" and route.refusal is None
    assert (route.warning is None) == (router in (None, "CT"))


def test_dicom_mr_sequences() -> None:
    assert decide_route("MR", "DWI", None, "MR-DWI").modality == "MR-DWI"
    other = decide_route("MR", "other", None, "MR-DWI")  # the header names T1/T2/FLAIR: refused
    assert other.modality == "MR-other" and "DWI" in other.refusal
    unnamed = decide_route("MR", None, None, "MR-other")
    assert unnamed.refusal is not None
    looks_dwi = decide_route("MR", None, None, "MR-DWI")
    assert looks_dwi.modality == "MR-DWI" and looks_dwi.warning


def test_declared_modality_checked_by_router() -> None:
    assert decide_route(None, None, "CT", "CT") == Route("CT", None, None, "CT")  # read as CT, no refusal or warning
    assert decide_route(None, None, "MR", "MR-DWI").modality == "MR-DWI"
    mismatch = decide_route(None, None, "CT", "MR-DWI")
    assert mismatch.modality is None and "Declared CT" in mismatch.refusal
    assert "CT" in decide_route(None, None, "MR", "CT").refusal
    t2 = decide_route(None, None, "MR", "MR-other")
    assert t2.modality == "MR-other" and t2.refusal
    unsure = decide_route(None, None, "CT", "MR-other", confidence=0.6)  # an unsure router only warns
    assert unsure.modality == "CT" and unsure.refusal is None and "0.60" in unsure.warning
    undeclared = decide_route(None, None, None, "CT")
    assert undeclared.modality == "CT" and undeclared.warning


def test_stroke_type_follows_finding() -> None:
    assert stroke_type("hemorrhage", "hemorrhage") == "haemorrhagic"
    assert stroke_type("ischemic", "ischemic") == "ischaemic"
    assert stroke_type("ischemic", "normal") == "no finding"
    assert stroke_type(None, None) == "not assessed"


def test_mr_sequence_from_dicom_tags() -> None:
    from pydicom.dataset import Dataset

    from strokelens.reader.imaging.dicom import mr_sequence_of

    def ds(**tags):
        d = Dataset()
        for k, v in tags.items():
            setattr(d, k, v)
        return d

    assert mr_sequence_of(ds(DiffusionBValue=1000)) == "DWI"
    assert mr_sequence_of(ds(SeriesDescription="ep2d_diff_3scan_trace")) == "DWI"
    assert mr_sequence_of(ds(ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"])) == "DWI"
    assert mr_sequence_of(ds(SeriesDescription="AX T2 FLAIR")) == "other"
    assert mr_sequence_of(ds(ProtocolName="t1_mprage_sag")) == "other"
    assert mr_sequence_of(ds(SeriesDescription="head routine")) is None
    assert mr_sequence_of(ds()) is None
    # what the served route makes of them
    assert decide_route("MR", mr_sequence_of(ds(SeriesDescription="AX T2 FLAIR")), "MR", "MR-DWI").refusal
