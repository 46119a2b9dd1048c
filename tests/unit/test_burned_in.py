"""A DICOM whose header says text is burned into its pixels (``BurnedInAnnotation`` YES): the text is
never removed by a header edit, so the server keeps only the head in every full-frame preview, says
so in the result, and records the flag; the same file without the flag keeps its whole frame."""

from __future__ import annotations

import io

import boto3
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan, read_study
from tests.conftest import sqs_s3_event
from tests.dicom_series import ct_series
from tests.unit.test_inference_handler import record, upload

TEXT = (slice(4, 22), slice(4, 60))  # a block of "text" in the top-left corner, well away from the head


def _slice_with_text(ct_png: bytes) -> np.ndarray:
    """A real head CT slice (8-bit brain window) on a 320 px canvas, with bright strokes in a corner."""
    head = np.asarray(Image.open(io.BytesIO(ct_png)).convert("L"))
    head = head[: min(head.shape[0], 280), : min(head.shape[1], 280)]
    canvas = np.zeros((320, 320), np.uint8)
    top, left = (320 - head.shape[0]) // 2 + 16, (320 - head.shape[1]) // 2
    canvas[top:top + head.shape[0], left:left + head.shape[1]] = head
    _draw_text(canvas)
    return canvas


def _draw_text(canvas: np.ndarray) -> None:
    """Bold strokes, 5 px thick, in the TEXT corner: they survive the head mask's opening, so with no
    head the block itself is the largest object, and only the plausibility checks keep it out."""
    block = canvas[TEXT]
    for r in range(0, block.shape[0] - 4, 8):
        block[r:r + 5, :] = 255
    for c in range(0, block.shape[1] - 4, 10):
        block[:, c:c + 5] = 255


def _label_only() -> np.ndarray:
    """No head: a filled white label (about a sixth of the frame) with dark letters, and the text."""
    image = np.zeros((320, 320), np.uint8)
    image[150:250, 60:230] = 255
    image[170:230:8, 80:210] = 40
    _draw_text(image)
    return image


def _zoomed(ct_png: bytes) -> np.ndarray:
    """The head zoomed past the frame's edges (the middle 60 % of the slice), text in the corner."""
    head = np.asarray(Image.open(io.BytesIO(ct_png)).convert("L"))
    h, w = head.shape
    image = np.array(Image.fromarray(head[int(h * .2):int(h * .8), int(w * .2):int(w * .8)]).resize((320, 320)))
    _draw_text(image)
    return image


def _dicom(ct_png: bytes | None, flag: str | list[str] | None, monochrome1: bool = False,
           image: np.ndarray | None = None) -> bytes:
    """The slice with text as a CT DICOM; ``ct_png`` None: no head at all, only the text (or ``image``)."""
    if image is None and ct_png is None:
        image = np.zeros((320, 320), np.uint8)
        _draw_text(image)
    elif image is None:
        image = _slice_with_text(ct_png)
    data = ct_series(1, images=[image])[0]
    ds = dcmread(io.BytesIO(data))
    if flag is not None:
        ds.BurnedInAnnotation = flag
    if monochrome1:  # the same stored values shown inverted: air white, the head dark
        ds.PhotometricInterpretation = "MONOCHROME1"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32)


def _text_and_head(png: bytes) -> tuple[float, float]:
    """(brightest value where the text was, mean of the central region) of a full-frame preview."""
    px = _pixels(png)
    scale = px.shape[0] / 320
    rows = slice(int(TEXT[0].start * scale), int(TEXT[0].stop * scale))
    cols = slice(int(TEXT[1].start * scale), int(TEXT[1].stop * scale))
    centre = px[int(px.shape[0] * 0.4):int(px.shape[0] * 0.6), int(px.shape[1] * 0.4):int(px.shape[1] * 0.6)]
    return float(px[rows, cols].max()), float(centre.mean())


@pytest.fixture(scope="module")
def model() -> ServedModel:
    return ServedModel()


