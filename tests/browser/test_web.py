"""The clinician web app in a real browser (Debian chromium driven by Playwright) on the local stack.

Sign in -> upload a real CT PNG and a DICOM (presigned POST straight to "S3") -> live status ->
result card whose numbers match the API -> viewer; refusals (non-image, wrong type and oversize by
the client check, oversize by the storage policy, cancel); per-clinician history; model card and
plotly charts; the clinical risk form; forms, limits and presets from GET /contract (and a page
that copes without it); a phone-width layout. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.browser.conftest import ARTIFACTS, LIMIT, TIMEOUT_MS, VALID_RISK
from tests.conftest import CT_DATA

pytestmark = pytest.mark.slow


# ---- helpers ----------------------------------------------------------------------------------
def shot(page, name: str, full_page: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page, stack, index: int = 0) -> str:
    user = stack.resources.clinicians[index]
    page.goto(stack.url + "/")
    page.wait_for_selector("html[data-ready=true]")
    page.check(f"input[name=user][value='{user['username']}']")
    page.click("#signin-local button[type=submit]")
    page.wait_for_selector("#view-scans:not([hidden])")
    assert page.inner_text("#who") == user["label"]
    return user["username"]


def token(page) -> str:
    return page.evaluate("JSON.parse(sessionStorage.getItem('strokelens.session')).idToken")


def api_get(stack, page, path: str) -> dict:
    response = requests.get(f"{stack.url}/api{path}", headers={"Authorization": f"Bearer {token(page)}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def served_contract(stack) -> dict:
    """GET /contract through the local gateway (as the browser reaches it), with a fresh token."""
    login = requests.post(f"{stack.url}/local/login", json={"username": stack.resources.clinicians[0]["username"]}, timeout=10)
    response = requests.get(f"{stack.url}/api/contract", headers={"Authorization": f"Bearer {login.json()['id_token']}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def stub_contract(page, change) -> None:
    """Serve the real contract, edited by ``change(contract)``: what the page shows must follow it."""
    def edit(route):
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, json=body)

    page.route("**/api/contract", edit)


def upload(page, path: Path, modality: str = "") -> None:
    page.set_input_files("#file", str(path))
    page.select_option("#modality", modality)
    page.click("#upload-btn")


def wait_final(page) -> str:
    page.wait_for_selector("#scan-panel[data-status=DONE], #scan-panel[data-status=FAILED]")
    return page.get_attribute("#scan-panel", "data-scan-id")


def shown_probabilities(page) -> dict[str, str]:
    rows = page.query_selector_all("#result .prob-row")
    return {row.get_attribute("data-label"): row.query_selector(".prob-value").inner_text() for row in rows}


def assert_result_matches_api(page, stack, scan_id: str) -> dict:
    scan = api_get(stack, page, f"/scans/{scan_id}")
    assert scan["status"] == "DONE", scan
    result = scan["result"]
    shown = shown_probabilities(page)
    assert set(shown) == set(result["probabilities"])
    for label, p in result["probabilities"].items():
        assert shown[label].replace("\u00a0", " ") == f"{100 * p:.1f} %", (label, shown[label], p)
    card = page.inner_text("#result")
    assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", card), card
    assert result["model_version"] in card
    assert "not a diagnosis" in card.lower()
    if result.get("out_of_distribution") or result.get("uncertain"):
        return scan
    top = max(result["probabilities"], key=result["probabilities"].get)
    if "stroke_type" in result:  # v2: the stroke type leads; the label is the assessed finding or "normal"
        assert page.get_attribute("#result .result-label", "data-label") == result["label"] == top
        assert page.inner_text("#stroke-type") == result["stroke_type"]
    else:
        assert page.inner_text("#result .result-label") == result["label"] == top
    assert re.search(r"processing time\s*\d", card, re.I), card
    for warning in scan.get("warnings", []):
        if warning["code"] == "FINDING_NOT_ASSESSED":  # said by the "what was assessed" block instead
            assert page.is_visible("#result-not-assessed")
            continue
        assert warning["message"][:40] in card
    return scan


def assert_says_what_was_assessed(page, result: dict, contract: dict) -> None:
    """A v2 result names its stroke type, the finding assessed on the modality it was read as, and,
    in the contract's words, the finding that is not assessed there."""
    assert page.get_attribute("#stroke-type", "data-stroke-type") == result["stroke_type"]
    assert page.get_attribute("#result-assessed", "data-finding") == (result.get("finding_assessed") or "")
    read = next((r for r in contract["model"]["reads"] if r["modality"] == result.get("routed_as")), None)
    if result.get("finding_assessed"):
        assert read is not None and read["finding"] == result["finding_assessed"]
        assert read["finding_name"] in page.inner_text("#result-assessed")
        assert read["not_assessed_sentence"] in page.inner_text("#result-not-assessed")
        assert read["modality_name"] in page.inner_text("#result-routed")
        # Only the assessed finding is scored (and its complement).
        assert set(result["probabilities"]) <= {result["finding_assessed"], "normal"}


def assert_previews(page, stack, scan: dict) -> None:
    """Each preview the API sends is shown; those served by this stack must really load."""
    previews = scan.get("previews") or {}
    # Every read slice gets these two (reader.imaging.previews.preview_pngs): none sent is a regression.
    assert {"display", "model_input"} <= set(previews), previews
    srcs = {src.split("?")[0] for src in page.eval_on_selector_all("#viewer img", "els => els.map(e => e.getAttribute('src'))")}
    for name in ("display", "model_input"):  # presigned links differ per request: compare without the signature
        assert previews[name].split("?")[0] in srcs, (name, srcs)
    # Wait until every image finished (loaded or failed), then check none failed.
    page.wait_for_function("() => [...document.querySelectorAll('#viewer img.scan-img')].every(e => e.complete)")
    loaded = page.eval_on_selector_all("#viewer img.scan-img", "els => els.map(e => [e.src, e.complete && e.naturalWidth > 0])")
    for src, ok in loaded:
        if src.startswith(stack.url):
            assert ok, f"preview did not load: {src}"


