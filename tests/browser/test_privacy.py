"""Identifiers are removed in the browser, before upload: proved on the bytes that reach "S3".

DICOM files full of identifiers (tests/phi_dicom.py: single-frame, multi-frame, RLE-compressed)
go through the real page; the local gateway hands the test each body S3 accepts, before the
inference function reads and deletes it. Nothing identifying is in those bytes; the pixel data
element is byte-identical; the reading equals the reading of the original file; the server says
``removed_by: browser``; one series keeps one (new) study and series UID. A PNG loses its text and
EXIF chunks with identical pixels; JPEG and TIFF lose theirs (checked in the page). Burned-in text
is warned about and the clinician can cancel; a file the browser cannot clean goes only when the
clinician says so, and the server then removes identifiers and says so.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from pydicom import dcmread

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_web import api_get, shot, sign_in, upload, wait_final
from tests.conftest import CT_DATA
from tests.phi_dicom import identified_ct, leaked

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    from strokelens.reader.model.served import ServedModel

    return ServedModel()


def shown_removed(page) -> dict[str, int]:
    page.wait_for_selector("#privacy[data-cleaned]")
    items = page.eval_on_selector_all("#privacy-removed li", "els => els.map(e => [e.dataset.category, Number(e.dataset.count)])")
    return dict(items)


FINAL_NEW_SCAN = """(previous) => { const p = document.querySelector('#scan-panel');
  return p && !p.hidden && p.dataset.scanId !== previous && ['DONE', 'FAILED'].includes(p.dataset.status) && p.dataset.scanId; }"""


def upload_and_read(page, stack, path: Path) -> dict:
    """Upload, then wait for *this* upload's scan to be final (the panel may still show the last one)."""
    previous = page.get_attribute("#scan-panel", "data-scan-id") or ""
    upload(page, path)
    scan_id = page.wait_for_function(FINAL_NEW_SCAN, arg=previous).json_value()
    return api_get(stack, page, f"/scans/{scan_id}")


def test_identified_dicoms_arrive_clean_byte_exact_in_pixels_and_read_the_same(page, stack, tmp_path, received, model):
    from strokelens.reader.imaging.deid import identifying
    from strokelens.reader.reading import read_scan

    originals = {"single": identified_ct(instance=1), "multiframe": identified_ct(instance=2, frames=3),
                 "rle": identified_ct(instance=3, compressed=True),
                 "implicit": identified_ct(instance=4, implicit=True)}  # VRs from the dictionary
    sign_in(page, stack)
    scans = {}
    for name, data in originals.items():
        path = tmp_path / f"Doe_Jane_{name}.dcm"  # an identifying file name: it is not sent either
        path.write_bytes(data)
        page.set_input_files("#file", str(path))
        # Before upload: what goes, per category, as the server itself would count it.
        expected = identifying(dcmread(io.BytesIO(data)))
        assert shown_removed(page) == expected, name
        assert "Jane" not in page.inner_text("#privacy")  # counts, never the values
        if name == "single":
            page.locator("#upload-form").screenshot(path=str(ARTIFACTS / "10-privacy-before-upload.png"))
        scans[name] = upload_and_read(page, stack, path)
        assert page.get_attribute("#privacy-result", "data-removed-by") == "browser"
        assert page.inner_text("#privacy-result").startswith("Identifiers removed in your browser")
    shot(page, "11-privacy-result")
    assert len(received) == len(originals)
    uids = set()
    for (name, data), (key, body), scan in zip(originals.items(), received, scans.values()):
        assert leaked(body) == [], name
        assert b"Doe_Jane" not in body and "Doe_Jane" not in key
        original, sent = dcmread(io.BytesIO(data)), dcmread(io.BytesIO(body))
        assert identifying(sent) == {}, name
        assert sent.PatientIdentityRemoved == "YES" and sent.DeidentificationMethod.endswith("(browser)")
        assert sent.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert sent.PixelData == original.PixelData, f"{name}: pixel data not byte-exact"
        for keyword in ("Rows", "Columns", "NumberOfFrames", "RescaleSlope", "RescaleIntercept", "PixelSpacing",
                        "Modality", "BitsStored", "PhotometricInterpretation"):
            assert sent.get(keyword) == original.get(keyword), (name, keyword)
        # The server found nothing left and says the browser removed it; the reading is unchanged.
        assert scan["status"] == "DONE", scan
        assert scan["result"]["deidentification"] == {"removed_by": "browser", "counts": {}}
        assert not any(w["code"] == "IDENTIFIERS_REMOVED_ON_SERVER" for w in scan.get("warnings", []))
        direct = read_scan(data, model).result.probabilities
        assert scan["result"]["probabilities"].keys() == direct.keys()
        for label, p in direct.items():
            assert scan["result"]["probabilities"][label] == pytest.approx(p, abs=1e-6), (name, label)
        uids.add((sent.StudyInstanceUID, sent.SeriesInstanceUID))
        assert sent.SOPInstanceUID == sent.file_meta.MediaStorageSOPInstanceUID != original.SOPInstanceUID
    # One series in, one series out: the same new study and series UIDs for every file.
    assert len(uids) == 1, uids
    study, series = uids.pop()
    assert study.startswith("2.25.") and series.startswith("2.25.") and study != series
    assert page.evaluate("window.__cspViolations") == []  # dcmjs ran under the site's CSP (no eval)
    assert page.console_errors == []


