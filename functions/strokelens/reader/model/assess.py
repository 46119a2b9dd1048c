"""Assessability of a CT slice for intracranial findings: how much brain inside the skull it shows.

``brain_fraction`` is the fraction of the (head-cropped) model input that is soft tissue enclosed by
bone. Neck, skull-base and vertex slices score low and are "not assessable": left out of a study's
evidence, never refused. The cut-off is fitted in training and stated in the manifest.
"""

from __future__ import annotations

import numpy as np

BONE = 0.97
SOFT = (0.12, 0.95)


def brain_fraction(model_input: np.ndarray) -> float:
    from scipy import ndimage

    # Relative to the slice's own brightest tissue: some sources window bone to 0.97, not 1.0.
    bone = model_input >= max(0.8, float(np.percentile(model_input, 99.7)) - 0.04) if model_input.max() >= 0.8 else np.zeros(model_input.shape, bool)
    if not bone.any():
        return 0.0
    pad = 6  # the head touches the crop's edges: closing must not erode from the border
    closed = ndimage.binary_closing(np.pad(bone, pad), iterations=3)[pad:-pad, pad:-pad]
    inside = ndimage.binary_fill_holes(closed) & ~bone
    soft = (model_input > SOFT[0]) & (model_input < SOFT[1])
    return float((inside & soft).mean())
