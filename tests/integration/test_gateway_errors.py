"""When the API function raises, the local HTTP API answers as AWS's does: 500 with
``{"message": "Internal Server Error"}``, not the local server's HTML error page."""

from __future__ import annotations

import pytest
import requests

from tests.integration.test_local_stack import login


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0) as stack:
        yield stack


def test_a_raising_api_function_is_a_json_500(local, monkeypatch):
    auth = login(local, 0)

    def crash(event, context):
        raise RuntimeError("boom")

    monkeypatch.setattr(local.gateway, "api_handler", crash)
    response = requests.get(f"{local.url}/api/scans", headers=auth, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert "boom" not in response.text
    monkeypatch.undo()
    assert requests.get(f"{local.url}/api/scans", headers=auth, timeout=10).status_code == 200
