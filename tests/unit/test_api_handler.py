"""API handler with HTTP API v2 event fixtures, moto tables from template.yaml, a fake context."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from strokelens.core.records import new_pending, new_scan_id
from tests.conftest import load_event

OWNER = "0c9f7e1a-1111-4aaa-9bbb-000000000001"
OTHER = "0c9f7e1a-2222-4aaa-9bbb-000000000002"


def call(app, lambda_context, *, method="GET", path="/scans", body=None, sub=OWNER, query=None, raw_body=None):
    event = load_event("api_create_scan.json")
    route = "/scans/{scan_id}" if path.startswith("/scans/") else path
    event.update(routeKey=f"{method} {route}", rawPath=path)
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["routeKey"] = f"{method} {route}"
    if path.startswith("/scans/"):
        event["pathParameters"] = {"scan_id": path.rsplit("/", 1)[1]}
    if sub is None:
        event["requestContext"]["authorizer"]["jwt"]["claims"] = {}
    else:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    response = app.handler(event, lambda_context)
    headers = response.get("headers") or {}
    assert (headers.get("Cache-Control"), headers.get("X-Content-Type-Options")) == ("no-store", "nosniff"), \
        f"every answer, {response['statusCode']} included, is neither cached nor sniffed"
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def test_create_scan_records_pending_and_pins_the_upload_policy(api_app, resources, lambda_context):
    status, body = call(api_app, lambda_context, method="POST",
                        body={"filename": "Jane_Doe_head.png", "content_type": "image/png", "modality": "CT"})
    assert status == 201 and body["status"] == "PENDING"
    fields = body["upload"]["fields"]
    assert fields["key"] == f"uploads/{OWNER}/{body['scan_id']}"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": resources.uploads_bucket} in conditions
    assert {"key": fields["key"]} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 0, int(resources.stack.parameters["UploadMaxBytes"])] in conditions
    assert body["expires_in"] == int(resources.stack.parameters["UploadUrlExpiresSeconds"])

    item = boto3.resource("dynamodb").Table(resources.table).get_item(
        Key={"owner_id": OWNER, "scan_id": body["scan_id"]})["Item"]
    assert item["status"] == "PENDING" and item["modality_declared"] == "CT"
    assert "Jane" not in json.dumps(item, default=str), "filenames may carry patient names and are never stored"
    assert int(item["expires_at"]) > 0


def test_dicom_without_a_browser_type_is_recognised_by_extension(api_app, lambda_context):
    status, body = call(api_app, lambda_context, method="POST", body={"filename": "slice.dcm", "content_type": ""})
    assert status == 201 and body["upload"]["fields"]["Content-Type"] == "application/dicom"


@pytest.mark.parametrize("raw, status, code", [
    ("{not json", 400, "INVALID_JSON"),
    ("[1, 2]", 400, "INVALID_JSON"),
    (json.dumps({"content_type": "image/png"}), 400, "INVALID_FILENAME"),
    (json.dumps({"filename": "x" * 300, "content_type": "image/png"}), 400, "INVALID_FILENAME"),
    (json.dumps({"filename": "report.pdf", "content_type": "application/pdf"}), 415, "UNSUPPORTED_CONTENT_TYPE"),
    (json.dumps({"filename": "a.exe", "content_type": ""}), 415, "UNSUPPORTED_CONTENT_TYPE"),
    (json.dumps({"filename": "a.png", "content_type": "image/png", "modality": "XR"}), 400, "INVALID_MODALITY"),
    ("[" * 100_000 + "]" * 100_000, 400, "INVALID_JSON"),  # nesting deeper than the parser's stack
])
def test_bad_create_requests_get_4xx_json(api_app, lambda_context, raw, status, code):
    got_status, body = call(api_app, lambda_context, method="POST", raw_body=raw)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]


def _seed(resources, owner, n):
    table = boto3.resource("dynamodb").Table(resources.table)
    ids = []
    for i in range(n):
        scan_id = new_scan_id(now=1_790_000_000 + i)
        table.put_item(Item=new_pending(owner, scan_id, content_type="image/png", modality=None, retention_days=1))
        ids.append(scan_id)
    return ids


def test_get_scan_is_scoped_to_its_owner(api_app, resources, lambda_context):
    (scan_id,) = _seed(resources, OWNER, 1)
    status, body = call(api_app, lambda_context, path=f"/scans/{scan_id}")
    assert status == 200 and body["scan_id"] == scan_id and "owner_id" not in body
    status, body = call(api_app, lambda_context, path=f"/scans/{scan_id}", sub=OTHER)
    assert status == 404 and body["error"]["code"] == "SCAN_NOT_FOUND"


@pytest.mark.parametrize("bad_id", ["nope", "..%2F..%2Fetc", "0" * 23, "0" * 25, "Z" * 24])
def test_malformed_scan_ids_are_404(api_app, lambda_context, bad_id):
    status, body = call(api_app, lambda_context, path=f"/scans/{bad_id}")
    assert status == 404 and body["error"]["code"] == "SCAN_NOT_FOUND"


def test_list_is_newest_first_paginated_and_private(api_app, resources, lambda_context):
    mine = _seed(resources, OWNER, 5)
    _seed(resources, OTHER, 3)
    status, page1 = call(api_app, lambda_context, query={"limit": "3"})
    assert status == 200
    assert [s["scan_id"] for s in page1["scans"]] == mine[::-1][:3]
    status, page2 = call(api_app, lambda_context, query={"limit": "3", "next": page1["next"]})
    assert [s["scan_id"] for s in page2["scans"]] == mine[::-1][3:]
    assert page2["next"] is None


@pytest.mark.parametrize("query, code", [({"limit": "0"}, "INVALID_LIMIT"), ({"limit": "abc"}, "INVALID_LIMIT"),
                                         ({"limit": "500"}, "INVALID_LIMIT"), ({"next": "garbage!"}, "INVALID_PAGE_TOKEN")])
def test_bad_list_parameters(api_app, lambda_context, query, code):
    status, body = call(api_app, lambda_context, query=query)
    assert status == 400 and body["error"]["code"] == code


def test_missing_identity_is_401(api_app, lambda_context):
    status, body = call(api_app, lambda_context, sub=None)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


def test_model_card_and_metrics_come_from_the_artifacts(api_app, lambda_context):
    from strokelens.core.catalogue import Catalogue
    from strokelens.core.settings import model_dir

    manifest = Catalogue(model_dir()).load_manifest()
    status, card = call(api_app, lambda_context, path="/model")
    assert status == 200 and card["version"] == manifest.version
    status, metrics = call(api_app, lambda_context, path="/metrics")
    assert status == 200 and metrics["charts"]
    for chart in metrics["charts"]:
        assert chart["id"] and chart["title"] and chart["figure"]["data"]


def test_unknown_route_is_json_404(api_app, lambda_context):
    status, body = call(api_app, lambda_context, path="/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


def test_an_upload_that_never_arrived_reads_as_failed_once_its_link_expired(api_app, resources, lambda_context):
    from strokelens.core.records import new_pending, public_view

    item = new_pending(OWNER, new_scan_id(now=1_790_000_000), content_type="image/png", modality=None,
                       retention_days=1, now=1_790_000_000)
    assert public_view(item, 300, now=1_790_000_100)["status"] == "PENDING"
    late = public_view(item, 300, now=1_790_000_000 + 300 + 121)
    assert late["status"] == "FAILED" and late["error"]["code"] == "UPLOAD_NOT_RECEIVED"
    assert public_view({**item, "attempts": 1}, 300, now=1_790_010_000)["status"] == "PENDING", "a retry is waiting"
    boto3.resource("dynamodb").Table(resources.table).put_item(Item=item)
    status, body = call(api_app, lambda_context, path=f"/scans/{item['scan_id']}")
    assert status == 200 and body["error"]["code"] == "UPLOAD_NOT_RECEIVED"


def test_clinical_risk_route(api_app, lambda_context):
    valid = {"age": 67, "gender": "Male", "hypertension": 1, "heart_disease": 0, "ever_married": "Yes",
             "work_type": "Private", "Residence_type": "Urban", "avg_glucose_level": 205.2, "bmi": 29.1,
             "smoking_status": "formerly smoked"}
    status, body = call(api_app, lambda_context, method="POST", path="/risk", body=valid)
    assert status == 200 and 0 < body["probability"] < 1 and body["band"] and body["contributions"]
    status, body = call(api_app, lambda_context, method="POST", path="/risk", body={**valid, "age": 130})
    assert status == 400 and body["error"] == {**body["error"], "code": "INVALID_FIELD", "field": "age"}
    status, body = call(api_app, lambda_context, method="POST", path="/risk", body={**valid, "age": 10 ** 400})
    assert status == 400 and body["error"]["field"] == "age"  # float() would overflow: a 4xx, never a 500
    status, body = call(api_app, lambda_context, method="POST", path="/risk", body=valid, sub=None)
    assert status == 401


def test_metrics_include_the_clinical_charts_and_card(api_app, lambda_context):
    _, metrics = call(api_app, lambda_context, path="/metrics")
    assert any(c.get("group") == "clinical" for c in metrics["charts"])
    _, card = call(api_app, lambda_context, path="/model")
    assert "clinical" in card


def test_an_expired_lease_is_never_shown_as_live_work():
    from strokelens.core.records import new_pending, public_view

    item = {**new_pending(OWNER, new_scan_id(now=1_790_000_000), content_type="image/png", modality=None,
                          retention_days=1, now=1_790_000_000), "status": "PROCESSING", "attempts": 1,
            "lease_until": 1_790_000_060}
    assert public_view(item, 300, 3, now=1_790_000_030)["status"] == "PROCESSING", "a live attempt"
    assert public_view(item, 300, 3, now=1_790_000_061)["status"] == "PENDING", "the lease ran out: a retry will claim it"
    spent = public_view({**item, "attempts": 3}, 300, 3, now=1_790_000_061)
    assert spent["status"] == "FAILED" and spent["error"]["code"] == "READ_ABORTED"
    assert "lease_until" not in spent and "attempts" not in spent and "owner_id" not in spent


def test_the_contract_serves_what_the_site_would_otherwise_copy(api_app, lambda_context):
    from strokelens.core import clinical
    from strokelens.core.records import CONTENT_TYPES
    from strokelens.core.settings import MAX_UPLOAD_BYTES

    status, body = call(api_app, lambda_context, path="/contract")
    assert status == 200
    assert body["accepted"]["content_types"] == sorted(CONTENT_TYPES) and ".dcm" in body["accepted"]["extensions"]
    assert body["limits"]["max_upload_bytes"] == MAX_UPLOAD_BYTES
    assert [w["name"] for w in body["window_presets"]] == ["brain", "subdural", "stroke", "bone"]
    assert body["model"]["findings"] and body["model"]["positive_label"] in body["model"]["findings"]
    assert "OUT_OF_DISTRIBUTION" in body["warnings"] and "CORRUPT_FILE" in body["errors"]
    fields = {f["name"]: f for f in body["risk_form"]}
    assert set(fields) == set(clinical.ALLOWED)
    assert (fields["avg_glucose_level"]["min"], fields["avg_glucose_level"]["max"]) == clinical.RANGES["avg_glucose_level"]
    assert [o[0] for o in fields["work_type"]["options"]] == list(clinical.CATEGORIES["work_type"])
    assert fields["bmi"]["required"] is False and fields["age"]["required"] is True
    assert call(api_app, lambda_context, path="/contract", sub=None)[0] == 401


def test_creating_scans_is_limited_per_clinician_per_hour(api_app, resources, lambda_context, monkeypatch):
    monkeypatch.setattr(api_app.LIMITER, "limit", 3)
    body = {"filename": "a.png", "content_type": "image/png"}
    statuses = [call(api_app, lambda_context, method="POST", body=body)[0] for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    event = load_event("api_create_scan.json")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = OWNER
    event["body"] = json.dumps(body)
    response = api_app.handler(event, lambda_context)
    assert response["statusCode"] == 429 and json.loads(response["body"])["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(response["headers"]["Retry-After"]) <= 3600
    assert call(api_app, lambda_context, method="POST", body=body, sub=OTHER)[0] == 201, "another clinician's own budget"
    scans = boto3.resource("dynamodb").Table(resources.table).scan()["Items"]
    assert sum(1 for i in scans if i["owner_id"] == OWNER) == 3, "a refused request writes no scan"


def test_the_limiter_counts_per_hour_window(resources):
    from strokelens.aws.rate_limit import CreationLimiter

    limiter = CreationLimiter(boto3.resource("dynamodb").Table(resources.rate_table), 2)
    t = 1_790_000_000
    assert [limiter.allow(OWNER, now=t)[0] for _ in range(3)] == [True, True, False]
    assert limiter.allow(OWNER, now=t + 3600)[0] is True, "a new window"
    item = boto3.resource("dynamodb").Table(resources.rate_table).get_item(
        Key={"bucket_key": f"{OWNER}#{t // 3600}"})["Item"]
    assert item["count"] == 2 and item["expires_at"] > t
