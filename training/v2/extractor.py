"""Model v2's shared CNN: one from-scratch extractor for CT and DWI (and the router), trained on the
TRAINING splits of every source, exported int8, and run over every slice (embeddings cached).

CNN targets (its softmax is only a training signal; the served heads are classical, fitted on the
int8 embeddings): CT normal, CT hemorrhage, DWI normal, DWI ischemic, other MRI. ct-studies slices
carry their study's label (naive multiple-instance learning: most slices of a positive study show
no blood, so this is a noisy label) and only assessable slices (brain inside the skull) are used.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from training import cnn, export

CNN_CLASSES = ("ct_normal", "ct_hemorrhage", "dwi_normal", "dwi_ischemic", "mr_other")


def cnn_target(source: str, label: str) -> int:
    if source in ("ct-slices", "ct-studies"):
        return 1 if label == "hemorrhage" else 0
    if source == "dwi":
        return 3 if label == "ischemic" else 2
    return 4


def train_extractor(table, out: Path, config: cnn.CNNConfig, seed: int, assess_cut: float, log=print):
    """Train on the training rows, export ``out/extractor.tflite``; returns (maps (N,h,w,K), seconds)."""
    rows = np.flatnonzero((table.split == "train") & ~((table.source == "ct-studies") & (table.brain < assess_cut)))
    y = np.array([cnn_target(s, lab) for s, lab in zip(table.source[rows], table.label[rows])])
    # Balance sources: ct-slices is small; repeat it so each epoch sees it as often as the others' classes.
    reps = np.where(table.source[rows] == "ct-slices", 4, 1)
    rows_rep, y_rep = np.repeat(rows, reps), np.repeat(y, reps)
    t0 = time.perf_counter()
    trainer, extractor, hist = cnn.train(table.x[rows_rep], y_rep, len(CNN_CLASSES), config, seed)
    log(f"CNN trained on {len(rows)} slices ({len(rows_rep)} with repeats), {config.epochs} epochs, "
        f"loss {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}, {time.perf_counter() - t0:.0f} s")
    calib = table.x[np.random.default_rng(seed).choice(rows, min(300, len(rows)), replace=False)]
    size = export.to_int8_tflite(extractor, calib, out / "extractor.tflite")
    maps = export.feature_maps(out / "extractor.tflite", table.x)
    log(f"int8 extractor {size} bytes; feature maps {maps.shape}")
    return maps, size
