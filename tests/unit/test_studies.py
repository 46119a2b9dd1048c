"""/studies end to end inside one process: the API contract, limits refused before any upload,
owner-only access, arrival counting, one read per study, the deadline for files that never came."""

from __future__ import annotations

import json

import boto3
import pytest

from strokelens.core.studies import MAX_FILES, MAX_STUDY_BYTES, study_upload_key
from tests.conftest import CT_DATA, sqs_s3_event
from tests.dicom_series import ct_series
from tests.unit.test_api_handler import OTHER, OWNER, call

CT = sorted((CT_DATA / "normal").glob("*.png"))[:3] + sorted((CT_DATA / "hemorrhage").glob("*.png"))[:2]


def _files(n, content_type="application/dicom", size=None):
    return [{"filename": f"IM{i:04d}.dcm", "content_type": content_type, **({"size": size} if size else {})}
            for i in range(n)]


def create(api_app, lambda_context, files, **extra):
    return call(api_app, lambda_context, method="POST", path="/studies", body={"files": files, **extra})


def get(api_app, lambda_context, study_id, sub=OWNER, query=None):
    event_path = f"/studies/{study_id}"
    from tests.conftest import load_event

    event = load_event("api_create_scan.json")
    event.update(routeKey="GET /studies/{study_id}", rawPath=event_path)
    event["requestContext"]["http"].update(method="GET", path=event_path)
    event["requestContext"]["routeKey"] = "GET /studies/{study_id}"
    event["pathParameters"] = {"study_id": study_id}
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    event["body"] = None
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    response = api_app.handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("files, status, code", [
    ([], 400, "INVALID_FILES"),
    (_files(MAX_FILES + 1), 413, "TOO_MANY_FILES"),
    (_files(1, size=26 * 1024 * 1024), 413, "FILE_TOO_LARGE"),
    (_files(11, size=24 * 1024 * 1024), 413, "STUDY_TOO_LARGE"),
    ([{"filename": "report.pdf", "content_type": "application/pdf"}], 415, "UNSUPPORTED_CONTENT_TYPE"),
    ([{"content_type": "image/png"}], 400, "INVALID_FILES"),
])
def test_over_limit_studies_are_refused_before_any_upload(api_app, resources, lambda_context, files, status, code):
    got, body = create(api_app, lambda_context, files)
    assert (got, body["error"]["code"]) == (status, code) and body["error"]["message"]
    assert boto3.resource("dynamodb").Table(resources.table).scan()["Items"] == [], "nothing recorded"
    assert MAX_STUDY_BYTES == 250 * 1024 * 1024


def test_create_hands_out_one_pinned_form_per_file_and_schedules_a_deadline(api_app, resources, lambda_context):
    status, body = create(api_app, lambda_context, _files(3), modality="CT")
    assert status == 201 and set(body) == {"study_id", "status", "uploads", "expires_in", "max_bytes"}
    keys = [u["fields"]["key"] for u in body["uploads"]]
    assert keys == [study_upload_key(OWNER, body["study_id"], i) for i in range(3)]
    assert all(u["fields"]["Content-Type"] == "application/dicom" for u in body["uploads"])
    policy = json.loads(__import__("base64").b64decode(body["uploads"][0]["fields"]["policy"]))
    assert ["content-length-range", 0, body["max_bytes"]] in policy["conditions"]
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesDelayed"]) == 1, "the deadline waits in the queue"
    status, view = get(api_app, lambda_context, body["study_id"])
    assert status == 200 and view["status"] == "PENDING" and view["progress"]["files_expected"] == 3
    assert get(api_app, lambda_context, body["study_id"], sub=OTHER)[0] == 404, "owner only"


def _upload_and_notify(inference_app, resources, lambda_context, study_id, files, indices=None):
    s3 = boto3.client("s3")
    outcomes = []
    for i in indices if indices is not None else range(len(files)):
        key = study_upload_key(OWNER, study_id, i)
        s3.put_object(Bucket=resources.uploads_bucket, Key=key, Body=files[i])
        outcomes.append(inference_app.process_object(key, len(files[i]), 1))
    return outcomes