def png_with_metadata(source: Path) -> bytes:
    """A dataset CT PNG carrying text, compressed text, international text, EXIF and time chunks."""
    image = Image.open(source)
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", "Doe^Jane^Q MRN-99887766")
    info.add_text("Comment", "Jane Doe fell at home", zip=True)
    info.add_itxt("Institution", "Saint Example Hospital")
    exif = Image.Exif()
    exif[0x010E] = "Doe^Jane head CT"
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, exif=exif.tobytes())
    data = buf.getvalue()
    tm = struct.pack(">HBBBBB", 2026, 11, 27, 23, 15, 2)
    chunk = struct.pack(">I", len(tm)) + b"tIME" + tm + struct.pack(">I", zlib.crc32(b"tIME" + tm))
    return data[:33] + chunk + data[33:]  # after IHDR


def png_chunks(data: bytes) -> list[str]:
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append(data[pos + 4:pos + 8].decode())
        pos += 12 + length
    return chunks


def test_png_arrives_without_its_metadata_chunks_and_with_identical_pixels(page, stack, tmp_path, received):
    source = sorted((CT_DATA / "normal").glob("*.png"))[3]
    data = png_with_metadata(source)
    assert {"tEXt", "zTXt", "iTXt", "eXIf", "tIME"} <= set(png_chunks(data)) and b"Jane" in data
    path = tmp_path / "slice.png"
    path.write_bytes(data)
    sign_in(page, stack)
    page.set_input_files("#file", str(path))
    assert shown_removed(page) == {"tEXt": 1, "zTXt": 1, "iTXt": 1, "eXIf": 1, "tIME": 1}
    scan = upload_and_read(page, stack, path)
    assert scan["status"] == "DONE"
    (key, body), = received
    assert png_chunks(body) == ["IHDR", "IDAT", "IEND"]
    assert b"Jane" not in body and b"Hospital" not in body and b"Exif" not in body
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), np.asarray(Image.open(io.BytesIO(data))))
    assert page.inner_text("#privacy-result") == "Metadata removed in your browser before upload."
    assert page.console_errors == []


STRIP_IN_PAGE = """async ([fn, b64]) => {
  const { stripJpeg, stripTiff } = await import('/js/imagemeta.js');
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const out = { stripJpeg, stripTiff }[fn](bytes);
  let s = ''; for (const b of out.bytes) s += String.fromCharCode(b);
  return { b64: btoa(s), removed: out.removed };
}"""


