"""The phantoms themselves: anatomy, lesions, CT (HU) and DWI-like MR renderers, display windows.

Pure numpy, deterministic from the ``np.random.Generator`` passed in (see :mod:`phantoms`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Sequence

import numpy as np

Lesion = Literal["normal", "hemorrhage", "ischemic"]
Modality = Literal["CT", "MR"]
LESIONS: tuple[Lesion, ...] = ("hemorrhage", "ischemic", "normal")


class Tissue(IntEnum):
    """Labels of the (lesion-free) tissue map stored on every phantom."""

    AIR = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GREY = 4
    WHITE = 5
    DEEP_GREY = 6


PARENCHYMA = (Tissue.GREY, Tissue.WHITE, Tissue.DEEP_GREY)
INTRACRANIAL = (Tissue.CSF, *PARENCHYMA)


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic slice. Arrays are read-only.

    ``hu`` holds Hounsfield units for CT and DWI signal in arbitrary units (0..~1000) for MR.
    ``tissue`` is the lesion-free ``Tissue`` label map the image was rendered from.
    """

    hu: np.ndarray  # float32 (size, size)
    lesion_mask: np.ndarray  # bool (size, size), all False for "normal"
    label: Lesion
    modality: Modality
    tissue: np.ndarray  # uint8 (size, size) of Tissue values

    @property
    def brain_mask(self) -> np.ndarray:
        """Intracranial contents (parenchyma + CSF)."""
        return np.isin(self.tissue, INTRACRANIAL)

    @property
    def parenchyma_mask(self) -> np.ndarray:
        return np.isin(self.tissue, PARENCHYMA)


@dataclass(frozen=True)
class _Anatomy:
    tissue: np.ndarray  # uint8 Tissue labels
    p: np.ndarray  # head-normalised lateral coordinate (+ = image right)
    q: np.ndarray  # head-normalised antero-posterior coordinate (+ = posterior, image bottom)
    phi: np.ndarray  # polar angle of (p, q)
    s: np.ndarray  # radius normalised to the inner table of the skull (1 = brain surface)
    px: float  # pixels per head-normalised unit (for resolution-independent smoothing)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _harmonics(rng: np.random.Generator, phi: np.ndarray, orders: Sequence[int], amp: float) -> np.ndarray:
    out = np.zeros_like(phi)
    for k in orders:
        out += rng.uniform(0, amp) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return out


