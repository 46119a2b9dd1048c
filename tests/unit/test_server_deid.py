"""A client that skips the browser's de-identification: the server removes identifiers, says so,
and deletes the raw upload right after reading it, whatever the outcome."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from pydicom import dcmread

from tests.phi_dicom import identified_ct, leaked
from tests.conftest import sqs_s3_event
from tests.unit.test_inference_handler import record, upload


@pytest.fixture
def scans(resources):
    return boto3.resource("dynamodb").Table(resources.table)


def _exists(bucket: str, key: str) -> bool:
    try:
        boto3.client("s3").head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def _stored_bytes(resources, item) -> bytes:
    """Everything kept about the scan: the DynamoDB item and every preview image."""
    s3 = boto3.client("s3")
    blobs = [json.dumps(item, default=str).encode()]
    blobs += [s3.get_object(Bucket=resources.artifacts_bucket, Key=k)["Body"].read() for k in item.get("previews", {}).values()]
    return b"".join(blobs)


def test_raw_identified_dicom_is_deidentified_on_the_server_and_deleted(inference_app, resources, scans, lambda_context):
    raw = identified_ct()
    scan_id, key = upload(resources, scans, raw)
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(raw)), lambda_context)
    item = record(scans, scan_id)
    assert item["status"] == "DONE"
    assert item["result"]["deidentification"]["removed_by"] == "server"
    assert {"patient", "institution", "private"} <= set(item["result"]["deidentification"]["counts"])
    assert any(w["code"] == "IDENTIFIERS_REMOVED_ON_SERVER" for w in item["warnings"])
    assert leaked(_stored_bytes(resources, item)) == []
    assert not _exists(resources.uploads_bucket, key), "the raw upload is deleted once the scan is final"


def test_a_browser_deidentified_dicom_reads_the_same_and_says_so(inference_app, resources, scans, lambda_context):
    from strokelens.reader.imaging.deid import BROWSER_METHOD, deidentify

    ds = dcmread(io.BytesIO(identified_ct()))
    deidentify(ds, "browser-session")
    ds.DeidentificationMethod = BROWSER_METHOD
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    clean = out.getvalue()
    raw = identified_ct()
    ids = [upload(resources, scans, data) for data in (clean, raw)]
    for (_scan_id, key), data in zip(ids, (clean, raw)):
        inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data)), lambda_context)
    browser, server = (record(scans, scan_id) for scan_id, _ in ids)
    assert browser["result"]["deidentification"] == {"removed_by": "browser", "counts": {}}
    assert not any(w["code"] == "IDENTIFIERS_REMOVED_ON_SERVER" for w in browser["warnings"])
    assert browser["result"]["probabilities"] == server["result"]["probabilities"], "same pixels, same reading"


def test_a_refused_upload_is_deleted_too(inference_app, resources, scans, lambda_context):
    scan_id, key = upload(resources, scans, b"%PDF-1.4 Jane Doe's report")
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, 26), lambda_context)
    assert record(scans, scan_id)["status"] == "FAILED"
    assert not _exists(resources.uploads_bucket, key)


def test_a_reused_upload_form_after_reading_is_deleted_unread(inference_app, resources, scans, ct_png, lambda_context):
    scan_id, key = upload(resources, scans, ct_png)
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png)), lambda_context)
    first = record(scans, scan_id)
    assert first["status"] == "DONE" and first["upload_etag"]
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png + b"other file")
    event = sqs_s3_event(resources.uploads_bucket, key, len(ct_png) + 10, message_id="reuse")
    inference_app.handler(event, lambda_context)
    assert record(scans, scan_id) == first, "the result stays with the file that was read"
    assert not _exists(resources.uploads_bucket, key)
