"""A study's read that dies (timeout, out of memory) is finished by a later message, never left
PROCESSING: the deadline landing while the read's lease is live is sent on for when the lease
runs out, a redelivered arrival reads a study whose lease ran out, and a study whose every read
dies ends FAILED/READ_ABORTED once its attempts are spent. Real moto S3/DynamoDB/SQS; the death
is injected in the process."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from strokelens.core.errors import MESSAGES
from strokelens.core.studies import deadline_message, study_upload_key
from tests.conftest import sqs_s3_event
from tests.unit.test_api_handler import OWNER
from tests.unit.test_studies import CT, create, get


class Killed(BaseException):
    """The invocation dies mid-read: Lambda's timeout or an out-of-memory kill runs none of our handlers."""


@pytest.fixture
def study(api_app, inference_app, resources, lambda_context, monkeypatch):
    """A two-file PNG study with file 0 arrived and file 1 uploaded (its notification not yet handled);
    every requeued message is recorded (and still sent to the real queue)."""
    files = [p.read_bytes() for p in CT[:2]]
    _, body = create(api_app, lambda_context, [{"filename": p.name, "content_type": "image/png"} for p in CT[:2]])
    study_id = body["study_id"]
    s3 = boto3.client("s3")
    for i, data in enumerate(files):
        s3.put_object(Bucket=resources.uploads_bucket, Key=study_upload_key(OWNER, study_id, i), Body=data)
    assert inference_app.process_object(study_upload_key(OWNER, study_id, 0), len(files[0]), 1) == "waiting"
    sent: list[tuple[str, int]] = []
    requeue = inference_app.STUDIES.requeue
    assert requeue is not None, "the handler's queue is configured from template.yaml"

    def recorded(message: str, delay: int) -> None:
        sent.append((message, delay))
        requeue(message, delay)

    monkeypatch.setattr(inference_app.STUDIES, "requeue", recorded)
    return study_id, files, sent


def _dies_with_the_deadline_landing(monkeypatch, inference_app, study_id, outcomes):
    """Every read dies after its claim; the first one's deadline message is handled meanwhile."""
    from strokelens.inference import study as study_module

    def dies(*args, **kwargs):
        if not outcomes:
            outcomes.append(inference_app.STUDIES.deadline(OWNER, study_id, 1))
        raise Killed

    monkeypatch.setattr(study_module, "read_study", dies)


def _lease_runs_out(resources, study_id) -> None:
    """Time passes: the dead attempt's lease is over (what a clock a lease later would see)."""
    boto3.resource("dynamodb").Table(resources.table).update_item(
        Key={"owner_id": OWNER, "scan_id": study_id}, UpdateExpression="SET lease_until = :t",
        ExpressionAttributeValues={":t": int(time.time()) - 1})


def _arrival(inference_app, study_id, files, receive_count):
    return inference_app.process_object(study_upload_key(OWNER, study_id, 1), len(files[1]), receive_count)


def _first_read_dies(monkeypatch, inference_app, study_id, files) -> list[str]:
    """The last arrival's read dies mid-way, the deadline landing meanwhile; returns the deadline's outcome."""
    outcomes: list[str] = []
    with monkeypatch.context() as m:
        _dies_with_the_deadline_landing(m, inference_app, study_id, outcomes)
        with pytest.raises(Killed):
            _arrival(inference_app, study_id, files, 1)
    return outcomes


def test_a_redelivered_arrival_finishes_a_read_that_died(api_app, inference_app, resources, lambda_context,
                                                         study, monkeypatch):
    study_id, files, sent = study
    outcomes = _first_read_dies(monkeypatch, inference_app, study_id, files)
    assert outcomes == ["requeued"], "the deadline, blocked by the live lease, is not consumed silently"
    assert len(sent) == 1 and sent[0][0] == deadline_message(OWNER, study_id)
    assert 1 <= sent[0][1] <= inference_app.CONFIG.lease_seconds + 1, "sent for when the lease runs out"
    assert _arrival(inference_app, study_id, files, 2) == "requeued", "a redelivery under a live lease is sent on"
    _lease_runs_out(resources, study_id)
    assert _arrival(inference_app, study_id, files, 3) == "done"
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "DONE" and view["progress"]["files_read"] == 2
    for message, _ in sent:  # the messages sent on find the study final and end there
        assert inference_app.STUDIES.deadline(**json.loads(message)["study_deadline"], receive_count=1) \
            == "already-final"


def test_the_requeued_deadline_finishes_a_read_that_died(api_app, inference_app, resources, lambda_context,
                                                         study, monkeypatch):
    """The arrival's own redelivery may never come back (it went to the DLQ consumer's queue, or
    was swallowed): the deadline sent on reads the study on its own."""
    study_id, files, sent = study
    outcomes = _first_read_dies(monkeypatch, inference_app, study_id, files)
    assert outcomes == ["requeued"]
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "PROCESSING"
    _lease_runs_out(resources, study_id)
    event = sqs_s3_event(resources.uploads_bucket, "x", 0)
    event["Records"][0]["body"] = sent[0][0]
    assert inference_app.handler(event, lambda_context) == {"batchItemFailures": []}
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "DONE" and view["result"]["counts"]["files"] == 2


def test_a_study_whose_every_read_dies_ends_read_aborted(api_app, inference_app, resources, lambda_context,
                                                         study, monkeypatch):
    study_id, files, sent = study
    outcomes: list[str] = []
    _dies_with_the_deadline_landing(monkeypatch, inference_app, study_id, outcomes)
    attempts = inference_app.CONFIG.max_receive_count
    for receive_count in range(1, attempts + 1):  # each delivery claims, then dies
        with pytest.raises(Killed):
            _arrival(inference_app, study_id, files, receive_count)
        _lease_runs_out(resources, study_id)
    assert outcomes == ["requeued"]
    item = boto3.resource("dynamodb").Table(resources.table).get_item(
        Key={"owner_id": OWNER, "scan_id": study_id})["Item"]
    assert item["status"] == "PROCESSING" and int(item["attempts"]) == attempts
    assert inference_app.STUDIES.deadline(OWNER, study_id, 1) == "failed:READ_ABORTED", "never read again"
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "FAILED" and view["error"] == {"code": "READ_ABORTED", "message": MESSAGES["READ_ABORTED"]}
    assert len(sent) == 1, "nothing is sent on once the study is final"
    assert _arrival(inference_app, study_id, files, 1) == "late"


def test_a_file_arriving_while_its_study_is_read_is_deleted_unread(inference_app, resources, study):
    """The read in progress has its files (the arrived set); a later file is never read, so its raw
    upload is deleted at once (it may carry identifiers), and the message is still sent on."""
    study_id, files, sent = study
    table = boto3.resource("dynamodb").Table(resources.table)
    table.update_item(Key={"owner_id": OWNER, "scan_id": study_id},
                      UpdateExpression="SET #s = :p, lease_until = :t, attempts = :a, claim_token = :c",
                      ExpressionAttributeNames={"#s": "status"},
                      ExpressionAttributeValues={":p": "PROCESSING", ":t": int(time.time()) + 60, ":a": 1, ":c": "live"})
    assert _arrival(inference_app, study_id, files, 1) == "requeued"
    listed = boto3.client("s3").list_objects_v2(Bucket=resources.uploads_bucket).get("Contents", [])
    assert [o["Key"] for o in listed if study_id in o["Key"]] == [study_upload_key(OWNER, study_id, 0)]
    assert len(sent) == 1
