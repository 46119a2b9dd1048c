"""Studies in a real browser: a folder of real head CT slices (ct-ich) chosen with the folder picker
-> natural filename order -> de-identified -> POST /studies -> parallel presigned POSTs with one
progress bar -> polled to DONE -> the study card (model output, counts, key slices first) -> the
stack viewer (wheel, arrow keys, score strip, key-slice thumbnails) -> "My recent studies".
Limits from the contract refuse an over-limit folder before anything is sent; a file the storage
refuses is named and the rest still go."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import time

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_web import api_get, served_contract, sign_in, stub_contract
from tests.conftest import SHARED_DATA
from tests.phi_dicom import UID_SECRET, identified_ct, leaked

pytestmark = pytest.mark.slow

STUDIES = SHARED_DATA / "ct-ich" / "studies"
STUDY_TIMEOUT_MS = 120_000


def natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


@pytest.fixture
def folder(tmp_path):
    """The first ct-ich study, renamed slice1.png … slice26.png so only a natural sort keeps its order."""
    assert STUDIES.is_dir(), f"the shared ct-ich studies are expected at {STUDIES}"
    source = sorted(p for p in STUDIES.iterdir() if p.is_dir())[0]
    target = tmp_path / "head-ct"
    target.mkdir()
    for path in sorted(source.glob("*.png")):
        shutil.copyfile(path, target / f"slice{int(path.stem)}.png")
    (target / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # a system file a folder carries: never sent
    return target


def shown_position(page) -> int:
    return int(page.get_attribute("#study-viewer", "data-position"))


def wait_image(page, position: int) -> str:
    """The stack image shows ``position`` and really loaded; returns its link."""
    page.wait_for_function("p => { const i = document.getElementById('stack-img');"
                           " return i && i.dataset.position === String(p) && i.complete && i.naturalWidth > 0 }", arg=position)
    return page.get_attribute("#stack-img", "src")


def assert_study_says_what_was_assessed(page, result: dict, contract: dict) -> None:
    """A ct-ich study is read for haemorrhage on CT: the card leads with the study's stroke type and
    says that ischaemic stroke is not assessed on CT, in the contract's words."""
    assert result["stroke_type"] in ("haemorrhagic", "no finding", "not assessed")
    assert page.inner_text("#study-stroke-type") == result["stroke_type"]
    assert page.get_attribute("#study-stroke-type", "data-stroke-type") == result["stroke_type"]
    assert result["finding_assessed"] == "hemorrhage" and result["routed_as"] == "CT", result
    assert page.get_attribute("#study-assessed", "data-finding") == "hemorrhage"
    ct = next(r for r in contract["model"]["reads"] if r["modality"] == "CT")
    assert ct["finding_name"] in page.inner_text("#study-assessed")
    assert result["not_assessed"] == ct["not_assessed"] == ["ischemic"]
    assert ct["not_assessed_sentence"] in page.inner_text("#study-not-assessed")
    assert "Ischaemic stroke" in ct["not_assessed_sentence"] and "not assessed on" in ct["not_assessed_sentence"]
    if set(result["probabilities"]) - {"normal"}:  # only the assessed finding is scored
        assert set(result["probabilities"]) == {"hemorrhage", "normal"}