def write_png(path: Path, size: int) -> Path:
    """A PNG of at least ``size`` bytes of real image data, for the size-limit cases (padding after
    the image would not do: the browser strips it with the metadata before upload). Dim noise,
    which does not compress, with one bright pixel: nothing that looks like burned-in text."""
    rows = size // 400
    while True:
        pixels = np.random.default_rng(3).integers(0, 100, (rows, 512), dtype=np.uint8)
        pixels[0, 0] = 255
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        if len(buf.getvalue()) >= size:
            path.write_bytes(buf.getvalue())
            return path
        rows += 50


# ---- tests ------------------------------------------------------------------------------------
def test_sign_in_offers_the_local_clinicians(page, stack):
    page.goto(stack.url + "/")
    page.wait_for_selector("#view-signin:not([hidden])")
    labels = page.eval_on_selector_all("#signin-users .choice-title", "els => els.map(e => e.textContent)")
    assert labels == [c["label"] for c in stack.resources.clinicians]
    body = page.inner_text("body")
    assert "Research tool, not for diagnostic use" in body
    shot(page, "01-sign-in", full_page=False)
    assert page.console_errors == []


def test_real_ct_png_upload_progress_result_and_viewer(page, stack, tmp_path):
    sign_in(page, stack)
    source = sorted((CT_DATA / "hemorrhage").glob("*.png"))[0]
    path = tmp_path / "ct-slice.png"
    path.write_bytes(source.read_bytes())  # a temp copy: the shared data stays where it is
    upload(page, path, "CT")
    scan_id = wait_final(page)
    # The progress bar went to 100 % on real upload progress events.
    assert page.get_attribute("#upload-progress", "class").split().count("complete") == 1
    assert page.eval_on_selector("#progress", "p => p.value") == 100
    assert page.inner_text("#progress-pct").replace("\u00a0", " ") == "100 %"
    events = page.evaluate("window.__uploadProgress")
    assert events and events[-1][0] == events[-1][1] > path.stat().st_size
    assert page.get_attribute("#scan-panel", "data-status") == "DONE"
    scan = assert_result_matches_api(page, stack, scan_id)
    assert_previews(page, stack, scan)
    assert page.is_visible("#viewer")
    assert page.url.endswith(f"#/scan/{scan_id}")
    # Re-listed in the history, newest first, marked as the open scan.
    page.wait_for_selector(f"#history li[data-scan-id='{scan_id}'].current")
    assert page.get_attribute("#history li:first-child", "data-scan-id") == scan_id
    shot(page, "02-result")
    page.locator("#viewer").screenshot(path=str(ARTIFACTS / "03-viewer.png"))
    # Zoom affects both panes.
    page.click("#viewer button[aria-label='Zoom in']")
    assert page.eval_on_selector("#viewer .panes", "p => p.style.getPropertyValue('--zoom')") == "1.5"
    assert page.evaluate("window.__cspViolations") == []
    assert page.console_errors == []


def test_dicom_upload_is_read(page, stack, tmp_path):
    from phantoms import make_ct_slice, write_dicom

    path = write_dicom(make_ct_slice(np.random.default_rng(7), lesion="hemorrhage"), tmp_path / "phantom-slice.dcm")
    sign_in(page, stack)
    upload(page, path)
    scan_id = wait_final(page)
    scan = assert_result_matches_api(page, stack, scan_id)
    assert scan["result"]["source_format"] == "dicom"
    assert "DICOM" in page.inner_text("#result .meta")
    assert_previews(page, stack, scan)
    if (scan.get("previews") or {}).keys() & {"windows", "window_brain"}:
        assert page.is_visible("#viewer [role=radiogroup]")
    assert page.console_errors == []


def test_a_ct_result_says_its_stroke_type_and_what_is_not_assessed(page, stack, tmp_path):
    """Model v2 on a real CT slice declared as CT: read for haemorrhage, so the card's stroke type is
    "haemorrhagic" or "no finding" (or "not assessed" if the model refuses the slice, which is then
    said as such), and it says ischaemic stroke is not assessed on CT. The history line says the
    stroke type too."""
    contract = served_contract(stack)
    if contract["model"].get("generation") != "v2":
        pytest.skip("the installed model is not v2")
    ct = next(r for r in contract["model"]["reads"] if r["modality"] == "CT")
    assert ct["finding"] == "hemorrhage" and ct["not_assessed"] == ["ischemic"]
    assert ct["not_assessed_sentence"].startswith("Ischaemic stroke") and "not assessed on" in ct["not_assessed_sentence"]
    path = tmp_path / "ct-slice.png"
    path.write_bytes(sorted((CT_DATA / "hemorrhage").glob("*.png"))[1].read_bytes())
    sign_in(page, stack)
    upload(page, path, "CT")
    scan_id = wait_final(page)
    scan = assert_result_matches_api(page, stack, scan_id)
    result = scan["result"]
    if result["out_of_distribution"]:  # refused: nothing assessed, and the card says so
        assert result["stroke_type"] == "not assessed" and page.inner_text("#stroke-type") == "not assessed"
        assert page.is_visible("#ood-message")
    else:
        assert result["routed_as"] == "CT" and result["finding_assessed"] == "hemorrhage"
        assert result["stroke_type"] in ("haemorrhagic", "no finding")
        assert page.inner_text("#stroke-type") == result["stroke_type"]
        assert_says_what_was_assessed(page, result, contract)
        assert "Ischaemic stroke" in page.inner_text("#result-not-assessed")
        # No ischaemic probability is shown for a CT slice.
        assert page.query_selector("#result .prob-row[data-label=ischemic]") is None
        assert page.query_selector("#result .prob-row[data-label=hemorrhage]") is not None
        # One place says it: the warning list does not repeat the "not assessed" sentence.
        assert page.query_selector("#result .result-warnings li[data-code=FINDING_NOT_ASSESSED]") is None
    page.wait_for_selector(f"#history li[data-scan-id='{scan_id}']")
    assert f"Stroke type: {result['stroke_type']}" in page.inner_text(f"#history li[data-scan-id='{scan_id}']") \
        or result["out_of_distribution"] or result["uncertain"]
    shot(page, "02b-result-v2")
    assert page.console_errors == []


