"""Bytes -> pixels: sniff the format, guard against hostile input, decode PNG/JPEG/TIFF/DICOM.

Every file is read under explicit budgets, each checked *before* the step it protects, so that a
small hostile upload (decompression bomb, deflated DICOM, TIFF of 100,000 pages) ends in a
documented error within seconds and far below the function's memory (peak < 512 MB for any
upload up to ``MAX_BYTES``):

- ``MAX_BYTES``: the upload itself;
- ``MAX_PIXELS``, ``MAX_SIDE``, ``MIN_SIDE``, ``MAX_ASPECT``: dimensions read from the header;
- ``MAX_DECODED_BYTES``: the one image (or DICOM frame) a decoder will produce, in bytes as it
  holds them: width x height x channels x bytes a sample (Pillow holds every multi-band image
  as 4 bytes a pixel, a DICOM palette image becomes 16-bit RGB); ``MAX_PIXEL_DATA_BYTES`` for the
  declared DICOM pixel data of all frames;
- ``MAX_INFLATED_BYTES``: a Deflated Explicit VR Little Endian DICOM is inflated as a stream and
  refused (``TOO_LARGE``) as soon as it passes this, before pydicom parses anything;
- a compressed DICOM frame's codestream may not declare more pixels than the header
  (``CORRUPT_FILE``): the codec allocates what the codestream says;
- ``WORK_SIDE``: larger images are reduced by an integer box filter (JPEG by its own DCT scaling,
  ``Image.draft``) to at most this side, band by band, so that no full-size converted or float
  copy is made; the reduction is noted;
- ``DECODE_SECONDS``: a deadline checked between stages and inside the long loops (``TOO_LARGE``).
  A C decoder cannot be interrupted: the size budgets are what keep each stage short.

Order of operations for every file:
1. size guards on the raw bytes (empty, too large);
2. format sniffed from magic bytes (never from the name or the declared content type);
3. header only: dimensions, mode or bits, frames, (DICOM) transfer syntax and codestream size are
   checked against the budgets *before* any pixel is decoded; a TIFF is read at its first page
   and its pages are never counted; a deflated DICOM is inflated under its cap first;
4. decode of one image (DICOM: one frame, the middle one of a multi-frame object);
5. reduction to the working size and conversion to grey (colour in integer bands, never as a
   full-size float array); DICOM pixels go through the modality LUT (RescaleSlope/Intercept ->
   Hounsfield units for CT) here, so everything downstream sees physical values;
6. content guards (NaN, constant images).

Only an allow-list of technical DICOM tags leaves this module; no patient identifiers.
"""

from __future__ import annotations

import io
import re
import secrets
import struct
import time
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from strokelens.core.errors import ScanError
from strokelens.core.settings import MAX_UPLOAD_BYTES
from strokelens.reader.imaging.deid import Identity, check_and_deidentify

MAX_BYTES = MAX_UPLOAD_BYTES  # the upload limit (core/settings.py), re-checked before decoding
MAX_PIXELS = 40_000_000  # ~6300 x 6300; far above any CT/MR slice
MIN_SIDE = 64
MAX_SIDE = 8192
MAX_ASPECT = 3.0
MAX_DECODED_BYTES = 96 * 1024 * 1024  # one decoded image/frame as the decoder holds it
MAX_PIXEL_DATA_BYTES = 128 * 1024 * 1024  # declared DICOM pixel data, all frames
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a deflated DICOM data set once inflated
WORK_SIDE = 2048  # longer side images are reduced to before any float array is made
DECODE_SECONDS = 8.0  # per file; the function has 30 s for download, decode, model and previews
_CODEC_OVERHEAD = 4  # bytes a DICOM codec holds per byte of the frame it decodes
_BAND_PIXELS = 1 << 22  # pixels converted at a time
_INFLATE_CHUNK = 1 << 20  # bytes inflated at a time
_HELD_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # Pillow: others 4
_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I")

# CT and MR are what we read; OT/SC are secondary captures (often screenshots of CT/MR).
READABLE_MODALITIES = frozenset({"CT", "MR", "OT", "SC"})

