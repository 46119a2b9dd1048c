"""Decode and preprocess: formats, guards with their exact codes, windowing numerics."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from strokelens.core.errors import ScanError
from strokelens.reader.imaging.decode import decode_image, sniff_format
from strokelens.reader.imaging.preprocess import (CT_WINDOWS, apply_window, pad_to_square, preprocess_bytes, to_display,
                                           to_model_input)
from tests.conftest import png_bytes


def head_like(h: int = 200, w: int = 180) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    ellipse = ((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - w / 2) / (w * 0.4)) ** 2 <= 1
    return (ellipse * 120 + (yy % 7) * 3).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_png_8bit_is_scaled_to_unit_range():
    arr = head_like()
    decoded = decode_image(png_bytes(arr))
    assert decoded.source_format == "png" and decoded.modality is None
    np.testing.assert_allclose(decoded.pixels, arr / 255.0, atol=1e-6)


def test_png_16bit_uses_full_range():
    arr = (head_like().astype(np.uint16) * 257)
    decoded = decode_image(encode(Image.fromarray(arr), "PNG"))
    np.testing.assert_allclose(decoded.pixels, arr / 65535.0, atol=1e-4)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_colour_images_become_luminance_with_a_note(mode):
    grey = head_like()
    image = Image.fromarray(grey).convert(mode)
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.pixels.shape == grey.shape
    assert any("converted to grayscale" in n for n in decoded.notes)
    np.testing.assert_allclose(decoded.pixels, grey / 255.0, atol=2 / 255)


def test_jpeg_exif_orientation_is_applied():
    arr = head_like(200, 120)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(arr), "JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_image(data)
    assert decoded.pixels.shape == (120, 200)
    assert "rotated by EXIF orientation" in decoded.notes


def test_dicom_ct_small_is_in_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    decoded = decode_image(open(path, "rb").read())
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert decoded.modality == "CT" and decoded.is_dicom
    np.testing.assert_allclose(decoded.pixels, expected)
    assert "PatientName" not in decoded.dicom_tags and decoded.dicom_tags["Modality"] == "CT"


def test_dicom_mr_small_is_percentile_normalised():
    decoded = decode_image(open(get_testdata_file("MR_small.dcm"), "rb").read())
    display, how = to_display(decoded)
    assert decoded.modality == "MR" and "percentile" in how
    assert display.min() == 0.0 and display.max() == 1.0


def test_brain_window_maps_level_and_width():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    np.testing.assert_allclose(apply_window(hu, CT_WINDOWS["brain"]), [0.0, 0.0, 0.5, 1.0, 1.0])


def test_model_input_is_square_padded_not_stretched():
    tall = np.ones((200, 100), dtype=np.float32)
    square = pad_to_square(tall)
    assert square.shape == (200, 200)
    assert square[:, :50].sum() == 0 and square[:, 50:150].min() == 1.0
    out = to_model_input(tall, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0


def test_preprocess_bytes_on_real_ct_slice(ct_png):
    decoded, display, model_input, how = preprocess_bytes(ct_png, 128)
    assert how == "as stored" and model_input.shape == (128, 128)
    assert display.shape == decoded.pixels.shape


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + iend


@pytest.mark.parametrize("data, code", [
    (b"", "EMPTY_FILE"),
    (b"%PDF-1.7\n%\xe2\xe3", "UNSUPPORTED_FORMAT"),
    (b"<!doctype html><html></html>", "UNSUPPORTED_FORMAT"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "UNSUPPORTED_FORMAT"),
    (b"PK\x03\x04" + b"\x00" * 40, "UNSUPPORTED_FORMAT"),
    (b"MZ\x90\x00" + b"\x00" * 60, "UNSUPPORTED_FORMAT"),
    (_png_header_only(50_000, 50_000), "TOO_LARGE"),
    (_png_header_only(30, 30), "IMAGE_TOO_SMALL"),
    (_png_header_only(2000, 100), "BAD_ASPECT_RATIO"),
])
def test_guards_raise_documented_codes(data, code):
    with pytest.raises(ScanError) as info:
        decode_image(data)
    assert info.value.code == code


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("L", (7000, 7000)), "PNG")  # 49 Mpixel, a few kB on disk
    assert len(bomb) < 200_000
    with pytest.raises(ScanError) as info:
        decode_image(bomb)
    assert info.value.code == "TOO_LARGE"


def test_truncated_png_is_corrupt():
    data = png_bytes(head_like())
    with pytest.raises(ScanError) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code == "CORRUPT_FILE"


def test_constant_image_is_blank():
    with pytest.raises(ScanError) as info:
        decode_image(png_bytes(np.full((128, 128), 7, np.uint8)))
    assert info.value.code == "BLANK_IMAGE"


def test_dicom_without_pixels():
    with pytest.raises(ScanError) as info:
        decode_image(open(get_testdata_file("test-SR.dcm"), "rb").read())  # a structured report
    assert info.value.code == "DICOM_NO_PIXELS"


def test_compressed_dicoms_decode_with_the_bundled_plugins():
    for name, modality in (("MR_small_jpeg_ls_lossless.dcm", "MR"), ("693_J2KI.dcm", "CT"),
                           ("MR_small_RLE.dcm", "MR"), ("SC_rgb_jpeg_gdcm.dcm", "OT")):
        decoded = decode_image(open(get_testdata_file(name), "rb").read())
        assert decoded.modality == modality and decoded.pixels.ndim == 2


def test_multiframe_dicom_reads_the_middle_frame_and_says_so():
    path = get_testdata_file("SC_rgb_rle_2frame.dcm")
    decoded = decode_image(open(path, "rb").read())
    assert "multi-frame DICOM: frame 2 of 2 was read" in decoded.notes
    expected = pydicom.pixels.pixel_array(pydicom.dcmread(path), index=1).astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(decoded.pixels, expected, rtol=1e-5)


def test_monochrome1_is_inverted_for_display():
    hu = np.linspace(-100, 200, 128 * 128, dtype=np.float32).reshape(128, 128)
    from strokelens.reader.imaging.decode import DecodedImage

    normal, _ = to_display(DecodedImage(hu, "dicom", modality="CT"))
    inverted, how = to_display(DecodedImage(hu, "dicom", modality="CT", invert=True))
    np.testing.assert_allclose(inverted, 1.0 - normal)
    assert "MONOCHROME1" in how


def test_sniffing_ignores_names_and_types():
    assert sniff_format(png_bytes(head_like())) == "png"
    assert sniff_format(open(get_testdata_file("CT_small.dcm"), "rb").read()) == "dicom"
    assert sniff_format(b"GIF89a....") is None