def test_a_folder_is_read_as_one_study_viewed_as_a_stack_and_listed(page, stack, folder):
    files = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural(p.name))
    sign_in(page, stack)
    page.set_input_files("#folder", str(folder))
    page.wait_for_selector(f"#privacy[data-files='{len(files)}']")
    assert page.eval_on_selector_all("#study-files li", "els => els.map(e => e.textContent.split('/').pop())") == [p.name for p in files]
    with page.expect_request(lambda r: r.url.endswith("/api/studies") and r.method == "POST") as created:
        page.click("#upload-btn")
    body = json.loads(created.value.post_data)
    assert [f["size"] for f in body["files"]] == [p.stat().st_size for p in files]  # natural order: slice2 before slice10
    assert {f["filename"] for f in body["files"]} == {"slice.png"}  # the clinician's file names never leave
    assert body["burned_in_text"] is False, "no corner of these slices looks like text"
    page.wait_for_selector("#study-panel[data-status=DONE], #study-panel[data-status=FAILED]", timeout=STUDY_TIMEOUT_MS)
    assert page.get_attribute("#study-panel", "data-status") == "DONE"
    progress = page.get_attribute("#upload-progress", "data-sent"), page.get_attribute("#upload-progress", "data-failed")
    assert progress == (str(len(files)), "0") and page.get_attribute("#progress", "value") == "100"
    assert page.evaluate("window.__uploadProgress.length") >= len(files)
    assert page.get_attribute("#study-received", "value") == str(len(files))
    study_id = page.get_attribute("#study-panel", "data-study-id")
    assert page.url.endswith(f"#/study/{study_id}")

    study = api_get(stack, page, f"/studies/{study_id}")
    result = study["result"]
    card = page.inner_text("#study-result")
    assert "not a diagnosis" in card.lower() and result["model_version"] in card
    assert not re.search(r"\b(null|undefined|NaN|\[object Object\])\b", card), card
    if result["label"]:
        if "stroke_type" in result:  # a model that says what it assessed (v2): the label is a data attribute
            assert page.get_attribute("#study-result .result-label", "data-label") == result["label"]
        else:
            assert page.inner_text("#study-result .result-label") == result["label"]
        for label, p in result["probabilities"].items():
            value = page.inner_text(f"#study-result .prob-row[data-label='{label}'] .prob-value")
            assert value.replace("\u00a0", " ") == f"{100 * p:.1f} %"
    for key, n in result["counts"].items():
        assert page.get_attribute(f"#study-counts [data-count={key}]", "data-value") == str(n), key
    if "stroke_type" in result:  # v2: the study's stroke type, the finding read and the one not assessed on CT
        assert_study_says_what_was_assessed(page, result, served_contract(stack))
    for warning in study["warnings"]:
        assert warning["message"][:40] in card
    key = result["key_slices"]
    assert key, result
    assert [int(x) for x in page.eval_on_selector_all("#key-slices li", "els => els.map(e => e.dataset.position)")] == key
    ranked = [result["scores"][p] for p in key]
    assert ranked == sorted(ranked, reverse=True)  # most suspicious first
    page.wait_for_function("() => [...document.querySelectorAll('#key-slices img')].every(i => i.complete && i.naturalWidth > 0)")

    # The viewer opens on the top key slice, with its window presets and heat map.
    assert shown_position(page) == key[0]
    wait_image(page, key[0])
    page.screenshot(path=str(ARTIFACTS / "study.png"), full_page=True)
    n = len(result["stack"])
    bars = page.eval_on_selector_all("#score-strip .score-bar", "els => els.map(e => e.dataset.score)")
    assert len(bars) == n and [b == "na" for b in bars] == [s is None for s in result["scores"]]

    # Wheel and arrow keys move through the stack; each slice's previews load on demand.
    start = 3 if key[0] != 3 else 4
    page.click(f"#score-strip .score-bar[data-position='{start}']")
    assert shown_position(page) == start
    src = wait_image(page, start)
    assert f"{start:04d}" in src
    page.hover("#stack-stage")
    page.mouse.wheel(0, 120)
    page.wait_for_function("p => document.getElementById('study-viewer').dataset.position === String(p)", arg=start + 1)
    wait_image(page, start + 1)
    page.focus("#stack-stage")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert shown_position(page) == start + 3
    wait_image(page, start + 3)
    page.keyboard.press("ArrowUp")
    assert shown_position(page) == start + 2
    page.keyboard.press("End")
    assert shown_position(page) == n - 1
    wait_image(page, n - 1)
    assert page.get_attribute("#slice-slider", "aria-valuetext") == f"Slice {n} of {n}"
    # The slider and the strip work from the keyboard too; the strip is one tab stop, arrows move along it.
    page.focus("#slice-slider")
    page.keyboard.press("Home")
    assert shown_position(page) == 0
    page.focus("#score-strip .score-bar[tabindex='0']")
    page.keyboard.press("ArrowRight")
    assert shown_position(page) == 1
    assert page.evaluate("document.activeElement.dataset.position") == "1"
    assert page.eval_on_selector_all("#score-strip .score-bar[tabindex='0']", "els => els.length") == 1
    # Going back to a slice seen before uses the cached links (no new request).
    requests_seen = []
    page.on("request", lambda r: "?slice=" in r.url and requests_seen.append(r.url))
    page.click(f"#score-strip .score-bar[data-position='{start}']")
    assert page.get_attribute("#stack-img", "src") == src and requests_seen == []
    # A key-slice thumbnail jumps there.
    page.click("#key-slices li:nth-child(2) button" if len(key) > 1 else "#key-slices li button")
    target = key[1] if len(key) > 1 else key[0]
    assert shown_position(page) == target
    wait_image(page, target)

    # "My recent studies" lists it with its slice count, marked as the open one.
    item = page.wait_for_selector(f"#studies li[data-scan-id='{study_id}'].current")
    assert f"{len(files)} slices · " in item.inner_text()
    assert page.console_errors == [] and page.evaluate("window.__cspViolations") == []


