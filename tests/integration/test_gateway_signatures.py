"""The local gateway plays S3 for the browser: it must refuse what S3 would refuse.

Upload forms: a policy is only good with its SigV4 signature by a known key, unaltered and
unexpired; a refused form stores nothing (so nothing reaches SQS or the inference handler).
Preview links: only a valid, unexpired SigV4 query signature for exactly that key opens one.
Each refusal is paired with the genuine request succeeding, so a 403 is never the gateway
refusing everything.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import botocore.auth
import pytest
import requests
from botocore.config import Config

from tests.integration.test_local_stack import create, login, post_file, wait_final

SMALL_LIMIT = 300_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0, parameters={"UploadMaxBytes": SMALL_LIMIT}) as stack:
        yield stack


@pytest.fixture(scope="module")
def ada(local):
    return login(local, 0)


@pytest.fixture(scope="module")
def grace(local):
    return login(local, 1)


def s3_code(response: requests.Response) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", response.text)
    return match.group(1) if match else ""


def stored(local, key: str) -> bool:
    listed = boto3.client("s3").list_objects_v2(Bucket=local.resources.uploads_bucket, Prefix=key)
    return listed.get("KeyCount", 0) > 0


def flip_hex(text: str, at: int = 7) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]


def signing_client(**overrides):
    """An S3 client signing like the API's (SigV4), with this process's (moto's) credentials unless overridden."""
    frozen = boto3.Session().get_credentials().get_frozen_credentials()
    keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
            "aws_session_token": frozen.token} | overrides
    return boto3.client("s3", config=Config(signature_version="s3v4"), **keys)


def own_form(local, scan: dict, expires_in: int = 300, **overrides) -> dict:
    """A form for the scan's key with the API's conditions, signed here (see presign_upload)."""
    content_type = scan["upload"]["fields"]["Content-Type"]
    form = signing_client(**overrides).generate_presigned_post(
        Bucket=local.resources.uploads_bucket, Key=scan["upload"]["fields"]["key"],
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 0, SMALL_LIMIT]], ExpiresIn=expires_in)
    return form["fields"]


# ---- upload forms ---------------------------------------------------------------------------------
def test_flipped_signature_byte_is_refused_and_nothing_is_stored(local, ada):
    scan = create(local, ada)
    key = scan["upload"]["fields"]["key"]
    forged = {**scan["upload"]["fields"], "x-amz-signature": flip_hex(scan["upload"]["fields"]["x-amz-signature"])}
    response = post_file(scan, PNG, fields=forged)
    assert response.status_code == 403 and s3_code(response) == "SignatureDoesNotMatch", response.text
    assert not stored(local, key)
    assert post_file(scan, PNG).status_code == 204 and stored(local, key), "the genuine form still works"


