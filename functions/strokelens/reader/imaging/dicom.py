"""DICOM Part 10 -> pixels, under the budgets of ``decode.py`` (see its docstring for the order).

A deflated data set is inflated as a stream under ``MAX_INFLATED_BYTES``; the declared pixel data
and each frame's codestream are checked against the budgets before a codec runs; one frame (the
middle one) is decoded; the modality LUT turns stored values into Hounsfield units for CT before
anything downstream windows them; identifiers left by a client are removed before any tag is kept.
"""

from __future__ import annotations

import io
import re
import secrets
import struct
import zlib
from typing import Any

import numpy as np

from strokelens.core.errors import ScanError
from strokelens.reader.imaging.decode import (_BAND_PIXELS, BURNED_IN_HEADER, DecodedImage, _block_mean, _check_decoded_bytes,
                                              _check_dimensions, _Deadline, _reduction, MAX_PIXELS)
from strokelens.reader.imaging.deid import check_and_deidentify

MAX_PIXEL_DATA_BYTES = 128 * 1024 * 1024  # declared DICOM pixel data, all frames
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a deflated DICOM data set once inflated
_CODEC_OVERHEAD = 4  # bytes a DICOM codec holds per byte of the frame it decodes
_INFLATE_CHUNK = 1 << 20  # bytes inflated at a time

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
    "BurnedInAnnotation",  # kept only as YES or NO (burned_in_annotation): text drawn into the pixels
)


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


_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # float, double float and integer pixel data


def read_header(data: bytes) -> Any:
    """The data set up to its pixel data, for grouping a study's files (``reader.series``), under the
    decoder's budgets: the time budget per file, and a deflated data set inflated under its cap."""
    from strokelens.reader.imaging.decode import DECODE_SECONDS

    return _read_dicom(data, _Deadline(DECODE_SECONDS), stop_at_pixels=True)


def _read_dicom(data: bytes, deadline: _Deadline, stop_at_pixels: bool = False) -> Any:
    """The data set, pixel data not decoded (or not read, ``stop_at_pixels``); the deadline is
    checked at every top-level element (25 MB of tiny elements take seconds to parse). A deflated
    data set is inflated here under its cap (pydicom would inflate all of it in one call) and parsed
    as the Explicit VR Little Endian it holds."""
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_partial, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    def in_time(tag: Any, vr: Any, length: int) -> bool:  # a stop_when callback: the deadline, then pixels
        deadline.check("parsing DICOM")
        return stop_at_pixels and int(tag) in _PIXEL_TAGS

    fp = io.BytesIO(data)
    preamble = read_preamble(fp, False)
    file_meta = _read_file_meta_info(fp)
    if file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return read_partial(io.BytesIO(data), stop_when=in_time)  # what dcmread does, plus the deadline
    inflated = _inflate(data, fp.tell(), deadline)
    dataset = read_dataset(DicomBytesIO(inflated),  # type: ignore[arg-type]  # DicomBytesIO is a BinaryIO
                           is_implicit_VR=False, is_little_endian=True, stop_when=in_time)
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


def decode_dicom(data: bytes, deadline: _Deadline) -> DecodedImage:
    """pydicom: (inflate under its cap) -> header -> budgets -> one frame decoded -> palette ->
    grey at working size -> modality LUT -> identifiers removed -> allow-listed tags."""
    ds = _dataset(data, deadline)
    modality, rows, cols, frames = _header(ds)
    notes: list[str] = []
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    # A multi-frame object is read at its middle frame (decoded alone), and the choice is recorded.
    index = frames // 2 if frames > 1 else None
    _check_dicom_budgets(ds, rows, cols, frames, photometric, index or 0)
    deadline.check("DICOM budgets")
    if index is not None:
        notes.append(f"multi-frame DICOM: frame {index + 1} of {frames} was read")
    raw, properties = _frame(ds, index)
    deadline.check("DICOM pixels")
    values, chroma = _to_values(ds, raw, properties, photometric, notes, deadline)
    if values.shape != (rows, cols):
        notes.append(f"large image ({cols}x{rows}) reduced to {values.shape[1]}x{values.shape[0]} for reading")
    sequence = mr_sequence_of(ds) if modality == "MR" else None  # read before identifiers go
    # Identifiers left by a client that skipped the browser's de-identification are removed before
    # any tag is kept (the raw upload itself is deleted by the inference function after reading).
    identity = check_and_deidentify(ds, salt=secrets.token_hex(8))
    burned_in, flag = burned_in_annotation(ds)
    return DecodedImage(
        pixels=np.ascontiguousarray(values, dtype=np.float32),
        source_format="dicom",
        identity=identity,
        modality=modality,
        invert=photometric == "MONOCHROME1",
        notes=tuple(notes),
        dicom_tags=_allowed_tags(ds, flag),
        chroma=chroma,
        mr_sequence=sequence,
        burned_in_text=BURNED_IN_HEADER if burned_in else None,
    )


