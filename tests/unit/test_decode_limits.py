"""Issue 14: small hostile files must not exhaust the reader's time or memory.

Three files generated here (each a few MB at most) used to take minutes or gigabytes:
a deflated DICOM that inflates to ~1.5 GB, a TIFF with 100,000 pages, and a 6300 x 6300 RGB PNG.
Each goes through the CLI in its own subprocess, which must stay within 512 MB of peak RSS (a
generous subprocess timeout only stops a hang; speed is measured in benchmarks/, not asserted here).
The budgets of :mod:`strokelens.reader.imaging.decode` are then tested one by one, each with a
deterministic guard: inflated bytes counted, page walks and pixel decodes refused.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from strokelens.core.errors import ScanError
from strokelens.reader.imaging import decode, dicom
from strokelens.reader.imaging.decode import decode_image

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS_BYTES = 512 * 1024 * 1024


# --- hostile file generators -------------------------------------------------------------------

def _repeated_deflate(prefix: bytes, zeros: int, chunk: int = 64 << 20) -> bytes:
    """A raw deflate stream of ``prefix`` followed by ``zeros`` zero bytes, built without ever
    holding them: after a full flush the compressor's state is reset, so one compressed chunk of
    zeros can be repeated as is."""
    head = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)]
    block = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zero_block = block.compress(bytes(chunk)) + block.flush(zlib.Z_FULL_FLUSH)
    assert zeros % chunk == 0
    out += [zero_block] * (zeros // chunk)
    out.append(b"\x03\x00")  # a final, empty, fixed-Huffman block
    return b"".join(out)


def deflated_dicom_bomb(inflated_pixel_bytes: int = 1536 << 20) -> bytes:
    """CT_small's header, Deflated Explicit VR Little Endian, with ``inflated_pixel_bytes`` of zero
    pixels (512 x 512 x 16 bit frames): ~1.5 MB on disk, ~1.5 GB once inflated."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 512, 512, 16, 16, 15
    ds.NumberOfFrames = inflated_pixel_bytes // (512 * 512 * 2)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    plain = buf.getvalue()
    meta_end = 132 + 12 + struct.unpack("<I", plain[140:144])[0]  # (0002,0000) group length
    body = plain[meta_end:] + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, inflated_pixel_bytes)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    return plain[:132] + meta.getvalue() + _repeated_deflate(body, inflated_pixel_bytes)


def many_page_tiff(pages: int = 100_000, side: int = 128) -> bytes:
    """A little-endian TIFF of ``pages`` tiny IFDs that all point at one 8-bit strip (~10 MB)."""
    yy, xx = np.mgrid[:side, :side]
    strip = (((yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side * 0.4) ** 2) * 120 + (xx % 9) * 4).astype(np.uint8)
    strip_at, first_ifd = 8, 8 + side * side
    entries = [(256, 3, 1, side), (257, 3, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, strip_at), (278, 3, 1, side), (279, 4, 1, side * side)]
    ifd_size = 2 + 12 * len(entries) + 4
    out = [struct.pack("<2sHI", b"II", 42, first_ifd), strip.tobytes()]
    for page in range(pages):
        nxt = first_ifd + (page + 1) * ifd_size if page + 1 < pages else 0
        ifd = [struct.pack("<H", len(entries))]
        ifd += [struct.pack("<HHII", tag, typ, count, value) if typ == 4 else struct.pack("<HHIHH", tag, typ, count, value, 0)
                for tag, typ, count, value in entries]
        ifd.append(struct.pack("<I", nxt))
        out.append(b"".join(ifd))
    return b"".join(out)