def tiff_with_exif() -> tuple[bytes, np.ndarray]:
    """A 16-bit TIFF with a description, an artist and an EXIF directory (date, user comment)."""
    width, height = 16, 8
    pixels = (np.arange(width * height, dtype=np.uint16) * 37).reshape(height, width)
    description, artist = b"Doe^Jane^Q MRN-99887766\0", b"Dr Jane Doe\0"
    date, comment = b"2026:11:27 23:15:02\0", b"ASCII\0\0\0Jane Doe fell at home"
    entries0, entries_exif = 11, 2
    exif_at = 8 + 2 + 12 * entries0 + 4
    values_at = exif_at + 2 + 12 * entries_exif + 4
    offsets, blob = [], b""
    for value in (description, artist, date, comment):
        offsets.append(values_at + len(blob))
        blob += value
    pixels_at = values_at + len(blob)

    def entry(tag, kind, count, value):
        return struct.pack("<HHII", tag, kind, count, value)

    ifd0 = [entry(256, 3, 1, width), entry(257, 3, 1, height), entry(258, 3, 1, 16), entry(259, 3, 1, 1),
            entry(262, 3, 1, 1), entry(270, 2, len(description), offsets[0]), entry(273, 4, 1, pixels_at),
            entry(278, 3, 1, height), entry(279, 4, 1, pixels.nbytes), entry(315, 2, len(artist), offsets[1]),
            entry(34665, 4, 1, exif_at)]
    exif = [entry(36867, 2, len(date), offsets[2]), entry(37510, 7, len(comment), offsets[3])]
    data = (b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", entries0) + b"".join(ifd0) + b"\0" * 4
            + struct.pack("<H", entries_exif) + b"".join(exif) + b"\0" * 4 + blob + pixels.tobytes())
    return data, pixels


def test_jpeg_and_tiff_lose_their_metadata_with_the_image_data_untouched(page, stack):
    sign_in(page, stack)
    rgb = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x013B] = "Dr Jane Doe"
    for progressive in (False, True):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=90, progressive=progressive, exif=exif.tobytes(),
                                  comment=b"Jane Doe MRN-99887766")
        jpeg = buf.getvalue()
        out = page.evaluate(STRIP_IN_PAGE, ["stripJpeg", base64.b64encode(jpeg).decode()])
        clean = base64.b64decode(out["b64"])
        assert out["removed"] == {"EXIF/XMP (APP1)": 1, "comment (COM)": 1}
        assert b"Jane" not in clean and b"Exif" not in clean
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(clean))), np.asarray(Image.open(io.BytesIO(jpeg))))
    tiff, pixels = tiff_with_exif()
    assert Image.open(io.BytesIO(tiff)).getexif().get_ifd(0x8769)
    out = page.evaluate(STRIP_IN_PAGE, ["stripTiff", base64.b64encode(tiff).decode()])
    clean = base64.b64decode(out["b64"])
    assert out["removed"] == {"ImageDescription": 1, "Artist": 1, "EXIF": 1}
    assert len(clean) == len(tiff) and b"Jane" not in clean and b"2026" not in clean
    image = Image.open(io.BytesIO(clean))
    assert np.array_equal(np.asarray(image), pixels)
    assert image.getexif().get_ifd(0x8769) == {}


