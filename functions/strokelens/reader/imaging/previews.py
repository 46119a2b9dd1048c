"""De-identified preview PNGs: the scan as displayed, each CT window, and what the model saw.

Only pixels leave here: PNGs are written without any text chunks or metadata, so nothing of
the source file's header (names, ids, dates) can travel with them. Text drawn into the pixels is
another matter: when a DICOM says so (``BurnedInAnnotation`` other than NO), or the uploader's page
found what looks like text, every preview keeps only the head (:func:`head_mask`), where scanners do
not print names, and is blank where no head is found.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from strokelens.reader.imaging.decode import DecodedImage
from strokelens.reader.imaging.preprocess import (CT_WINDOWS, HEAD_CLOSE, HEAD_THRESHOLD, apply_window, head_box,
                                                  to_model_input)

MAX_PREVIEW_SIDE = 512
# What a head found in a frame with burned-in text must look like, else its previews are blank: an
# axial head fills about a third of a scanner's frame (a vertex slice a tenth); labels are small, long
# or rectangular (a filled label fills its box, an ellipse about 0.79 of it).
MIN_HEAD_AREA = 0.08
MAX_HEAD_ASPECT = 2.5
MAX_BOX_FILL = 0.9
TEXT_OPEN = 2  # opening steps (at <= 256 px) that cut text strokes joined to the head from the preview mask


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
    """Mask (same shape as ``display``) of the head for previews of a frame with burned-in text.

    Order (on a <= 256 px copy, as :func:`head_box`): threshold -> opening by ``TEXT_OPEN`` steps
    (cuts strokes up to about 4 px wide, letters included, where they touch the head: the crop's own
    one-step opening and closing join them to it) -> closing (re-joins dark parenchyma) -> the largest
    object -> holes filled (dark tissue inside the head stays in every window) -> back to full size.

    All False when what was found is not plausibly a head: under ``MIN_HEAD_AREA`` of the frame (an
    empty slice, where the largest object may be the text itself; a small vertex slice is blank too),
    a box longer than ``MAX_HEAD_ASPECT`` times its width (a line of text), a mask filling more than
    ``MAX_BOX_FILL`` of its box (a filled label), or a mask along most of the frame's edge (an
    inverted frame, whose bright surround is the largest object; a head zoomed past the frame's edges
    is blank too). Text drawn over the head itself, or in strokes thicker than the opening, stays.
    """
    from strokelens.reader.imaging import morphology

    h, w = display.shape
    step = max(1, max(h, w) // 256)
    small = morphology.binary_opening(display[::step, ::step] > HEAD_THRESHOLD, iterations=TEXT_OPEN)
    small = morphology.binary_closing(small, iterations=HEAD_CLOSE, border_value=0)
    small = morphology.binary_fill_holes(morphology.largest_object(small))
    mask = np.repeat(np.repeat(small, step, axis=0), step, axis=1)[:h, :w]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return mask
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    inset = min(4, min(mask.shape) // 4)  # a head filling the frame may touch its outermost pixels
    edge = np.concatenate([mask[inset], mask[-1 - inset], mask[:, inset], mask[:, -1 - inset]])
    if (mask.mean() < MIN_HEAD_AREA or max(height, width) > MAX_HEAD_ASPECT * min(height, width)
            or mask.sum() > MAX_BOX_FILL * height * width or edge.mean() > 0.5):
        return np.zeros(display.shape, bool)
    return mask


def masked_model_input(keep: np.ndarray, display: np.ndarray, model_input: np.ndarray, cropped: bool) -> np.ndarray:
    """The model input's preview with only ``keep`` (:func:`head_mask`) shown. A crop to the head (model
    v2) keeps the mask's part of the crop's box, padded and resized as the model's input was, so the heat
    map still lines up; an input not cropped, or a frame with no head, is drawn again from the masked
    display, as the model's resize would."""
    size = model_input.shape[0]
    if not cropped or not keep.any():
        return to_model_input(np.where(keep, display, 0.0), size)
    top, bottom, left, right = head_box(display)
    inside = to_model_input(keep[top:bottom, left:right].astype(np.float32), size) > 0.5
    return np.where(inside, model_input, 0.0)


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
                 names: tuple[str, ...] | None = None, cropped: bool = True) -> dict[str, bytes]:
    """PNG bytes by preview name: ``display``, ``model_input`` and ``window_<preset>`` for CT DICOM
    (only ``names`` when given: a study stack keeps the display of every slice, windows of a few).

    ``cropped``: the model input is already cropped to the head (model v2). When text may be burned in
    (the DICOM says so, or the uploader's page found some), the full-frame previews keep only
    :func:`head_mask` (blank where no head is found) and the model input :func:`masked_model_input`.
    """
    wanted = (lambda name: True) if names is None else (lambda name: name in names)
    keep = head_mask(display) if decoded.burned_in_text else None
    frame = (lambda img: img) if keep is None else (lambda img: np.where(keep, img, 0.0))
    if keep is not None:
        model_input = masked_model_input(keep, display, model_input, cropped)
    pngs = {name: to_png(img) for name, img in (("display", frame(display)), ("model_input", model_input))
            if wanted(name)}
    if names is None or any(n.startswith("window_") for n in names):
        pngs.update({f"window_{name}": to_png(frame(img)) for name, img in window_images(decoded).items()
                     if wanted(f"window_{name}")})
    return pngs