def _anatomy(rng: np.random.Generator, size: int) -> _Anatomy:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = (xx + 0.5) / size * 2 - 1, (yy + 0.5) / size * 2 - 1
    scale = rng.uniform(0.9, 1.04)
    a = rng.uniform(0.68, 0.78) * scale  # lateral semi-axis (image half-width = 1)
    b = min(rng.uniform(0.82, 0.9) * scale, 0.88)  # antero-posterior semi-axis
    cx, cy = rng.uniform(-0.03, 0.03, size=2)
    rot = rng.uniform(-0.15, 0.15)
    dx, dy = x - cx, y - cy
    p = (np.cos(rot) * dx + np.sin(rot) * dy) / a
    q = (-np.sin(rot) * dx + np.cos(rot) * dy) / b
    phi = np.arctan2(q, p)
    # Slightly egg-shaped (wider posteriorly) with a little random irregularity.
    outline = 1 + rng.uniform(0.0, 0.04) * np.sin(phi) + _harmonics(rng, phi, (3, 4, 5), 0.008)
    r = np.hypot(p, q) / outline

    scalp = rng.uniform(0.03, 0.05)
    skull = rng.uniform(0.045, 0.065) - rng.uniform(0.005, 0.02) * np.cos(2 * phi)  # thicker front/back
    skull = skull + _harmonics(rng, phi, (3, 5, 7), 0.004)
    inner = 1 - scalp - skull
    s = r / inner

    tissue = np.full((size, size), Tissue.AIR, np.uint8)
    tissue[r <= 1] = Tissue.SCALP
    tissue[r <= 1 - scalp] = Tissue.SKULL
    brain = s <= 1
    tissue[brain] = Tissue.WHITE
    # Gyral cortical ribbon with irregular (frequency-modulated) folding; sulci are thin CSF
    # clefts of varying depth at the deepest folds.
    n_gyri = int(rng.integers(18, 28))
    g_phase = n_gyri * phi + rng.uniform(0, 2 * np.pi) + _harmonics(rng, phi, (2, 3, 5), 1.2)
    depth = 0.035 * (1 + _harmonics(rng, phi, (3, 4, 7), 0.4))
    ribbon = rng.uniform(0.84, 0.88) + depth * np.sin(g_phase) + _harmonics(rng, phi, range(9, 60, 4), 0.006)
    tissue[brain & (s > ribbon)] = Tissue.GREY
    sulcus = (np.abs(_wrap(g_phase + np.pi / 2)) < 0.22) & (s > ribbon + 0.03 + 0.03 * np.cos(3 * g_phase / n_gyri))
    tissue[brain & sulcus] = Tissue.CSF
    tissue[brain & (s > 1 - rng.uniform(0.015, 0.035))] = Tissue.CSF  # subarachnoid space
    tissue[brain & (np.abs(p) < 0.012) & (s > 0.55)] = Tissue.CSF  # interhemispheric fissure

    # Deep grey nuclei: lentiform nuclei, caudate heads, thalami (mirrored).
    for sgn in (-1.0, 1.0):
        for (u0, v0, ru, rv) in ((0.22, -0.02, 0.06, 0.13), (0.12, -0.19, 0.045, 0.06), (0.09, 0.14, 0.075, 0.08)):
            tissue[brain & (((p - sgn * u0) / ru) ** 2 + ((q - v0) / rv) ** 2 < 1)] = Tissue.DEEP_GREY

    # Lateral ventricles: frontal horns and atria flaring out, bodies near the septum pellucidum.
    vs = rng.uniform(0.8, 1.3)
    for sgn in (-1.0, 1.0):
        q0 = -0.05 + rng.uniform(-0.02, 0.02)
        t = (q - q0) / (0.25 * np.sqrt(vs))  # -1 frontal horn .. +1 atrium
        centre = sgn * (0.05 + vs * (0.035 * t**2 + 0.04 * np.clip(t, 0, None)))  # ")(" butterfly
        width = vs * (0.042 + 0.018 * (1 - t**2)) * rng.uniform(0.9, 1.1)
        vent = ((p - centre) / width) ** 2 + t**4 < 1
        tissue[brain & vent & (sgn * p > 0.01)] = Tissue.CSF
    tissue[brain & (np.abs(p) < 0.012 * vs) & (q > 0.02) & (q < 0.16)] = Tissue.CSF  # third ventricle
    return _Anatomy(tissue, p, q, phi, s, px=size / 2 * (a + b) / 2)


