"""Every bad upload in the generated corpus ends FAILED with its exact code, through the handler."""

from __future__ import annotations

import boto3
import pytest

from strokelens.core.errors import MESSAGES
from strokelens.core.records import new_pending, new_scan_id, upload_key
from tests.bad_inputs import corpus
from tests.conftest import sqs_s3_event

OWNER = "0c9f7e1a-3333-4aaa-9bbb-000000000003"
CASES = corpus()


def test_the_corpus_is_broad():
    assert len(CASES) >= 25
    assert len({code for _, code in CASES.values()}) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_upload_ends_failed_with_its_code(name, inference_app, resources, lambda_context):
    data, code = CASES[name]
    table = boto3.resource("dynamodb").Table(resources.table)
    scan_id = new_scan_id()
    table.put_item(Item=new_pending(OWNER, scan_id, content_type="image/png", modality=None, retention_days=1))
    key = upload_key(OWNER, scan_id)
    boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=data)
    response = inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data)), lambda_context)
    assert response == {"batchItemFailures": []}, "bad input is final, never retried"
    item = table.get_item(Key={"owner_id": OWNER, "scan_id": scan_id})["Item"]
    assert item["status"] == "FAILED"
    assert item["error"] == {"code": code, "message": MESSAGES[code]}
