"""The model as data: the one place that knows an artifact folder's layout and its version hash.

An image-model folder holds:
- ``extractor.tflite``: int8 TFLite CNN, image -> last feature map (pooled at serving);
- ``head.npz``: the fitted scikit-learn head exported as arrays (evaluated in numpy);
  ``head.joblib``: the scikit-learn object itself (research only, never packaged);
- ``ood.npz`` / ``ood_image.npz``: out-of-distribution models (``reader/model/ood.py``);
- model v2 only (a manifest with a ``findings`` block): ``head_dwi.npz`` (the DWI finding head),
  ``router.npz`` (CT / MR-DWI / MR-other), ``ood_dwi.npz`` and ``ood_ct_slices.npz`` (per-route OOD);
- ``cam_baseline.npz``: the mean training feature map the heat map is measured against;
- ``labels.json``: class names in output order (from the training data's folder names);
- ``manifest.json``: version hash and operating point (:class:`strokelens.core.schema.Manifest`);
- ``metrics.json``, ``split.json``, ``model_card.json`` / ``.md`` and ``charts/`` (plotly JSON);
- ``clinical/``: the clinical risk model (``clinical.json``) with its own card, metrics and charts.

Standard library only: the API function reads the card and charts through this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from strokelens.core.schema import Manifest

# Files whose bytes define the model's behaviour; the version hash covers exactly these
# (the OOD models when present: they decide whether a reading is given at all).
VERSIONED_FILES = ("extractor.tflite", "head.npz", "labels.json")
OPTIONAL_VERSIONED_FILES = ("ood.npz", "ood_image.npz", "cam_baseline.npz", "head_dwi.npz", "router.npz", "ood_dwi.npz",
                            "ood_ct_slices.npz")

# What each Lambda function ships of a model folder (paths relative to it); infra/package.py
# copies exactly these, so a new artifact is served only once it is listed here.
INFERENCE_FILES = (*VERSIONED_FILES, *OPTIONAL_VERSIONED_FILES, "manifest.json")
API_FILES = ("manifest.json", "labels.json", "model_card.json", "model_card.md", "charts/*",
             "clinical/clinical.json", "clinical/clinical_card.json", "clinical/clinical_card.md", "clinical/charts/*")
# Everything `make train` writes (the rest of a folder belongs to someone else and is left alone).
IMAGE_MODEL_FILES = (*INFERENCE_FILES, "head.joblib", "metrics.json", "split.json", "model_card.json", "model_card.md")
CLINICAL_MODEL_FILES = ("clinical.json", "clinical_pipeline.joblib", "clinical_metrics.json", "clinical_split.json",
                        "clinical_card.json", "clinical_card.md")


def version_hash(folder: Path, manifest: dict) -> str:
    """First 12 hex digits of SHA-256 over the versioned files, in a fixed order, then the manifest's
    settings (every key but ``version``): thresholds, calibration and aggregation change what a result
    says, so a change to them is a new version even when no array changed."""
    digest = hashlib.sha256()
    present = [n for n in OPTIONAL_VERSIONED_FILES if (folder / n).exists()]
    for name in (*VERSIONED_FILES, *present):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    settings = json.loads(json.dumps({k: v for k, v in manifest.items() if k != "version"}, default=float))
    digest.update(json.dumps(settings, sort_keys=True).encode())  # JSON round trip: as read back from disk
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Catalogue:
    """Paths of one model folder (image model at the root, clinical model in ``clinical/``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # image model
    @property
    def extractor(self) -> Path:
        return self.root / "extractor.tflite"

    @property
    def head(self) -> Path:
        return self.root / "head.npz"

    @property
    def head_joblib(self) -> Path:
        return self.root / "head.joblib"

    @property
    def labels(self) -> Path:
        return self.root / "labels.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def ood(self) -> Path:
        return self.root / "ood.npz"

    @property
    def ood_image(self) -> Path:
        return self.root / "ood_image.npz"

    @property
    def cam_baseline(self) -> Path:
        return self.root / "cam_baseline.npz"

    # model v2 (per-modality findings)
    @property
    def head_dwi(self) -> Path:
        return self.root / "head_dwi.npz"

    @property
    def router(self) -> Path:
        return self.root / "router.npz"

    @property
    def ood_dwi(self) -> Path:
        return self.root / "ood_dwi.npz"

    @property
    def ood_ct_slices(self) -> Path:
        return self.root / "ood_ct_slices.npz"

    def inference_files(self) -> list[Path]:
        """The INFERENCE_FILES this folder holds (what the inference function ships of it)."""
        return [self.root / name for name in INFERENCE_FILES if (self.root / name).is_file()]

    def named_by_manifest(self) -> list[Path]:
        """Every model file the manifest's ``findings`` and ``router`` blocks name (model v2; [] for v1)."""
        raw = json.loads(self.manifest.read_text())
        names: list[str] = []
        for spec in (raw.get("findings") or {}).values():
            oods = spec.get("ood") or []
            names += [spec["head"], *([oods] if isinstance(oods, str) else oods)]
        if raw.get("router"):
            names.append(raw["router"]["file"])
        return [self.root / name for name in dict.fromkeys(names)]

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def split(self) -> Path:
        return self.root / "split.json"

    @property
    def card(self) -> Path:
        return self.root / "model_card.json"

    @property
    def card_md(self) -> Path:
        return self.root / "model_card.md"

    @property
    def charts(self) -> Path:
        return self.root / "charts"

    # clinical model
    @property
    def clinical(self) -> Path:
        return self.root / "clinical"

    def has_model(self) -> bool:
        return self.manifest.is_file()

    def load_manifest(self, verify: bool = True) -> Manifest:
        """The manifest with labels from ``labels.json``; with ``verify`` the files must match its hash."""
        raw = json.loads(self.manifest.read_text())
        labels = tuple(json.loads(self.labels.read_text()))
        if verify:
            actual = version_hash(self.root, raw)
            if actual != raw["version"]:
                raise RuntimeError(f"model artifacts in {self.root} do not match their manifest ({actual} != {raw['version']})")
        return Manifest.from_dict(raw, labels)

    def load_card(self) -> dict:
        """The image model card, with the clinical card nested (a separate reading, never fused)."""
        card = json.loads(self.card.read_text())
        clinical = self.clinical / "clinical_card.json"
        if clinical.exists():
            card["clinical"] = json.loads(clinical.read_text())
        return card

    def load_charts(self) -> list[dict]:
        """Every chart (plotly figure JSON) with its index entry; the clinical ones grouped as such."""
        charts = _chart_folder(self.charts)
        clinical = self.clinical / "charts"
        if (clinical / "index.json").exists():
            charts += [{**c, "group": "clinical"} for c in _chart_folder(clinical)]
        return charts


def _chart_folder(folder: Path) -> list[dict]:
    index = json.loads((folder / "index.json").read_text())
    return [{**entry, "figure": json.loads((folder / f"{entry['id']}.json").read_text())} for entry in index]