def _full_frame(reading) -> list[str]:
    names = ["display", *(n for n in reading.previews if n.startswith("window_"))]
    assert len(names) >= 2, "a CT DICOM has its display and its window previews"
    return names


def test_flagged_previews_keep_only_the_head(ct_png, model):
    unflagged = read_scan(_dicom(ct_png, None), model, with_previews=True)
    assert all(_text_and_head(unflagged.previews[n])[0] > 200.0 for n in ("display", "window_brain")), \
        "the text survives decoding, so the checks below can fail"
    reading = read_scan(_dicom(ct_png, "YES"), model, with_previews=True)
    for name in _full_frame(reading):
        text, head = _text_and_head(reading.previews[name])
        assert text == 0.0, f"{name}: the burned-in text is gone"
        assert head > 20.0, f"{name}: the head is still shown"
    assert [w.code for w in reading.warnings].count("BURNED_IN_TEXT") == 1
    assert reading.result.dicom["BurnedInAnnotation"] == "YES"


@pytest.mark.parametrize("case", ["no head", "a large label", "inverted frame", "zoomed head"])
def test_flagged_previews_are_blank_where_no_head_is_found(ct_png, model, case):
    """No head (the text or a label is the largest object), an inverted frame (the bright surround
    is) or a head cut by the frame's edges: the mask is not a head, so nothing of the frame is kept,
    the model input's preview included."""
    data = {"no head": lambda: _dicom(None, "YES"), "a large label": lambda: _dicom(None, "YES", image=_label_only()),
            "inverted frame": lambda: _dicom(ct_png, "YES", monochrome1=True),
            "zoomed head": lambda: _dicom(None, "YES", image=_zoomed(ct_png))}[case]()
    reading = read_scan(data, model, "CT", with_previews=True)
    for name in [*_full_frame(reading), "model_input"]:
        assert _pixels(reading.previews[name]).max() == 0.0, f"{name} is blank"
    assert any(w.code == "BURNED_IN_TEXT" for w in reading.warnings)


@pytest.mark.parametrize("value", ["JOHN SMITH 1970", ["YES", "NO"], " yes "])
def test_a_flag_outside_yes_no_counts_as_yes_and_is_not_kept(ct_png, model, value):
    reading = read_scan(_dicom(ct_png, value), model, with_previews=True)  # read, not refused
    assert _text_and_head(reading.previews["display"])[0] == 0.0
    assert any(w.code == "BURNED_IN_TEXT" for w in reading.warnings)
    kept = (reading.result.dicom or {}).get("BurnedInAnnotation")
    assert kept == ("YES" if value == " yes " else None), "only YES / NO is ever stored"