def huge_rgb_png(side: int = 6300) -> bytes:
    """A ``side`` x ``side`` RGB PNG (inside the 40 Mpx limit) whose rows repeat: a few hundred kB."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = np.zeros((side, 3), np.uint8)
    row[:, 0] = np.arange(side) % 251
    row[:, 1] = 90
    raw_row = b"\x00" + row.tobytes()  # filter type 0
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(raw_row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- running the CLI under measurement ---------------------------------------------------------

_CHILD = """
import json, resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rss": rss, "rc": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-2000:]}))
"""


def run_cli(path: Path, timeout: float = 120) -> dict:
    """``python -m strokelens predict path`` in a fresh process; its peak RSS. ``timeout`` only
    stops a hang (it is no speed goal). A middle process runs the CLI so RUSAGE_CHILDREN holds
    that one child only."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-c", _CHILD, sys.executable, "-m", "strokelens", "predict", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    return json.loads(out.stdout)


# --- the floor: each file through the CLI, measured ----------------------------------------------

HOSTILE = {
    "deflated_dicom_bomb.dcm": (deflated_dicom_bomb, "TOO_LARGE"),
    "hundred_thousand_pages.tif": (many_page_tiff, None),  # first page read, pages never counted
    "rgb_6300px.png": (huge_rgb_png, "TOO_LARGE"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_answered_within_the_memory_budget_through_the_cli(name, tmp_path):
    make, code = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(make())
    assert path.stat().st_size <= decode.MAX_BYTES
    run = run_cli(path)
    line = json.loads(run["stdout"].splitlines()[0])
    assert run["rss"] <= MAX_RSS_BYTES, f"peak RSS {run['rss'] / 2**20:.0f} MiB"
    if code is None:
        assert line["status"] == "DONE" and any("multi-page image: first page used" in w["message"] for w in line["warnings"]), line
    else:
        assert line["status"] == "FAILED" and line["error"]["code"] == code, line


# --- each budget on decode_image -------------------------------------------------------------------

def _code(data: bytes) -> str:
    with pytest.raises(ScanError) as info:
        decode_image(data)
    return info.value.code


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _head(h: int, w: int) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    inside = ((yy - h / 2) / (h * 0.42)) ** 2 + ((xx - w / 2) / (w * 0.42)) ** 2 <= 1
    return (inside * 150 + (xx % 7) * 3 + 20).astype(np.uint8)


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Any attempt to decode pixels fails the test: budgets must refuse from the header."""
    from PIL import ImageFile

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(pydicom.pixels.decoders.base.Decoder, "as_array", refuse)


def _count_inflated(monkeypatch) -> list[int]:
    """The sizes of every chunk the DICOM reader inflates, appended as it inflates them."""
    inflated: list[int] = []
    real = zlib.decompressobj

    def spy(*args):
        obj = real(*args)

        class Counting:
            eof = property(lambda self: obj.eof)
            unconsumed_tail = property(lambda self: obj.unconsumed_tail)

            def decompress(self, data, max_length=0):
                out = obj.decompress(data, max_length)
                inflated.append(len(out))
                return out
        return Counting()

    monkeypatch.setattr(dicom.zlib, "decompressobj", spy)
    return inflated


def test_deflated_dicom_stops_inflating_at_its_cap(monkeypatch):
    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 1 << 20)
    inflated = _count_inflated(monkeypatch)
    data = deflated_dicom_bomb(64 << 20)  # 64 MB of zero pixels, refused after ~1 MB
    with pytest.raises(ScanError) as info:
        decode_image(data)
    assert info.value.code == "TOO_LARGE" and "inflates past" in info.value.detail
    assert sum(inflated) <= (1 << 20) + dicom._INFLATE_CHUNK


def test_the_real_deflated_dicom_bomb_is_refused_at_the_inflation_cap(monkeypatch):
    inflated = _count_inflated(monkeypatch)
    data = deflated_dicom_bomb()  # ~1.5 GB once inflated
    assert _code(data) == "TOO_LARGE"
    assert 0 < sum(inflated) <= dicom.MAX_INFLATED_BYTES + dicom._INFLATE_CHUNK
    assert max(inflated) <= dicom._INFLATE_CHUNK  # inflated as a stream, never at once


def test_a_genuine_deflated_dicom_still_reads_as_pydicom_reads_it():
    path = get_testdata_file("image_dfl.dcm")
    decoded = decode_image(open(path, "rb").read())
    expected = pydicom.pixels.apply_modality_lut(pydicom.dcmread(path).pixel_array, pydicom.dcmread(path))
    np.testing.assert_allclose(decoded.pixels, expected)
    assert decoded.dicom_tags["TransferSyntaxUID"] == DeflatedExplicitVRLittleEndian


def test_a_truncated_deflated_dicom_is_corrupt():
    data = open(get_testdata_file("image_dfl.dcm"), "rb").read()
    assert _code(data[: len(data) // 2]) == "CORRUPT_FILE"


def test_tiff_is_read_at_its_first_page_without_counting_pages(monkeypatch):
    from PIL import TiffImagePlugin

    def refuse(*args, **kwargs):
        raise AssertionError("TIFF pages were walked")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(refuse))
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "seek", refuse)
    first, second = _head(128, 128), 255 - _head(128, 128)
    data = _encode(Image.fromarray(first), "TIFF", save_all=True, append_images=[Image.fromarray(second)])
    decoded = decode_image(data)
    np.testing.assert_allclose(decoded.pixels, first / 255.0, atol=1e-6)
    assert "multi-page image: first page used" in decoded.notes
    single = decode_image(_encode(Image.fromarray(first), "TIFF"))
    assert "multi-page image: first page used" not in single.notes


def test_the_hundred_thousand_page_tiff_reads_its_first_page_without_walking_pages(monkeypatch):
    from PIL import TiffImagePlugin

    def refuse(*args, **kwargs):
        raise AssertionError("TIFF pages were walked")

    data = many_page_tiff()
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(refuse))
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "seek", refuse)
    decoded = decode_image(data)
    assert decoded.pixels.shape == (128, 128)
    assert "multi-page image: first page used" in decoded.notes


def test_raster_budget_counts_bytes_not_pixels(monkeypatch, no_pixel_decoding):
    # 1000 x 1000: an RGB image is held as 4 MB, a grey one as 1 MB; the budget sits between
    monkeypatch.setattr(decode, "MAX_DECODED_BYTES", 3_000_000)
    rgb = np.stack([_head(1000, 1000)] * 3, axis=-1)
    assert _code(_encode(Image.fromarray(rgb), "PNG")) == "TOO_LARGE"
    with pytest.raises(ScanError, match="pixels were decoded"):  # within budget: goes on to decode
        decode_image(_encode(Image.fromarray(_head(1000, 1000)), "PNG"))


def test_the_6300px_rgb_png_is_refused_from_its_header(no_pixel_decoding):
    assert _code(huge_rgb_png()) == "TOO_LARGE"


def test_dicom_frame_budget_counts_bytes_and_codec_overhead(monkeypatch, no_pixel_decoding):
    native = open(get_testdata_file("CT_small.dcm"), "rb").read()  # 128 x 128 x 16 bit = 32 KiB
    monkeypatch.setattr(decode, "MAX_DECODED_BYTES", 16 * 1024)
    assert _code(native) == "TOO_LARGE"
    # 693_J2KI: 512 x 512 x 16 bit = 512 KiB decoded, and a codec holds ~4x that
    j2k = open(get_testdata_file("693_J2KI.dcm"), "rb").read()
    monkeypatch.setattr(decode, "MAX_DECODED_BYTES", 1024 * 1024)
    assert _code(j2k) == "TOO_LARGE"


def test_dicom_declared_pixel_data_budget(monkeypatch, no_pixel_decoding):
    monkeypatch.setattr(dicom, "MAX_PIXEL_DATA_BYTES", 1000)
    assert _code(open(get_testdata_file("CT_small.dcm"), "rb").read()) == "TOO_LARGE"


def _patched_codestream(name: str, width: int, height: int) -> bytes:
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(get_testdata_file(name))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))))
    if frame[:2] == b"\xff\xd8":
        at = min(i for i in (frame.find(m) for m in (b"\xff\xc0", b"\xff\xc3", b"\xff\xf7")) if i > 0)
        frame[at + 5:at + 9] = struct.pack(">HH", height, width)
    else:
        at = frame.find(b"\xff\x51")
        frame[at + 6:at + 14] = struct.pack(">II", width, height)
    ds.PixelData = encapsulate([bytes(frame)])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["693_J2KI.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_gdcm.dcm"])
def test_a_codestream_larger_than_its_header_is_refused_before_decoding(name, no_pixel_decoding):
    # 30000 x 30000 in the codestream: the codec would allocate gigabytes (seen: > 60 s, 2.4 GB)
    with pytest.raises(ScanError) as info:
        decode_image(_patched_codestream(name, 30000, 30000))
    assert info.value.code == "CORRUPT_FILE" and "the codestream declares 30000x30000" in info.value.detail


def test_large_images_are_reduced_before_any_float_array(monkeypatch):
    import tracemalloc

    rgb = np.stack([_head(3000, 4000), _head(3000, 4000) // 2, 255 - _head(3000, 4000)], axis=-1)
    data = _encode(Image.fromarray(rgb), "PNG", compress_level=1)
    tracemalloc.start()  # numpy's allocations are traced, Pillow's are not
    try:
        decoded = decode_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a float32 copy of the full RGB image would be 148 MB; of its grey, 49 MB
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MiB of numpy arrays"
    assert decoded.pixels.shape == (1500, 2000)
    assert "large image (4000x3000) reduced to 2000x1500 for reading" in decoded.notes
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0
    expected = grey.reshape(1500, 2, 2000, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(decoded.pixels, expected, atol=1e-5)
    assert decoded.chroma > 0.1


def test_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    from PIL import JpegImagePlugin

    drafts = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: drafts.append(size) or real(self, mode, size))
    data = _encode(Image.fromarray(_head(3000, 6000)), "JPEG", quality=80)
    decoded = decode_image(data)
    assert drafts == [(2000, 1000)]
    assert max(decoded.pixels.shape) <= decode.WORK_SIDE
    assert any(n.startswith("large image (6000x3000) reduced to") for n in decoded.notes)


def test_large_dicom_is_reduced_in_hounsfield_units():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = (_head(2200, 2100).astype(np.int16) * 7)
    ds.Rows, ds.Columns, ds.PixelData = 2200, 2100, stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    decoded = decode_image(buf.getvalue())
    hu = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(decoded.pixels, hu.reshape(1100, 2, 1050, 2).mean(axis=(1, 3)), atol=1e-3)
    assert "large image (2100x2200) reduced to 1050x1100 for reading" in decoded.notes


@pytest.mark.parametrize("name", ["CT_small.dcm", None])
def test_time_budget_is_checked_between_stages(monkeypatch, name):
    data = open(get_testdata_file(name), "rb").read() if name else _encode(Image.fromarray(_head(200, 200)), "PNG")
    decode_image(data)  # in time
    monkeypatch.setattr(decode, "DECODE_SECONDS", 0.0)
    with pytest.raises(ScanError) as info:
        decode_image(data)
    assert info.value.code == "TOO_LARGE" and "longer than" in info.value.detail


def test_budgets_leave_room_in_the_function():
    assert decode.DECODE_SECONDS < 30 / 2
    assert dicom.MAX_INFLATED_BYTES + decode.MAX_BYTES + decode.MAX_DECODED_BYTES < MAX_RSS_BYTES / 2


if __name__ == "__main__":  # python tests/unit/test_decode_limits.py OUTDIR: write the three files
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for name, make in (("bomb.dcm", deflated_dicom_bomb), ("pages.tif", many_page_tiff), ("huge.png", huge_rgb_png)):
        t0 = time.perf_counter()
        (target / name).write_bytes(make())
        print(name, (target / name).stat().st_size, f"{time.perf_counter() - t0:.2f} s")
