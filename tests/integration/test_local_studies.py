"""A real head CT study (ct-ich, one folder of slices) over HTTP on the local stack: create the
study -> POST each file to its presigned form -> S3 -> SQS -> one study read -> GET the result,
the key slices' previews and any slice's; another clinician sees nothing of it."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import SHARED_DATA
from tests.integration.test_local_stack import login

STUDIES = SHARED_DATA / "ct-ich" / "studies"


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0) as stack:
        yield stack


def natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def upload_study(local, auth, paths) -> str:
    body = {"files": [{"filename": p.name, "content_type": "image/png", "size": p.stat().st_size} for p in paths],
            "modality": "CT"}
    response = requests.post(f"{local.url}/api/studies", headers=auth, json=body, timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()

    def post(item):
        form, path = item
        return requests.post(form["url"], data=form["fields"], files={"file": (path.name, path.read_bytes())}, timeout=30)

    with ThreadPoolExecutor(max_workers=6) as pool:  # the site uploads in parallel too (bounded)
        assert {r.status_code for r in pool.map(post, zip(created["uploads"], paths))} == {204}
    return created["study_id"]


def wait_study(local, auth, study_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = requests.get(f"{local.url}/api/studies/{study_id}", headers=auth, timeout=10).json()
        if view["status"] in ("DONE", "FAILED"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"study {study_id} still {view['status']}")


def test_a_real_ct_study_is_read_as_one(local):
    assert STUDIES.is_dir(), f"the shared ct-ich studies are expected at {STUDIES}"
    ada, grace = login(local, 0), login(local, 1)
    folder = sorted(STUDIES.iterdir())[0]
    paths = sorted(folder.glob("*.png"), key=lambda p: natural(p.name))
    study_id = upload_study(local, ada, paths)
    view = wait_study(local, ada, study_id)
    assert view["status"] == "DONE", view
    result = view["result"]
    assert result["counts"]["files"] == len(paths) and result["counts"]["missing"] == 0
    assert len(result["stack"]) == len(paths) and result["stack"] == list(range(len(paths)))
    assert result["counts"]["assessed"] + result["counts"]["not_assessable"] + result["counts"]["unreadable"] == len(paths)
    assert view["progress"]["files_read"] == len(paths)
    for links in view["key_slice_previews"].values():
        png = requests.get(links["display"], timeout=10)
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    one = requests.get(f"{local.url}/api/studies/{study_id}", params={"slice": 0}, headers=ada, timeout=10).json()
    assert requests.get(one["slice_previews"]["0"]["display"], timeout=10).status_code == 200
    slices = requests.get(view["slices_url"], timeout=10).json()
    assert len(slices) == len(paths)
    assert requests.get(f"{local.url}/api/studies/{study_id}", headers=grace, timeout=10).status_code == 404
    listed = requests.get(f"{local.url}/api/studies", headers=ada, timeout=10).json()["studies"]
    assert listed[0]["study_id"] == study_id and listed[0]["progress"]["files_expected"] == len(paths)
