"""infra.s3_auth against links and forms made by botocore itself (no network, no moto).

The integration tests (tests/integration/test_gateway_signatures.py) drive the same checks
through the local gateway; these pin the details: key encodings, both S3 URL styles, the session
token, the credential scope, expiry at the second.
"""

from __future__ import annotations

import datetime as dt
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from infra.s3_auth import S3Signatures

REGION = "us-east-1"
KEY = ReadOnlyCredentials("AKIALOCALTEST", "local-secret", "session-token")
SIGNED_AT = dt.datetime(2026, 3, 1, 12, 0, 0)  # naive UTC, as botocore's clock gives it
BUCKET = "strokelens-local-artifactsbucket"


def client(access_key=KEY.access_key, secret=KEY.secret_key, token=KEY.token, addressing="virtual"):
    return boto3.client("s3", region_name=REGION, aws_access_key_id=access_key, aws_secret_access_key=secret,
                        aws_session_token=token,
                        config=Config(signature_version="s3v4", s3={"addressing_style": addressing}))


def presign_get(key: str, expires: int = 300, at: dt.datetime = SIGNED_AT, **client_args) -> str:
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        return client(**client_args).generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key},
                                                            ExpiresIn=expires)


def presign_post(key: str, expires: int = 300, **client_args) -> dict:
    return client(**client_args).generate_presigned_post(
        Bucket=BUCKET, Key=key, Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 0, 1000]], ExpiresIn=expires)


def check_get(url: str, key: str, now: dt.datetime | None = None, verifier: S3Signatures | None = None):
    """What the gateway does with a link: the decoded query, its bucket and key."""
    verifier = verifier or S3Signatures([KEY], REGION)
    args = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    now = now or (SIGNED_AT + dt.timedelta(seconds=10)).replace(tzinfo=dt.UTC)
    return verifier.get_problem(BUCKET, key, args, {"Host": "127.0.0.1:8000"}, now=now)


@pytest.mark.parametrize("key", ["previews/owner/scan/display.png", "previews/o w+n/é/x~y!.png",
                                 "previews/a%2Fb/(1)*'.png"])
@pytest.mark.parametrize("addressing", ["virtual", "path"])
def test_botocore_links_verify_for_any_key_and_url_style(key, addressing):
    assert check_get(presign_get(key, addressing=addressing), key) is None


def test_a_link_opens_only_its_own_key():
    url = presign_get("previews/ada/scan/display.png")
    assert check_get(url, "previews/grace/scan/display.png")[1] == "SignatureDoesNotMatch"


@pytest.mark.parametrize("param, value", [("X-Amz-Expires", "604800"), ("X-Amz-Date", "20260301T120500Z"),
                                          ("X-Amz-Signature", None), ("X-Amz-SignedHeaders", "host;range"),
                                          ("X-Amz-Security-Token", "other-token"), ("response-content-type", "text/html")])
def test_any_changed_query_parameter_breaks_the_signature(param, value):
    url = presign_get("previews/ada/scan/display.png")
    args = dict(parse_qsl(urlsplit(url).query))
    if param == "X-Amz-Signature":  # one hex digit flipped
        sig = args[param]
        value = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    args[param] = value
    verifier = S3Signatures([KEY], REGION)
    now = (SIGNED_AT + dt.timedelta(seconds=10)).replace(tzinfo=dt.UTC)
    problem = verifier.get_problem(BUCKET, "previews/ada/scan/display.png", list(args.items()), {}, now=now)
    assert problem[:2] == (403, "SignatureDoesNotMatch")


def test_expiry_is_exact_to_the_second():
    url = presign_get("previews/k.png", expires=60)
    signed = SIGNED_AT.replace(tzinfo=dt.UTC)
    assert check_get(url, "previews/k.png", now=signed + dt.timedelta(seconds=60)) is None
    assert check_get(url, "previews/k.png", now=signed + dt.timedelta(seconds=61)) == (403, "AccessDenied", "Request has expired")


def test_wrong_secret_unknown_key_and_foreign_token_are_refused():
    assert check_get(presign_get("previews/k.png", secret="guess"), "previews/k.png")[1] == "SignatureDoesNotMatch"
    assert check_get(presign_get("previews/k.png", access_key="AKIAOTHER"), "previews/k.png")[1] == "InvalidAccessKeyId"
    # Signed with the right secret but another (or no) session token: S3 checks the token belongs to the key.
    assert check_get(presign_get("previews/k.png", token="stolen"), "previews/k.png")[1] == "InvalidToken"
    assert check_get(presign_get("previews/k.png", token=None), "previews/k.png")[1] == "InvalidToken"


def test_malformed_and_sigv2_queries_are_refused_without_a_signature_check():
    verifier = S3Signatures([KEY], REGION)
    assert verifier.get_problem(BUCKET, "previews/k.png", [("X-Amz-Signature", "00")], {})[1] == \
        "AuthorizationQueryParametersError"
    sigv2 = [("AWSAccessKeyId", KEY.access_key), ("Expires", "9999999999"), ("Signature", "abc")]
    assert verifier.get_problem(BUCKET, "previews/k.png", sigv2, {})[:2] == (400, "InvalidRequest")
    other_region = S3Signatures([KEY], "eu-west-1")
    assert check_get(presign_get("previews/k.png"), "previews/k.png", verifier=other_region)[1] == \
        "AuthorizationQueryParametersError"


def test_post_signature_covers_the_policy_exactly():
    verifier = S3Signatures([KEY], REGION)
    form = presign_post("uploads/ada/scan")["fields"]
    assert verifier.post_problem(form) is None
    assert verifier.post_problem({k.upper(): v for k, v in form.items()}) is None  # field names: any case
    altered = {**form, "policy": form["policy"][:-4] + ("AAAA" if form["policy"][-4:] != "AAAA" else "BBBB")}
    assert verifier.post_problem(altered)[:2] == (403, "SignatureDoesNotMatch")
    assert verifier.post_problem(presign_post("uploads/ada/scan", secret="guess")["fields"])[1] == "SignatureDoesNotMatch"
    assert verifier.post_problem(presign_post("uploads/ada/scan", access_key="AKIAOTHER")["fields"])[1] == \
        "InvalidAccessKeyId"
    assert verifier.post_problem(presign_post("uploads/ada/scan", token="stolen")["fields"])[1] == "InvalidToken"
    unsigned = {k: v for k, v in form.items() if k != "x-amz-signature"}
    assert verifier.post_problem(unsigned)[:2] == (400, "InvalidArgument")
    assert verifier.post_problem({"key": "k", "policy": form["policy"], "AWSAccessKeyId": KEY.access_key,
                                  "signature": "abc"})[:2] == (400, "InvalidRequest")


def test_error_messages_are_xml_safe_in_the_gateway():
    from infra.gateway import Gateway

    body = Gateway._s3_error(400, "InvalidArgument", "region '<x>&' is wrong", {}).get_data(as_text=True)
    assert "<Message>region '&lt;x&gt;&amp;' is wrong</Message>" in body
