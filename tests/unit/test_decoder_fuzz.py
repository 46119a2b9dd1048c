"""Property-based fuzzing of the decoder: mutated PNG/JPEG/DICOM bytes either decode to a valid
array or raise one of the documented errors (never a crash; speed belongs in benchmarks/)."""

from __future__ import annotations

import io
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from strokelens.core.errors import MESSAGES, ScanError
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.preprocess import to_display, to_model_input


def _seed_png() -> bytes:
    yy, xx = np.mgrid[:128, :128]
    buf = io.BytesIO()
    Image.fromarray(((yy * 3 + xx) % 251).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _seed_jpeg() -> bytes:
    yy, xx = np.mgrid[:128, :128]
    buf = io.BytesIO()
    Image.fromarray(((yy * 5 + xx * 2) % 251).astype(np.uint8)).save(buf, format="JPEG", progressive=True)
    return buf.getvalue()


SEEDS = {"png": _seed_png(), "jpeg": _seed_jpeg(),
         "dicom": open(get_testdata_file("CT_small.dcm"), "rb").read(),
         "dicom_rle": open(get_testdata_file("MR_small_RLE.dcm"), "rb").read()}


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos:pos + len(chunk)] = chunk
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated())
def test_mutated_files_decode_or_fail_cleanly(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = decode_image(data)
        except ScanError as err:
            assert err.code in MESSAGES
            return
        display, _ = to_display(decoded)
        model_input = to_model_input(display, 64)
    assert decoded.pixels.ndim == 2 and np.all(np.isfinite(decoded.pixels))
    assert model_input.shape == (64, 64) and 0.0 <= model_input.min() and model_input.max() <= 1.0
