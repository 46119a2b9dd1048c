"""Dead-letter consumer and the attempts bound: whatever SQS gives up on ends FAILED with a reason."""

from __future__ import annotations

import importlib
import json
import sys

import boto3
import pytest

from strokelens.core.records import new_pending, new_scan_id, upload_key
from tests.conftest import sqs_s3_event

OWNER = "0c9f7e1a-1111-4aaa-9bbb-000000000001"


@pytest.fixture
def dlq_app(resources):
    name = "strokelens.dlq.app"
    return importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)


@pytest.fixture
def scans(resources):
    return boto3.resource("dynamodb").Table(resources.table)


def _pending(scans, **extra):
    scan_id = new_scan_id()
    scans.put_item(Item={**new_pending(OWNER, scan_id, content_type="image/png", modality=None, retention_days=1), **extra})
    return scan_id


def _dead_letter(dlq_app, resources, lambda_context, scan_id):
    event = sqs_s3_event(resources.uploads_bucket, upload_key(OWNER, scan_id), 10, receive_count=1)
    return dlq_app.handler(event, lambda_context)


def test_a_scan_that_was_tried_and_died_ends_read_aborted(dlq_app, resources, scans, lambda_context):
    scan_id = _pending(scans, status="PROCESSING", attempts=3, lease_until=1, claim_token="dead")
    assert _dead_letter(dlq_app, resources, lambda_context, scan_id) == {"batchItemFailures": []}
    item = scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "FAILED" and item["error"]["code"] == "READ_ABORTED"
    assert "claim_token" not in item and "lease_until" not in item


def _exists(resources, key: str) -> bool:
    return boto3.client("s3").list_objects_v2(Bucket=resources.uploads_bucket, Prefix=key)["KeyCount"] > 0


def test_a_dead_lettered_scan_loses_its_raw_upload(dlq_app, resources, scans, lambda_context):
    """The raw file may carry identifiers: once the scan is FAILED nothing needs it."""
    scan_id = _pending(scans, status="PROCESSING", attempts=3, lease_until=1, claim_token="dead")
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=b"raw")
    _dead_letter(dlq_app, resources, lambda_context, scan_id)
    assert scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]["status"] == "FAILED"
    assert not _exists(resources, key)


def test_a_dead_lettered_study_loses_its_files_and_a_live_one_keeps_its_own(dlq_app, resources, scans,
                                                                                     lambda_context):
    from strokelens.core.studies import study_upload_key

    s3 = boto3.client("s3")
    study_id = _pending(scans, status="PROCESSING", attempts=3, lease_until=1, claim_token="dead",
                        files_expected=3, arrived={0, 2})
    keys = [study_upload_key(OWNER, study_id, i) for i in range(3)]
    for key in keys:
        s3.put_object(Bucket=resources.uploads_bucket, Key=key, Body=b"raw")
    event = sqs_s3_event(resources.uploads_bucket, keys[1], 3, receive_count=1)  # file 1's arrival never recorded
    assert dlq_app.handler(event, lambda_context) == {"batchItemFailures": []}
    assert [_exists(resources, k) for k in keys] == [False, False, False]  # the arrived ones and the dead-lettered one
    live = _pending(scans, status="PROCESSING", attempts=1, lease_until=4_000_000_000, claim_token="live")
    s3.put_object(Bucket=resources.uploads_bucket, Key=upload_key(OWNER, live), Body=b"raw")
    _dead_letter(dlq_app, resources, lambda_context, live)
    assert _exists(resources, upload_key(OWNER, live))


def test_an_upload_left_behind_by_a_failed_scan_is_deleted_on_redelivery(dlq_app, resources, scans, lambda_context):
    """The record may already be FAILED (this consumer crashed between the update and the deletes):
    a final failure needs no file, so the redelivered message still deletes it."""
    scan_id = _pending(scans, status="FAILED", attempts=3)
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=b"raw")
    _dead_letter(dlq_app, resources, lambda_context, scan_id)
    assert not _exists(resources, key)