def test_an_over_limit_folder_is_refused_before_anything_is_sent(page, stack, folder):
    limit = 5
    from strokelens.core.studies import MAX_FILES, MAX_STUDY_BYTES

    limits = served_contract(stack)["limits"]
    assert (limits["max_study_files"], limits["max_study_bytes"]) == (MAX_FILES, MAX_STUDY_BYTES)
    stub_contract(page, lambda c: c["limits"].update(max_study_files=limit))
    sign_in(page, stack)
    sent = []  # POST /studies, /scans, or to storage
    page.on("request", lambda r: r.method == "POST" and sent.append(r.url))
    page.set_input_files("#folder", str(folder))
    page.wait_for_selector("#upload-msg.alert-warning")  # said as soon as the folder is chosen
    page.click("#upload-btn")
    page.wait_for_selector("#upload-msg.alert-error")
    assert f"at most {limit}" in page.inner_text("#upload-msg")
    assert page.is_hidden("#upload-progress") and page.is_hidden("#study-panel")
    page.wait_for_timeout(300)
    assert sent == []


def test_a_file_the_storage_refuses_is_named_and_the_others_are_sent(page, stack, folder):
    refused = []

    def storage(route):
        request = route.request
        if request.method == "POST" and "/api/" not in request.url and "/local/" not in request.url and not refused:
            refused.append(request.url)
            route.fulfill(status=403, content_type="application/xml",
                          body="<Error><Code>AccessDenied</Code><Message>denied</Message></Error>")
        else:
            route.fallback()

    page.route("**/*", storage)  # the first POST to storage is refused
    sign_in(page, stack)
    files = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural(p.name))[:6]
    page.set_input_files("#file", [str(p) for p in files])
    page.wait_for_selector("#privacy[data-files='6']")
    page.click("#upload-btn")
    page.wait_for_selector("#upload-failures li")
    assert len(refused) == 1
    assert page.get_attribute("#upload-progress", "data-failed") == "1"
    assert page.get_attribute("#upload-progress", "data-sent") == "5"
    assert "1 of 6 files could not be sent" in page.inner_text("#upload-msg")
    assert "refused" in page.inner_text("#upload-failures")
    page.wait_for_selector("#study-panel:not([hidden])")  # the study opens: what arrived is read later


