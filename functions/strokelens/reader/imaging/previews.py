"""De-identified preview PNGs: the scan as displayed, each CT window, and what the model saw.

Only pixels leave here: PNGs are written without any text chunks or metadata, so nothing of
the source file's header (names, ids, dates) can travel with them. Text drawn into the pixels is
another matter: when a DICOM says so (``BurnedInAnnotation`` YES), the full-frame previews keep only
the head (:func:`head_mask`), where scanners do not print names; the model input is cropped to the
head anyway.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from strokelens.reader.imaging.decode import DecodedImage
from strokelens.reader.imaging.preprocess import CT_WINDOWS, apply_window, crop_to_head, head_box

MAX_PREVIEW_SIDE = 512


def to_png(pixels: np.ndarray, max_side: int = MAX_PREVIEW_SIDE) -> bytes:
    """8-bit grayscale PNG of a [0, 1] image, downscaled so its longer side is at most ``max_side``."""
    image = Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8))
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    # No pnginfo: no metadata at all. Light compression: encoding dominated the preview cost.
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def head_mask(display: np.ndarray) -> np.ndarray:
    """Mask (same shape as ``display``) of the head as the model crops it (:func:`crop_to_head`), holes
    filled so dark tissue inside the head (air in sinuses, fat under the scalp) stays in every window."""
    from strokelens.reader.imaging import morphology

    top, bottom, left, right = head_box(display)
    mask = np.zeros(display.shape, bool)
    mask[top:bottom, left:right] = morphology.binary_fill_holes(crop_to_head(display) > 0)
    return mask


def window_images(decoded: DecodedImage) -> dict[str, np.ndarray]:
    """Each CT window preset applied to the Hounsfield units (CT DICOM only; empty otherwise)."""
    if not (decoded.is_dicom and decoded.modality == "CT"):
        return {}
    out = {}
    for name, window in CT_WINDOWS.items():
        shown = apply_window(decoded.pixels, window)
        out[name] = 1.0 - shown if decoded.invert else shown
    return out


def preview_pngs(decoded: DecodedImage, display: np.ndarray, model_input: np.ndarray,
                 names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """PNG bytes by preview name: ``display``, ``model_input`` and ``window_<preset>`` for CT DICOM
    (only ``names`` when given: a study stack keeps the display of every slice, windows of a few)."""
    wanted = (lambda name: True) if names is None else (lambda name: name in names)
    # Burned-in text lies outside the head (corners, margins): full-frame previews keep only the head.
    keep = head_mask(display) if decoded.burned_in_text else None
    frame = (lambda img: img) if keep is None else (lambda img: np.where(keep, img, 0.0))
    pngs = {name: to_png(frame(img) if name == "display" else img)
            for name, img in (("display", display), ("model_input", model_input)) if wanted(name)}
    if names is None or any(n.startswith("window_") for n in names):
        pngs.update({f"window_{name}": to_png(frame(img)) for name, img in window_images(decoded).items()
                     if wanted(f"window_{name}")})
    return pngs