def test_v2_states_and_previous_results_render(page, stack, tmp_path):
    """Fields injected into a real scan's JSON: a haemorrhagic reading of a synthetic-data model (the
    synthetic label shows), a "no finding" reading, a DWI reading (ischaemic; haemorrhage not assessed),
    a slice refused as another MRI sequence, and a stored result of the previous model (no v2
    fields), which renders as it always did."""
    contract = served_contract(stack)
    if contract["model"].get("generation") != "v2":
        pytest.skip("the installed model is not v2")
    path = tmp_path / "slice.png"
    path.write_bytes(sorted((CT_DATA / "normal").glob("*.png"))[0].read_bytes())
    sign_in(page, stack)
    upload(page, path, "CT")
    scan_id = wait_final(page)
    dwi = next(r for r in contract["model"]["reads"] if r["modality"] == "MR-DWI")
    v2 = {"uncertain": False, "out_of_distribution": False, "ood_reason": None}
    cases = {
        "haemorrhagic": {**v2, "label": "hemorrhage", "model_label": "hemorrhage", "probabilities": {"hemorrhage": 0.91, "normal": 0.09},
                         "finding_assessed": "hemorrhage", "not_assessed": ["ischemic"], "stroke_type": "haemorrhagic",
                         "routed_as": "CT", "assessable": True, "synthetic_model": True},
        "no finding": {**v2, "label": "normal", "model_label": "normal", "probabilities": {"hemorrhage": 0.12, "normal": 0.88},
                       "finding_assessed": "hemorrhage", "not_assessed": ["ischemic"], "stroke_type": "no finding",
                       "routed_as": "CT", "assessable": True},
        "ischaemic": {**v2, "label": "ischemic", "model_label": "ischemic", "probabilities": {"ischemic": 0.8, "normal": 0.2},
                      "finding_assessed": "ischemic", "not_assessed": ["hemorrhage"], "stroke_type": "ischaemic",
                      "routed_as": "MR-DWI", "modality": "MR"},
        "not assessed": {"label": None, "model_label": "not assessed", "probabilities": {}, "uncertain": False,
                         "out_of_distribution": True, "ood_reason": "This looks like an MRI sequence other than DWI.",
                         "not_assessed": ["hemorrhage", "ischemic"], "stroke_type": "not assessed", "routed_as": "MR-other",
                         "modality": "MR"},
    }
    mode = {"value": "haemorrhagic"}

    def inject(route):
        response = route.fetch()
        scan = response.json()
        for key in ("finding_assessed", "not_assessed", "stroke_type", "routed_as", "assessable"):
            scan["result"].pop(key, None)
        scan["warnings"] = [w for w in scan.get("warnings", []) if w["code"] != "FINDING_NOT_ASSESSED"]
        if mode["value"] == "v1":
            scan["result"].update(label="normal", model_label="normal", probabilities={"hemorrhage": 0.2, "normal": 0.8},
                                  uncertain=False, out_of_distribution=False, ood_reason=None)
        else:
            scan["result"].update(cases[mode["value"]])
        route.fulfill(response=response, json=scan)

    page.route(f"**/api/scans/{scan_id}", inject)
    for value, case in cases.items():
        mode["value"] = value
        page.goto(f"{stack.url}/#/")
        page.goto(f"{stack.url}/#/scan/{scan_id}")
        page.wait_for_selector(f"#stroke-type[data-stroke-type='{value}']")
        assert page.inner_text("#stroke-type") == value
        text = page.inner_text("#result")
        assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", text), text
        shown = shown_probabilities(page)
        assert set(shown) == set(case["probabilities"]) if not case["out_of_distribution"] else not shown
        if case.get("routed_as") == "MR-DWI":
            assert dwi["not_assessed_sentence"] in page.inner_text("#result-not-assessed")
            assert "Haemorrhage" in page.inner_text("#result-not-assessed")
            assert page.query_selector("#result .prob-row[data-label=hemorrhage]") is None
        if case["out_of_distribution"]:
            assert page.is_visible("#ood-message") and case["ood_reason"] in text
            assert page.inner_text("#result-assessed").startswith("Assessed: nothing")
            assert page.query_selector("#result .result-label") is None
        else:
            assert page.get_attribute("#result .result-label", "data-label") == case["label"]
        synthetic = page.query_selector("#result .badge-warning:has-text('synthetic training data')")
        assert (synthetic is not None) == bool(case.get("synthetic_model")), value
        if case.get("synthetic_model"):
            assert contract["warnings"]["SYNTHETIC_MODEL"] in text
    page.locator("#scan-panel").screenshot(path=str(ARTIFACTS / "05c-v2-refused-sequence.png"))
    # A result stored by the previous model: no stroke type, the highest output as before.
    mode["value"] = "v1"
    page.goto(f"{stack.url}/#/")
    page.goto(f"{stack.url}/#/scan/{scan_id}")
    page.wait_for_selector("#result .result-label")
    assert page.inner_text("#result .result-label") == "normal"
    assert page.query_selector("#stroke-type") is None and page.query_selector("#result-assessed") is None
    assert set(shown_probabilities(page)) == {"hemorrhage", "normal"}
    assert page.console_errors == []


