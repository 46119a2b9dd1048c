"""Class activation maps for the served model: exact for a linear head over average pooling.

The extractor outputs the last feature map F (h, w, K); the embedding is its spatial mean, and
the head computes z_c = sum_k a_ck * mean(F_k) + b_c with a_ck = coef_ck / scale_k (scaling
folded in). With B the mean feature map of the training slices (``cam_baseline.npz``),
CAM_c = sum_k a_ck (F_k - B_k) has spatial mean z_c(scan) - z_c(average training slice): an exact
decomposition of how this scan's logit differs from the average slice's, location by location.
Subtracting B removes what every slice shares (borders, padding, the skull ring), which would
otherwise dominate the map without telling one scan from another.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from strokelens.reader.model.head import LinearHead


def class_activation_map(feature_map: np.ndarray, head: LinearHead, class_index: int,
                         baseline: np.ndarray | None = None) -> np.ndarray:
    """Per-location evidence (h, w) for ``class_index``, in logit units (positive = for the class),
    relative to ``baseline`` (the mean training feature map) when given."""
    weights = head.coef / head.scale  # (1, K) or (C, K)
    if weights.shape[0] == 1:  # binary logistic regression: the row scores class 1, its negative class 0
        w = weights[0] if class_index == 1 else -weights[0]
    else:  # multinomial: evidence for c against the mean of all classes (softmax is shift-invariant)
        w = weights[class_index] - weights.mean(axis=0)
    f = feature_map.astype(np.float64)
    return (f - baseline if baseline is not None else f) @ w


def normalised(cam: np.ndarray) -> np.ndarray:
    """Positive evidence only, scaled to [0, 1] (all zeros when nothing speaks for the class)."""
    pos = np.maximum(cam, 0.0)
    top = float(pos.max())
    return pos / top if top > 0 else pos


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a low-resolution map to ``size`` x ``size`` (model-input space)."""
    image = Image.fromarray(grid.astype(np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _colour(values: np.ndarray) -> np.ndarray:
    """A perceptually ordered black-red-yellow-white ramp ("hot"), (H, W, 3) uint8."""
    v = np.clip(values, 0.0, 1.0)
    r = np.clip(3 * v, 0, 1)
    g = np.clip(3 * v - 1, 0, 1)
    b = np.clip(3 * v - 2, 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def overlay_png(heat: np.ndarray) -> bytes:
    """RGBA PNG of the heat map (alpha grows with the evidence), drawn over the model-input preview."""
    rgb = _colour(heat)
    alpha = (np.clip(heat, 0, 1) * 255).astype(np.uint8)[..., None]
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1)).save(buf, format="PNG")  # RGBA, no metadata
    return buf.getvalue()
