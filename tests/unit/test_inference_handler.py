"""Inference handler with SQS/S3 event fixtures against moto: results, bad input, idempotency, retries."""

from __future__ import annotations

import importlib

from strokelens.core.schema import Notice, SliceResult

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from strokelens.core.records import new_pending, new_scan_id, upload_key
from tests.conftest import EVENTS, load_event, sqs_s3_event

OWNER = "0c9f7e1a-1111-4aaa-9bbb-000000000001"
SCAN_MODULE = "strokelens.inference.scan"  # the single-scan pipeline: reads uploads, writes previews


@pytest.fixture
def scans(resources):
    return boto3.resource("dynamodb").Table(resources.table)


def upload(resources, scans, data: bytes, modality: str | None = None, text_reported: bool = False) -> tuple[str, str]:
    scan_id = new_scan_id()
    scans.put_item(Item=new_pending(OWNER, scan_id, content_type="image/png", modality=modality, retention_days=1,
                                    text_reported=text_reported))
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=data)
    return scan_id, key


def record(scans, scan_id):
    return scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]


def test_real_ct_slice_is_read(inference_app, resources, scans, ct_png, lambda_context):
    scan_id, key = upload(resources, scans, ct_png)
    response = inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png)), lambda_context)
    assert response == {"batchItemFailures": []}
    item = record(scans, scan_id)
    assert item["status"] == "DONE"
    probs = {k: float(v) for k, v in item["result"]["probabilities"].items()}
    assert set(probs) == set(inference_app.MODEL.labels)
    assert abs(sum(probs.values()) - 1) < 1e-6
    assert item["result"]["label"] == max(probs, key=probs.get)
    assert item["result"]["model_version"] == inference_app.MODEL.version
    assert float(item["timings_ms"]["cnn"]) > 0 and "claim_token" not in item


def test_duplicate_event_is_not_processed_twice(inference_app, resources, scans, ct_png, lambda_context):
    scan_id, key = upload(resources, scans, ct_png)
    event = sqs_s3_event(resources.uploads_bucket, key, len(ct_png))
    inference_app.handler(event, lambda_context)
    first = record(scans, scan_id)
    assert inference_app.process_object(key, len(ct_png), 1) == "duplicate"
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png), message_id="another"), lambda_context)
    second = record(scans, scan_id)
    assert second == first and int(second["attempts"]) == 1


@pytest.mark.parametrize("data, size, code", [
    (b"%PDF-1.4 not an image", None, "UNSUPPORTED_FORMAT"),
    (b"", 0, "EMPTY_FILE"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, None, "CORRUPT_FILE"),
])
def test_bad_input_ends_failed_with_a_code(inference_app, resources, scans, lambda_context, data, size, code):
    scan_id, key = upload(resources, scans, data)
    response = inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data) if size is None else size),
                                     lambda_context)
    assert response == {"batchItemFailures": []}, "bad input is final: no retry"
    item = record(scans, scan_id)
    assert item["status"] == "FAILED" and item["error"]["code"] == code and item["error"]["message"]


def _refuse_reads(monkeypatch, inference_app) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"the upload was read: {args[2:3]}")

    monkeypatch.setattr(SCAN_MODULE + ".read_upload", refuse)


def _outcomes(monkeypatch, inference_app) -> list[str]:
    """What process_object returned for each object the handler processed, in order."""
    outcomes: list[str] = []
    real = inference_app.process_object
    monkeypatch.setattr(inference_app, "process_object", lambda *a, **k: outcomes.append(real(*a, **k)) or outcomes[-1])
    return outcomes


def test_oversize_object_is_refused_without_reading_it(inference_app, resources, scans, lambda_context, monkeypatch):
    scan_id, key = upload(resources, scans, b"x")
    too_big = int(resources.stack.parameters["UploadMaxBytes"]) + 1
    _refuse_reads(monkeypatch, inference_app)
    outcomes = _outcomes(monkeypatch, inference_app)
    response = inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, too_big), lambda_context)
    assert response == {"batchItemFailures": []}, "too large is final: no retry"
    assert outcomes == ["failed:TOO_LARGE"]
    item = record(scans, scan_id)
    assert item["status"] == "FAILED" and item["error"]["code"] == "TOO_LARGE"


