"""``/local/login``, the local stand-in for Cognito's sign-in: whatever the body, a 4xx with a
JSON error, never a 500 (and never tokens for anyone but a listed local clinician)."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0) as stack:
        yield stack


# Deep enough for json's recursion limit yet under the size cap (so it is parsed), and far over it.
DEEP = b'{"username": ' + b"[" * 1900 + b"]" * 1900 + b"}"
HUGE = b'{"username": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("body", [
    b'{"username": 42}', b'{"username": ["dr.ada@strokelens.local"]}', b'{"username": {"$ne": ""}}',
    b'{"username": null}', b'{"username": true}', b'{"username": "nobody@strokelens.local"}', b"{}",
    b'["dr.ada@strokelens.local"]', b'"dr.ada@strokelens.local"', b"42", b"null", b"not json", b"",
    b"\xff\xfe", b"[" * 2000 + b"]" * 2000, DEEP, HUGE,
], ids=lambda b: repr(b[:24]))
def test_bad_sign_in_bodies_answer_400_with_json(local, body):
    response = requests.post(f"{local.url}/local/login", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:200]
    error = response.json()["error"]
    assert error["code"] in {"INVALID_JSON", "UNKNOWN_USER"} and error["message"]
    assert "id_token" not in response.text


def test_listed_clinician_still_signs_in(local):
    username = local.resources.clinicians[0]["username"]
    response = requests.post(f"{local.url}/local/login", json={"username": username}, timeout=10)
    assert response.status_code == 200 and response.json()["id_token"]
