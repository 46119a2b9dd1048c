"""Write a model v2 artifact folder from the experiment's fitted parts (served by
``strokelens.reader.model.findings`` through ``ServedModel``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from strokelens.core.catalogue import version_hash
from training.export import linear_head


def save_linear(pipeline, path: Path) -> None:
    head = linear_head(pipeline)
    np.savez(path, mean=head.mean, scale=head.scale, coef=head.coef, intercept=head.intercept)


def save_ood(mean, precision, threshold, path: Path, percentile: float = 99.0) -> None:
    np.savez(path, mean=mean, precision=precision, threshold=np.float64(threshold), percentile=np.float64(percentile))


def write_folder(out: Path, extractor: Path, parts: dict, metrics: dict, baselines: dict[str, np.ndarray],
                 raw_extra: dict) -> dict:
    """``baselines``: the heat map's reference feature maps: ``mean_feature_map`` (every training slice)
    and one per finding route (``CT``, ``MR-DWI``: that modality's training slices), so a DWI map is
    measured against the average DWI slice, not against a CT-dominated average."""
    out.mkdir(parents=True, exist_ok=True)
    if extractor.resolve() != (out / "extractor.tflite").resolve():
        shutil.copyfile(extractor, out / "extractor.tflite")
    save_linear(parts["head_ct"], out / "head.npz")
    save_linear(parts["head_dwi"], out / "head_dwi.npz")
    save_linear(parts["router"], out / "router.npz")
    for name, key in (("ood.npz", "CT"), ("ood_ct_slices.npz", "CT-slices"), ("ood_dwi.npz", "MR-DWI")):
        mean, prec, thr = parts["ood"][key]
        save_ood(mean, prec, thr, out / name)
    for stale in ("ood_image.npz", "head.joblib"):
        (out / stale).unlink(missing_ok=True)
    np.savez(out / "cam_baseline.npz", **{k: v.astype(np.float64) for k, v in baselines.items()})
    (out / "labels.json").write_text(json.dumps(["hemorrhage", "normal"]))
    thr = metrics["thresholds"]
    manifest = {
        "model": "v2",
        "labels": ["hemorrhage", "normal"],
        "input_size": int(baselines["mean_feature_map"].shape[0] * 16),
        "window": "brain",
        "crop": "head",
        "modalities": ["CT", "MR"],
        "positive_label": "hemorrhage",
        "decision_threshold": thr["slice"],
        "uncertain_band": 0.1,
        "findings": {
            "CT": {"finding": "hemorrhage", "head": "head.npz", "ood": ["ood.npz", "ood_ct_slices.npz"],
                   "threshold": thr["slice"],
                   "not_assessed": ["ischemic"]},
            "MR-DWI": {"finding": "ischemic", "head": "head_dwi.npz", "ood": ["ood_dwi.npz"], "threshold": thr["dwi"],
                       "not_assessed": ["hemorrhage"]},
        },
        "router": {"file": "router.npz", "classes": list(parts["kinds"])},
        "assess": {"rule": "brain fraction (soft tissue enclosed by bone) of the head-cropped input", "cut": raw_extra["assess_cut"]},
        "aggregation": {"rule": metrics["aggregation_chosen"], "params": metrics["agg_params"],
                        "study_threshold": thr["study"]},
        **{k: v for k, v in raw_extra.items() if k != "assess_cut"},
    }
    manifest = {"version": version_hash(out, manifest), **manifest}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=float))
    return manifest