def test_foreign_keys_and_test_events_are_ignored(inference_app, resources, scans, lambda_context, monkeypatch):
    event = sqs_s3_event(resources.uploads_bucket, "uploads/not-ours.png", 10)
    test_event = load_event("sqs_s3_object_created.json")
    test_event["Records"][0]["body"] = (EVENTS / "s3_test_event.json").read_text()
    _refuse_reads(monkeypatch, inference_app)
    outcomes = _outcomes(monkeypatch, inference_app)
    assert inference_app.handler(event, lambda_context) == {"batchItemFailures": []}
    assert outcomes == ["ignored"]
    assert inference_app.handler(test_event, lambda_context) == {"batchItemFailures": []}
    assert outcomes == ["ignored"], "the S3 test event carries no object: nothing is processed"
    assert scans.scan()["Items"] == [], "nothing was written"


def test_unexpected_error_fails_only_that_record_and_releases_the_claim(
        inference_app, resources, scans, ct_png, lambda_context, monkeypatch):
    good_id, good_key = upload(resources, scans, ct_png)
    bad_id, bad_key = upload(resources, scans, ct_png)
    real_read = importlib.import_module(SCAN_MODULE).read_upload

    def flaky(s3, bucket, key, max_bytes, etag=None):
        if key == bad_key:
            raise ConnectionError("S3 hiccup")
        return real_read(s3, bucket, key, max_bytes, etag)

    monkeypatch.setattr(SCAN_MODULE + ".read_upload", flaky)
    event = sqs_s3_event(resources.uploads_bucket, good_key, len(ct_png))
    event["Records"] += sqs_s3_event(resources.uploads_bucket, bad_key, len(ct_png), message_id="bad-one")["Records"]
    response = inference_app.handler(event, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "bad-one"}]}
    assert record(scans, good_id)["status"] == "DONE"
    assert record(scans, bad_id)["status"] == "PENDING", "released so the SQS retry can claim it"

    # The last allowed delivery records a clinician-readable failure and still fails, so the DLQ keeps
    # the message (a batch whose every record failed raises, failing the whole invocation).
    last = int(resources.stack.parameters["MaxReceiveCount"])
    with pytest.raises(BatchProcessingError):
        inference_app.handler(
            sqs_s3_event(resources.uploads_bucket, bad_key, len(ct_png), receive_count=last, message_id="bad-one"),
            lambda_context)
    item = record(scans, bad_id)
    assert item["status"] == "FAILED" and item["error"]["code"] == "INTERNAL_ERROR"


def test_a_crashed_attempt_can_be_reclaimed_after_its_lease(resources, scans):
    from strokelens.aws.scans_table import ScansTable

    table = ScansTable(scans)
    scan_id = new_scan_id()
    scans.put_item(Item=new_pending(OWNER, scan_id, content_type="image/png", modality=None, retention_days=1))
    assert table.claim(OWNER, scan_id, "first", lease_seconds=60, now=1000) is not None
    assert table.claim(OWNER, scan_id, "second", lease_seconds=60, now=1030) is None  # still leased
    assert table.claim(OWNER, scan_id, "third", lease_seconds=60, now=1100) is not None  # lease ran out
    result = SliceResult(label="x", model_label="x", probabilities={"x": 1.0}, uncertain=False,
                         out_of_distribution=False, ood_reason=None, model_version="v", synthetic_model=False,
                         modality="CT", source_format="png", preprocessing="", image_size=[1, 1])
    assert not table.complete(OWNER, scan_id, "first", result, {}, []), "a stale attempt cannot finish"
    assert table.complete(OWNER, scan_id, "third", result, {}, [Notice.of("INDETERMINATE")])
    item = table.get(OWNER, scan_id)
    assert item["result"]["label"] == "x" and "heatmap" not in item["result"] and "dicom" not in item["result"]
    assert item["warnings"] == [{"code": "INDETERMINATE", "message": Notice.of("INDETERMINATE").message}]


def test_a_failed_preview_write_is_retried_not_lost(inference_app, resources, scans, ct_png, lambda_context, monkeypatch):
    scan_id, key = upload(resources, scans, ct_png)

    def broken(*args, **kwargs):
        raise ConnectionError("S3 PutObject failed")

    monkeypatch.setattr(SCAN_MODULE + ".write_preview", broken)
    with pytest.raises(BatchProcessingError):
        inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png)), lambda_context)
    assert record(scans, scan_id)["status"] == "PENDING", "claim released for the SQS retry"
    monkeypatch.undo()
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png), receive_count=2), lambda_context)
    assert record(scans, scan_id)["status"] == "DONE"