def _dataset(data: bytes, deadline: _Deadline) -> Any:
    """The data set, with a clear code for a file that has no pixels by design or lost them."""
    try:
        ds = _read_dicom(data, deadline)
    except ScanError:
        raise
    except Exception as exc:  # pydicom raises many kinds (struct.error, ...) on hostile bytes
        raise ScanError("CORRUPT_FILE", type(exc).__name__) from exc  # its text may quote a tag's value
    deadline.check("DICOM header")
    if "PixelData" not in ds:
        # An image object without pixels was cut short; anything else (report, plan) has none by design.
        uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
        sop_class = getattr(uid, "name", "")
        if "Image Storage" in sop_class:
            raise ScanError("CORRUPT_FILE", f"{sop_class} without pixel data (truncated?)")
        raise ScanError("DICOM_NO_PIXELS", sop_class)
    return ds


def _header(ds: Any) -> tuple[str | None, int, int, int]:
    """(modality, rows, columns, frames), checked against the dimension limits."""
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
    return modality, rows, cols, frames


def _frame(ds: Any, index: int | None) -> tuple[np.ndarray, dict]:
    """One frame's stored values (pydicom's pixel_array(ds, index), less its YBR -> RGB step)."""
    from pydicom.pixels import as_pixel_options, get_decoder

    try:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if not syntax:
            raise ScanError("CORRUPT_FILE", "no transfer syntax")
        return get_decoder(syntax).as_array(ds, index=index, validate=True, **as_pixel_options(ds, as_rgb=False))
    except ScanError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        # pydicom raises these when no installed plugin decodes the transfer syntax.
        raise ScanError("DICOM_UNSUPPORTED_COMPRESSION", str(ds.file_meta.get("TransferSyntaxUID", ""))) from exc
    except Exception as exc:  # any decoder failure on hostile bytes is a damaged file, never a crash
        raise ScanError("CORRUPT_FILE", type(exc).__name__) from exc  # its text may quote a tag's value


def _to_values(ds: Any, raw: np.ndarray, properties: dict, photometric: str, notes: list[str],
               deadline: _Deadline) -> tuple[np.ndarray, float]:
    """Palette -> grey at the working size -> modality LUT (rescale before any windowing); chroma."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    if photometric == "PALETTE COLOR":
        try:
            raw = apply_color_lut(raw, ds)
        except Exception as exc:
            raise ScanError("CORRUPT_FILE", f"palette: {exc}") from exc
    factor = _reduction(raw.shape[1], raw.shape[0]) if raw.ndim >= 2 else 1
    if raw.ndim == 3:  # colour (secondary capture, palette): YBR is converted to RGB in bands
        notes.append(f"colour DICOM ({photometric}) converted to grayscale")
        ybr = properties.get("photometric_interpretation") in ("YBR_FULL", "YBR_FULL_422")
        return _dicom_colour_to_grey(raw, ybr, factor, deadline)
    if raw.ndim != 2:
        raise ScanError("CORRUPT_FILE", f"unexpected pixel array shape {raw.shape}")
    if factor == 1:
        return apply_modality_lut(raw, ds), 0.0  # Hounsfield units before any windowing
    if "ModalityLUTSequence" in ds:  # a lookup table indexes stored values
        return _block_mean(apply_modality_lut(raw, ds), factor), 0.0
    return apply_modality_lut(_block_mean(raw, factor), ds), 0.0  # a linear rescale commutes with the mean


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


def burned_in_annotation(ds: Any) -> tuple[bool, str | None]:
    """(whether text may be drawn into the pixels, the value to keep). The standard allows YES or NO;
    anything else (free text, several values) counts as YES, since it is no reason to show the whole
    frame, and is not kept, since it may be anything. An absent or empty element is no flag."""
    value = ds.get("BurnedInAnnotation")
    if value is None or value == "":
        return False, None
    text = "\\".join(map(str, value)) if not isinstance(value, str) and hasattr(value, "__iter__") else str(value)
    word = text.strip().upper()
    return word != "NO", word if word in ("YES", "NO") else None


def _allowed_tags(ds: Any, burned_in: str | None) -> dict[str, Any]:
    """The allow-listed technical tags as numbers or short codes; ``burned_in`` is the
    BurnedInAnnotation value to keep (YES / NO from :func:`burned_in_annotation`, None: not kept)."""
    tags: dict[str, Any] = {} if burned_in is None else {"BurnedInAnnotation": burned_in}
    for name in DICOM_TAG_ALLOWLIST:
        if name == "BurnedInAnnotation":  # free text is possible there: only burned_in's YES / NO is kept
            continue
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
