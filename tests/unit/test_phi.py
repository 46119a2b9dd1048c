"""A DICOM carrying patient identifiers leaves none in DynamoDB, logs or preview images."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pydicom

from strokelens.reader.imaging.dicom import DICOM_TAG_ALLOWLIST
from strokelens.core.records import new_pending, new_scan_id, upload_key
from tests.conftest import sqs_s3_event
from phantoms import make_ct_slice, write_dicom

OWNER = "0c9f7e1a-4444-4aaa-9bbb-000000000004"
PHI_VALUES = ("DOE", "JANE", "MRN12345", "19700101", "ACC999", "General Hospital", "HOUSE", "GREGORY")


def png_chunk_types(png: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        types.append(png[pos + 4:pos + 8])
        pos += 12 + length
    return types


def test_phi_never_leaves_the_upload(inference_app, resources, lambda_context, tmp_path, capsys):
    path = write_dicom(make_ct_slice(np.random.default_rng(7), size=256, lesion="hemorrhage"),
                       tmp_path / "phi.dcm", slope=0.5, intercept=-1024.0, phi=True)
    data = path.read_bytes()
    assert all(v.encode() in data for v in ("DOE^JANE", "MRN12345")), "the fixture really carries PHI"
    assert pydicom.dcmread(path).PatientID == "MRN12345"

    table = boto3.resource("dynamodb").Table(resources.table)
    scan_id = new_scan_id()
    table.put_item(Item=new_pending(OWNER, scan_id, content_type="application/dicom", modality="CT", retention_days=1))
    key = upload_key(OWNER, scan_id)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=resources.uploads_bucket, Key=key, Body=data)
    capsys.readouterr()
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data)), lambda_context)
    logs = capsys.readouterr()

    item = table.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "DONE"
    stored = json.dumps(item, default=str)
    assert item["result"]["dicom"]["Modality"] == "CT"  # technical tags are kept...
    assert set(item["result"]["dicom"]) <= set(DICOM_TAG_ALLOWLIST)
    for value in PHI_VALUES:  # ...identifiers are not, anywhere
        assert value not in stored
        assert value not in logs.out and value not in logs.err

    previews = s3.list_objects_v2(Bucket=resources.artifacts_bucket, Prefix=f"previews/{OWNER}/{scan_id}/")["Contents"]
    assert {p["Key"].rsplit("/", 1)[1] for p in previews} >= {"display.png", "model_input.png", "window_brain.png"}
    for obj in previews:
        png = s3.get_object(Bucket=resources.artifacts_bucket, Key=obj["Key"])["Body"].read()
        assert set(png_chunk_types(png)) <= {b"IHDR", b"IDAT", b"IEND"}, "no text or metadata chunks"
        for value in PHI_VALUES:
            assert value.encode() not in png


def test_a_damaged_dicom_is_logged_by_the_kind_of_failure_not_pydicoms_text(monkeypatch):
    """pydicom's error messages may quote an element's value (a name, a birth date); the refusal's
    detail, which is logged, keeps only the kind of failure."""
    import pytest

    from strokelens.core.errors import ScanError
    from strokelens.reader.imaging import dicom
    from strokelens.reader.imaging.decode import decode_image
    from tests.phi_dicom import SECRETS, identified_ct

    def hostile(data, deadline, stop_at_pixels=False):
        raise ValueError(f"invalid literal for int() with base 10: {SECRETS['PatientName']!r}")

    monkeypatch.setattr(dicom, "_read_dicom", hostile)
    with pytest.raises(ScanError) as info:
        decode_image(identified_ct())
    assert info.value.code == "CORRUPT_FILE" and info.value.detail == "ValueError"
    assert "Doe" not in str(info.value)
