"""The model as data: where artifacts live, how their version hash is computed and checked.

An artifact set is a folder holding:
- ``extractor.tflite``: int8 TFLite CNN, image -> embedding;
- ``head.npz``: the fitted scikit-learn head exported as arrays (evaluated in numpy);
- ``ood.npz`` / ``ood_image.npz``: out-of-distribution models (Mahalanobis, see ``model/ood.py``);
- ``cam_baseline.npz``: the mean training feature map the heat map is measured against (``model/cam.py``);
- ``labels.json``: class names in output order (from the training data's folder names);
- ``manifest.json``: version hash, input size, window, training seed, synthetic flag;
- ``model_card.json`` / ``model_card.md`` and ``charts/*.json`` (plotly figures).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# Files whose bytes define the model's behaviour; the version hash covers exactly these
# (the OOD models when present: they decide whether a reading is given at all).
VERSIONED_FILES = ("extractor.tflite", "head.npz", "labels.json")
OPTIONAL_VERSIONED_FILES = ("ood.npz", "ood_image.npz", "cam_baseline.npz")

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "artifacts"


def artifacts_dir() -> Path:
    """``MODEL_DIR`` from the environment, else the artifacts packaged with the code."""
    return Path(os.environ.get("MODEL_DIR") or DEFAULT_DIR)


def version_hash(folder: Path) -> str:
    """First 12 hex digits of SHA-256 over the versioned files, in a fixed order."""
    digest = hashlib.sha256()
    present = [n for n in OPTIONAL_VERSIONED_FILES if (folder / n).exists()]
    for name in (*VERSIONED_FILES, *present):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Manifest:
    version: str
    labels: tuple[str, ...]
    input_size: int
    window: str
    synthetic: bool
    raw: dict

    @classmethod
    def load(cls, folder: Path, verify: bool = True) -> "Manifest":
        raw = json.loads((folder / "manifest.json").read_text())
        labels = tuple(json.loads((folder / "labels.json").read_text()))
        if verify:
            actual = version_hash(folder)
            if actual != raw["version"]:
                raise RuntimeError(f"model artifacts in {folder} do not match their manifest ({actual} != {raw['version']})")
        return cls(
            version=raw["version"],
            labels=labels,
            input_size=int(raw["input_size"]),
            window=raw.get("window", "brain"),
            synthetic=bool(raw.get("synthetic", False)),
            raw=raw,
        )