def positioned(data: bytes, z: float, sagittal: bool = False, png: Path | None = None) -> bytes:
    """The same identified CT slice moved to height ``z`` (or turned sagittal); with ``png``, its
    pixels are that real slice as Hounsfield units the brain window (L40 W80) shows exactly."""
    ds = dcmread(io.BytesIO(data))
    if png is not None:
        pixels = np.asarray(Image.open(png).convert("L")).astype(np.uint16)
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = "0.31372549", "0"
        ds.WindowCenter, ds.WindowWidth = "40", "80"
        ds.PixelData = pixels.tobytes()
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1] if sagittal else [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 5
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_identified_dicom_series_are_cleaned_in_the_browser_and_still_grouped(page, stack, tmp_path, received):
    """Two identified series of one study (axial, shuffled names; sagittal): every byte that reaches
    storage is clean, the session's one salt keeps one new study UID and one per series, so the
    server still groups them, orders the axial stack by position and skips the sagittal series."""
    assert STUDIES.is_dir(), f"the shared ct-ich studies are expected at {STUDIES}"
    source = sorted(p for p in STUDIES.iterdir() if p.is_dir())[0]
    slices = [source / f"{n:03d}.png" for n in (7, 10, 11, 12)]  # slices of 050 the model assesses
    folder = tmp_path / "dicom"
    folder.mkdir()
    heights = [30.0, 10.0, 40.0, 20.0]  # file order is not stack order: the geometry decides
    for n, (z, png) in enumerate(zip(heights, slices), start=1):
        (folder / f"ax{n}.dcm").write_bytes(positioned(identified_ct(series="1", instance=n), z, png=png))
    for n in range(1, 4):
        (folder / f"sag{n}.dcm").write_bytes(positioned(identified_ct(series="2", instance=n), float(n), sagittal=True))
    sign_in(page, stack)
    page.set_input_files("#folder", str(folder))
    page.wait_for_selector("#privacy[data-files='7'][data-cleaned=true]")
    page.click("#upload-btn")
    page.wait_for_selector("#study-panel[data-status=DONE], #study-panel[data-status=FAILED]", timeout=STUDY_TIMEOUT_MS)
    assert len(received) == 7
    uids = []
    for key, body in received:
        assert leaked(body) == [], key
        ds = dcmread(io.BytesIO(body))
        uids.append((ds.StudyInstanceUID, ds.SeriesInstanceUID))
    assert len({study for study, _ in uids}) == 1 and len({series for _, series in uids}) == 2
    assert UID_SECRET not in uids[0][0]
    study = api_get(stack, page, f"/studies/{page.get_attribute('#study-panel', 'data-study-id')}")
    result = study["result"]
    assert len(result["series"]) == 2 and [s["read"] for s in result["series"]].count(True) == 1, result["series"]
    assert result["counts"]["skipped"] == 3
    assert [heights[i] for i in result["stack"]] == sorted(heights)  # upload order: ax1..ax4, natural
    table = page.inner_text("#study-series")
    assert "not read: not an axial series" in table
    assert page.get_attribute("#study-counts [data-count=skipped]", "data-value") == "3"
    # A key slice of a CT DICOM has window presets and the model input; switching shows that image.
    top = result["key_slices"][0]
    wait_image(page, top)
    page.click("label[for=stack-win-brain]")
    page.wait_for_function("() => document.getElementById('stack-img').dataset.choice === 'brain'")
    assert "window_brain" in page.get_attribute("#stack-img", "src")
    wait_image(page, top)
    page.click("label[for=stack-win-model_input]")
    page.wait_for_function("() => document.getElementById('stack-img').dataset.choice === 'model_input'")
    assert page.is_checked("#stack-heat-toggle") == page.is_visible("#stack-stage img.heatmap")
    page.screenshot(path=str(ARTIFACTS / "study-dicom.png"), full_page=True)
    assert page.console_errors == []


def test_an_expired_slice_link_is_fetched_again(page, stack, folder):
    """A slice's preview link that fails (expired) makes the viewer ask for that slice again, once."""
    refused = []

    def expire(route):
        if route.request.method == "GET" and "/0002/display" in route.request.url and not refused:
            refused.append(route.request.url)
            route.fulfill(status=403, content_type="application/xml", body="<Error><Code>AccessDenied</Code></Error>")
        else:
            route.fallback()

    files = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural(p.name))[:5]
    sign_in(page, stack)
    page.set_input_files("#file", [str(p) for p in files])
    page.wait_for_selector("#privacy[data-files='5']")
    page.click("#upload-btn")
    page.wait_for_selector("#study-panel[data-status=DONE]", timeout=STUDY_TIMEOUT_MS)
    page.route("**/*", expire)
    asked = []
    page.on("request", lambda r: "?slice=2" in r.url and asked.append(r.url))
    page.click("#score-strip .score-bar[data-position='2']")
    wait_image(page, 2)
    assert len(refused) == 1  # the refused link failed; the slice then loaded with the links asked again
    assert len(asked) == (2 if 2 not in api_get(stack, page, f"/studies/{page.get_attribute('#study-panel', 'data-study-id')}")["result"]["key_slices"] else 1)