def test_non_image_fails_with_the_clinician_message(page, stack, tmp_path):
    from strokelens.core.errors import MESSAGES

    path = tmp_path / "not-a-scan.png"
    path.write_text("<!doctype html><html><body><h1>Not a scan</h1></body></html>")
    sign_in(page, stack)
    upload(page, path)
    scan_id = wait_final(page)
    assert page.get_attribute("#scan-panel", "data-status") == "FAILED"
    assert page.inner_text("#result-error") == MESSAGES["UNSUPPORTED_FORMAT"]
    assert "UNSUPPORTED_FORMAT" in page.inner_text("#result")
    assert page.query_selector("#result .prob-row") is None
    assert api_get(stack, page, f"/scans/{scan_id}")["error"]["code"] == "UNSUPPORTED_FORMAT"


def test_unsupported_type_is_refused_by_the_client_check(page, stack, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("clinical notes")
    contract = served_contract(stack)
    sign_in(page, stack)
    api_posts = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/scans") and api_posts.append(r.url))
    upload(page, path)
    page.wait_for_selector("#upload-msg.alert-error")
    text = page.inner_text("#upload-msg")
    assert "not accepted" in text
    assert all(ext in text for ext in contract["accepted"]["extensions"]), text  # the contract's list, not a copy
    assert api_posts == []  # refused before a scan is created


def test_oversize_is_refused_by_the_client_check_and_by_the_storage_policy(page, stack, tmp_path):
    path = write_png(tmp_path / "big.png", LIMIT + 20_000)
    sign_in(page, stack)
    posts = []
    page.on("request", lambda r: r.method == "POST" and ("/s3/" in r.url or r.url.endswith("/api/scans")) and posts.append(r.url))
    # 1. The client knows the limit from GET /contract: no scan is created and the file is not sent.
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#upload-msg.alert-warning")  # said as soon as the file is chosen
    page.click("#upload-btn")
    page.wait_for_selector("#upload-msg.alert-error")
    assert "larger than the upload limit" in page.inner_text("#upload-msg")
    assert "not sent" in page.inner_text("#upload-msg")
    assert posts == []

    # 2. With the client check out of the way (the limit raised in the contract and in the API's
    #    answer), the presigned POST policy (content-length-range) makes the storage refuse it.
    def raise_limit(route):
        response = route.fetch()
        body = response.json()
        if response.status == 201:
            body["max_bytes"] = 10**9
        route.fulfill(response=response, json=body)

    page.route("**/api/scans", lambda route: raise_limit(route) if route.request.method == "POST" else route.fallback())
    stub_contract(page, lambda c: c["limits"].update(max_upload_bytes=10**9))
    page.reload()  # the contract is fetched once per page: fetch the raised one
    page.wait_for_selector("html[data-ready=true]")
    with page.expect_response(lambda r: "/s3/" in r.url and r.request.method == "POST") as s3:
        upload(page, path)
    assert s3.value.status == 400 and "<Code>EntityTooLarge</Code>" in s3.value.text()
    page.wait_for_selector("#upload-msg.alert-error")
    message = page.inner_text("#upload-msg")
    assert "larger than the upload limit" in message and "storage service refused" in message
    assert page.is_hidden("#upload-progress")
    shot(page, "04-too-large", full_page=False)


def test_cancel_stops_the_upload(page, stack, received, tmp_path):
    path = tmp_path / "slice.png"
    path.write_bytes(sorted((CT_DATA / "normal").glob("*.png"))[0].read_bytes())
    sign_in(page, stack)
    held = []
    page.route("**/s3/**", lambda route: held.append(route))  # never answered: the upload hangs
    with page.expect_response(lambda r: r.url.endswith("/api/scans") and r.request.method == "POST") as created:
        upload(page, path)
    assert created.value.status == 201, created.value.text()
    scan_id = created.value.json()["scan_id"]
    page.wait_for_selector("#cancel-btn:visible")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(held) == 1 and held[0].request.method == "POST", "the upload never reached storage: nothing to cancel"
    page.click("#cancel-btn")
    page.wait_for_selector("#upload-msg.alert-info")
    assert "Upload cancelled" in page.inner_text("#upload-msg")
    assert page.is_enabled("#upload-btn")
    # The held upload was never let through: storage has no body, and the scan was never read.
    assert received == []
    scan = api_get(stack, page, f"/scans/{scan_id}")
    assert scan["status"] == "PENDING", scan
    assert "result" not in scan and "previews" not in scan, scan


def test_expired_preview_links_are_fetched_again(page, stack, tmp_path):
    """Preview links are short-lived: a refused one makes the page fetch the scan again once."""
    path = tmp_path / "slice.png"
    path.write_bytes(sorted((CT_DATA / "normal").glob("*.png"))[2].read_bytes())
    sign_in(page, stack)
    refused = []

    def expire_once(route):
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=403, content_type="application/xml", body="<Error><Code>AccessDenied</Code></Error>")
        else:
            route.fallback()

    page.route(re.compile(r"/previews/"), expire_once)
    upload(page, path)
    scan_id = wait_final(page)
    previews = api_get(stack, page, f"/scans/{scan_id}").get("previews") or {}
    assert {"display", "model_input"} <= set(previews), previews  # the local stack always sends them
    page.wait_for_function("() => { const imgs = [...document.querySelectorAll('#viewer img.scan-img')];"
                           " return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }")
    # The refused image cannot have loaded from its own link: both loaded from a re-render with fresh ones.
    assert refused, "the first preview request was not intercepted"
    assert page.query_selector("#viewer .img-missing") is None


def test_history_is_per_clinician_and_reopens_scans(page, stack, tmp_path):
    path = tmp_path / "normal.png"
    path.write_bytes(sorted((CT_DATA / "normal").glob("*.png"))[1].read_bytes())
    sign_in(page, stack, 0)
    upload(page, path)
    first_id = wait_final(page)
    first_ids = {s["scan_id"] for s in api_get(stack, page, "/scans?limit=50")["scans"]}
    assert first_id in first_ids
    # Re-open from the history after going elsewhere.
    page.click("nav a[data-route=model]")
    page.click("nav a[data-route=scans]")
    page.click(f"#history a[data-scan-id='{first_id}']")
    page.wait_for_selector(f"#scan-panel[data-scan-id='{first_id}'][data-status=DONE]")
    assert_result_matches_api(page, stack, first_id)

    page.click("#signout")
    page.wait_for_selector("#view-signin:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('strokelens.session')") is None
    sign_in(page, stack, 1)
    page.wait_for_selector("#history-msg:has-text('No scans yet'), #history li")
    listed = set(page.eval_on_selector_all("#history li", "els => els.map(e => e.dataset.scanId)"))
    assert not listed & first_ids
    # The first clinician's scan id is simply not found for the second one.
    page.goto(f"{stack.url}/#/scan/{first_id}")
    page.wait_for_selector("#result .alert-error")
    assert "Scan not found" in page.inner_text("#result")


