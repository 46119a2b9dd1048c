"""Out-of-distribution checks: is this the kind of image the model was trained on?

Two layers, cheapest first:
1. image checks on the decoded/displayed slice (modality, colour, dark background around a
   head-sized object) catch MRI, photographs, textures and noise without running the model;
2. the Mahalanobis distance of the CNN embedding to the training embeddings (Ledoit-Wolf
   shrinkage covariance, fitted by ``training/ood.py``), refused above a threshold set at a
   stated percentile of held-out in-distribution distances.

A scan judged out of distribution is still stored and shown, with the reason and no label claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strokelens.imaging.decode import DecodedImage

# Measured on the 160 real CT slices: dark border fraction >= 0.57, foreground 0.41-0.87.
MIN_DARK_BORDER = 0.40
FOREGROUND_RANGE = (0.25, 0.92)
MAX_CHROMA = 0.06  # mean |channel - grey| of a colour upload, in [0, 1]
BORDER = 6  # pixels of the 128-px check image treated as the border


@dataclass(frozen=True)
class OodVerdict:
    out_of_distribution: bool
    reason: str | None
    distance: float | None = None
    threshold: float | None = None


def image_check(decoded: DecodedImage, check_image: np.ndarray, declared_modality: str | None) -> str | None:
    """A reason this is not a head CT slice like the training data, or None. ``check_image`` is
    the model input (square, [0, 1])."""
    modality = decoded.modality or declared_modality
    if modality == "MR":
        return "This is an MRI; the model was trained on CT slices only."
    if decoded.chroma > MAX_CHROMA:
        return "This is a colour image (for example a photograph), not a grayscale CT slice."
    x = check_image
    border = np.concatenate([x[:BORDER].ravel(), x[-BORDER:].ravel(), x[:, :BORDER].ravel(), x[:, -BORDER:].ravel()])
    if float((border < 0.1).mean()) < MIN_DARK_BORDER:
        return "There is no dark background around a head: this does not look like an axial head CT slice."
    foreground = float((x > 0.1).mean())
    if not FOREGROUND_RANGE[0] <= foreground <= FOREGROUND_RANGE[1]:
        return "No head-sized object fills the image: this does not look like an axial head CT slice."
    return None


@dataclass(frozen=True)
class MahalanobisModel:
    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D) inverse of the shrinkage covariance
    threshold: float
    percentile: float

    @classmethod
    def load(cls, path: Path) -> "MahalanobisModel":
        with np.load(path) as a:
            return cls(a["mean"].astype(np.float64), a["precision"].astype(np.float64),
                       float(a["threshold"]), float(a["percentile"]))

    def distance(self, embedding: np.ndarray) -> float:
        d = embedding.astype(np.float64) - self.mean
        return float(np.sqrt(max(d @ self.precision @ d, 0.0)))


def judge(decoded: DecodedImage, model_input: np.ndarray, embedding: np.ndarray, model: MahalanobisModel | None,
          declared_modality: str | None = None) -> OodVerdict:
    """Image checks first, then the embedding distance."""
    reason = image_check(decoded, model_input, declared_modality)
    if reason:
        return OodVerdict(True, reason)
    if model is None:
        return OodVerdict(False, None)
    distance = model.distance(embedding)
    if distance > model.threshold:
        return OodVerdict(True, "The image is unlike the head CT slices the model was trained on "
                                f"(feature distance {distance:.1f} > {model.threshold:.1f}).", distance, model.threshold)
    return OodVerdict(False, None, distance, model.threshold)
