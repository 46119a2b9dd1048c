"""Out-of-distribution checks: is this the kind of image the model was trained on?

Two layers, cheapest first:
1. image checks on the decoded/displayed slice (modality, colour, dark background around a
   head-sized object) catch MRI, photographs, textures and noise without running the model;
2. Mahalanobis distances (Ledoit-Wolf shrinkage covariance) of the image statistics and of the
   CNN embedding to those of the training slices, each refused above a threshold set at a stated
   percentile of out-of-fold in-distribution distances (fitted by training).

A scan judged out of distribution is still stored and shown, with the reason and no label claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strokelens.reader.imaging.decode import DecodedImage

# Measured on the 160 real CT slices: foreground (> 0.1) covers 41-100% of the slice.
MIN_FOREGROUND = 0.25
MAX_CHROMA = 0.06  # mean |channel - grey| of a colour upload, in [0, 1]
BORDER = 4  # pixels of the ~128-px check image treated as the border


@dataclass(frozen=True)
class OodVerdict:
    out_of_distribution: bool
    reason: str | None
    distance: float | None = None
    threshold: float | None = None


MODALITY_NAMES = {"CT": "CT", "MR": "MRI"}


def image_check(decoded: DecodedImage, display: np.ndarray, declared_modality: str | None,
                trained_modalities: tuple[str, ...] = ("CT",)) -> str | None:
    """A reason this is not a slice like the training data, or None. ``display`` is the windowed
    slice in [0, 1] before padding (padding would fake a dark background)."""
    modality = decoded.modality or declared_modality
    if modality in MODALITY_NAMES and modality not in trained_modalities:
        seen = " and ".join(MODALITY_NAMES.get(m, m) for m in trained_modalities)
        return f"This is an {MODALITY_NAMES[modality]}; the model was trained on {seen} slices only."
    if decoded.chroma > MAX_CHROMA:
        return "This is a colour image (for example a photograph), not a grayscale CT slice."
    if float((_shrink(display) > 0.1).mean()) < MIN_FOREGROUND:
        return "No head-sized object fills the image: this does not look like an axial head CT slice."
    return None


def image_stats(display: np.ndarray) -> np.ndarray:
    """Cheap statistics of the displayed slice, modelled like the embeddings (``ood_image.npz``):
    a 12-bin intensity histogram, dark border and foreground fractions, and mean gradient."""
    x = _shrink(display)
    hist = np.histogram(x, bins=12, range=(0.0, 1.0))[0] / x.size
    border = np.concatenate([x[:BORDER].ravel(), x[-BORDER:].ravel(), x[:, :BORDER].ravel(), x[:, -BORDER:].ravel()])
    gradient = np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()
    return np.concatenate([hist, [(border < 0.1).mean(), (x > 0.1).mean(), gradient]]).astype(np.float64)


def _shrink(display: np.ndarray, side: int = 128) -> np.ndarray:
    """Every k-th pixel so the longer side is about ``side``: the checks are coarse statistics."""
    step = max(1, max(display.shape) // side)
    return display[::step, ::step]


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


@dataclass(frozen=True)
class OodJudge:
    """The served out-of-distribution checks, as fitted by training for one model."""

    embedding_model: MahalanobisModel | None = None
    image_model: MahalanobisModel | None = None
    trained_modalities: tuple[str, ...] = ("CT",)

    @classmethod
    def load(cls, embedding_path: Path, image_path: Path, trained_modalities: tuple[str, ...]) -> "OodJudge":
        return cls(MahalanobisModel.load(embedding_path) if embedding_path.exists() else None,
                   MahalanobisModel.load(image_path) if image_path.exists() else None,
                   trained_modalities)

    def judge(self, decoded: DecodedImage, display: np.ndarray, embedding: np.ndarray,
              declared_modality: str | None = None) -> OodVerdict:
        """Image checks first, then the image-statistics distance, then the embedding distance."""
        reason = image_check(decoded, display, declared_modality, self.trained_modalities)
        if reason:
            return OodVerdict(True, reason)
        image_model, model = self.image_model, self.embedding_model
        if image_model is not None and image_model.distance(image_stats(display)) > image_model.threshold:
            return OodVerdict(True, "Its intensities and texture are unlike the head CT slices the model was trained on.")
        if model is None:
            return OodVerdict(False, None)
        distance = model.distance(embedding)
        if distance > model.threshold:
            return OodVerdict(True, "The image is unlike the head CT slices the model was trained on "
                                    f"(feature distance {distance:.1f} > {model.threshold:.1f}).", distance, model.threshold)
        return OodVerdict(False, None, distance, model.threshold)
