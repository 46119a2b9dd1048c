"""Assessability of a CT slice for intracranial findings: how much brain inside the skull it shows.

``brain_fraction`` is the fraction of the (head-cropped) model input that is soft tissue (brain-window
intensity 0.12-0.95) lying INSIDE bone: a pixel is inside when bone lies above, below, left and right
of it (robust to gaps in a thin or partial skull ring, unlike filling holes). Neck, skull-base and
vertex slices score low and are "not assessable": left out of a study's evidence, never refused. The
cut-off is set in training (``manifest.assess.cut``) and its pass rate on slices that all show brain
(ct-hemorrhage) is reported in the card.
"""

from __future__ import annotations

import numpy as np

SOFT = (0.12, 0.95)


def inside_bone(bone: np.ndarray) -> np.ndarray:
    """Pixels, not bone themselves, with bone somewhere above, below, left and right of them."""
    up = np.maximum.accumulate(bone, axis=0)
    down = np.maximum.accumulate(bone[::-1], axis=0)[::-1]
    left = np.maximum.accumulate(bone, axis=1)
    right = np.maximum.accumulate(bone[:, ::-1], axis=1)[:, ::-1]
    return up & down & left & right & ~bone


def brain_fraction(model_input: np.ndarray) -> float:
    x = np.asarray(model_input, np.float32)
    if x.size == 0 or float(x.max()) < 0.8:
        return 0.0
    # Bone relative to the slice's own brightest tissue: some sources window bone to 0.97, not 1.0.
    bone = x >= max(0.8, float(np.percentile(x, 99.7)) - 0.06)
    inside = inside_bone(bone)
    soft = (x > SOFT[0]) & (x < SOFT[1])
    return float((inside & soft).mean())
