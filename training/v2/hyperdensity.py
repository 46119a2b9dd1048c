"""A hand-made haemorrhage measure, scored on ct-ich TRAINING studies only (a candidate for #12, no
fitting, no test split): acute blood is hyperdense, so count the share of pixels inside the skull that
lie in a bright band of the brain window.

Order per slice (the 256-px brain-window PNG as stored): bone = pixels >= 0.97 -> inside = pixels with
bone above, below, left and right of them (``reader.model.assess.inside_bone``), minus bone dilated by 4 px
(the skull's partial-volume edge passes through every grey) -> share of inside pixels in [low, 0.97)
for each band's ``low``, and the 99.5th percentile inside. A study's score is the max, or the top-3
mean, over its assessable slices (the cached brain fraction >= the served cut). Each figure is the ROC
AUC of those study scores against the study labels.

``python -m training.v2.hyperdensity`` writes ``docs/model_v2/hyperdensity.json`` (about a minute).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from strokelens.reader.imaging.morphology import binary_dilation
from strokelens.reader.model.assess import inside_bone
from training.v2.experiment import ASSESS_CUT
from training.v2.fit import auc

BANDS = (0.66, 0.72, 0.78, 0.84)
BONE = 0.97


def slice_measures(pixels: np.ndarray) -> list[float]:
    """[share of the inside in [low, BONE) for each low in BANDS, 99.5th percentile inside]."""
    bone = pixels >= BONE  # fixed: these are the stored brain-window PNGs, bone saturates them
    inside = inside_bone(bone) & ~binary_dilation(bone, iterations=4)
    n = max(int(inside.sum()), 1)
    shares = [float(((pixels >= low) & (pixels < BONE) & inside).sum() / n) for low in BANDS]
    return shares + [float(np.percentile(pixels[inside], 99.5)) if inside.sum() > 100 else 0.0]


def measure(cache: Path, assess_cut: float = ASSESS_CUT) -> dict:
    with np.load(cache, allow_pickle=False) as a:
        rows = np.flatnonzero((a["source"] == "ct-studies") & (a["split"] == "train") & (a["brain"] >= assess_cut))
        study, label, path = a["study"][rows], a["label"][rows], a["path"][rows]
    feats = np.array([slice_measures(np.asarray(Image.open(p).convert("L"), np.float32) / 255.0) for p in path])
    names = sorted(set(study))
    y = np.array([int(label[study == s][0] == "hemorrhage") for s in names])
    out: dict = {"studies": len(names), "hemorrhage": int(y.sum()), "assess_cut": assess_cut, "roc_auc": {}}
    measures = [f"share in [{low}, {BONE})" for low in BANDS] + ["99.5th percentile inside"]
    for j, name in enumerate(measures):
        for pool in ("max", "top3"):
            scores = []
            for s in names:
                v = np.sort(feats[study == s, j])[::-1]
                scores.append(v[0] if pool == "max" else v[:3].mean())
            out["roc_auc"][f"{name}, {pool}"] = round(float(auc(y, scores)), 3)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m training.v2.hyperdensity")
    ap.add_argument("--cache", default="build/model_v2/cache.npz", help="the v2 run's preprocessed table")
    ap.add_argument("--out", default="docs/model_v2/hyperdensity.json")
    args = ap.parse_args()
    result = measure(Path(args.cache))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
