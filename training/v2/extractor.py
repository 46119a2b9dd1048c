"""Model v2's shared CNN: one from-scratch extractor for CT and DWI (and the router), trained on the
TRAINING splits of every source, exported int8, and run over every slice (embeddings cached).

CNN targets (its softmax is only a training signal; the served heads are classical, fitted on the
int8 embeddings): CT normal, CT hemorrhage, DWI normal, DWI ischemic, other MRI. Only assessable
ct-studies slices (brain inside the skull) are used. ct-studies carry a study label only, so the
CNN is trained in two rounds (multiple-instance learning):

1. naive: every slice of a haemorrhage study is labelled haemorrhage (a noisy label: about 1 slice
   in 4 shows blood, 28 % by ``studies.csv``);
2. re-labelled: the round-1 embeddings fit the MIL slice head (``fit.fit_ct_head``); in each
   haemorrhage study its top-n slices (n = the study's annotated count of slices with haemorrhage,
   ``studies.csv``) are the positives and its other slices are left out (unknown, not negative).

The round to keep is chosen on TRAINING studies only: grouped-CV study ROC AUC of the served
aggregation (``fit.compare_aggregations``); both rounds' figures go into the metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from training import cnn, export

CNN_CLASSES = ("ct_normal", "ct_hemorrhage", "dwi_normal", "dwi_ischemic", "mr_other")
MIL_C = 0.01  # the MIL head's C chosen by grouped study CV for model v2's first release (docs/model_v2)
TRUNKS = 1  # CNN trunks (an ensemble when > 1); a change goes through `make crossfit` first
BAG_K = 0  # > 0: ct-studies learnt through a top-k bag loss (cnn.train), no re-labelling round; via `make crossfit` first
STUDY_TARGETS = "naive"  # "share": soft targets for a haemorrhage study's slices (cnn_targets); via `make crossfit` first


def cnn_config(input_size: int = 128, epochs: int = 15, trunks: int = TRUNKS, bag_k: int = BAG_K,
               study_targets: str = STUDY_TARGETS) -> cnn.CNNConfig:
    """The v2 CNN recipe (``trunks`` trunks + intensity bands; fixed epochs so folds and the full run match;
    ``bag_k`` > 0: ct-studies learnt through a bag loss, :func:`bags_of`; ``study_targets``: :func:`cnn_targets`)."""
    if study_targets not in ("naive", "share"):
        raise ValueError(f"study_targets must be naive or share, not {study_targets!r}")
    if study_targets != "naive" and bag_k:  # the recipe would name targets that no slice is trained on
        raise ValueError("share targets label slices that a bag loss leaves out of the slice loss: choose one")
    return cnn.CNNConfig(input_size=input_size, trunks=trunks, epochs=epochs, batch_size=32, learning_rate=3e-3,
                         bag_k=bag_k, study_targets=study_targets)


def cnn_target(source: str, label: str) -> int:
    if source in ("ct-slices", "ct-studies"):
        return 1 if label == "hemorrhage" else 0
    if source == "dwi":
        return 3 if label == "ischemic" else 2
    return 4


def cnn_targets(table, rows: np.ndarray, config: cnn.CNNConfig, counts: dict | None = None) -> np.ndarray:
    """The CNN's targets for ``rows``: class ids (N,) of :func:`cnn_target`, or with ``config.study_targets ==
    "share"`` soft targets (N, classes). Then a haemorrhage study's slices, whose own label is unknown, target
    CT haemorrhage with the study's share of slices with blood (its annotated count from ``counts`` over its
    slices among ``rows``, at most 1) and CT normal with the rest, instead of haemorrhage for every one:
    the naive label is wrong for about 3 slices in 4, and a CNN trained longer learns those errors."""
    y = np.array([cnn_target(s, lab) for s, lab in zip(table.source[rows], table.label[rows])], dtype=int)
    if config.study_targets == "naive":
        return y
    soft = np.eye(len(CNN_CLASSES), dtype=np.float32)[y]
    study_rows = (table.source[rows] == "ct-studies") & (table.label[rows] == "hemorrhage")
    for study in sorted(set(table.study[rows][study_rows])):
        mine = study_rows & (table.study[rows] == study)
        if counts is None or study not in counts:
            raise ValueError(f"share targets need the annotated count of haemorrhage slices of study {study}")
        # at least one slice (as relabelled_rows), at most all: the count is over the whole study,
        # its slices here are the assessable training ones
        share = min(1.0, max(1, int(counts[study])) / int(mine.sum()))
        soft[mine, 1], soft[mine, 0] = share, 1.0 - share
    return soft


def training_rows(table, assess_cut: float) -> np.ndarray:
    """Training-split rows the CNN may learn from (ct-studies: assessable slices only)."""
    return np.flatnonzero((table.split == "train") & ~((table.source == "ct-studies") & (table.brain < assess_cut)))


def relabelled_rows(table, rows: np.ndarray, maps: np.ndarray, counts: dict, seed: int) -> np.ndarray:
    """Round 2's rows: ``rows`` without the slices of haemorrhage studies that the MIL head, fitted on
    ``maps``' embeddings, does not rank in the study's top-n (n from ``counts``)."""
    from training.v2.fit import fit_ct_head

    feats = maps.mean(axis=(1, 2)).astype(np.float64)
    rows_sl = rows[table.source[rows] == "ct-slices"]
    rows_st = rows[table.source[rows] == "ct-studies"]
    head = fit_ct_head(table, feats, rows_sl, rows_st, counts, MIL_C, seed)
    score = np.zeros(len(table.x))
    score[rows_st] = head.decision_function(feats[rows_st])
    drop: list[int] = []
    for study in sorted(set(table.study[rows_st])):
        r = rows_st[table.study[rows_st] == study]
        if table.label[r[0]] == "hemorrhage":
            n = max(1, min(len(r), int(counts.get(study, max(1, len(r) // 8)))))
            drop += list(r[np.argsort(-score[r])[n:]])
    return np.setdiff1d(rows, np.array(drop, dtype=int))


def bags_of(table, rows: np.ndarray) -> tuple[np.ndarray, cnn.Bags | None]:
    """Split ``rows`` for the bag loss: (slice-loss rows, bags). A haemorrhage study's slices have no
    label of their own (about 1 in 4 shows blood), so they leave the slice loss and learn only through
    their study's bag; a normal study's slices are all truly normal and stay in both."""
    studies = rows[table.source[rows] == "ct-studies"]
    if len(studies) == 0:
        return rows, None
    names = np.array(sorted(set(table.study[studies])))
    bag = np.searchsorted(names, table.study[studies])
    labels = np.array([int(table.label[studies[bag == b][0]] == "hemorrhage") for b in range(len(names))])
    unlabelled = studies[labels[bag] == 1]
    bags = cnn.Bags(table.x[studies], bag, labels, positive=1, negative=0)
    return np.setdiff1d(rows, unlabelled), bags


def _fit_export(table, rows: np.ndarray, calib_rows: np.ndarray, config: cnn.CNNConfig, seed: int, path: Path, log,
                counts: dict | None = None):
    bags = None
    if config.bag_k:
        rows, bags = bags_of(table, rows)
    y = cnn_targets(table, rows, config, counts)
    # Balance sources: ct-slices is small; repeat it so each epoch sees it as often as the others' classes.
    reps = np.where(table.source[rows] == "ct-slices", 4, 1)
    rows_rep, y_rep = np.repeat(rows, reps), np.repeat(y, reps, axis=0)
    t0 = time.perf_counter()
    _, extractor, hist = cnn.train(table.x[rows_rep], y_rep, len(CNN_CLASSES), config, seed, bags=bags)
    bag_note = (f", bag loss on {len(bags.labels)} studies {hist['bag_loss'][0]:.3f} -> {hist['bag_loss'][-1]:.3f}"
                if bags is not None else "")
    log(f"CNN trained on {len(rows)} slices ({len(rows_rep)} with repeats), {config.epochs} epochs, "
        f"loss {hist['loss'][0]:.3f} -> {hist['loss'][-1]:.3f}{bag_note}, {time.perf_counter() - t0:.0f} s")
    calib = table.x[np.random.default_rng(seed).choice(calib_rows, min(300, len(calib_rows)), replace=False)]
    size = export.to_int8_tflite(extractor, calib, path)
    maps = export.feature_maps(path, table.x)
    log(f"int8 extractor {size} bytes; feature maps {maps.shape}")
    return maps, size


def study_oof_auc(table, maps: np.ndarray, counts: dict, assess_cut: float, seed: int) -> float:
    """Best grouped-CV study ROC AUC over the aggregation rules on ct-ich TRAINING studies."""
    from training.v2.fit import compare_aggregations

    feats = maps.mean(axis=(1, 2)).astype(np.float64)
    assess = ~(table.source == "ct-studies") | (table.brain >= assess_cut)
    rows, *_ = compare_aggregations(table, feats, assess, counts, MIL_C, seed, log=lambda *_: None)
    return max(r["oof_study_roc_auc"] for r in rows)


def train_extractor(table, out: Path, config: cnn.CNNConfig, seed: int, assess_cut: float, counts: dict | None = None,
                    log=print, keep_round: int | None = None):
    """Train (two MIL rounds when ct-studies are present), export ``out/extractor.tflite``.

    The round kept is ``keep_round`` when given (a recipe choice made elsewhere, e.g. by the
    cross-fitted estimate, ``training.v2.crossfit``), else the round with the higher grouped-CV study
    AUC with the CNN fixed. Returns (maps (N,h,w,K), bytes, rounds) where ``rounds`` records each
    round's rows and OOF study AUC, the round kept and how it was chosen.
    """
    rows = training_rows(table, assess_cut)
    path = out / "extractor.tflite"
    maps, size = _fit_export(table, rows, rows, config, seed, path, log, counts)
    has_studies = counts and np.any((table.source[rows] == "ct-studies") & (table.label[rows] == "hemorrhage"))
    if not has_studies:
        return maps, size, {"chosen": 1}
    rounds: dict = {"round1": {"rows": int(len(rows)), "oof_study_auc": study_oof_auc(table, maps, counts, assess_cut, seed)},
                    **({"study_targets": config.study_targets} if config.study_targets != "naive" else {})}
    if config.bag_k:  # the bag loss is the multiple-instance learning: nothing to re-label
        if keep_round == 2:
            raise ValueError("a second MIL round re-labels slices that the bag loss keeps out of the slice loss")
        log(f"bag loss (top-{config.bag_k} study bags): OOF study ROC AUC {rounds['round1']['oof_study_auc']:.3f}")
        return maps, size, {**rounds, "chosen": 1, "bag_k": config.bag_k,
                            "chosen_by": f"one round: the CNN learns ct-ich studies as bags (top-{config.bag_k} loss)"}
    log(f"round 1 ({config.study_targets} study targets): OOF study ROC AUC {rounds['round1']['oof_study_auc']:.3f}")
    rows2 = relabelled_rows(table, rows, maps, counts, seed)
    path2 = out / "extractor_round2.tflite"
    maps2, size2 = _fit_export(table, rows2, rows, config, seed, path2, log, counts)
    rounds["round2"] = {"rows": int(len(rows2)), "oof_study_auc": study_oof_auc(table, maps2, counts, assess_cut, seed)}
    log(f"round 2 (MIL re-labelled, {len(rows) - len(rows2)} unlabelled slices left out): "
        f"OOF study ROC AUC {rounds['round2']['oof_study_auc']:.3f}")
    rounds["chosen_by"] = (f"recipe (--mil-round {keep_round})" if keep_round else
                           "grouped-CV study ROC AUC with the CNN fixed (optimistic: the CNN saw every fold)")
    if keep_round == 2 or (keep_round is None and rounds["round2"]["oof_study_auc"] >= rounds["round1"]["oof_study_auc"]):
        path2.replace(path)
        rounds["chosen"] = 2
        return maps2, size2, rounds
    path2.unlink()
    rounds["chosen"] = 1
    return maps, size, rounds