def _name_touching_the_head(ct_png: bytes) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The slice with a name printed against the head's left edge (as on a tightly cropped figure), and
    where the name is, short of the last 4 px before the head."""
    from PIL import ImageDraw, ImageFont

    canvas = _slice_with_text(ct_png)
    canvas[:30] = 0  # without the corner block
    rows = np.flatnonzero(canvas.max(axis=1) > 10)
    mid = (rows[0] + rows[-1]) // 2
    left = int(np.flatnonzero(canvas[mid] > 10)[0])
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    draw.text((left - draw.textlength("DOE JANE", font=font) + 3, mid - 6), "DOE JANE", fill=255, font=font)
    return np.asarray(image), (slice(mid - 6, mid + 7), slice(0, left - 4))


def test_a_name_touching_the_head_is_cut_from_the_previews(ct_png, model):
    image, name = _name_touching_the_head(ct_png)
    unflagged = read_scan(_dicom(None, None, image=image), model, with_previews=True)
    assert _pixels(unflagged.previews["display"])[name].max() > 200.0, "the name is in the frame"
    reading = read_scan(_dicom(None, "YES", image=image), model, with_previews=True)
    for preview in _full_frame(reading):
        px = _pixels(reading.previews[preview])
        assert px[name].max() == 0.0, f"{preview}: the name is cut off the head"
        assert px[120:200, 120:200].mean() > 20.0, f"{preview}: the head stays"


def test_an_uncropped_model_input_is_drawn_from_the_masked_frame(ct_png):
    """A model that does not crop to the head (model v1) sees the whole frame: its preview is drawn
    again from the head-only display."""
    from strokelens.reader.imaging.decode import decode_image
    from strokelens.reader.imaging.preprocess import to_display, to_model_input
    from strokelens.reader.imaging.previews import preview_pngs

    decoded = decode_image(_dicom(ct_png, "YES"))
    display, _ = to_display(decoded)
    whole = to_model_input(display, 128)
    assert whole[:8, :8].max() > 0.5, "the uncropped input carries the text"
    png = preview_pngs(decoded, display, whole, ("model_input",), cropped=False)["model_input"]
    assert _pixels(png)[:8, :8].max() == 0.0
    assert _pixels(png)[48:80, 48:80].mean() > 20.0


def test_unflagged_previews_keep_the_whole_frame_and_read_the_same(ct_png, model):
    flagged = read_scan(_dicom(ct_png, "YES"), model, with_previews=True)
    for flag in ("NO", None):
        reading = read_scan(_dicom(ct_png, flag), model, with_previews=True)
        text, _ = _text_and_head(reading.previews["display"])
        assert text > 200.0, "without the flag the frame is shown as it is"
        assert "BURNED_IN_TEXT" not in [w.code for w in reading.warnings]
        # Only the previews differ: the reading itself is the same pixels through the same model, and the
        # flagged model input's preview is that input with only what lies outside the head mask blacked out.
        assert reading.result.probabilities == flagged.result.probabilities
        whole, masked = _pixels(reading.previews["model_input"]), _pixels(flagged.previews["model_input"])
        shown = masked > 0
        assert np.array_equal(masked[shown], whole[shown])
        assert shown.sum() >= 0.9 * (whole > 0).sum(), "the head's rim at most is lost"


def test_a_flagged_slice_in_a_study_gets_head_only_previews_and_the_study_says_so(ct_png, model):
    files = [_dicom(ct_png, "YES")]
    reading = read_study(files, model, "CT", with_previews=True)
    full_frame = [png for (_, name), png in reading.previews.items() if name == "display" or name.startswith("window_")]
    assert len(full_frame) >= 2, "the study keeps a display per slice and the key slice's windows"
    assert all(_text_and_head(png)[0] == 0.0 for png in full_frame)
    assert any(w.code == "BURNED_IN_TEXT" for s in reading.slices for w in s.warnings)


def test_the_handler_stores_head_only_previews_and_the_warning(inference_app, resources, lambda_context, ct_png):
    scans = boto3.resource("dynamodb").Table(resources.table)
    data = _dicom(ct_png, "YES")
    scan_id, key = upload(resources, scans, data)
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data)), lambda_context)
    item = record(scans, scan_id)
    assert item["status"] == "DONE"
    assert any(w["code"] == "BURNED_IN_TEXT" for w in item["warnings"])
    s3 = boto3.client("s3")
    full_frame = [n for n in item["previews"] if n == "display" or n.startswith("window_")]
    assert len(full_frame) >= 2
    for name in full_frame:
        png = s3.get_object(Bucket=resources.artifacts_bucket, Key=item["previews"][name])["Body"].read()
        assert _text_and_head(png)[0] == 0.0, name


# ---- a PNG or JPEG has no header: the page's corner check is sent as ``burned_in_text`` ----------------

def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_text_the_page_reported_in_a_png_gets_head_only_previews(ct_png, model):
    data = _png(_slice_with_text(ct_png))
    plain = read_scan(data, model, "CT", with_previews=True)
    assert _text_and_head(plain.previews["display"])[0] > 200.0, "unreported, the frame is shown as it is"
    assert "BURNED_IN_TEXT" not in [w.code for w in plain.warnings]
    reading = read_scan(data, model, "CT", with_previews=True, text_reported=True)
    text, head = _text_and_head(reading.previews["display"])
    assert text == 0.0 and head > 20.0
    warning, = [w for w in reading.warnings if w.code == "BURNED_IN_TEXT"]
    assert "uploader reported" in warning.message
    assert reading.result.probabilities == plain.result.probabilities, "only the previews differ"


def test_a_header_flag_and_a_report_give_one_warning_naming_the_header(ct_png, model):
    reading = read_scan(_dicom(ct_png, "YES"), model, with_previews=True, text_reported=True)
    warnings = [w for w in reading.warnings if w.code == "BURNED_IN_TEXT"]
    assert len(warnings) == 1 and "DICOM header" in warnings[0].message


def test_the_scan_handler_acts_on_a_reported_text(inference_app, resources, lambda_context, ct_png):
    scans = boto3.resource("dynamodb").Table(resources.table)
    data = _png(_slice_with_text(ct_png))
    scan_id, key = upload(resources, scans, data, modality="CT", text_reported=True)
    inference_app.handler(sqs_s3_event(resources.uploads_bucket, key, len(data)), lambda_context)
    item = record(scans, scan_id)
    assert item["status"] == "DONE" and any(w["code"] == "BURNED_IN_TEXT" for w in item["warnings"])
    png = boto3.client("s3").get_object(Bucket=resources.artifacts_bucket, Key=item["previews"]["display"])["Body"].read()
    text, head = _text_and_head(png)
    assert text == 0.0 and head > 20.0


@pytest.mark.parametrize("value", ["yes", 1, None, {"corner": "top left"}])
def test_burned_in_text_must_be_true_or_false(api_app, resources, lambda_context, value):
    from tests.unit.test_api_handler import call
    from tests.unit.test_studies import create

    status, body = call(api_app, lambda_context, method="POST",
                        body={"filename": "a.png", "content_type": "image/png", "burned_in_text": value})
    assert (status, body["error"]["code"]) == (400, "INVALID_BURNED_IN_TEXT")
    status, body = create(api_app, lambda_context, [{"filename": "a.png", "content_type": "image/png"}],
                          burned_in_text=value)
    assert (status, body["error"]["code"]) == (400, "INVALID_BURNED_IN_TEXT")
    assert boto3.resource("dynamodb").Table(resources.table).scan()["Items"] == [], "nothing recorded"


def test_a_reported_study_keeps_only_the_head_in_every_slice_preview(api_app, inference_app, resources,
                                                                     lambda_context, ct_png):
    from strokelens.core.studies import study_upload_key
    from tests.unit.test_api_handler import OWNER, call
    from tests.unit.test_studies import create

    status, body = call(api_app, lambda_context, method="POST",
                        body={"filename": "a.png", "content_type": "image/png", "burned_in_text": True})
    assert status == 201
    table = boto3.resource("dynamodb").Table(resources.table)
    assert table.get_item(Key={"owner_id": OWNER, "scan_id": body["scan_id"]})["Item"]["text_reported"] is True
    files = [_png(_slice_with_text(ct_png))] * 2
    status, body = create(api_app, lambda_context, [{"filename": f"{i}.png", "content_type": "image/png"}
                                                    for i in range(2)], modality="CT", burned_in_text=True)
    assert status == 201
    study_id = body["study_id"]
    for i, data in enumerate(files):
        key = study_upload_key(OWNER, study_id, i)
        boto3.client("s3").put_object(Bucket=resources.uploads_bucket, Key=key, Body=data)
        inference_app.process_object(key, len(data), 1)
    item = table.get_item(Key={"owner_id": OWNER, "scan_id": study_id})["Item"]
    assert item["status"] == "DONE"
    warning, = [w for w in item["warnings"] if w["code"] == "BURNED_IN_TEXT"]
    assert "uploader reported" in warning["message"], "the study's warning says where the suspicion came from"
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=resources.artifacts_bucket, Prefix=f"previews/{OWNER}/{study_id}/")
    displays = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("display.png")]
    assert len(displays) == 2, [o["Key"] for o in listed.get("Contents", [])]
    for key in displays:
        text, head = _text_and_head(s3.get_object(Bucket=resources.artifacts_bucket, Key=key)["Body"].read())
        assert text == 0.0 and head > 20.0