def test_out_of_distribution_uncertain_heatmap_and_windows_are_rendered(page, stack, tmp_path):
    """Optional fields (OOD, uncertain, heat map, CT windows) injected into a real scan's JSON."""
    path = tmp_path / "slice.png"
    source = sorted((CT_DATA / "hemorrhage").glob("*.png"))[2]
    path.write_bytes(source.read_bytes())
    from strokelens.core.errors import WARNINGS
    from strokelens.reader.model.cam import overlay_png, upsample

    # Window labels and L/W hints come from the contract: rename them there, the viewer follows.
    stub_contract(page, lambda c: [p.update(label=f"{p['label']} (served)") for p in c["window_presets"]])
    sign_in(page, stack)
    upload(page, path, "CT")
    scan_id = wait_final(page)
    presets = served_contract(stack)["window_presets"]
    grid = [[float(np.exp(-((x - 9) ** 2 + (y - 6) ** 2) / 12)) for x in range(16)] for y in range(16)]
    images = {"heatmap.png": overlay_png(upsample(np.array(grid), 224)), "default": source.read_bytes()}
    page.route("**/__test__/*.png", lambda route: route.fulfill(
        status=200, content_type="image/png", body=images.get(route.request.url.rsplit("/", 1)[-1], images["default"])))
    mode = {"value": "uncertain"}

    def inject(route):
        response = route.fetch()
        scan = response.json()
        base = f"{stack.url}/__test__"
        scan["previews"] = {"display": f"{base}/display.png", "model_input": f"{base}/model.png",
                            "heatmap": f"{base}/heatmap.png",
                            "windows": {w: f"{base}/{w}.png" for w in ("bone", "stroke", "subdural", "brain")}}
        scan["result"]["heatmap"] = {"method": "class activation map", "class": "hemorrhage", "grid": grid}
        if mode["value"] == "uncertain":
            scan["result"]["uncertain"] = True
        else:
            scan["result"]["out_of_distribution"] = True
            scan["result"]["ood_reason"] = "Intensity histogram far from the training images."
        route.fulfill(response=response, json=scan)

    page.route(f"**/api/scans/{scan_id}", inject)
    page.goto(f"{stack.url}/#/")
    page.goto(f"{stack.url}/#/scan/{scan_id}")
    page.wait_for_selector("#uncertain-message")
    assert page.inner_text("#uncertain-message") == "Indeterminate \u2014 review"
    assert WARNINGS["INDETERMINATE"] in page.inner_text("#result")  # the contract's sentence under it
    page.locator("#scan-panel").screenshot(path=str(ARTIFACTS / "05a-uncertain.png"))
    assert page.query_selector("#result .result-label") is None  # no label claim
    # Viewer: two panes, window presets, heat map with an opacity slider.
    page.wait_for_selector("#viewer .pane >> nth=1")
    # The images load asynchronously: wait for them (fails on timeout) rather than sample once.
    page.wait_for_function("() => { const els = [...document.querySelectorAll('#viewer img.scan-img')];"
                           " return els.length >= 2 && els.every(e => e.complete && e.naturalWidth > 0); }")
    labels = page.eval_on_selector_all("#viewer [role=radiogroup] label", "els => els.map(e => [e.textContent, e.title])")
    assert labels == [["As displayed", ""]] + [[f"{p['label']} (served)", f"L{p['level']:g} / W{p['width']:g}"] for p in presets]
    page.click("#viewer label[for=win-bone]")
    page.wait_for_selector("#viewer img[src$='/bone.png']")
    bone = next(p for p in presets if p["name"] == "bone")
    assert f"L{bone['level']:g} / W{bone['width']:g}" in page.inner_text("#viewer .pane figcaption")
    # One heat-map path: the server's PNG over the model input (no canvas drawn from the grid).
    assert page.query_selector("#viewer canvas") is None
    assert page.get_attribute("#viewer img.overlay.heatmap", "src").endswith("/__test__/heatmap.png")
    page.wait_for_function("() => { const o = document.querySelector('#viewer img.heatmap'); return o.complete && o.naturalWidth === 224; }")
    assert page.eval_on_selector("img.heatmap", "c => c.style.opacity") == "0.5"
    assert "hemorrhage" in page.inner_text("#viewer .heat-note") and page.is_visible("#viewer .heat-legend")
    page.fill("#heat-opacity", "80")
    page.dispatch_event("#heat-opacity", "input")
    assert page.eval_on_selector("img.heatmap", "c => c.style.opacity") == "0.8"
    page.uncheck("#heat-toggle")
    assert page.eval_on_selector("img.heatmap", "c => c.style.opacity") == "0"
    page.check("#heat-toggle")
    page.click("#viewer label[for=win-brain]")
    page.locator("#viewer").screenshot(path=str(ARTIFACTS / "05-viewer-heatmap.png"))

    mode["value"] = "ood"
    page.goto(f"{stack.url}/#/")
    page.goto(f"{stack.url}/#/scan/{scan_id}")
    page.wait_for_selector("#ood-message")
    text = page.inner_text("#result")
    assert page.inner_text("#ood-message") == WARNINGS["OUT_OF_DISTRIBUTION"]  # the contract's text
    assert "Intensity histogram far from the training images." in text
    assert page.query_selector("#result .prob-row") is None and page.query_selector("#result .result-label") is None
    page.locator("#scan-panel").screenshot(path=str(ARTIFACTS / "05b-out-of-distribution.png"))
    assert page.console_errors == []


