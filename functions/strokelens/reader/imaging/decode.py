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

The DICOM path lives in ``dicom.py``; only an allow-list of technical DICOM tags leaves it.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from strokelens.core.errors import ScanError
from strokelens.core.settings import MAX_UPLOAD_BYTES

if TYPE_CHECKING:  # deid imports pydicom, which PNG and JPEG never need (~0.2 s of a cold start)
    from strokelens.reader.imaging.deid import Identity

MAX_BYTES = MAX_UPLOAD_BYTES  # the upload limit (core/settings.py), re-checked before decoding
MAX_PIXELS = 40_000_000  # ~6300 x 6300; far above any CT/MR slice
MIN_SIDE = 64
MAX_SIDE = 8192
MAX_ASPECT = 3.0
MAX_DECODED_BYTES = 96 * 1024 * 1024  # one decoded image/frame as the decoder holds it
WORK_SIDE = 2048  # longer side images are reduced to before any float array is made
DECODE_SECONDS = 8.0  # per file; the function has 30 s for download, decode, model and previews
_BAND_PIXELS = 1 << 22  # pixels converted at a time
_HELD_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # Pillow: others 4
_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I")

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
    # Text (perhaps a name) may be drawn into the pixels: BURNED_IN_HEADER when a DICOM's
    # BurnedInAnnotation says anything but NO, BURNED_IN_REPORTED when the uploader's page found
    # text-like strokes (reading.read_scan sets it); None otherwise. No header edit removes such text,
    # so previews of this image keep only the head.
    burned_in_text: str | None = None

    @property
    def is_dicom(self) -> bool:
        return self.source_format == "dicom"


BURNED_IN_HEADER, BURNED_IN_REPORTED = "header", "reported"


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
        if fmt == "dicom":
            from strokelens.reader.imaging.dicom import decode_dicom  # pydicom only when needed

            decoded = decode_dicom(data, deadline)
        else:
            decoded = _decode_raster(data, fmt, deadline)
    except ScanError:
        raise
    except Exception as exc:  # decoders parse lazily and raise many kinds on hostile bytes: never a crash
        # The detail is logged: pydicom's messages may quote an element's value (a name, a date).
        detail = type(exc).__name__ if fmt == "dicom" else f"{type(exc).__name__}: {exc}"
        raise ScanError("CORRUPT_FILE", detail) from exc
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
        image = transposed or image  # type: ignore[assignment]  # an Image from here on
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