def test_a_scan_never_started_ends_not_processed(dlq_app, resources, scans, lambda_context):
    scan_id = _pending(scans)
    _dead_letter(dlq_app, resources, lambda_context, scan_id)
    item = scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "FAILED" and item["error"]["code"] == "NOT_PROCESSED"


@pytest.mark.parametrize("status", ["DONE", "FAILED"])
def test_a_finished_scan_is_left_alone(dlq_app, resources, scans, lambda_context, status):
    scan_id = _pending(scans, status=status, attempts=1)
    _dead_letter(dlq_app, resources, lambda_context, scan_id)
    assert scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]["status"] == status


def test_a_live_attempt_is_not_failed_under_its_feet(dlq_app, resources, scans, lambda_context):
    scan_id = _pending(scans, status="PROCESSING", attempts=1, lease_until=4_000_000_000, claim_token="live")
    _dead_letter(dlq_app, resources, lambda_context, scan_id)
    assert scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]["status"] == "PROCESSING"


def test_malformed_dead_letters_are_consumed(dlq_app, resources, lambda_context):
    event = sqs_s3_event(resources.uploads_bucket, "uploads/x/y", 1)
    event["Records"][0]["body"] = "not json"
    event["Records"].append({**event["Records"][0], "messageId": "b", "body": json.dumps({"Records": [{"s3": {}}]})})
    assert dlq_app.handler(event, lambda_context) == {"batchItemFailures": []}


def test_a_spent_scan_is_failed_at_its_next_delivery_not_read_again(inference_app, resources, scans, ct_png,
                                                                    lambda_context, monkeypatch):
    """The attempts counter survives crashes: after MAX_RECEIVE_COUNT claims, no new read starts."""
    limit = int(resources.stack.parameters["MaxReceiveCount"])
    scan_id = _pending(scans, status="PROCESSING", attempts=limit, lease_until=1, claim_token="dead")
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png)
    monkeypatch.setattr(inference_app.SCAN_PIPELINE, "read_scan",
                        lambda *a, **k: pytest.fail("a spent scan must not be read"))
    assert inference_app.process_object(key, len(ct_png), 1) == "failed:READ_ABORTED"
    item = scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "FAILED" and item["error"]["code"] == "READ_ABORTED"


def test_records_are_not_started_without_time_to_finish(inference_app, resources, scans, ct_png, monkeypatch):
    scan_id = _pending(scans)
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png)
    from infra.lambda_context import FakeContext

    context = FakeContext()
    monkeypatch.setattr(context, "get_remaining_time_in_millis", lambda: 1000)
    event = sqs_s3_event(resources.uploads_bucket, key, len(ct_png), message_id="late")
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):  # every record failed: the invocation fails, SQS redelivers
        inference_app.handler(event, context)
    item = scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "PENDING" and "attempts" not in item, "not claimed, not counted"


def test_a_replaced_upload_is_not_read_in_place_of_the_announced_one(inference_app, resources, scans, ct_png):
    scan_id = _pending(scans)
    key = upload_key(OWNER, scan_id)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png)
    event = sqs_s3_event(resources.uploads_bucket, key, len(ct_png))  # carries the first object's ETag
    s3.put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png + b"changed")
    body = json.loads(event["Records"][0]["body"])
    obj = body["Records"][0]["s3"]["object"]
    assert inference_app.process_object(key, obj["size"], 1, obj["eTag"]) == "failed:UPLOAD_REPLACED"


def test_a_dead_lettered_scan_deadline_leaves_the_scan_to_its_own_messages(dlq_app, resources, scans, lambda_context):
    """Its file may have come (this consumer cannot look): the scan is not failed here."""
    from strokelens.core.records import scan_deadline_message

    scan_id = _pending(scans)
    event = sqs_s3_event(resources.uploads_bucket, "unused", 0)
    event["Records"][0]["body"] = scan_deadline_message(OWNER, scan_id)
    assert dlq_app.handler(event, lambda_context) == {"batchItemFailures": []}
    assert scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]["status"] == "PENDING"