def test_model_card_and_every_chart_render(page, stack):
    sign_in(page, stack)
    page.click("nav a[data-route=model]")
    page.wait_for_selector("#model-card h2")
    metrics = api_get(stack, page, "/metrics")
    card = api_get(stack, page, "/model")
    assert page.inner_text("#model-card h2") == card["name"]
    headings = page.eval_on_selector_all("#model-card h3", "els => els.map(e => e.textContent)")
    for heading in ("Intended use", "Limitations", "Data", "Metrics"):
        assert heading in headings
    if "metrics" in card:
        assert page.query_selector("#model-card .metrics-table") is not None
        assert "ROC AUC" in page.inner_text("#model-card .metrics-table")
    if card.get("findings"):  # v2: one figure per source, each with its interval, and the previous model kept
        table = page.inner_text("section[aria-labelledby=mc-metrics] .metrics-table")
        for name, m in card["metrics"].items():
            if m:
                row = page.locator("section[aria-labelledby=mc-metrics] .metrics-table tr", has=page.locator("th", has_text=re.compile(
                    "^" + re.escape(name.replace("_", " ")) + "$", re.I)))
                assert row.count() == 1, (name, table)
                assert f"{m['value']:.3f}" in row.inner_text() and f"{m['ci_low']:.3f}" in row.inner_text(), name
        assert "History: the previous model" in headings
        history = page.inner_text("section[aria-labelledby=mc-history]")
        assert card["history"]["version"] in history and card["history"]["name"] in history
    expected = len(metrics["charts"])
    assert expected > 0
    page.wait_for_function("n => document.querySelectorAll('#charts .js-plotly-plot .main-svg').length >= n", arg=expected)
    for chart in metrics["charts"]:
        key = f"{chart['group']}-{chart['id']}" if chart.get("group") else chart["id"]
        figure = page.query_selector(f"#charts figure[data-chart-key='{key}']")
        assert figure is not None, chart["id"]
        assert figure.query_selector(".js-plotly-plot .main-svg") is not None, chart["id"]
        assert chart["title"] in figure.inner_text()
    shot(page, "06-model-metrics")
    page.locator("#view-model > .card >> nth=1").screenshot(path=str(ARTIFACTS / "06b-charts.png"))
    assert page.evaluate("window.__cspViolations") == []
    assert page.console_errors == []


def test_risk_form(page, stack):
    sign_in(page, stack)
    probe = requests.post(f"{stack.url}/api/risk", json=VALID_RISK, timeout=10,
                          headers={"Authorization": f"Bearer {token(page)}"})
    page.click("nav a[data-route=risk]")
    page.wait_for_selector("#risk-form")
    # Client-side validation before anything is sent.
    page.click("#risk-form button[type=submit]")
    assert page.get_attribute("#risk-age", "aria-invalid") == "true"
    assert "Age is required" in page.inner_text("#risk-age-error")
    assert probe.status_code == 200, probe.text
    expected = probe.json()
    fill_risk_form(page, VALID_RISK)
    with page.expect_request(lambda r: r.url.endswith("/api/risk") and r.method == "POST") as sent:
        page.click("#risk-form button[type=submit]")
    assert json.loads(sent.value.post_data) == VALID_RISK
    page.wait_for_selector("#risk-result:not([hidden])")
    assert page.inner_text("#risk-probability").replace("\u00a0", " ") == f"{100 * expected['probability']:.1f} %"
    text = page.inner_text("#risk-result")
    assert "not a diagnosis" in text.lower()
    assert len(page.query_selector_all("#risk-result .contrib")) == len(expected["contributions"])
    assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", text), text
    page.locator("#risk-result").screenshot(path=str(ARTIFACTS / "07b-risk-live.png"))
    assert page.console_errors == []


def fill_risk_form(page, values: dict) -> None:
    page.fill("#risk-age", str(values["age"]))
    page.select_option("#risk-gender", values["gender"])
    page.check(f"#risk-hypertension-{values['hypertension']}")
    page.check(f"#risk-heart_disease-{values['heart_disease']}")
    page.fill("#risk-avg_glucose_level", str(values["avg_glucose_level"]))
    page.fill("#risk-bmi", "" if values["bmi"] is None else str(values["bmi"]))
    page.select_option("#risk-smoking_status", values["smoking_status"])
    page.select_option("#risk-ever_married", values["ever_married"])
    page.select_option("#risk-work_type", values["work_type"])
    page.select_option("#risk-Residence_type", values["Residence_type"])


