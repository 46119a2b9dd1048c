"""Decoded pixels -> what is displayed -> what the model sees. Training and serving call this.

Order of operations (after :func:`strokelens.reader.imaging.decode.decode_image`, which already
applied the DICOM modality LUT):
1. ``to_display``: CT in Hounsfield units is windowed (level/width -> [0, 1]); other DICOM
   (MR...) is normalised by robust percentiles; raster images are already display intensities;
   MONOCHROME1 is inverted last so "white" means the same thing everywhere.
2. ``to_model_input``: pad to a centred square (never stretch anatomy), then resize with an
   antialiasing filter to the model's input size. Values stay in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from strokelens.core.schema import WINDOW_PRESETS
from strokelens.core.schema import WindowPreset as Window
from strokelens.reader.imaging.decode import DecodedImage

# The presets are part of the served contract (the site names them); the values live in core/schema.py.
CT_WINDOWS: dict[str, Window] = {w.name: w for w in WINDOW_PRESETS}
# Brain window: the training images are brain-windowed slices, so the model input uses it.
MODEL_WINDOW = CT_WINDOWS["brain"]


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Linear window (DICOM PS3.3 C.11.2.1.2 without the 0.5 offsets) mapped to [0, 1]."""
    low = window.level - window.width / 2.0
    out = (values.astype(np.float32) - low) / np.float32(window.width)
    return np.clip(out, 0.0, 1.0)


def robust_normalise(values: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Scale by the [low, high] percentiles, clipped to [0, 1] (used for MR and non-HU DICOM)."""
    lo, hi = np.percentile(values, [low_pct, high_pct])
    if hi - lo <= 1e-6:
        lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-6:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values.astype(np.float32) - lo) / np.float32(hi - lo), 0.0, 1.0)


def to_display(image: DecodedImage, window: Window = MODEL_WINDOW) -> tuple[np.ndarray, str]:
    """Display intensities in [0, 1] and a short description of how they were obtained."""
    if not image.is_dicom:
        out, how = np.clip(image.pixels, 0.0, 1.0), "as stored"
    elif image.modality == "CT":
        out, how = apply_window(image.pixels, window), f"CT {window.name} window L{window.level:g}/W{window.width:g}"
    else:
        out, how = robust_normalise(image.pixels), "percentile 1-99 normalisation"
    if image.invert:
        out, how = 1.0 - out, how + ", MONOCHROME1 inverted"
    return out.astype(np.float32), how


def pad_to_square(pixels: np.ndarray) -> np.ndarray:
    """Centre the slice on a black square canvas whose side is its longer side."""
    h, w = pixels.shape
    side = max(h, w)
    canvas = np.zeros((side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = pixels
    return canvas


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize a [0, 1] float image to ``size`` x ``size`` with Pillow's antialiasing bilinear filter."""
    image = Image.fromarray(pixels.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


# Head-mask thresholds: DWI parenchyma is dark (0.05-0.15 of the display range), so a higher cut
# splits the brain into fragments and the crop zooms into one of them (possibly the bright lesion);
# closing then re-joins what the cut separated inside the head, gaps of up to ~2 * HEAD_CLOSE pixels.
HEAD_THRESHOLD = 0.04
HEAD_CLOSE = 3


def _head_object(pixels: np.ndarray) -> np.ndarray:
    """Mask of the head: threshold -> opening (speckle) -> closing (re-join dark parenchyma) -> the
    largest object. Small separate objects (scale bars, letters, rulers, table lines) are dropped."""
    from strokelens.reader.imaging import morphology as ndimage  # scipy.ndimage's results, without scipy

    mask = ndimage.binary_opening(pixels > HEAD_THRESHOLD, iterations=1)
    mask = ndimage.binary_closing(mask, iterations=HEAD_CLOSE, border_value=0)
    return ndimage.largest_object(mask)


def head_box(display: np.ndarray, margin: int = 2) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the head (:func:`_head_object`, found on a <= 256 px copy).

    A crop to this box removes the canvas size, aspect and annotations that a screen capture carries.
    The whole image when nothing is above ``HEAD_THRESHOLD``.
    """
    h, w = display.shape
    step = max(1, max(h, w) // 256)
    head = _head_object(display[::step, ::step])
    rows, cols = np.flatnonzero(head.any(axis=1)), np.flatnonzero(head.any(axis=0))
    if len(rows) == 0:
        return 0, h, 0, w
    top, bottom = max(0, rows[0] * step - margin), min(h, (rows[-1] + 1) * step + margin)
    left, right = max(0, cols[0] * step - margin), min(w, (cols[-1] + 1) * step + margin)
    if bottom - top < 8 or right - left < 8:
        return 0, h, 0, w
    return int(top), int(bottom), int(left), int(right)


def crop_to_head(display: np.ndarray) -> np.ndarray:
    """The slice cropped to the head's bounding box, with everything outside the head zeroed
    (model v2's input: no canvas size, aspect, scale bar or text reaches the CNN).

    Order: head box on the whole slice -> crop -> head object in the crop, holes filled, dilated by
    2 px (keeps the scalp edge) -> zero outside it.
    """
    from strokelens.reader.imaging import morphology as ndimage  # scipy.ndimage's results, without scipy

    top, bottom, left, right = head_box(display)
    crop = display[top:bottom, left:right].astype(np.float32)
    head = _head_object(crop)
    if not head.any():
        return crop
    mask = ndimage.binary_dilation(ndimage.binary_fill_holes(head), iterations=2)
    return np.where(mask, crop, 0.0).astype(np.float32)


def to_model_input(display: np.ndarray, size: int, crop: bool = False) -> np.ndarray:
    """Square, resized float32 array in [0, 1] with shape (size, size); with ``crop`` (model v2)
    the head is cropped out first (:func:`crop_to_head`)."""
    if crop:
        display = crop_to_head(display)
    return np.clip(resize(pad_to_square(display), size), 0.0, 1.0)


def preprocess_bytes(data: bytes, size: int) -> tuple[DecodedImage, np.ndarray, np.ndarray, str]:
    """Decode and preprocess one file: (decoded, display, model_input, display_description).

    The entry point training uses; the service calls the same three steps one by one (to time them).
    """
    from strokelens.reader.imaging.decode import decode_image

    decoded = decode_image(data)
    display, how = to_display(decoded)
    return decoded, display, to_model_input(display, size), how
