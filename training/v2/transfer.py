"""CT transfer between sources, with the WHOLE model trained on one source: its own CNN (same
architecture and epochs, CT classes only) and its own head, then tested on the other source.

The shared model's head-only transfer rows (``experiment.measure``) keep an extractor that saw both
sources; these rows do not, so they say how a model trained on one collection reads another.

- trained on ct-hemorrhage slices only -> ct-ich test studies (max over assessable slices: there
  are no studies to fit a pooling on) and its own ct-hemorrhage test slices;
- trained on ct-ich training studies only (naive study labels for the CNN, then the MIL head) ->
  ct-hemorrhage test slices and its own ct-ich test studies (max, for the same comparison).

Test splits are the shared model's; each is scored once per direction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from training import cnn
from training.heads import make_logreg
from training.v2.extractor import MIL_C, _fit_export
from training.v2.fit import auc_ci, fit_ct_head, study_scores


def _scores(table, feats: np.ndarray, head) -> np.ndarray:
    is_ct = np.isin(table.source, ["ct-slices", "ct-studies"])
    p = np.zeros(len(table.x))
    p[is_ct] = head.predict_proba(feats[is_ct])[:, 1]
    return p


def _test_rows(table, assess_cut: float):
    te = table.split == "test"
    slices = np.flatnonzero((table.source == "ct-slices") & te)
    studies = np.flatnonzero((table.source == "ct-studies") & te & (table.brain >= assess_cut))
    return slices, studies


def _measure(table, p: np.ndarray, assess_cut: float, seed: int) -> dict:
    rs, rst = _test_rows(table, assess_cut)
    names, z, ys = study_scores(table, p, rst, "max", {})
    y_sl = (table.label[rs] == "hemorrhage").astype(int)
    return {"ct_hemorrhage_slice_auc": auc_ci(y_sl, p[rs], table.group[rs], seed),
            "ct_ich_study_auc_max": auc_ci(ys, 1 / (1 + np.exp(-z)), names, seed)}


def cnn_transfer(table, config: cnn.CNNConfig, seed: int, assess_cut: float, counts: dict, log=print) -> dict:
    """Both directions; {"ct-hemorrhage only": {...}, "ct-ich only": {...}} with grouped-bootstrap CIs."""
    train = table.split == "train"
    rows_sl = np.flatnonzero((table.source == "ct-slices") & train)
    rows_st = np.flatnonzero((table.source == "ct-studies") & train & (table.brain >= assess_cut))
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("ct-hemorrhage only", rows_sl), ("ct-ich only", rows_st)):
            if len(rows) == 0 or len(set(table.label[rows])) < 2:
                continue
            log(f"transfer: CNN + head trained on {name}")
            maps, _ = _fit_export(table, rows, rows, config, seed, Path(tmp) / "extractor.tflite", log, counts)
            feats = maps.mean(axis=(1, 2)).astype(np.float64)
            if name == "ct-hemorrhage only":
                head = make_logreg(MIL_C, seed).fit(feats[rows], (table.label[rows] == "hemorrhage").astype(int))
            else:
                head = fit_ct_head(table, feats, np.array([], int), rows, counts, MIL_C, seed)
            out[name] = _measure(table, _scores(table, feats, head), assess_cut, seed)
            log(f"transfer {name}: {out[name]}")
    return out