def test_risk_form_renders_an_answer_and_server_field_errors(page, stack):
    """The form's rendering against contract-shaped answers (the API is stubbed in the browser)."""
    answer = {
        "probability": 0.1834, "band": "high", "model_version": "c0ffee123456",
        "bands": [{"name": "low", "upper": 0.05, "meaning": "below the average risk"},
                  {"name": "moderate", "upper": 0.15, "meaning": "up to three times the average"},
                  {"name": "high", "upper": None, "meaning": "more than three times the average risk in the training data"}],
        "baseline": {"probability": 0.049, "meaning": "the average patient in the training data"},
        "contributions": [
            {"feature": "age", "value": 67, "contribution": 1.42, "direction": "raises"},
            {"feature": "avg_glucose_level", "value": 205.5, "contribution": 0.38, "direction": "raises"},
            {"feature": "bmi", "value": 28.1, "imputed": True, "contribution": 0.0, "direction": "neutral"},
            {"feature": "smoking_status", "value": "never smoked", "contribution": -0.21, "direction": "lowers"}],
        "notes": ["bmi was not given: the training median (28.1) was used."],
        "disclaimer": "A population-level statistical estimate; not a diagnosis.",
    }
    calls = []

    def stub(route):
        body = json.loads(route.request.post_data)
        calls.append(body)
        if len(calls) == 1:
            route.fulfill(status=400, json={"error": {"code": "INVALID_FIELD", "field": "avg_glucose_level",
                                                      "message": "avg_glucose_level must be between 40 and 400."}})
        else:
            route.fulfill(status=200, json=answer)

    sign_in(page, stack)
    page.route("**/api/risk", stub)
    page.goto(f"{stack.url}/#/risk?scan=0123456789abcdef01234567")
    page.wait_for_selector("#risk-form")
    assert page.get_attribute("#risk-back a", "href") == "#/scan/0123456789abcdef01234567"
    fill_risk_form(page, {**VALID_RISK, "bmi": None})
    page.click("#risk-form button[type=submit]")
    page.wait_for_selector("#risk-msg:not([hidden])")
    assert calls[0]["bmi"] is None and calls[0]["hypertension"] == 1
    assert page.get_attribute("#risk-avg_glucose_level", "aria-invalid") == "true"
    assert "between 40 and 400" in page.inner_text("#risk-avg_glucose_level-error")
    assert page.evaluate("document.activeElement.id") == "risk-avg_glucose_level"
    page.click("#risk-form button[type=submit]")
    page.wait_for_selector("#risk-result:not([hidden])")
    assert page.inner_text("#risk-probability").replace("\u00a0", " ") == "18.3 %"
    assert page.inner_text("#risk-band").lower().startswith("high")
    text = page.inner_text("#risk-result")
    assert "not a diagnosis" in text.lower() and "research tool, not for diagnostic use" in text.lower()
    rows = page.eval_on_selector_all("#risk-result .contrib", "els => els.map(e => [e.dataset.feature, e.className])")
    assert [r[0] for r in rows] == ["age", "avg_glucose_level", "smoking_status", "bmi"]
    assert "raises" in rows[0][1] and "lowers" in rows[2][1] and "neutral" in rows[3][1]
    assert "(imputed)" in text and answer["notes"][0] in text
    page.locator("#view-risk").screenshot(path=str(ARTIFACTS / "07-risk.png"))
    assert [e for e in page.console_errors if "status of 400" not in e] == []  # the stubbed 400 is logged


def test_upload_and_risk_form_follow_the_served_contract(page, stack):
    """GET /contract (reached through the gateway's /api routes) drives the file picker, the hint,
    and the risk form's fields, ranges, units and options: edit the contract, the page follows."""
    served = served_contract(stack)
    assert served["limits"]["max_upload_bytes"] == LIMIT
    names = [f["name"] for f in served["risk_form"]]

    def edit(c):
        age = next(f for f in c["risk_form"] if f["name"] == "age")
        age.update(max=99, unit="years old")
        work = next(f for f in c["risk_form"] if f["name"] == "work_type")
        work["options"] = [[v, f"{label} (served)"] for v, label in work["options"]]

    stub_contract(page, edit)
    with page.expect_response(lambda r: r.url.endswith("/api/contract")) as fetched:
        sign_in(page, stack)
    assert fetched.value.status == 200
    page.wait_for_selector("#file[accept]")
    accepted = served["accepted"]
    assert page.get_attribute("#file", "accept").split(",") == accepted["extensions"] + accepted["content_types"]
    hint = page.inner_text("#file-hint")
    assert all(ext in hint for ext in accepted["extensions"]) and "293 KB" in hint  # LIMIT, formatted

    page.click("nav a[data-route=risk]")
    page.wait_for_selector("#risk-form")
    shown = page.eval_on_selector_all("#risk-form [id^=risk-][id$=-error]", "els => els.map(e => e.id.slice(5, -6))")
    assert shown == names  # every field, in the contract's order
    assert page.get_attribute("#risk-age", "max") == "99" and page.inner_text("#risk-age-unit") == "years old"
    glucose = next(f for f in served["risk_form"] if f["name"] == "avg_glucose_level")
    assert float(page.get_attribute("#risk-avg_glucose_level", "min")) == glucose["min"]
    work = next(f for f in served["risk_form"] if f["name"] == "work_type")
    options = page.eval_on_selector_all("#risk-work_type option", "els => els.slice(1).map(e => [e.value, e.textContent])")
    assert options == [[v, f"{label} (served)"] for v, label in work["options"]]
    page.fill("#risk-age", "105")
    page.click("#risk-form button[type=submit]")
    assert page.inner_text("#risk-age-error") == "Age must be between 0 and 99 years old."
    assert page.get_attribute("#risk-age", "aria-invalid") == "true"
    assert page.console_errors == []


def test_the_page_copes_without_the_contract(page, stack):
    """GET /contract failing: the page says so, the risk form offers a retry, nothing crashes."""
    failing = {"on": True}
    page.route("**/api/contract", lambda route: route.fulfill(status=503, json={"message": "Service Unavailable"})
               if failing["on"] else route.fallback())
    sign_in(page, stack)
    page.wait_for_selector("#global-error:not([hidden])")
    assert "could not be loaded" in page.inner_text("#global-error")
    assert page.get_attribute("#file", "accept") is None  # no guessed list: the API decides
    page.click("nav a[data-route=risk]")
    page.wait_for_selector("#risk-form-host .alert-error")
    assert "risk form could not be loaded" in page.inner_text("#risk-form-host")
    failing["on"] = False
    page.click("#risk-form-host button:has-text('Try again')")
    page.wait_for_selector("#risk-form #risk-age")
    page.click("nav a[data-route=scans]")
    page.wait_for_selector("#global-error", state="hidden")  # fetched again on the next page
    assert [e for e in page.console_errors if "status of 503" not in e] == []