def test_widened_size_range_with_the_old_signature_is_refused(local, ada):
    scan = create(local, ada)
    fields = scan["upload"]["fields"]
    over = PNG + b"\x00" * SMALL_LIMIT  # over the limit, under what the gateway reads at all
    genuine = post_file(scan, over)
    assert genuine.status_code == 400 and s3_code(genuine) == "EntityTooLarge", "the real policy caps the size"
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [["content-length-range", 0, 100 * SMALL_LIMIT] if isinstance(c, list) and
                            c[0] == "content-length-range" else c for c in policy["conditions"]]
    widened = {**fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    response = post_file(scan, over, fields=widened)
    assert response.status_code == 403 and s3_code(response) == "SignatureDoesNotMatch", response.text
    assert not stored(local, fields["key"])


@pytest.mark.parametrize("overrides, status, code", [
    ({}, 204, ""),  # this test's own signer, with the right key: its forms are sound
    ({"aws_secret_access_key": "not-the-secret"}, 403, "SignatureDoesNotMatch"),
    ({"aws_access_key_id": "AKIAUNKNOWN0000000000"}, 403, "InvalidAccessKeyId"),
], ids=["right-secret", "wrong-secret", "unknown-access-key"])
def test_form_signed_with_a_wrong_secret_is_refused(local, ada, overrides, status, code):
    scan = create(local, ada)
    response = post_file(scan, PNG, fields=own_form(local, scan, **overrides))
    assert response.status_code == status and s3_code(response) == code, response.text
    if status == 204:  # it arrived: the worker reads it (and deletes the raw upload once the scan is final)
        assert wait_final(local, ada, scan["scan_id"])["status"] in ("DONE", "FAILED")
    else:
        assert not stored(local, scan["upload"]["fields"]["key"])


def test_expired_policy_is_refused_even_when_genuinely_signed(local, ada):
    scan = create(local, ada)
    response = post_file(scan, PNG, fields=own_form(local, scan, expires_in=-60))
    assert response.status_code == 403 and s3_code(response) == "AccessDenied", response.text
    assert "Policy expired" in response.text
    assert not stored(local, scan["upload"]["fields"]["key"])


def test_unsigned_sigv2_and_padded_forms_are_refused(local, ada):
    scan = create(local, ada)
    fields = scan["upload"]["fields"]
    unsigned = {k: v for k, v in fields.items() if k != "x-amz-signature"}
    response = post_file(scan, PNG, fields=unsigned)
    assert response.status_code == 400 and s3_code(response) == "InvalidArgument"
    sigv2 = {"key": fields["key"], "Content-Type": fields["Content-Type"], "policy": fields["policy"],
             "AWSAccessKeyId": "FOOBARKEY", "signature": "bm90IGEgc2lnbmF0dXJl"}
    response = post_file(scan, PNG, fields=sigv2)
    assert response.status_code == 400 and s3_code(response) == "InvalidRequest"
    # A field the signed policy does not list (S3: "Extra input fields").
    response = post_file(scan, PNG, fields={**fields, "x-amz-meta-injected": "1"})
    assert response.status_code == 403 and "Extra input fields: x-amz-meta-injected" in response.text
    assert not stored(local, fields["key"])


# ---- preview links ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(local, ada, grace, ct_png):
    """One finished scan per clinician; their results carry freshly signed preview links."""
    done = {}
    for name, auth in (("ada", ada), ("grace", grace)):
        scan = create(local, auth)
        assert post_file(scan, ct_png).status_code == 204
        done[name] = wait_final(local, auth, scan["scan_id"])
        assert done[name]["status"] == "DONE", done[name]
    return done


def is_png(response: requests.Response) -> bool:
    return response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_genuine_preview_links_work(results):
    for result in results.values():
        for url in result["previews"].values():
            assert is_png(requests.get(url, timeout=10)), url


def test_preview_link_pointed_at_another_clinicians_preview_is_refused(results):
    ada_link, grace_link = results["ada"]["previews"]["display"], results["grace"]["previews"]["display"]
    assert is_png(requests.get(grace_link, timeout=10)), "grace's preview exists"
    # Ada's signed query on Grace's object path.
    tampered = grace_link.split("?")[0] + "?" + urlsplit(ada_link).query
    response = requests.get(tampered, timeout=10)
    assert response.status_code == 403 and s3_code(response) == "SignatureDoesNotMatch", response.text


@pytest.mark.parametrize("param", ["X-Amz-Signature", "X-Amz-Expires", "X-Amz-Date"])
def test_preview_link_with_a_tampered_signature_or_lifetime_is_refused(results, param):
    url = results["ada"]["previews"]["display"]
    base, query = url.split("?")
    args = dict(parse_qsl(query))
    args[param] = {"X-Amz-Signature": lambda v: flip_hex(v), "X-Amz-Expires": lambda v: "604800",
                   "X-Amz-Date": lambda v: v[:9] + "235959Z"}[param](args[param])
    response = requests.get(f"{base}?{urlencode(args)}", timeout=10)
    assert response.status_code == 403 and s3_code(response) == "SignatureDoesNotMatch", response.text
    assert is_png(requests.get(url, timeout=10)), "the untouched link still opens"


def _link_signed_at(local, key: str, when: dt.datetime, expires_in: int) -> str:
    """A preview link signed as the API signs them, on the clock ``when``, pointed at the gateway."""
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when.replace(tzinfo=None)):
        url = signing_client().generate_presigned_url(
            "get_object", Params={"Bucket": local.resources.artifacts_bucket, "Key": key}, ExpiresIn=expires_in)
    return local.gateway._local_s3_urls(url.encode()).decode()


def test_expired_preview_link_is_refused(local, results):
    link = results["ada"]["previews"]["display"]
    key = urlsplit(link).path.split("/", 3)[3]
    now = dt.datetime.now(dt.UTC)
    assert is_png(requests.get(_link_signed_at(local, key, now, 300), timeout=10)), "the test's signer is sound"
    expired = requests.get(_link_signed_at(local, key, now - dt.timedelta(minutes=10), 300), timeout=10)
    assert expired.status_code == 403 and s3_code(expired) == "AccessDenied", expired.text
    assert "Request has expired" in expired.text


def test_unsigned_and_sigv2_preview_links_are_refused(results):
    url = results["ada"]["previews"]["display"]
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403
    sigv2 = url.split("?")[0] + "?" + urlencode({"AWSAccessKeyId": "FOOBARKEY", "Expires": "4102444800",
                                                 "Signature": "bm90IGEgc2lnbmF0dXJl"})
    response = requests.get(sigv2, timeout=10)
    assert response.status_code == 400 and s3_code(response) == "InvalidRequest"
