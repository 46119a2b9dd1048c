"""Head-level candidates for the ct-ich study reading, measured on cross-fitted features.

``make crossfit`` re-trains the CNN per study fold; with ``--save-maps`` it keeps each fold's int8
feature maps (``maps_fold<k>.npz``). This module re-uses them: per fold, the slice head and the
pooling are fitted without the held-out studies and score them, exactly as in
:func:`training.v2.crossfit.fold_scores`, but with the slice scored in other ways. No CNN is trained
here, and the test split is never read.

Candidates (fixed before they were measured on cross-fitted features, 2026-11-29; a first check on the
installed CNN's features, which saw every training study, gave attention-pooled study ROC AUC 0.938 /
0.925 / 0.769 for the three: optimistic, and no lead):

- ``served``: the served recipe (features = feature map averaged over positions; logistic MIL head;
  slice probability from the head). It must reproduce the recorded cross-fitted figure.
- ``mean_max``: features = [average, maximum] over positions (a small bleed lights a few positions; the
  average dilutes it by up to 64 times). Same head, C and pooling.
- ``spatial_top4``: the served head, but a slice's logit is the mean of its 4 highest per-position
  logits (the head applied to each position's features: the class activation map before averaging),
  i.e. spatial multiple-instance pooling with the heat map as the evidence.

Adoption rule (stated before measuring): a candidate replaces the served recipe only if its pooled
cross-fitted study ROC AUC under the served pooling (attention) beats ``served`` by more than 0.02 and
its cross-fitted ct-hemorrhage slice ROC AUC is not more than 0.01 lower. With two candidates the best
one's figure is still optimistic (picked on the same 46 studies); the card would say so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from strokelens.reader.model.aggregate import RULES
from training.v2 import data
from training.v2.crossfit import fold_scores, study_folds
from training.v2.experiment import ASSESS_CUT, study_counts
from training.v2.fit import auc_ci

CANDIDATES = ("served", "mean_max", "spatial_top4")
MARGIN_STUDY, MARGIN_SLICE = 0.02, 0.01


def features(maps: np.ndarray, candidate: str) -> np.ndarray:
    """Per-slice features the head is fitted on."""
    m = maps.astype(np.float64)
    if candidate == "mean_max":
        return np.concatenate([m.mean(axis=(1, 2)), m.max(axis=(1, 2))], axis=1)
    return m.mean(axis=(1, 2))


def slice_probability(head, maps: np.ndarray, feats: np.ndarray, candidate: str, k: int = 4) -> np.ndarray:
    """Slice probabilities under ``candidate``; ``spatial_top4`` scores each position with the head
    (scaler and logistic weights applied to that position's features) and averages the top ``k``."""
    if candidate != "spatial_top4":
        return head.predict_proba(feats)[:, 1]
    scaler, logreg = head.named_steps["scaler"], head.named_steps["logreg"]
    pos = maps.reshape(len(maps), -1, maps.shape[-1]).astype(np.float64)
    z = ((pos - scaler.mean_) / scaler.scale_) @ logreg.coef_[0] + logreg.intercept_[0]
    top = np.sort(z, axis=1)[:, ::-1][:, :k].mean(axis=1)
    return 1.0 / (1.0 + np.exp(-top))


def scorer(maps: np.ndarray, feats: np.ndarray, candidate: str):
    """``score(head, rows)`` for :func:`training.v2.crossfit.fold_scores` under ``candidate``."""
    return lambda head, rows: slice_probability(head, maps[rows], feats[rows], candidate)


def run(args) -> dict:
    metrics = json.loads(Path(args.metrics).read_text())
    sources = metrics["sources"]
    table = data.load(sources, args.input_size, args.seed, cache=Path(args.cache))
    counts = study_counts(sources["ct-studies"])
    c = float(metrics["ct_head_C"])
    studies, ys, folds = study_folds(table, args.assess_cut, len(list(Path(args.maps).glob("maps_fold*.npz"))), args.seed)
    oof: dict = {cand: {} for cand in CANDIDATES}
    slices: dict = {cand: {} for cand in CANDIDATES}
    for k, (_, va) in enumerate(folds):
        with np.load(Path(args.maps) / f"maps_fold{k}.npz") as a:
            maps, held, held_rows = a["maps"], a["held_out"], a["held_rows"]
        assert sorted(held) == sorted(studies[va]), "fold maps do not match this run's folds"
        for cand in CANDIDATES:
            feats = features(maps, cand)
            by_rule, sl = fold_scores(table, feats, held, counts, c, args.seed, args.assess_cut, held_rows,
                                      score=scorer(maps, feats, cand))
            for rule, scores in by_rule.items():
                oof[cand].setdefault(rule, {}).update(scores)
            slices[cand].update(sl.get("ct-slices", {}))
        print(f"fold {k + 1}/{len(folds)} done", flush=True)
    rule = metrics["aggregation_chosen"]
    result: dict = {"rule": {"served_pooling": rule, "margin_study": MARGIN_STUDY, "margin_slice": MARGIN_SLICE},
                    "candidates": {}}
    for cand in CANDIDATES:
        rows = np.flatnonzero(np.isin(table.path, list(slices[cand])))
        y = (table.label[rows] == "hemorrhage").astype(int)
        result["candidates"][cand] = {
            "study_roc_auc": {r: auc_ci(ys, [oof[cand][r][s] for s in studies], studies, args.seed) for r in RULES},
            "ct_slices_roc_auc": auc_ci(y, [slices[cand][p] for p in table.path[rows]], table.group[rows], args.seed)}
    base = result["candidates"]["served"]
    for cand in CANDIDATES[1:]:
        v = result["candidates"][cand]
        v["adopt"] = bool(v["study_roc_auc"][rule]["value"] - base["study_roc_auc"][rule]["value"] > MARGIN_STUDY
                          and v["ct_slices_roc_auc"]["value"] >= base["ct_slices_roc_auc"]["value"] - MARGIN_SLICE)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m training.v2.headstudy")
    ap.add_argument("--maps", default="build/crossfit_maps", help="crossfit --save-maps output")
    ap.add_argument("--cache", default="build/model_v2/cache.npz")
    ap.add_argument("--metrics", default="build/model_v2/v2_metrics.json")
    ap.add_argument("--out", default="build/crossfit_maps/headstudy.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--assess-cut", type=float, default=ASSESS_CUT)
    return ap.parse_args(argv)


if __name__ == "__main__":
    res = run(parse_args())
    for cand, v in res["candidates"].items():
        print(cand, {r: round(x["value"], 3) for r, x in v["study_roc_auc"].items()},
              "slices", round(v["ct_slices_roc_auc"]["value"], 3), "adopt" if v.get("adopt") else "")