def test_cognito_hosted_ui_sign_in_with_pkce_refresh_and_sign_out(page, stack):
    """Production sign-in against a stand-in Cognito domain: authorization code + PKCE (S256),
    state check, tokens in sessionStorage, refresh before expiry, refresh token revoked and hosted-UI
    sign-out."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlparse

    domain = "https://strokelens-test.auth.eu-west-1.amazoncognito.com"
    config = {"apiUrl": f"{stack.url}/api", "auth": {
        "mode": "cognito", "region": "eu-west-1", "userPoolId": "eu-west-1_TEST", "clientId": "client123",
        "domain": domain.removeprefix("https://"), "redirectUri": f"{stack.url}/"}}
    real = requests.post(f"{stack.url}/local/login", json={"username": stack.resources.clinicians[0]["username"]}, timeout=10).json()
    seen = {}

    def authorize(route):
        query = {k: v[0] for k, v in parse_qs(urlparse(route.request.url).query).items()}
        seen["authorize"] = query
        route.fulfill(status=302, headers={"Location": f"{stack.url}/?code=the-code&state={query['state']}"})

    def token_endpoint(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen.setdefault("token", []).append(form)
        # Short-lived the first time, so the app must refresh before its first API call.
        body = {"id_token": real["id_token"], "access_token": real["access_token"], "token_type": "Bearer",
                "expires_in": 30 if form["grant_type"] == "authorization_code" else 3600}
        if form["grant_type"] == "authorization_code":
            body["refresh_token"] = "the-refresh-token"
        route.fulfill(status=200, json=body, headers={"Access-Control-Allow-Origin": "*"})

    def logout(route):
        seen["logout"] = route.request.url
        route.fulfill(status=302, headers={"Location": f"{stack.url}/"})

    def revoke(route):
        seen["revoke"] = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        route.fulfill(status=200, body="", headers={"Access-Control-Allow-Origin": "*"})

    page.route("**/config.json", lambda route: route.fulfill(status=200, json=config))
    page.route(f"{domain}/oauth2/authorize**", authorize)
    page.route(f"{domain}/oauth2/token", token_endpoint)
    page.route(f"{domain}/logout**", logout)
    page.route(f"{domain}/oauth2/revoke", revoke)
    page.goto(stack.url + "/#/model")
    page.wait_for_selector("#signin-cognito-btn:visible")
    assert page.is_hidden("#signin-local")
    page.click("#signin-cognito-btn")
    page.wait_for_selector("#view-model:not([hidden])")  # back where the clinician started
    auth = seen["authorize"]
    assert auth["response_type"] == "code" and auth["client_id"] == "client123"
    assert auth["redirect_uri"] == f"{stack.url}/" and auth["code_challenge_method"] == "S256"
    first, *rest = seen["token"]
    assert first["grant_type"] == "authorization_code" and first["code"] == "the-code"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(first["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert challenge == auth["code_challenge"]
    assert "code=" not in page.url, "the code is removed from the address bar"
    page.wait_for_selector("#model-card h2")  # API calls work with the token
    assert rest and rest[0] == {"grant_type": "refresh_token", "client_id": "client123", "refresh_token": "the-refresh-token"}
    session = page.evaluate("JSON.parse(sessionStorage.getItem('strokelens.session'))")
    assert session["refreshToken"] == "the-refresh-token" and session["expiresAt"] > time.time() * 1000 + 3000_000
    assert page.evaluate("localStorage.length") == 0  # tokens never persist beyond the tab
    page.click("#signout")
    page.wait_for_selector("#view-signin:not([hidden])")
    logout_query = parse_qs(urlparse(seen["logout"]).query)
    assert logout_query == {"client_id": ["client123"], "logout_uri": [f"{stack.url}/"]}
    # the refresh token is revoked, so a copy of it is worthless after sign-out
    assert seen["revoke"] == {"token": "the-refresh-token", "client_id": "client123"}
    assert page.evaluate("sessionStorage.getItem('strokelens.session')") is None


def test_a_forged_state_is_refused(page, stack):
    config = {"apiUrl": f"{stack.url}/api", "auth": {"mode": "cognito", "clientId": "c", "domain": "auth.example.test",
                                                     "redirectUri": f"{stack.url}/"}}
    page.route("**/config.json", lambda route: route.fulfill(status=200, json=config))
    page.goto(f"{stack.url}/?code=stolen&state=forged")
    page.wait_for_selector("#signin-msg:has-text('state mismatch')")
    assert page.evaluate("sessionStorage.getItem('strokelens.session')") is None


def test_phone_width_layout(browser, stack, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, stack)
        path = tmp_path / "phone-slice.png"
        path.write_bytes(sorted((CT_DATA / "hemorrhage").glob("*.png"))[3].read_bytes())
        upload(page, path)
        wait_final(page)
        page.wait_for_timeout(300)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"horizontal overflow of {overflow}px at phone width"
        assert page.is_visible("nav a[data-route=model]")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "08-phone.png"), full_page=False)
        page.eval_on_selector("#scan-panel", "el => el.scrollIntoView()")
        page.screenshot(path=str(ARTIFACTS / "09-phone-result.png"), full_page=False)
        for route in ("#/model", "#/risk"):
            page.goto(f"{stack.url}/{route}")
            page.wait_for_timeout(300)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"horizontal overflow of {overflow}px at phone width on {route}"
    finally:
        context.close()


def test_accessibility_basics(page, stack):
    """Every control is labelled, every image has alt text, and the app works from the keyboard."""
    page.goto(stack.url + "/")
    page.wait_for_selector("html[data-ready=true]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    # Keyboard sign-in: focus the first identity, submit with Enter.
    page.focus("#signin-users input")
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-scans:not([hidden])")
    for route in ("#/", "#/model", "#/risk"):
        page.goto(stack.url + "/" + route)
        page.wait_for_timeout(200)
        if route == "#/risk":
            page.wait_for_selector("#risk-form")  # built from the contract
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.offsetParent !== null || e.type === 'file')
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
            .map(e => e.id || e.name)""")
        assert unlabeled == [], (route, unlabeled)
        no_alt = page.evaluate("() => [...document.images].filter(i => !i.hasAttribute('alt')).map(i => i.src)")
        assert no_alt == [], (route, no_alt)
    assert page.evaluate("document.documentElement.lang") == "en"