def test_a_dicom_series_is_read_once_when_its_last_file_arrives(api_app, inference_app, resources, lambda_context):
    files = ct_series(5)
    _, body = create(api_app, lambda_context, _files(5))
    study_id = body["study_id"]
    outcomes = _upload_and_notify(inference_app, resources, lambda_context, study_id, files, [4, 0, 3, 1, 2])
    assert outcomes == ["waiting"] * 4 + ["done"]
    key = study_upload_key(OWNER, study_id, 2)
    assert inference_app.process_object(key, 1, 1) in ("late", "not-waiting"), "a duplicate never re-reads"
    status, view = get(api_app, lambda_context, study_id, query={"slice": "4"})
    assert status == 200 and view["status"] == "DONE"
    result = view["result"]
    assert view["progress"] == {"files_expected": 5, "files_received": 5, "files_read": 5}
    assert result["counts"]["files"] == 5 and len(result["stack"]) == 5 and len(result["scores"]) == 5
    assert result["series"][0]["read"] and result["series"][0]["slices"] == 5
    assert set(view["key_slice_previews"]) == {str(p) for p in result["key_slices"]}
    assert "display" in view["slice_previews"]["4"]
    slices = json.loads(boto3.client("s3").get_object(Bucket=resources.artifacts_bucket,
                                                      Key=boto3.resource("dynamodb").Table(resources.table).get_item(
                                                          Key={"owner_id": OWNER, "scan_id": study_id})["Item"]["slices_key"])["Body"].read())
    assert [s["position"] for s in slices] == list(range(5))
    listed = boto3.client("s3").list_objects_v2(Bucket=resources.uploads_bucket, Prefix=f"uploads/{OWNER}/{study_id}/")
    assert listed.get("KeyCount", 0) == 0, "raw uploads deleted once the study is final"
    assert get(api_app, lambda_context, study_id, query={"slice": "9"})[0] == 400
    status, body = call(api_app, lambda_context, path=f"/scans/{study_id}")
    assert (status, body["error"]["code"]) == (404, "SCAN_NOT_FOUND"), "a study is not a scan (nor a 500)"


def test_the_deadline_reads_what_came_and_says_what_did_not(api_app, inference_app, resources, lambda_context,
                                                            monkeypatch):
    from strokelens.inference import study

    monkeypatch.setattr(study, "DEADLINE_QUIET_SECONDS", 0)  # the last file came long ago
    files = [p.read_bytes() for p in CT]
    _, body = create(api_app, lambda_context, [{"filename": p.name, "content_type": "image/png"} for p in CT])
    study_id = body["study_id"]
    assert _upload_and_notify(inference_app, resources, lambda_context, study_id, files, [0, 1, 2]) == ["waiting"] * 3
    deadline = sqs_s3_event(resources.uploads_bucket, "x", 0)
    deadline["Records"][0]["body"] = json.dumps({"study_deadline": {"owner_id": OWNER, "study_id": study_id}})
    assert inference_app.handler(deadline, lambda_context) == {"batchItemFailures": []}
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "DONE" and view["result"]["counts"]["missing"] == 2
    assert any(w["code"] == "FILES_MISSING" for w in view["warnings"])
    # A file arriving after the study was read is deleted unread.
    assert _upload_and_notify(inference_app, resources, lambda_context, study_id, files, [3]) == ["late"]


def test_a_study_whose_files_never_came_fails_at_its_deadline(api_app, inference_app, resources, lambda_context):
    _, body = create(api_app, lambda_context, _files(2))
    assert inference_app.STUDIES.deadline(OWNER, body["study_id"], 1) == "failed:UPLOAD_NOT_RECEIVED"
    _, view = get(api_app, lambda_context, body["study_id"])
    assert view["status"] == "FAILED" and view["error"]["code"] == "UPLOAD_NOT_RECEIVED"


def test_studies_are_listed_apart_from_scans_newest_first(api_app, resources, lambda_context):
    ids = [create(api_app, lambda_context, _files(1))[1]["study_id"] for _ in range(3)]
    call(api_app, lambda_context, method="POST", body={"filename": "a.png", "content_type": "image/png"})
    status, page = call(api_app, lambda_context, path="/studies", query={"limit": "2"})
    assert status == 200 and [s["study_id"] for s in page["studies"]] == ids[::-1][:2] and page["next"]
    _, scans = call(api_app, lambda_context, path="/scans")
    assert len(scans["scans"]) == 1, "a study is not listed as a scan"
    _, other = call(api_app, lambda_context, path="/studies", sub=OTHER)
    assert other["studies"] == []


def test_a_deadline_waits_while_files_are_still_arriving(api_app, inference_app, resources, lambda_context):
    """A backed-up queue can deliver the last files after the deadline: a recent arrival sends the
    deadline again (delayed) instead of reading an incomplete study; a quiet study is read."""
    import time

    files = [p.read_bytes() for p in CT[:3]]
    _, body = create(api_app, lambda_context, [{"filename": p.name, "content_type": "image/png"} for p in CT[:3]])
    study_id = body["study_id"]
    _upload_and_notify(inference_app, resources, lambda_context, study_id, files, [0])
    sqs = boto3.client("sqs")
    before = int(sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessagesDelayed"])
    assert inference_app.STUDIES.deadline(OWNER, study_id, 1) == "deferred"
    after = int(sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessagesDelayed"])
    assert after == before + 1, "the deadline is sent again"
    _upload_and_notify(inference_app, resources, lambda_context, study_id, files, [1])
    quiet = time.time() + 10 * 60  # no arrival for ten minutes: read what came
    assert inference_app.STUDIES.deadline(OWNER, study_id, 1, now=quiet) == "done"
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "DONE" and view["result"]["counts"]["missing"] == 1
