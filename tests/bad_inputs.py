"""A generated corpus of bad uploads, each with the exact error code it must end in."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import UID


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _head(h: int = 160, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - w / 2) / (w * 0.4)) ** 2 <= 1) * 150 + 20).astype(np.uint8)


def _png_header(width: int, height: int) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    iend = b"IEND"
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
            + struct.pack(">I", 0) + iend + struct.pack(">I", zlib.crc32(iend)))


def _dicom(path: str, **changes) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(path))
    for name, value in changes.items():
        if value is None:
            delattr(ds, name)
        elif name == "TransferSyntaxUID":  # a compressed syntax needs encapsulated (fragmented) pixel data
            ds.file_meta.TransferSyntaxUID = UID(value)
            ds.PixelData = encapsulate([bytes(ds.PixelData[:512])])
        else:
            setattr(ds, name, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, expected error code). At least 25 distinct cases."""
    png = _save(Image.fromarray(_head()), "PNG")
    jpeg = _save(Image.fromarray(_head()), "JPEG", quality=90)
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC-protected bytes
    nan_tiff = np.full((128, 128), np.nan, dtype=np.float32)
    nan_tiff[10:20, 10:20] = 1.0
    ct_small = open(get_testdata_file("CT_small.dcm"), "rb").read()
    return {
        "empty": (b"", "EMPTY_FILE"),
        "pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "UNSUPPORTED_FORMAT"),
        "html": (b"<!DOCTYPE html><html><body>scan.png</body></html>", "UNSUPPORTED_FORMAT"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"/>', "UNSUPPORTED_FORMAT"),
        "zip": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(64), "UNSUPPORTED_FORMAT"),
        "elf": (b"\x7fELF\x02\x01\x01" + bytes(120), "UNSUPPORTED_FORMAT"),
        "windows_exe": (b"MZ\x90\x00\x03" + bytes(120), "UNSUPPORTED_FORMAT"),
        "gif": (_save(Image.fromarray(_head()), "GIF"), "UNSUPPORTED_FORMAT"),
        "text": (b"Patient: see attached report\n", "UNSUPPORTED_FORMAT"),
        "dicom_without_preamble": (ct_small[132:], "UNSUPPORTED_FORMAT"),
        "truncated_png": (png[: len(png) // 2], "CORRUPT_FILE"),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], "CORRUPT_FILE"),
        "png_bad_crc": (bytes(bad_crc), "CORRUPT_FILE"),
        "truncated_tiff": (_save(Image.fromarray(_head()), "TIFF")[:300], "CORRUPT_FILE"),
        "nan_tiff": (_save(Image.fromarray(nan_tiff), "TIFF"), "CORRUPT_FILE"),
        "png_bomb": (_save(Image.new("L", (7000, 7000)), "PNG"), "TOO_LARGE"),
        "png_header_absurd_size": (_png_header(60_000, 60_000), "TOO_LARGE"),
        "tiny_png": (_save(Image.fromarray(_head(16, 16)), "PNG"), "IMAGE_TOO_SMALL"),
        "strip_png": (_save(Image.fromarray(_head(100, 600)), "PNG"), "BAD_ASPECT_RATIO"),
        "black_png": (_save(Image.new("L", (256, 256)), "PNG"), "BLANK_IMAGE"),
        "white_jpeg": (_save(Image.new("RGB", (256, 256), "white"), "JPEG"), "BLANK_IMAGE"),
        "flat_16bit_png": (_save(Image.fromarray(np.full((128, 128), 4000, np.uint16)), "PNG"), "BLANK_IMAGE"),
        "dicom_structured_report": (open(get_testdata_file("test-SR.dcm"), "rb").read(), "DICOM_NO_PIXELS"),
        "dicom_rt_plan": (open(get_testdata_file("rtplan.dcm"), "rb").read(), "DICOM_NO_PIXELS"),
        "dicom_image_without_pixels": (_dicom("CT_small.dcm", PixelData=None), "CORRUPT_FILE"),
        "dicom_mpeg2_video": (_dicom("CT_small.dcm", TransferSyntaxUID="1.2.840.10008.1.2.4.100"),
                              "DICOM_UNSUPPORTED_COMPRESSION"),
        "dicom_ultrasound": (open(get_testdata_file("examples_rgb_color.dcm"), "rb").read(), "UNSUPPORTED_MODALITY"),
        "dicom_dose_map": (open(get_testdata_file("rtdose.dcm"), "rb").read(), "UNSUPPORTED_MODALITY"),
        "dicom_truncated_pixels": (open(get_testdata_file("MR_truncated.dcm"), "rb").read(), "CORRUPT_FILE"),
        "dicom_truncated_header": (ct_small[:300], "CORRUPT_FILE"),
        "dicom_no_rows": (_dicom("CT_small.dcm", Rows=None), "CORRUPT_FILE"),
        "dicom_tiny": (_dicom("CT_small.dcm", Rows=8, Columns=8), "IMAGE_TOO_SMALL"),
        "dicom_absurd_size": (_dicom("CT_small.dcm", Rows=60000, Columns=60000), "TOO_LARGE"),
    }