def _hemorrhage(rng: np.random.Generator, an: _Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """Irregular parenchymal blob. Returns (mask, radial fraction 0 centre .. 1 edge)."""
    paren = np.isin(an.tissue, PARENCHYMA)
    candidates = np.flatnonzero(paren & (an.s < 0.8))
    for _ in range(20):
        centre = rng.choice(candidates)
        p0, q0 = an.p.flat[centre], an.q.flat[centre]
        radius = rng.uniform(0.06, 0.15)
        stretch = rng.uniform(0.7, 1.0)
        dp, dq = an.p - p0, an.q - q0
        ang = np.arctan2(dq, dp)
        edge = radius * (1 + _harmonics(rng, ang, (2, 3, 4), 0.12))
        frac = np.hypot(dp, dq * stretch) / edge
        mask = (frac < 1) & paren
        if mask.sum() >= 0.5 * np.pi * (radius * an.px) ** 2 * stretch:  # mostly parenchymal
            return mask, frac
    return mask, frac


def _ischemic(rng: np.random.Generator, an: _Anatomy) -> np.ndarray:
    """Vascular-territory wedge from near the midline to the cortex, on one side."""
    sgn = rng.choice([-1.0, 1.0])
    territory = rng.choice(["MCA", "ACA", "PCA"], p=[0.6, 0.2, 0.2])
    if territory == "MCA":  # lateral convexity
        centre, half, s0 = (0.0 if sgn > 0 else np.pi) + rng.uniform(-0.25, 0.25), rng.uniform(0.35, 0.65), 0.25
    elif territory == "ACA":  # paramedian frontal
        centre, half, s0 = -np.pi / 2 + sgn * 0.3, rng.uniform(0.2, 0.3), 0.3
    else:  # PCA: paramedian occipital
        centre, half, s0 = np.pi / 2 - sgn * 0.35, rng.uniform(0.22, 0.35), 0.35
    half = half * (1 + _harmonics(rng, an.s * 6, (1, 2), 0.08))  # ragged lateral borders
    wedge = (np.abs(_wrap(an.phi - centre)) < half) & (an.s > s0 + rng.uniform(0, 0.15))
    return wedge & (np.sign(an.p) == sgn) & np.isin(an.tissue, PARENCHYMA)


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding."""
    if sigma <= 0:
        return img
    rad = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma) ** 2)
    k /= k.sum()
    out = img
    for axis in (0, 1):
        padded = np.pad(out, [(rad, rad) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return out


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary erosion with a 3x3 cross."""
    out = mask.copy()
    for _ in range(steps):
        prev = out.copy()
        out[1:] &= prev[:-1]
        out[:-1] &= prev[1:]
        out[:, 1:] &= prev[:, :-1]
        out[:, :-1] &= prev[:, 1:]
    return out


def _lesion(rng: np.random.Generator, an: _Anatomy, lesion: Lesion) -> tuple[np.ndarray, np.ndarray | None]:
    if lesion == "hemorrhage":
        return _hemorrhage(rng, an)
    if lesion == "ischemic":
        return _ischemic(rng, an), None
    if lesion == "normal":
        return np.zeros(an.tissue.shape, bool), None
    raise ValueError(f"unknown lesion {lesion!r}; expected one of {LESIONS}")


def _freeze(img: np.ndarray, mask: np.ndarray, lesion: Lesion, modality: Modality, an: _Anatomy) -> Phantom:
    arrays = (img.astype(np.float32), mask.copy(), an.tissue.copy())
    for arr in arrays:
        arr.setflags(write=False)
    return Phantom(hu=arrays[0], lesion_mask=arrays[1], label=lesion, modality=modality, tissue=arrays[2])


def make_ct_slice(rng: np.random.Generator, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """Non-contrast head CT slice in Hounsfield units."""
    an = _anatomy(rng, size)
    mask, frac = _lesion(rng, an, lesion)
    lut = np.array([-1000, 40, 1000, 5, 40, 28, 38], np.float64)
    lut[Tissue.SCALP] = rng.uniform(35, 45)
    lut[Tissue.SKULL] = rng.uniform(960, 1040)
    lut[Tissue.CSF] = rng.uniform(2, 8)
    lut[Tissue.GREY] = rng.uniform(37, 43)
    lut[Tissue.WHITE] = rng.uniform(26, 31)
    lut[Tissue.DEEP_GREY] = lut[Tissue.GREY] - rng.uniform(0, 3)
    img = lut[an.tissue]
    if lesion == "hemorrhage":
        assert frac is not None
        halo = (frac >= 1) & (frac < 1.35) & np.isin(an.tissue, PARENCHYMA)
        img[halo] -= rng.uniform(5, 9)  # perihaematomal oedema
        img[mask] = rng.uniform(62, 80) + 4 * (1 - frac[mask]) + rng.normal(0, 2, mask.sum())
    elif lesion == "ischemic":
        img[mask] = rng.uniform(18, 22) + 0.25 * (img[mask] - 32)  # grey/white differentiation lost
    img = _gaussian_blur(img, rng.uniform(0.5, 0.9) * an.px / 100)
    img = img + rng.normal(0, rng.uniform(3, 6), img.shape)
    return _freeze(np.clip(img, -1024, 3071), mask, lesion, "CT", an)


def make_mr_slice(rng: np.random.Generator, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """DWI-like (b=1000 trace) MR slice in arbitrary units, roughly 0..1000."""
    an = _anatomy(rng, size)
    mask, _ = _lesion(rng, an, lesion)
    lut = np.array([0, 550, 12, 60, 450, 380, 430], np.float64)
    lut[Tissue.SCALP] = rng.uniform(500, 650)  # scalp fat
    lut[Tissue.CSF] = rng.uniform(40, 80)
    lut[Tissue.GREY] = rng.uniform(420, 480)
    lut[Tissue.WHITE] = rng.uniform(350, 400)
    lut[Tissue.DEEP_GREY] = lut[Tissue.GREY] - rng.uniform(0, 30)
    img = lut[an.tissue]
    if lesion == "hemorrhage":
        img[mask] = rng.uniform(130, 230)  # deoxyhaemoglobin centre
        rim = mask & ~_erode(mask, max(2, round(3 * mask.shape[0] / 256)))
        img[rim] = rng.uniform(20, 50)  # susceptibility rim
    elif lesion == "ischemic":
        img[mask] = rng.uniform(820, 980) + 0.3 * (img[mask] - 420)
    angle = rng.uniform(0, 2 * np.pi)  # receive-coil bias field
    img = img * (1 + rng.uniform(0, 0.1) * (np.cos(angle) * an.p + np.sin(angle) * an.q))
    img = _gaussian_blur(img, rng.uniform(0.8, 1.3) * an.px / 100)
    sigma = rng.uniform(10, 20)  # Rician noise: magnitude of a complex Gaussian signal
    img = np.hypot(img + rng.normal(0, sigma, img.shape), rng.normal(0, sigma, img.shape))
    return _freeze(img, mask, lesion, "MR", an)


def make_slice(rng: np.random.Generator, modality: str, size: int = 256, lesion: Lesion = "normal") -> Phantom:
    """Dispatch on modality ("CT", "MR" or "MRI")."""
    mod = parse_modality(modality)
    return (make_ct_slice if mod == "CT" else make_mr_slice)(rng, size, lesion)


def parse_modality(modality: str) -> Modality:
    m = modality.upper()
    if m == "CT":
        return "CT"
    if m in ("MR", "MRI"):
        return "MR"
    raise ValueError(f"unknown modality {modality!r}; expected CT or MR")


def ct_to_display(hu: np.ndarray, level: float = 40, width: float = 80) -> np.ndarray:
    """Window CT (default brain window L40/W80) to uint8."""
    scaled = np.clip((np.asarray(hu, np.float64) - (level - width / 2)) / width, 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def ct_from_display(image: np.ndarray, level: float = 40, width: float = 80) -> np.ndarray:
    """The inverse of :func:`ct_to_display`: an 8-bit windowed CT image (e.g. a brain-window PNG) back
    to Hounsfield units within the window (what was clipped stays at its edge)."""
    return (level - width / 2) + np.asarray(image, np.float64) / 255.0 * width


def mr_to_display(signal: np.ndarray) -> np.ndarray:
    """Percentile 1-99 normalisation of MR signal to uint8."""
    lo, hi = np.percentile(signal, [1, 99])
    scaled = np.clip((np.asarray(signal, np.float64) - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def to_display(phantom: Phantom) -> np.ndarray:
    return ct_to_display(phantom.hu) if phantom.modality == "CT" else mr_to_display(phantom.hu)