# Technical tags a result may record. Anything not listed (names, ids, dates, institution,
# accession numbers...) is never read out of the dataset.
DICOM_TAG_ALLOWLIST = (
    "Modality",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "PixelSpacing",
    "SliceThickness",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
    "TransferSyntaxUID",
)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded 2-D slice.

    ``pixels`` are float32. For DICOM they are modality values (Hounsfield units for CT);
    for raster images they are display intensities scaled to [0, 1].
    """

    pixels: np.ndarray
    source_format: str  # "png" | "jpeg" | "tiff" | "dicom"
    modality: str | None = None  # from DICOM (0008,0060); None for raster images
    invert: bool = False  # DICOM MONOCHROME1: low values display white
    notes: tuple[str, ...] = ()
    dicom_tags: dict[str, Any] = field(default_factory=dict)
    identity: Identity | None = None  # DICOM only: who removed identifiers (browser, server, none needed)
    chroma: float = 0.0  # mean (max - min) over colour channels in [0, 1]; 0 for grayscale sources
    # MR DICOM only: "DWI" when the header says diffusion-weighted, "other" (T1, T2, FLAIR...) when it
    # names another sequence, None when it does not say (the tag texts themselves are never kept).
    mr_sequence: str | None = None

    @property
    def is_dicom(self) -> bool:
        return self.source_format == "dicom"


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None when it is not one we read.

    DICOM goes first: its 128-byte preamble may itself hold a TIFF header (dual-format files).
    """
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