def test_a_folder_of_unreadable_files_gets_no_model_output(page, stack, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for n in range(1, 4):
        (folder / f"slice{n}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image" * n)
    sign_in(page, stack)
    page.set_input_files("#folder", str(folder))
    page.wait_for_selector("#privacy[data-files='3'][data-cleaned=false]")
    assert "could not be removed" in page.inner_text("#privacy .privacy-warnings")  # asked once, for all of them
    page.click("#upload-btn")
    page.click("#privacy-upload")
    page.wait_for_selector("#study-panel[data-status=DONE], #study-panel[data-status=FAILED]", timeout=STUDY_TIMEOUT_MS)
    study = api_get(stack, page, f"/studies/{page.get_attribute('#study-panel', 'data-study-id')}")
    card = page.inner_text("#study-result")
    if study["status"] == "DONE":
        assert study["result"]["label"] is None and "No model output for this study" in card
        for code in study["result"]["unreadable"]:
            assert page.get_attribute(f"#unreadable-codes li[data-code={code}]", "data-code") == code
    else:
        assert "could not be read" in card
    assert page.is_hidden("#study-viewer")


def test_dropped_files_make_a_study_and_cancel_stops_the_uploads(page, stack, folder):
    """Files dropped on the box (a script-made DataTransfer: no folder entries, so its file list)
    start a study; cancel aborts the uploads still waiting and nothing more is sent."""
    files = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural(p.name))[:8]
    sign_in(page, stack)
    held = []
    page.route("**/*", lambda route: held.append(route) if route.request.method == "POST"
               and "/api/" not in route.request.url and "/local/" not in route.request.url else route.fallback())
    payload = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in reversed(files)]
    page.evaluate("""(files) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], f.name, { type: 'image/png' }));
      }
      document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", payload)
    page.wait_for_selector("#privacy[data-files='8']")
    assert page.eval_on_selector_all("#study-files li", "els => els.map(e => e.textContent)") == [p.name for p in files]
    page.click("#upload-btn")
    deadline = time.monotonic() + 10
    while len(held) < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(held) == 4  # four at a time: the rest wait their turn
    page.click("#cancel-btn")
    page.wait_for_selector("#upload-msg.alert-info")
    assert "Upload cancelled" in page.inner_text("#upload-msg")
    page.wait_for_timeout(300)
    assert len(held) == 4 and page.is_enabled("#upload-btn")


def test_dropped_folders_are_walked_in_batches_and_sorted_naturally(page, stack):
    """files.js on a dropped folder tree (entries as Chromium gives them: readEntries answers in
    batches until empty): every file under it, with its path, system files left out, natural order."""
    sign_in(page, stack)
    found = page.evaluate("""async () => {
      const { droppedFiles, collect } = await import('./js/files.js');
      const file = (name) => ({ isFile: true, isDirectory: false, name, file: (ok) => ok(new File(['x'], name)) });
      const dir = (name, children) => ({ isFile: false, isDirectory: true, name, createReader: () => {
        const batches = [children.slice(0, 2), children.slice(2), []];  // two batches, then empty
        return { readEntries: (ok) => ok(batches.shift() || []) };
      } });
      const tree = dir('head', [file('slice10.dcm'), file('slice2.dcm'), file('.DS_Store'),
        dir('series2', [file('img1.dcm'), file('DICOMDIR')]), file('slice1.dcm')]);
      const dataTransfer = { items: [{ kind: 'file', webkitGetAsEntry: () => tree }], files: [] };
      return collect(await droppedFiles(dataTransfer)).map((f) => f.relativePath);
    }""")
    assert found == ["head/series2/img1.dcm", "head/slice1.dcm", "head/slice2.dcm", "head/slice10.dcm"]


def test_text_found_in_one_slice_of_a_folder_is_told_to_the_server_for_the_whole_study(page, stack, tmp_path):
    from tests.browser.test_privacy import png_with_burned_in_text

    folder = tmp_path / "framed"
    folder.mkdir()
    sources = sorted((SHARED_DATA / "ct-hemorrhage" / "normal").glob("*.png"))[:3]
    for n, source in enumerate(sources, start=1):
        framed = png_with_burned_in_text(source, margin=48)
        if n != 2:  # only the second slice carries a name
            image = Image.open(source).convert("L")
            canvas = Image.new("L", (image.width + 96, image.height + 96))
            canvas.paste(image, (48, 48))
            out = io.BytesIO()
            canvas.save(out, format="PNG")
            framed = out.getvalue()
        (folder / f"slice{n}.png").write_bytes(framed)
    sign_in(page, stack)
    page.set_input_files("#folder", str(folder))
    page.wait_for_selector("#privacy .privacy-warnings li[data-code=burned-in-text]")
    with page.expect_request(lambda r: r.url.endswith("/api/studies") and r.method == "POST") as created:
        page.click("#upload-btn")
        page.click("#privacy-upload")
    assert json.loads(created.value.post_data)["burned_in_text"] is True
    page.wait_for_selector("#study-panel[data-status=DONE], #study-panel[data-status=FAILED]", timeout=STUDY_TIMEOUT_MS)
    study = api_get(stack, page, f"/studies/{page.get_attribute('#study-panel', 'data-study-id')}")
    assert study["status"] == "DONE"
    assert any(w["code"] == "BURNED_IN_TEXT" for w in study["warnings"]), "the server acted on it"
