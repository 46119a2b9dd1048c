"""Bytes -> pixels: sniff the format, guard against hostile input, decode PNG/JPEG/TIFF/DICOM.

Order of operations for every file:
1. size guards on the raw bytes (empty, too large);
2. format sniffed from magic bytes (never from the name or the declared content type);
3. dimensions read from the header and checked *before* any pixel is decoded
   (decompression bombs, tiny or absurd sizes);
4. decode; DICOM pixels go through the modality LUT (RescaleSlope/Intercept -> Hounsfield units
   for CT) here, so everything downstream sees physical values;
5. content guards (NaN, constant images).

Only an allow-list of technical DICOM tags leaves this module; no patient identifiers.
"""

from __future__ import annotations

import io
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from strokelens.core.errors import ScanError
from strokelens.reader.imaging.deid import Identity, check_and_deidentify

MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000  # ~6300 x 6300; far above any CT/MR slice
MIN_SIDE = 64
MAX_SIDE = 8192
MAX_ASPECT = 3.0

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


def decode_image(data: bytes) -> DecodedImage:
    """Decode one uploaded file into a :class:`DecodedImage`, or raise :class:`ScanError`."""
    if len(data) == 0:
        raise ScanError("EMPTY_FILE")
    if len(data) > MAX_BYTES:
        raise ScanError("TOO_LARGE", f"{len(data)} bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise ScanError("UNSUPPORTED_FORMAT", f"magic {data[:8]!r}")
    try:
        decoded = _decode_dicom(data) if fmt == "dicom" else _decode_raster(data, fmt)
    except ScanError:
        raise
    except Exception as exc:  # decoders parse lazily and raise many kinds on hostile bytes: never a crash
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
    _check_content(decoded.pixels)
    return decoded


def _check_dimensions(width: int, height: int) -> None:
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise ScanError("TOO_LARGE", f"{width}x{height}")
    if min(width, height) < MIN_SIDE:
        raise ScanError("IMAGE_TOO_SMALL", f"{width}x{height}")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ScanError("BAD_ASPECT_RATIO", f"{width}x{height}")


def _check_content(pixels: np.ndarray) -> None:
    if not np.all(np.isfinite(pixels)):
        raise ScanError("CORRUPT_FILE", "non-finite pixel values")
    if float(pixels.max()) - float(pixels.min()) <= 1e-6:
        raise ScanError("BLANK_IMAGE")


def _decode_raster(data: bytes, fmt: str) -> DecodedImage:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check is a warning below its hard limit; ours runs first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_dimensions(*image.size)  # header only: nothing decoded yet
            if getattr(image, "n_frames", 1) > 1:
                notes.append("multi-page image: first page used")
            image.load()
    except ScanError:
        raise
    except Image.DecompressionBombError as exc:
        raise ScanError("TOO_LARGE", str(exc)) from exc
    except Exception as exc:  # Pillow's plugins raise many kinds (struct.error, IndexError...) on bad bytes
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc

    if fmt == "jpeg":
        transposed = ImageOps.exif_transpose(image)
        if transposed is not None and transposed.size != image.size:
            notes.append("rotated by EXIF orientation")
        image = transposed or image
        _check_dimensions(*image.size)

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        pixels = arr / top
    elif mode == "F":
        arr = np.asarray(image, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        pixels = (arr - lo) / (hi - lo) if hi > lo else arr * 0
    elif mode in ("L", "1"):
        pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    else:
        # RGB, RGBA, LA, P, CMYK, YCbCr: ITU-R 601 luminance, as Pillow's "L" conversion.
        notes.append(f"colour image ({mode}) converted to grayscale")
        pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        chroma = _chroma(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        return DecodedImage(pixels=np.ascontiguousarray(pixels), source_format=fmt, notes=tuple(notes), chroma=chroma)
    return DecodedImage(pixels=np.ascontiguousarray(pixels), source_format=fmt, notes=tuple(notes))


def _chroma(rgb: np.ndarray) -> float:
    """How colourful an RGB image in [0, 1] is: 0 for grey, ~0.3+ for photographs."""
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean())


def _decode_dicom(data: bytes) -> DecodedImage:
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # pydicom raises many kinds (struct.error, ...) on hostile bytes
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc
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
    # A multi-frame object is read at its middle frame (decoded alone), and the choice is recorded.
    index = frames // 2 if frames > 1 else None
    if index is not None:
        notes.append(f"multi-frame DICOM: frame {index + 1} of {frames} was read")
    try:
        raw = pixel_array(ds, index=index)
    except (NotImplementedError, RuntimeError) as exc:
        # pydicom raises these when no installed plugin decodes the transfer syntax.
        raise ScanError("DICOM_UNSUPPORTED_COMPRESSION", str(ds.file_meta.get("TransferSyntaxUID", ""))) from exc
    except Exception as exc:  # any decoder failure on hostile bytes is a damaged file, never a crash
        raise ScanError("CORRUPT_FILE", f"{type(exc).__name__}: {exc}") from exc

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        try:
            raw = apply_color_lut(raw, ds)
        except Exception as exc:
            raise ScanError("CORRUPT_FILE", f"palette: {exc}") from exc
    if raw.ndim == 3:  # colour (secondary capture, palette): pydicom already converted YBR to RGB
        notes.append(f"colour DICOM ({photometric}) converted to grayscale")
        rgb = raw[..., :3].astype(np.float32)
        values = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        chroma = _chroma(rgb / max(float(rgb.max()), 1.0))
    elif raw.ndim == 2:
        values = apply_modality_lut(raw, ds)  # rescale first: Hounsfield units before any windowing
    else:
        raise ScanError("CORRUPT_FILE", f"unexpected pixel array shape {raw.shape}")

    # Identifiers left by a client that skipped the browser's de-identification are removed before
    # any tag is kept (the raw upload itself is deleted by the inference function after reading).
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
    )


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
