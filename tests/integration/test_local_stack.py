"""The whole flow over HTTP on the local stack: sign in -> create scan -> POST the file to the
presigned upload -> S3 -> SQS -> inference handler -> DynamoDB -> GET the result."""

from __future__ import annotations

import base64
import json
import time

import boto3
import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import CT_DATA

SMALL_LIMIT = 300_000  # bytes; a small UploadMaxBytes so the oversize case stays cheap


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0, parameters={"UploadMaxBytes": SMALL_LIMIT}) as stack:
        yield stack


def login(local, index: int) -> dict:
    username = local.resources.clinicians[index]["username"]
    response = requests.post(f"{local.url}/local/login", json={"username": username}, timeout=10)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['id_token']}"}


@pytest.fixture(scope="module")
def ada(local):
    return login(local, 0)


@pytest.fixture(scope="module")
def grace(local):
    return login(local, 1)


def create(local, auth, filename="slice.png", content_type="image/png", **extra) -> dict:
    response = requests.post(f"{local.url}/api/scans", headers=auth, timeout=10,
                             json={"filename": filename, "content_type": content_type, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def post_file(scan: dict, data: bytes, *, fields: dict | None = None) -> requests.Response:
    upload = scan["upload"]
    return requests.post(upload["url"], data=fields or upload["fields"], files={"file": ("scan", data)}, timeout=30)


def wait_final(local, auth, scan_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scan = requests.get(f"{local.url}/api/scans/{scan_id}", headers=auth, timeout=10).json()
        if scan["status"] in ("DONE", "FAILED"):
            return scan
        time.sleep(0.1)
    raise AssertionError(f"scan {scan_id} still {scan['status']} after {timeout}s")


def test_real_ct_png_is_read_end_to_end(local, ada):
    data = sorted((CT_DATA / "normal").glob("*.png"))[0].read_bytes()
    scan = create(local, ada, modality="CT")
    response = post_file(scan, data)
    assert response.status_code == 204, response.text
    result = wait_final(local, ada, scan["scan_id"])  # its timeout only stops a hang; speed is benchmarked
    assert result["status"] == "DONE", result
    probabilities = result["result"]["probabilities"]
    assert abs(sum(probabilities.values()) - 1) < 1e-6
    assert result["result"]["model_version"] == local.inference.MODEL.version
    # The previews are served to the owner through short-lived links, as PNGs.
    assert {"display", "model_input"} <= set(result["previews"])
    if not result["result"]["out_of_distribution"] and local.inference.MODEL.predictor.extractor.spatial:
        assert "heatmap" in result["previews"] and result["result"]["heatmap"]["grid"]
    for url in result["previews"].values():
        image = requests.get(url, timeout=10)
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    unsigned = result["previews"]["display"].split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code == 403


def test_other_clinician_cannot_see_or_list_the_scan(local, ada, grace):
    scan = create(local, ada)
    assert requests.get(f"{local.url}/api/scans/{scan['scan_id']}", headers=grace, timeout=10).status_code == 404
    listed = requests.get(f"{local.url}/api/scans", headers=grace, timeout=10).json()["scans"]
    assert scan["scan_id"] not in {s["scan_id"] for s in listed}
    mine = requests.get(f"{local.url}/api/scans", headers=ada, timeout=10).json()["scans"]
    assert mine[0]["scan_id"] == scan["scan_id"], "newest first"


@pytest.mark.parametrize("data, code", [(b"", "EMPTY_FILE"), (b"<html><body>not a scan</body></html>", "UNSUPPORTED_FORMAT")])
def test_bad_uploads_end_failed_with_a_reason(local, ada, data, code):
    scan = create(local, ada)
    assert post_file(scan, data).status_code == 204
    result = wait_final(local, ada, scan["scan_id"])
    assert result["status"] == "FAILED" and result["error"]["code"] == code and result["error"]["message"]


def test_oversize_upload_is_refused_by_the_upload_policy(local, ada):
    scan = create(local, ada)
    response = post_file(scan, b"\x89PNG\r\n\x1a\n" + b"\x00" * SMALL_LIMIT)
    assert response.status_code == 400 and "<Code>EntityTooLarge</Code>" in response.text
    time.sleep(0.5)
    still = requests.get(f"{local.url}/api/scans/{scan['scan_id']}", headers=ada, timeout=10).json()
    assert still["status"] == "PENDING", "nothing reached S3, so nothing was processed"


def test_upload_policy_pins_key_and_content_type(local, ada):
    scan = create(local, ada)
    key = scan["upload"]["fields"]["key"]
    wrong_key = {**scan["upload"]["fields"], "key": key[:-1] + ("1" if key.endswith("0") else "0")}  # always another key
    assert post_file(scan, b"x", fields=wrong_key).status_code == 403
    wrong_type = {**scan["upload"]["fields"], "Content-Type": "text/html"}
    assert post_file(scan, b"x", fields=wrong_type).status_code == 403


def test_expired_policy_is_refused(local):
    from infra.gateway import check_post_policy

    policy = base64.b64encode(json.dumps({"expiration": "2020-01-01T00:00:00Z", "conditions": []}).encode()).decode()
    assert check_post_policy(policy, "b", {}, 1)[:2] == (403, "AccessDenied")


def test_duplicate_notification_is_not_processed_twice(local, ada, ct_png):
    scan = create(local, ada)
    assert post_file(scan, ct_png).status_code == 204
    first = wait_final(local, ada, scan["scan_id"])
    # Redeliver the same S3 notification, as S3/SQS at-least-once delivery may.
    key = scan["upload"]["fields"]["key"]
    body = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                         "s3": {"bucket": {"name": local.resources.uploads_bucket},
                                "object": {"key": key, "size": len(ct_png)}}}]}
    sqs = boto3.client("sqs")
    invocations, failed = local.worker.invocations, local.worker.failed_invocations
    sqs.send_message(QueueUrl=local.resources.queue_url, MessageBody=json.dumps(body))

    def queued() -> int:  # visible + in flight: 0 once the worker deleted the message after handling it
        attributes = sqs.get_queue_attributes(QueueUrl=local.resources.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attributes.values())

    deadline = time.monotonic() + 30  # only stops a hang
    while (local.worker.invocations == invocations or queued()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.worker.invocations > invocations, "the redelivered notification was never consumed"
    assert queued() == 0, "the redelivered notification is still queued"
    assert local.worker.failed_invocations == failed, list(local.worker.errors)
    again = requests.get(f"{local.url}/api/scans/{scan['scan_id']}", headers=ada, timeout=10).json()
    assert again.pop("previews").keys() == first.pop("previews").keys()  # links are re-signed per request
    assert again == first
    item = boto3.resource("dynamodb").Table(local.resources.table).get_item(
        Key={"owner_id": jwt.decode(ada["Authorization"][7:], options={"verify_signature": False})["sub"],
             "scan_id": scan["scan_id"]})["Item"]
    assert int(item["attempts"]) == 1


def test_requests_without_a_valid_token_are_401(local):
    assert requests.get(f"{local.url}/api/scans", timeout=10).status_code == 401
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"sub": "attacker", "iss": local.gateway.verifier.issuer, "aud": local.resources.client_id,
                         "exp": int(time.time()) + 600}, key, algorithm="RS256",
                        headers={"kid": next(iter(local.gateway.verifier.keys))})
    response = requests.get(f"{local.url}/api/scans", headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert response.status_code == 401


def test_site_and_config_are_served(local):
    page = requests.get(f"{local.url}/", timeout=10)
    assert page.status_code == 200 and "not for diagnostic use" in page.text
    config = requests.get(f"{local.url}/config.json", timeout=10).json()
    assert config["apiUrl"] == f"{local.url}/api" and len(config["auth"]["users"]) == 2
    assert requests.get(f"{local.url}/../template.yaml", timeout=10).status_code == 404


def test_concurrent_api_requests_do_not_mix(local, ada):
    """The gateway serves many browsers at once; each request must get its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, str]:
        response = requests.post(f"{local.url}/api/scans", headers=ada, timeout=30,
                                 json={"filename": f"s{i}.png", "content_type": "image/png"})
        return response.status_code, response.json().get("upload", {}).get("fields", {}).get("key", "")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(48)))
    assert all(status == 201 for status, _ in results)
    assert len({key for _, key in results}) == 48
