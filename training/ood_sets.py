"""Out-of-distribution evaluation: inputs the CT model must refuse, and the measured rates.

Sets (all generated here or shipped by installed packages; nothing is downloaded):
- ``mri_phantom``: DWI-like MR phantoms (PNG and DICOM), from :mod:`phantoms`;
- ``pydicom_mr``: pydicom's bundled MR test files;
- ``natural``: scikit-image's bundled photographs and textures;
- ``noise``: uniform, Gaussian and salt-and-pepper noise images;
- ``text``: rendered text screenshots (reports, forms).
In-distribution inputs are the held-out test split of the training data.
Every input goes through :func:`strokelens.reader.reading.read_scan`, the served path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from phantoms import make_mr_slice, png_bytes, to_display, write_dicom
from strokelens.core.errors import ScanError
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan

NATURAL = ("astronaut", "brick", "camera", "cat", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel",
           "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page",
           "retina", "rocket", "text")


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    a = (a - a.min()) / max(a.max() - a.min(), 1e-9)
    return (a * 255).astype(np.uint8)


def mri_phantoms(n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    import tempfile

    rng = np.random.default_rng(seed)
    lesions = ("normal", "ischemic", "hemorrhage")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            phantom = make_mr_slice(rng, 256, lesions[i % 3])
            if i % 2:
                yield f"mri_phantom_{i}.png", png_bytes(to_display(phantom))
            else:
                path = write_dicom(phantom, Path(tmp) / f"mr_{i}.dcm")
                yield f"mri_phantom_{i}.dcm", path.read_bytes()


def pydicom_mr() -> Iterator[tuple[str, bytes]]:
    from pydicom.data import get_testdata_file

    for name in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm",
                 "MR_small_implicit.dcm", "examples_overlay.dcm"):
        yield name, Path(get_testdata_file(name)).read_bytes()


def natural_images() -> Iterator[tuple[str, bytes]]:
    import skimage.data

    for name in NATURAL:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        yield f"skimage_{name}", png_bytes(_to_uint8(loader()))


def noise_images(n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = ("uniform", "gaussian", "salt_pepper")[i % 3]
        size = (int(rng.integers(128, 400)), int(rng.integers(128, 400)))
        if kind == "uniform":
            a = rng.integers(0, 256, size, dtype=np.uint8)
        elif kind == "gaussian":
            a = np.clip(rng.normal(rng.uniform(60, 190), rng.uniform(10, 60), size), 0, 255).astype(np.uint8)
        else:
            a = (rng.random(size) < rng.uniform(0.05, 0.5)).astype(np.uint8) * 255
        yield f"noise_{kind}_{i}", png_bytes(a)


def text_screenshots(n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    words = ("Patient", "history", "CT", "head", "without", "contrast", "impression", "no", "acute", "findings",
             "report", "signed", "radiology", "department", "page", "of", "date", "clinical", "indication")
    font = ImageFont.load_default()
    for i in range(n):
        dark = bool(i % 2)
        image = Image.new("L", (int(rng.integers(300, 700)), int(rng.integers(200, 500))), 20 if dark else 245)
        draw = ImageDraw.Draw(image)
        for line in range(image.height // 14):
            text = " ".join(rng.choice(words, size=int(rng.integers(3, 10))))
            draw.text((10, 6 + 14 * line), text, fill=230 if dark else 15, font=font)
        yield f"text_{i}", png_bytes(np.asarray(image))


def ood_sets(seed: int = 0) -> dict[str, list[tuple[str, bytes]]]:
    return {
        "mri_phantom": list(mri_phantoms(30, seed)),
        "pydicom_mr": list(pydicom_mr()),
        "natural": list(natural_images()),
        "noise": list(noise_images(15, seed)),
        "text": list(text_screenshots(10, seed)),
    }


def refused(data: bytes, predictor: ServedModel) -> tuple[bool, str]:
    """Whether the service declines to give a reading: OOD flag, or an input error (also no reading)."""
    try:
        result = read_scan(data, predictor, with_heatmap=False).result
    except ScanError as err:
        return True, err.code
    return bool(result.out_of_distribution), result.ood_reason or ""


def evaluate(predictor: ServedModel, in_distribution: list[bytes], seed: int = 0) -> dict:
    """Refusal rate per OOD set (and overall), and the false-refusal rate on in-distribution inputs."""
    report: dict = {"seed": seed, "sets": {}}
    total = hits = 0
    for name, items in ood_sets(seed).items():
        outcomes = [refused(data, predictor)[0] for _, data in items]
        report["sets"][name] = {"n": len(items), "refusal_rate": float(np.mean(outcomes))}
        total += len(items)
        hits += sum(outcomes)
    report["ood_refusal_rate"] = hits / total
    report["ood_n"] = total
    false = [refused(data, predictor)[0] for data in in_distribution]
    report["in_distribution_n"] = len(false)
    report["false_refusal_rate"] = float(np.mean(false)) if false else None
    return report