class _Deadline:
    """The per-file time budget: checked between stages and inside the long loops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self, stage: str) -> None:
        if time.monotonic() > self.end:
            raise ScanError("TOO_LARGE", f"reading took longer than {self.seconds:g} s ({stage})")


def decode_image(data: bytes) -> DecodedImage:
    """Decode one uploaded file into a :class:`DecodedImage`, or raise :class:`ScanError`."""
    deadline = _Deadline(DECODE_SECONDS)
    if len(data) == 0:
        raise ScanError("EMPTY_FILE")
    if len(data) > MAX_BYTES:
        raise ScanError("TOO_LARGE", f"{len(data)} bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise ScanError("UNSUPPORTED_FORMAT", f"magic {data[:8]!r}")
    try:
        decoded = _decode_dicom(data, deadline) if fmt == "dicom" else _decode_raster(data, fmt, deadline)
    except ScanError:
        raise
    except Exception as exc:  # decoders parse lazily and raise many kinds on hostile bytes: never a crash
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
    deadline.check("after decoding")
    _check_content(decoded.pixels)
    return decoded


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise ScanError("TOO_LARGE", f"{width}x{height}")
    if min(width, height) < MIN_SIDE:
        raise ScanError("IMAGE_TOO_SMALL", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ScanError("BAD_ASPECT_RATIO", f"{width}x{height}")


def _check_decoded_bytes(nbytes: int, what: str) -> None:
    if nbytes > MAX_DECODED_BYTES:
        raise ScanError("TOO_LARGE", f"{what} decodes to {nbytes} bytes (budget {MAX_DECODED_BYTES})")


def _reduction(width: int, height: int) -> int:
    """The integer factor that brings the longer side to at most ``WORK_SIDE``."""
    return max(1, -(-max(width, height) // WORK_SIDE))


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean of each ``factor`` x ``factor`` block of a 2-D array (partial blocks at the
    right and bottom edges dropped); the values themselves, as float32, when ``factor`` is 1.
    Accumulates strided views, so no full-size float copy is made."""
    if factor == 1:
        return values.astype(np.float32)
    h, w = values.shape[0] // factor * factor, values.shape[1] // factor * factor
    out = np.zeros((h // factor, w // factor), np.float32)
    for dy in range(factor):
        for dx in range(factor):
            out += values[dy:h:factor, dx:w:factor]
    out /= factor * factor
    return out


def _check_content(pixels: np.ndarray) -> None:
    if not np.all(np.isfinite(pixels)):
        raise ScanError("CORRUPT_FILE", "non-finite pixel values")
    if float(pixels.max()) - float(pixels.min()) <= 1e-6:
        raise ScanError("BLANK_IMAGE")


def _more_pages(image: Image.Image, fmt: str) -> bool:
    """Whether the file holds more than the first page, without counting pages (Pillow's TIFF page
    count walks every IFD, quadratically): a TIFF says so in its first IFD's next-IFD offset."""
    if fmt == "tiff":
        return bool(getattr(getattr(image, "tag_v2", None), "next", 0))
    return getattr(image, "n_frames", 1) > 1  # PNG (APNG) and JPEG (MPO) read it from one header


def _decode_raster(data: bytes, fmt: str, deadline: _Deadline) -> DecodedImage:
    """Pillow: header -> budgets -> (JPEG: DCT-scaled draft) -> decode of the first page ->
    grey at working size, band by band."""
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check is a warning below its hard limit; ours runs first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            _check_dimensions(width, height)  # header only: nothing decoded yet
            if _more_pages(image, fmt):
                notes.append("multi-page image: first page used")
            factor = _reduction(width, height)
            if fmt == "jpeg" and factor > 1:  # decode at 1/2, 1/4 or 1/8 scale directly
                image.draft(image.mode, (-(-width // factor), -(-height // factor)))
            _check_decoded_bytes(image.size[0] * image.size[1] * _HELD_BYTES.get(image.mode, 4),
                                 f"{width}x{height} {image.mode}")
            deadline.check("image header")
            image.load()
    except ScanError:
        raise
    except Image.DecompressionBombError as exc:
        raise ScanError("TOO_LARGE", str(exc)) from exc
    except Exception as exc:  # Pillow's plugins raise many kinds (struct.error, IndexError...) on bad bytes
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
    deadline.check("image decode")

    if fmt == "jpeg":
        transposed = ImageOps.exif_transpose(image)
        if transposed is not None and transposed.size != image.size:
            notes.append("rotated by EXIF orientation")
        image = transposed or image
        _check_dimensions(*image.size)

    mode = image.mode
    colour = mode not in _INTEGER_MODES and mode not in ("F", "L", "1")
    if colour:
        # RGB, RGBA, LA, P, CMYK, YCbCr: ITU-R 601 luminance, as Pillow's "L" conversion.
        notes.append(f"colour image ({mode}) converted to grayscale")
    grey, chroma, raw_max = _raster_bands(image, _reduction(*image.size), colour, deadline)
    if mode in _INTEGER_MODES:
        pixels = grey / (65535.0 if mode.startswith("I;16") or raw_max > 255 else 255.0)
    elif mode == "F":
        lo, hi = float(np.nanmin(grey)), float(np.nanmax(grey))
        pixels = (grey - lo) / (hi - lo) if hi > lo else grey * 0
    else:
        pixels = grey / 255.0
    if grey.shape not in ((height, width), (width, height)):
        notes.append(f"large image ({width}x{height}) reduced to {grey.shape[1]}x{grey.shape[0]} for reading")
    return DecodedImage(pixels=np.ascontiguousarray(pixels), source_format=fmt, notes=tuple(notes), chroma=chroma)


def _raster_bands(image: Image.Image, factor: int, colour: bool,
                  deadline: _Deadline) -> tuple[np.ndarray, float, float]:
    """(grey values reduced by ``factor``, as float32 in the mode's own scale; chroma, the mean
    max - min over RGB in [0, 1], 0 unless ``colour``; largest raw value), a band of rows at a time."""
    mode = image.mode
    width, height = image.size
    if factor > 1:
        width, height = width // factor * factor, height // factor * factor  # whole blocks only
    band = factor * max(1, _BAND_PIXELS // (width * factor))
    parts: list[np.ndarray] = []
    spread, raw_max = 0.0, 0.0
    for top in range(0, height, band):
        deadline.check("grey conversion")
        rows = image.crop((0, top, width, min(top + band, height)))
        if colour:
            rgb = np.asarray(rows.convert("RGB"))
            spread += float((rgb.max(axis=-1) - rgb.min(axis=-1)).sum(dtype=np.int64))
            del rgb
            values = np.asarray(rows.convert("L"))
        elif mode == "1":
            values = np.asarray(rows.convert("L"))
        else:
            values = np.asarray(rows)
            if mode in _INTEGER_MODES:
                raw_max = max(raw_max, float(values.max()))
        parts.append(_block_mean(values, factor))
    grey = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return grey, spread / (255.0 * width * height), raw_max


def _inflate(data: bytes, start: int, deadline: _Deadline) -> bytes:
    """The raw deflate stream ``data[start:]`` inflated a chunk at a time, refused as soon as it
    passes ``MAX_INFLATED_BYTES`` (a 1.5 MB stream of zeros inflates to 1.5 GB)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = io.BytesIO()
    size, at, pending = 0, start, b""
    while not inflater.eof:
        if not pending:
            if at >= len(data):
                raise ScanError("CORRUPT_FILE", "deflated data set is truncated")
            pending, at = data[at:at + _INFLATE_CHUNK], at + _INFLATE_CHUNK
        chunk = inflater.decompress(pending, _INFLATE_CHUNK)
        pending = inflater.unconsumed_tail
        size += len(chunk)
        if size > MAX_INFLATED_BYTES:
            raise ScanError("TOO_LARGE", f"deflated DICOM inflates past {MAX_INFLATED_BYTES} bytes")
        out.write(chunk)
        deadline.check("inflating DICOM")
    return out.getvalue()


def _read_dicom(data: bytes, deadline: _Deadline) -> Any:
    """The data set, pixel data not decoded; the deadline is checked at every top-level element
    (25 MB of tiny elements take seconds to parse). A deflated data set is inflated here under its
    cap (pydicom would inflate all of it in one call) and parsed as the Explicit VR Little Endian
    it holds."""
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_partial, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    def in_time(tag: Any, vr: Any, length: int) -> bool:  # a stop_when callback that never stops
        deadline.check("parsing DICOM")
        return False

    fp = io.BytesIO(data)
    preamble = read_preamble(fp, False)
    file_meta = _read_file_meta_info(fp)
    if file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return read_partial(io.BytesIO(data), stop_when=in_time)  # what dcmread does, plus the deadline
    inflated = _inflate(data, fp.tell(), deadline)
    dataset = read_dataset(DicomBytesIO(inflated), is_implicit_VR=False, is_little_endian=True, stop_when=in_time)
    del inflated  # the data set holds its own copies of the values
    ds = FileDataset(io.BytesIO(), dataset, preamble, file_meta, is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, dataset.original_character_set)
    return ds


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}  # JPEG SOFn, JPEG-LS SOF55


def _codestream_size(src: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG, JPEG-LS or JPEG 2000 codestream declares, or None when not found."""
    if src[:2] == b"\xff\xd8":
        at = 2
        for _ in range(1000):  # markers before the frame header; a real one comes early
            if at + 9 > len(src) or src[at] != 0xFF:
                return None
            marker = src[at + 1]
            if marker == 0xFF:
                at += 1
            elif marker in _SOF_MARKERS:
                height, width = struct.unpack(">HH", src[at + 5:at + 9])
                return width, height
            elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                at += 2
            else:
                at += 2 + struct.unpack(">H", src[at + 2:at + 4])[0]
        return None
    at = src.find(b"\xff\x4f\xff\x51", 0, 4096)  # JPEG 2000: SOC then SIZ (also inside a JP2 box)
    if at >= 0 and len(src) >= at + 24:
        xsiz, ysiz, x0, y0 = struct.unpack(">IIII", src[at + 8:at + 24])
        return xsiz - x0, ysiz - y0
    return None


def _check_dicom_budgets(ds: Any, rows: int, cols: int, frames: int, photometric: str, index: int) -> None:
    """Byte budgets from the header, then the codestream's own size for a compressed frame."""
    try:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 8) or 8)
    except (TypeError, ValueError) as exc:
        raise ScanError("CORRUPT_FILE", "unreadable samples or bits") from exc
    if samples <= 0 or bits <= 0:
        raise ScanError("CORRUPT_FILE", f"{samples} samples of {bits} bits")
    declared = rows * cols * samples * bits * frames // 8
    if declared > MAX_PIXEL_DATA_BYTES:
        raise ScanError("TOO_LARGE", f"{declared} bytes of declared pixel data (budget {MAX_PIXEL_DATA_BYTES})")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        encapsulated = bool(syntax) and syntax.is_transfer_syntax and syntax.is_compressed
    except ValueError:
        encapsulated = False
    channels, sample_bytes = (3, 2) if photometric == "PALETTE COLOR" else (samples, -(-bits // 8))
    frame = rows * cols * channels * sample_bytes
    # A codec holds about 4x its output while pydicom copies it out (measured 2.6x RLE, 3x JPEG 2000,
    # 3.9x JPEG); a native frame is one copy out of the pixel data already read.
    _check_decoded_bytes(frame * (_CODEC_OVERHEAD if encapsulated else 1), f"a {cols}x{rows}x{channels} frame")
    if not encapsulated:
        return
    from pydicom.encaps import get_frame

    try:
        offsets = ((ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
                   if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds else None)
        size = _codestream_size(get_frame(ds.PixelData, index, extended_offsets=offsets, number_of_frames=frames))
    except Exception:  # a broken encapsulation is reported by the decoder itself
        return
    if size is not None and (size[0] > cols or size[1] > rows):
        raise ScanError("CORRUPT_FILE", f"the codestream declares {size[0]}x{size[1]}, the header {cols}x{rows}")


def _dicom_colour_to_grey(raw: np.ndarray, ybr: bool, factor: int, deadline: _Deadline) -> tuple[np.ndarray, float]:
    """ITU-R 601 luminance reduced by ``factor``, and the chroma, a band of rows at a time
    (YBR_FULL is converted to RGB here, as pydicom would, but band by band: pydicom's conversion
    makes several full-size float copies)."""
    from pydicom.pixels import convert_color_space

    raw = raw[..., :3]
    height, width = raw.shape[:2]
    if factor > 1:
        height, width = height // factor * factor, width // factor * factor
    band = factor * max(1, _BAND_PIXELS // (width * factor))
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    parts: list[np.ndarray] = []
    spread, top_value = 0.0, 0.0
    for top in range(0, height, band):
        deadline.check("grey conversion")
        rows = raw[top:min(top + band, height), :width]
        if ybr:
            rows = convert_color_space(rows, "YBR_FULL", "RGB")
        rows = rows.astype(np.float32)
        top_value = max(top_value, float(rows.max()))
        spread += float((rows.max(axis=-1) - rows.min(axis=-1)).sum(dtype=np.float64))
        parts.append(_block_mean(rows @ weights, factor))
    grey = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return grey, spread / (height * width * max(top_value, 1.0))


def _decode_dicom(data: bytes, deadline: _Deadline) -> DecodedImage:
    """pydicom: (inflate under its cap) -> header -> budgets -> one frame decoded -> palette ->
    grey at working size -> modality LUT."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, as_pixel_options, get_decoder

    try:
        ds = _read_dicom(data, deadline)
    except ScanError:
        raise
    except Exception as exc:  # pydicom raises many kinds (struct.error, ...) on hostile bytes
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
    deadline.check("DICOM header")
    if "PixelData" not in ds:
        # An image object without pixels was cut short; anything else (report, plan) has none by design.
        uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
        sop_class = getattr(uid, "name", "")
        if "Image Storage" in sop_class:
            raise ScanError("CORRUPT_FILE", f"{sop_class} without pixel data (truncated?)")
        raise ScanError("DICOM_NO_PIXELS", sop_class)
    modality = str(ds.get("Modality", "") or "").upper() or None
    if modality is not None and modality not in READABLE_MODALITIES:
        raise ScanError("UNSUPPORTED_MODALITY", modality)
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise ScanError("CORRUPT_FILE", "unreadable image dimensions") from exc
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise ScanError("CORRUPT_FILE", "missing image dimensions")
    _check_dimensions(cols, rows)
    if rows * cols * frames > MAX_PIXELS:
        raise ScanError("TOO_LARGE", f"{frames} frames of {cols}x{rows}")

    notes: list[str] = []
    chroma = 0.0
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    # A multi-frame object is read at its middle frame (decoded alone), and the choice is recorded.
    index = frames // 2 if frames > 1 else None
    _check_dicom_budgets(ds, rows, cols, frames, photometric, index or 0)
    deadline.check("DICOM budgets")
    if index is not None:
        notes.append(f"multi-frame DICOM: frame {index + 1} of {frames} was read")
    try:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if not syntax:
            raise ScanError("CORRUPT_FILE", "no transfer syntax")
        # pydicom's pixel_array(ds, index), less its YBR -> RGB conversion (done below, in bands)
        raw, properties = get_decoder(syntax).as_array(ds, index=index, validate=True,
                                                       **as_pixel_options(ds, as_rgb=False))
    except ScanError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        # pydicom raises these when no installed plugin decodes the transfer syntax.
        raise ScanError("DICOM_UNSUPPORTED_COMPRESSION", str(ds.file_meta.get("TransferSyntaxUID", ""))) from exc
    except Exception as exc:  # any decoder failure on hostile bytes is a damaged file, never a crash
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
    deadline.check("DICOM pixels")

    if photometric == "PALETTE COLOR":
        try:
            raw = apply_color_lut(raw, ds)
        except Exception as exc:
            raise ScanError("CORRUPT_FILE", f"palette: {exc}") from exc
    factor = _reduction(raw.shape[1], raw.shape[0]) if raw.ndim >= 2 else 1
    if raw.ndim == 3:  # colour (secondary capture, palette): YBR is converted to RGB in bands
        notes.append(f"colour DICOM ({photometric}) converted to grayscale")
        ybr = properties.get("photometric_interpretation") in ("YBR_FULL", "YBR_FULL_422")
        values, chroma = _dicom_colour_to_grey(raw, ybr, factor, deadline)
    elif raw.ndim == 2 and factor == 1:
        values = apply_modality_lut(raw, ds)  # rescale first: Hounsfield units before any windowing
    elif raw.ndim == 2 and "ModalityLUTSequence" in ds:  # a lookup table indexes stored values
        values = _block_mean(apply_modality_lut(raw, ds), factor)
    elif raw.ndim == 2:  # a linear rescale commutes with the block mean
        values = apply_modality_lut(_block_mean(raw, factor), ds)
    else:
        raise ScanError("CORRUPT_FILE", f"unexpected pixel array shape {raw.shape}")
    if factor > 1:
        notes.append(f"large image ({cols}x{rows}) reduced to {values.shape[1]}x{values.shape[0]} for reading")

    # Identifiers left by a client that skipped the browser's de-identification are removed before
    # any tag is kept (the raw upload itself is deleted by the inference function after reading).
    sequence = mr_sequence_of(ds) if modality == "MR" else None
    identity = check_and_deidentify(ds, salt=secrets.token_hex(8))
    return DecodedImage(
        pixels=np.ascontiguousarray(values, dtype=np.float32),
        source_format="dicom",
        identity=identity,
        modality=modality,
        invert=photometric == "MONOCHROME1",
        notes=tuple(notes),
        dicom_tags=_allowed_tags(ds),
        chroma=chroma,
        mr_sequence=sequence,
    )


DWI_WORDS = ("dwi", "diffusion", "trace", "b1000", "b 1000", "ep2d_diff", "adc", "isodwi")
OTHER_SEQUENCE_WORDS = ("t1", "t2", "flair", "swi", "gre", "mprage", "tof", "pd", "stir", "spgr", "localizer", "scout")


def mr_sequence_of(ds: Any) -> str | None:
    """"DWI" / "other" / None from the MR sequence tags (b-value, image type, series/protocol/sequence
    names). ADC maps count as diffusion (the reading states what it assessed)."""
    bvalue = ds.get("DiffusionBValue")
    try:
        if bvalue is not None and float(bvalue) > 0:
            return "DWI"
    except (TypeError, ValueError):
        pass
    texts = []
    for name in ("ImageType", "SeriesDescription", "ProtocolName", "SequenceName", "ScanningSequence"):
        value = ds.get(name)
        if value is None:
            continue
        texts.append(" ".join(map(str, value)) if not isinstance(value, str) and hasattr(value, "__iter__") else str(value))
    text = " ".join(texts).lower()
    if not text.strip():
        return None
    if any(word in text for word in DWI_WORDS):
        return "DWI"
    tokens = set(re.split(r"[^a-z0-9]+", text))
    if any(word in tokens for word in OTHER_SEQUENCE_WORDS) or "flair" in text:
        return "other"
    return None


def _allowed_tags(ds: Any) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    for name in DICOM_TAG_ALLOWLIST:
        value = ds.file_meta.get(name) if name == "TransferSyntaxUID" else ds.get(name)
        if value is None or value == "":
            continue
        if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
            tags[name] = [float(v) for v in value]
        elif isinstance(value, (int, float)) or type(value).__name__ in ("DSfloat", "IS", "DSdecimal"):
            tags[name] = float(value)
        else:
            tags[name] = str(value)
    return tags