def png_with_burned_in_text(source: Path, margin: int = 0) -> bytes:
    """The slice with a name, an id and a date in its top-left corner; ``margin`` px of black around the
    slice first (so the text stands clear of the head: text touching the head stays in every preview)."""
    image = Image.open(source).convert("L")
    if margin:
        framed = Image.new("L", (image.width + 2 * margin, image.height + 2 * margin))
        framed.paste(image, (margin, margin))
        image = framed
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, image.height // 40))
    for line, text in enumerate(("DOE^JANE Q", "MRN 99887766", "17/03/1951")):
        draw.text((4, 4 + line * (font.size + 2)), text, fill=255, font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_burned_in_text_is_warned_about_and_cancel_sends_nothing(page, stack, tmp_path, received):
    path = tmp_path / "slice-with-text.png"
    path.write_bytes(png_with_burned_in_text(sorted((CT_DATA / "hemorrhage").glob("*.png"))[5]))
    sign_in(page, stack)
    posts = []
    page.on("request", lambda r: r.method == "POST" and ("/s3/" in r.url or r.url.endswith("/api/scans")) and posts.append(r.url))
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#privacy .privacy-warnings li[data-code=burned-in-text]")
    assert "top left" in page.inner_text("#privacy .privacy-warnings")
    page.click("#upload-btn")
    page.wait_for_selector("#privacy-cancel")
    page.locator("#upload-form").screenshot(path=str(ARTIFACTS / "12-privacy-burned-in.png"))
    page.click("#privacy-cancel")
    page.wait_for_selector("#upload-msg.alert-info")
    assert "Nothing was sent" in page.inner_text("#upload-msg")
    assert posts == [] and received == []
    assert page.is_hidden("#privacy")


def test_text_found_in_a_png_and_uploaded_anyway_leaves_the_saved_previews_head_only(page, stack, tmp_path, received):
    """A PNG has no header to say so: the page's corner check goes with the request, and the server
    keeps only the head in the previews it saves (and warns), as for a DICOM that says so."""
    path = tmp_path / "slice-with-text.png"
    path.write_bytes(png_with_burned_in_text(sorted((CT_DATA / "hemorrhage").glob("*.png"))[5], margin=48))
    sign_in(page, stack)
    bodies = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/scans") and bodies.append(r.post_data_json))
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#privacy .privacy-warnings li[data-code=burned-in-text]")
    page.click("#upload-btn")
    page.click("#privacy-upload")
    scan_id = wait_final(page)
    assert [b.get("burned_in_text") for b in bodies] == [True]
    scan = api_get(stack, page, f"/scans/{scan_id}")
    warning, = [w for w in scan["warnings"] if w["code"] == "BURNED_IN_TEXT"]
    assert "uploader reported" in warning["message"]
    response = requests.get(scan["previews"]["display"], timeout=10)
    assert response.status_code == 200
    display = np.asarray(Image.open(io.BytesIO(response.content)).convert("L"), np.float32)
    corner = display[: display.shape[0] // 8, : display.shape[1] // 3]
    centre = display[display.shape[0] * 2 // 5: display.shape[0] * 3 // 5, display.shape[1] * 2 // 5: display.shape[1] * 3 // 5]
    assert corner.max() == 0.0, "the text in the top-left corner is not in the saved preview"
    assert centre.mean() > 20.0, "the head is"
    assert len(received) == 1


@pytest.mark.parametrize("flag", ["YES", "JOHN SMITH"])  # the standard says YES or NO; anything but NO counts
def test_burned_in_flag_then_upload_anyway_reads_the_scan(page, stack, tmp_path, received, flag):
    ds = dcmread(io.BytesIO(identified_ct(instance=9)))
    ds.BurnedInAnnotation = flag
    path = tmp_path / "burned.dcm"
    ds.save_as(path, enforce_file_format=True)
    sign_in(page, stack)
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#privacy .privacy-warnings li[data-code=burned-in-flag]")
    page.click("#upload-btn")
    page.click("#privacy-upload")
    scan_id = wait_final(page)
    scan = api_get(stack, page, f"/scans/{scan_id}")
    assert scan["result"]["deidentification"]["removed_by"] == "browser"
    assert any(w["code"] == "BURNED_IN_TEXT" for w in scan["warnings"]), "the server says so too"
    assert scan["result"]["dicom"].get("BurnedInAnnotation") == ("YES" if flag == "YES" else None), \
        "only YES / NO is ever stored"
    (key, body), = received
    assert leaked(body) == []


def test_a_file_the_browser_cannot_clean_goes_only_when_confirmed_and_the_server_says_so(page, stack, tmp_path, received):
    ds = dcmread(io.BytesIO(identified_ct(instance=11)))
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=True)
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"  # deflated: not rewritten in the browser
    ds.save_as(path, enforce_file_format=True)
    sign_in(page, stack)
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#privacy .privacy-warnings li[data-code=not-cleaned]")
    assert "deflated" in page.inner_text("#privacy")
    page.click("#upload-btn")
    page.click("#privacy-upload")
    scan_id = wait_final(page)
    scan = api_get(stack, page, f"/scans/{scan_id}")
    assert scan["result"]["deidentification"]["removed_by"] == "server"
    assert page.get_attribute("#privacy-result", "data-removed-by") == "server"
    assert "removed on the server" in page.inner_text("#privacy-result")
    assert len(received) == 1  # sent as chosen, and only after the clinician said so
