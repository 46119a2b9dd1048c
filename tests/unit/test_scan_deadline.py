"""A single scan whose file never comes ends FAILED/UPLOAD_NOT_RECEIVED in the table, not only in the
API's view: POST /scans sends a deadline message delayed past the upload link's life and grace (SQS
caps the delay at 900 s, so an early deadline is sent again for the rest); the inference function
ends the scan only if it is still PENDING, was never claimed and has no upload in the bucket (a file
whose notification is still queued is read, never called missing). Real moto S3/DynamoDB/SQS built
from template.yaml."""

from __future__ import annotations

import json

import boto3
import pytest

from strokelens.core.errors import MESSAGES
from strokelens.core.records import new_pending, new_scan_id, scan_deadline_message, upload_key
from tests.conftest import sqs_s3_event
from tests.unit.test_api_handler import OWNER, call


@pytest.fixture
def scans(resources):
    return boto3.resource("dynamodb").Table(resources.table)


def _deadline(inference_app, resources, lambda_context, scan_id: str) -> dict:
    event = sqs_s3_event(resources.uploads_bucket, "unused", 0)
    event["Records"][0]["body"] = scan_deadline_message(OWNER, scan_id)
    return inference_app.handler(event, lambda_context)


def _created_long_ago(scans, scan_id: str) -> None:
    """Time passes: the upload link and its grace are over."""
    scans.update_item(Key={"owner_id": OWNER, "scan_id": scan_id}, UpdateExpression="SET created_at = :t",
                      ExpressionAttributeValues={":t": "2026-01-01T00:00:00Z"})


def _delayed(resources) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=resources.queue_url,
                                                          AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def _item(scans, scan_id: str) -> dict:
    return scans.get_item(Key={"owner_id": OWNER, "scan_id": scan_id}, ConsistentRead=True)["Item"]


def test_creating_a_scan_sends_its_deadline_and_an_early_one_is_sent_again(api_app, inference_app, resources,
                                                                          scans, lambda_context):
    before = _delayed(resources)
    status, body = call(api_app, lambda_context, method="POST", path="/scans",
                        body={"filename": "slice.png", "content_type": "image/png"})
    assert status == 201 and _delayed(resources) == before + 1
    # A deadline handled while the link (+ grace) still runs, e.g. SQS's 900 s cap at 840 s links:
    assert inference_app.scan_deadline(OWNER, body["scan_id"]) == "deferred"
    assert _delayed(resources) == before + 2 and _item(scans, body["scan_id"])["status"] == "PENDING"


def test_a_scan_whose_file_never_came_ends_failed_in_the_table(api_app, inference_app, resources, scans,
                                                                lambda_context):
    status, body = call(api_app, lambda_context, method="POST", path="/scans",
                        body={"filename": "slice.png", "content_type": "image/png"})
    scan_id = body["scan_id"]
    _created_long_ago(scans, scan_id)
    assert _deadline(inference_app, resources, lambda_context, scan_id) == {"batchItemFailures": []}
    item = _item(scans, scan_id)
    assert item["status"] == "FAILED" and item["error"] == {"code": "UPLOAD_NOT_RECEIVED",
                                                            "message": MESSAGES["UPLOAD_NOT_RECEIVED"]}
    _, view = call(api_app, lambda_context, path=f"/scans/{scan_id}")
    assert view["status"] == "FAILED" and view["error"]["code"] == "UPLOAD_NOT_RECEIVED"


def test_a_file_that_came_but_is_still_queued_is_read_not_called_missing(inference_app, resources, scans,
                                                                        lambda_context, ct_png):
    scan_id = new_scan_id()
    scans.put_item(Item=new_pending(OWNER, scan_id, content_type="image/png", modality=None, retention_days=1))
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=ct_png)
    _created_long_ago(scans, scan_id)
    assert inference_app.scan_deadline(OWNER, scan_id) == "arrived"  # before the backed-up notification
    assert _item(scans, scan_id)["status"] == "PENDING"
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(ct_png)), lambda_context)
    assert _item(scans, scan_id)["status"] == "DONE"


@pytest.mark.parametrize("state", [{"status": "PENDING", "attempts": 1},  # claimed, released: its retry comes
                                   {"status": "DONE", "attempts": 1},
                                   {"status": "PROCESSING", "attempts": 1, "lease_until": 4_000_000_000}])
def test_a_scan_that_was_claimed_is_left_to_its_own_messages(inference_app, resources, scans, lambda_context, state):
    scan_id = new_scan_id()
    scans.put_item(Item={**new_pending(OWNER, scan_id, content_type="image/png", modality=None, retention_days=1),
                         **state})
    _created_long_ago(scans, scan_id)
    assert inference_app.scan_deadline(OWNER, scan_id) == "not-waiting"
    item = _item(scans, scan_id)
    assert item["status"] == state["status"] and "error" not in item


def test_a_malformed_scan_deadline_is_dropped(inference_app, resources, scans, lambda_context):
    event = sqs_s3_event(resources.uploads_bucket, "unused", 0)
    event["Records"][0]["body"] = json.dumps({"scan_deadline": {"owner_id": "not-an-owner", "scan_id": "x"}})
    assert inference_app.handler(event, lambda_context) == {"batchItemFailures": []}
