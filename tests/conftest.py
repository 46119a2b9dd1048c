"""Shared fixtures: moto AWS built from template.yaml, JSON event fixtures, a fake Lambda context."""

from __future__ import annotations

import copy
import importlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "events"
SHARED_DATA = ROOT.parent / "shared" / "data"
CT_DATA = SHARED_DATA / "ct-hemorrhage"


def load_event(name: str) -> dict:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def sqs_s3_event(bucket: str, key: str, size: int, receive_count: int = 1, message_id: str | None = None) -> dict:
    """The SQS-wrapped S3 notification fixture, pointed at one object (key URL-encoded as S3 does)."""
    from urllib.parse import quote_plus

    event = load_event("sqs_s3_object_created.json")
    record = event["Records"][0]
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    body["Records"][0]["s3"]["object"].update(key=quote_plus(key, safe="/"), size=size)
    try:  # S3 sends the new object's ETag; the fixture's is the empty file's
        import boto3

        etag = boto3.client("s3").head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        body["Records"][0]["s3"]["object"]["eTag"] = etag
    except Exception:  # no such object (a test of a missing upload): keep the fixture's
        pass
    record["body"] = json.dumps(body)
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    if message_id:
        record["messageId"] = message_id
    return event


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def lambda_context():
    from infra.lambda_context import FakeContext

    return FakeContext()


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def stack():
    from infra.template import Stack

    return Stack.load()


@pytest.fixture
def resources(aws, stack, monkeypatch):
    """Buckets, queues and table created in moto from template.yaml; handler env from it too."""
    from infra.local_stack import provision

    res = provision(stack, with_cognito=False)
    for key, value in res.environment().items():
        monkeypatch.setenv(key, value)
    return res


def _fresh(name: str):
    return importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)


@pytest.fixture
def api_app(resources):
    return _fresh("strokelens.api.app")


@pytest.fixture
def inference_app(resources):
    return _fresh("strokelens.inference.app")


@pytest.fixture(scope="session")
def ct_png() -> bytes:
    """A real head CT slice from the shared data set (read there, never copied)."""
    assert CT_DATA.is_dir(), f"the shared data set is expected at {CT_DATA}"
    return sorted((CT_DATA / "hemorrhage").glob("*.png"))[0].read_bytes()
