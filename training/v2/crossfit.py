"""Cross-fitted estimate of the v2 recipe: the WHOLE pipeline (CNN, heads, pooling) re-trained per
fold, so no held-out ct-ich study, ct-hemorrhage slice or DWI slice ever reached its fold's CNN.

Why: the grouped-CV study AUC that chose model v2's aggregation (``fit.compare_aggregations``, 0.938)
re-fits only the classical head per fold; the shared CNN had seen every training study, so that
figure is optimistic (the 16-study test split gave 0.841). This measures the same recipe honestly on
the 46 TRAINING studies, three times the test split, without touching the test split.

Order per fold k (ct-ich folds by study, ct-hemorrhage and mri-dwi folds by their groups, each
stratified by label, ``fit.gfolds`` with the run's seed):

1. CNN rows = ``extractor.training_rows`` minus fold k of ct-ich, ct-hemorrhage and mri-dwi (other MRI
   stays in: it is only ever refused), trained and int8-exported with the served recipe
   (``extractor.cnn_config``);
2. feature maps of fold k's slices through that int8 model (and of their horizontal mirror images);
3. the MIL head (``fit.fit_ct_head``, the served C) on the other folds' ct-hemorrhage slices and
   ct-ich studies; the DWI head (the served C) on the other folds' DWI slices;
4. every pooling rule scores fold k's studies (``attention`` has its beta fitted on the other folds'
   studies, as in serving); the heads score fold k's ct-hemorrhage and DWI slices.

Why every source: a build whose recipe the record measured (``matching_record``) takes its study
pooling (the best cross-fitted rule) and its operating points (slice and study thresholds, the study
calibration) from these out-of-fold scores. Set on scores of a CNN that had seen the slices, the CT
slice threshold was too high (test sensitivity 0.65 for a 0.85 target).

Pooled out-of-fold study scores give ROC AUC with a study-bootstrap 95 % CI per rule, plus the same
with mirror-image averaging (a measured option, not served) and, with ``--round2``, with the second MIL
round's CNN (``extractor.relabelled_rows`` from the fold's own round-1 CNN and head). ``python -m training.v2.crossfit``
writes ``OUT/crossfit.json`` and ``OUT/crossfit.md`` after each fold (a re-run resumes from the folds
already done; a changed recipe starts afresh); ``make crossfit`` runs it on ``make train``'s build,
about 35 min on 2 cores (``--round2`` adds about 25 min).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from strokelens.reader.model.aggregate import RULES
from training import cnn, export
from training.heads import make_logreg
from training.progress import Stopwatch
from training.v2 import data
from training.v2.experiment import ASSESS_CUT, study_counts
from training.v2.extractor import BAG_K, STUDY_TARGETS, TRUNKS, _fit_export, cnn_config, relabelled_rows, training_rows
from training.v2.fit import auc, auc_ci, fit_attention, fit_ct_head, gfolds, study_scores

VARIANTS = {"round1": "first MIL round's CNN (naive study labels)", "round1_mirror": "the same, mirror-averaged",
            "round2": "second MIL round's CNN (top-n re-labelled)"}
FIXED_PARAMS = {"max": {}, "topk": {"k": 3}, "noisy_or": {"shift": -2.0}}
SCHEME = "every source's training split in folds (ct-ich by study, ct-hemorrhage and mri-dwi by group)"
SLICE_SOURCES = {"ct-slices": "hemorrhage", "dwi": "ischemic"}


def _logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def study_folds(table, assess_cut: float, folds: int, seed: int):
    """(study names, labels, [(train idx, held-out idx)]) over ct-ich TRAINING studies."""
    rows = np.flatnonzero((table.source == "ct-studies") & (table.split == "train") & (table.brain >= assess_cut))
    studies = np.array(sorted(set(table.study[rows])))
    ys = np.array([int(table.label[rows[table.study[rows] == s][0]] == "hemorrhage") for s in studies])
    return studies, ys, gfolds(ys, studies, folds, seed)


def slice_folds(table, folds: int, seed: int) -> np.ndarray:
    """Each training row's fold (-1: not in the slice folds) for ct-slices and dwi, by group."""
    fold = np.full(len(table.x), -1)
    for source, positive in SLICE_SOURCES.items():
        rows = np.flatnonzero((table.source == source) & (table.split == "train"))
        if len(rows) == 0:
            continue
        y = (table.label[rows] == positive).astype(int)
        for k, (_, va) in enumerate(gfolds(y, table.group[rows], folds, seed)):
            fold[rows[va]] = k
    return fold


def fold_scores(table, feats: np.ndarray, held_out: np.ndarray, counts: dict, c: float, seed: int,
                assess_cut: float, held_rows: np.ndarray | None = None, c_dwi: float | None = None, score=None):
    """({rule: {study: raw score}} for the ``held_out`` studies, {source: {path: slice probability}} for
    ``held_rows``' ct-slices and dwi slices), every head fitted without what it scores. ``score(head,
    rows)`` gives the CT slice probabilities (default: the head on ``feats``; other scorings are studied
    in :mod:`training.v2.headstudy`)."""
    score = score or (lambda head, rows: head.predict_proba(feats[rows])[:, 1])
    train = table.split == "train"
    held_rows = np.array([], int) if held_rows is None else held_rows
    rows_sl = np.setdiff1d(np.flatnonzero((table.source == "ct-slices") & train), held_rows)
    rows_st = np.flatnonzero((table.source == "ct-studies") & train & (table.brain >= assess_cut))
    fit_rows = rows_st[~np.isin(table.study[rows_st], held_out)]
    out_rows = rows_st[np.isin(table.study[rows_st], held_out)]
    head = fit_ct_head(table, feats, rows_sl, fit_rows, counts, c, seed)
    p = np.zeros(len(table.x))
    p[rows_st] = score(head, rows_st)
    fit_studies = sorted(set(table.study[fit_rows]))
    y_fit = np.array([int(table.label[fit_rows[table.study[fit_rows] == s][0]] == "hemorrhage") for s in fit_studies])
    params = {**FIXED_PARAMS,
              "attention": fit_attention([_logits(p[fit_rows[table.study[fit_rows] == s]]) for s in fit_studies], y_fit)}
    scores = {}
    for rule in RULES:
        names, z, _ = study_scores(table, p, out_rows, rule, params[rule])
        scores[rule] = {str(n): float(v) for n, v in zip(names, z)}
    slices: dict[str, dict[str, float]] = {}
    held_ct = held_rows[table.source[held_rows] == "ct-slices"]
    if len(held_ct):
        slices["ct-slices"] = dict(zip(table.path[held_ct], map(float, score(head, held_ct))))
    held_dwi = held_rows[table.source[held_rows] == "dwi"]
    if len(held_dwi) and c_dwi is not None:
        fit_dwi = np.setdiff1d(np.flatnonzero((table.source == "dwi") & train), held_rows)
        dwi = make_logreg(c_dwi, seed).fit(feats[fit_dwi], (table.label[fit_dwi] == "ischemic").astype(int))
        slices["dwi"] = dict(zip(table.path[held_dwi], map(float, dwi.predict_proba(feats[held_dwi])[:, 1])))
    return scores, slices


def summarise(result: dict, studies: np.ndarray, ys: np.ndarray, seed: int) -> dict:
    """Pooled OOF ROC AUC (study bootstrap CI) per rule, over the studies scored so far."""
    summary = {}
    for variant, per_rule in result["oof"].items():
        for rule, scores in per_rule.items():
            keep = [i for i, s in enumerate(studies) if s in scores]
            if len(set(ys[keep])) < 2:
                continue
            z = np.array([scores[studies[i]] for i in keep])
            summary[f"{variant}/{rule}"] = {**auc_ci(ys[keep], z, studies[keep], seed), "n_studies": len(keep),
                                            "n_hemorrhage": int(ys[keep].sum())}
    return summary


def slice_summary(result: dict, table, seed: int) -> dict:
    """Pooled OOF slice ROC AUC (group bootstrap CI) per variant and slice source."""
    group, label = dict(zip(table.path, table.group)), dict(zip(table.path, table.label))
    out: dict = {}
    for variant, per_source in result.get("oof_slices", {}).items():
        for source, scores in per_source.items():
            paths = sorted(scores)
            y = np.array([int(label[p] == SLICE_SOURCES[source]) for p in paths])
            if len(set(y)) == 2:
                out.setdefault(variant, {})[source] = {
                    **auc_ci(y, [scores[p] for p in paths], [group[p] for p in paths], seed), "n_slices": len(paths)}
    return out


def _variant(result: dict, variant: str) -> str:
    """A variant's description; the first round's CNN learnt studies as bags when the record has a bag loss."""
    if result.get("study_targets") and variant.startswith("round1"):
        return "the CNN with share targets for haemorrhage studies" + (", mirror-averaged" if variant.endswith("_mirror") else "")
    if result.get("bag_k") and variant.startswith("round1"):
        return f"the CNN with the top-{result['bag_k']} bag loss" + (", mirror-averaged" if variant.endswith("_mirror") else "")
    return VARIANTS.get(variant, variant)


def report(result: dict) -> str:
    """Markdown: pooled OOF study ROC AUC per rule and variant, next to the optimistic figure."""
    lines = [f"# Cross-fitted estimate (seed {result['seed']}, {len(result['done'])}/{result['folds_total']} folds, "
             f"{result.get('trunks', TRUNKS)} CNN trunk(s)"
             f"{', bag loss on top-%d' % result['bag_k'] if result.get('bag_k') else ''}"
             f"{', %s study targets' % result['study_targets'] if result.get('study_targets') else ''}, model `{result.get('model_version')}`)",
             "", f"CNN, heads (CT MIL head C = {result['ct_head_C']}, DWI head C = {result.get('dwi_head_C')}) and pooling "
             f"re-trained per fold ({result.get('scheme', 'ct-ich studies in folds')}); nothing held out reached its "
             "fold's CNN.", "",
             "| pooling | features | study ROC AUC (95 % CI) | studies (haemorrhage) |", "|---|---|---|---|"]
    for key, v in sorted(result.get("summary", {}).items(), key=lambda kv: (list(VARIANTS).index(kv[0].split("/")[0]), kv[0])):
        variant, rule = key.split("/")
        served = " (served rule)" if rule == result["served_rule"] else ""
        lines.append(f"| {rule}{served} | {_variant(result, variant)} | "
                     f"{v['value']:.3f} ({v['ci_low']:.3f}-{v['ci_high']:.3f}) | {v['n_studies']} ({v['n_hemorrhage']}) |")
    lines += ["", f"The served rule ({result['served_rule']}) under grouped CV with the CNN fixed (optimistic): "
              f"{result['optimistic_oof_served_rule']:.3f}.",
              *(f"Per-fold {result['served_rule']} AUC, {_variant(result, variant)}: "
                + ", ".join(f"{float(v):.3f}" for _, v in sorted(folds.items()))
                for variant, folds in result.get("fold_auc", {}).items())]
    if result.get("slice_summary"):
        lines += ["", "Slices (the same folds' CNNs; heads fitted without the held-out groups):", "",
                  "| source | features | slice ROC AUC (95 % CI) | slices |", "|---|---|---|---|"]
        for variant, per_source in result["slice_summary"].items():
            for source, v in sorted(per_source.items()):
                lines.append(f"| {source} | {_variant(result, variant)} | "
                             f"{v['value']:.3f} ({v['ci_low']:.3f}-{v['ci_high']:.3f}) | {v['n_slices']} |")
    return "\n".join(lines) + "\n"


def recipe(sources: dict, input_size: int, seed: int, epochs: int, assess_cut: float, c: float,
           trunks: int = TRUNKS, bag_k: int = 0, study_targets: str = "naive") -> dict:
    """What a cross-fitted record measured, short of the MIL round and the pooling (it scores every rule):
    the data and its preprocessing (the cache key hashes the crop's code), the CNN's seed, epochs and
    trunks, the MIL head's C, and the CNN's bag loss or soft study targets when it has them (absent: naive study labels)."""
    out = {"data": data.cache_key(sources, input_size, seed), "epochs": int(epochs), "trunks": int(trunks),
           "assess_cut": float(assess_cut), "ct_head_C": float(c)}
    return {**out, **({"bag_k": int(bag_k)} if bag_k else {}),
            **({"study_targets": study_targets} if study_targets != "naive" else {})}


def _write(out: Path, result: dict, table, studies: np.ndarray, ys: np.ndarray, folds: list, metrics: dict, args) -> None:
    # The card shows this record for a build of the same recipe (and the MIL round that build kept);
    # the build named is the latest one written with it (a resume refreshes it and its pooling rule).
    result["model_version"] = metrics.get("model_version")
    result["served_rule"] = metrics["aggregation_chosen"]
    result["optimistic_oof_served_rule"] = next(r["oof_study_roc_auc"] for r in metrics["aggregation"]
                                                if r["rule"] == result["served_rule"])
    result["recipe"] = recipe(metrics["sources"], args.input_size, args.seed, args.epochs, args.assess_cut,
                              result["ct_head_C"], args.trunks, args.bag_k, args.study_targets)  # a resume with another recipe started afresh
    result["fold_auc"] = {variant: {str(k): auc(ys[va], [per_rule[result["served_rule"]][s] for s in studies[va]])
                                    for k, (_, va) in enumerate(folds) if k in result["done"]}
                          for variant, per_rule in result["oof"].items()}
    result["summary"] = summarise(result, studies, ys, args.seed)
    result["slice_summary"] = slice_summary(result, table, args.seed)
    (out / "crossfit.json").write_text(json.dumps(result, indent=1))
    (out / "crossfit.md").write_text(report(result))


def run(args) -> dict:
    watch = Stopwatch()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cnn.configure(args.seed)
    metrics = json.loads(Path(args.metrics).read_text())
    sources = metrics["sources"]  # the run's own sources: the cache is keyed by them
    table = data.load(sources, args.input_size, args.seed, cache=Path(args.cache))
    counts = study_counts(sources["ct-studies"])
    c = float(metrics["ct_head_C"])
    studies, ys, folds = study_folds(table, args.assess_cut, args.folds, args.seed)
    path = out / "crossfit.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    c_dwi = next((h["C"] for h in metrics.get("heads_dwi", []) if h["head"] == "logistic_regression"), None)
    sfold = slice_folds(table, len(folds), args.seed)
    measured = recipe(sources, args.input_size, args.seed, args.epochs, args.assess_cut, c, args.trunks, args.bag_k,
                      args.study_targets)
    if ((result.get("folds_total"), result.get("seed"), result.get("round2", False), result.get("scheme"),
         result.get("recipe"), result.get("dwi_head_C")) != (len(folds), args.seed, args.round2, SCHEME, measured, c_dwi)):
        result = {"seed": args.seed, "folds_total": len(folds), "scheme": SCHEME, "ct_head_C": c, "dwi_head_C": c_dwi,
                  "epochs": args.epochs, "trunks": args.trunks, **({"bag_k": args.bag_k} if args.bag_k else {}),
                  **({"study_targets": args.study_targets} if args.study_targets != "naive" else {}), "round2": bool(args.round2), "done": [], "oof": {}, "oof_slices": {}}
    config = cnn_config(args.input_size, args.epochs, args.trunks, args.bag_k, args.study_targets)
    base_rows = training_rows(table, args.assess_cut)
    for k, (_, va) in enumerate(folds):
        if k in result["done"]:
            continue
        held = studies[va]
        held_rows = np.flatnonzero(sfold == k)
        rows = base_rows[~np.isin(table.study[base_rows], held) & (sfold[base_rows] != k)]
        watch.log(f"fold {k + 1}/{len(folds)}: CNN on {len(rows)} slices, {len(held)} studies and "
                  f"{len(held_rows)} ct-hemorrhage / DWI slices held out")
        with tempfile.TemporaryDirectory() as tmp:
            maps, _ = _fit_export(table, rows, rows, config, args.seed, Path(tmp) / "extractor.tflite", watch.log, counts)
            mirror = export.feature_maps(Path(tmp) / "extractor.tflite", table.x[:, :, ::-1])
        if args.save_maps:  # per-fold feature maps (exact float32), for head-level studies on honest features
            Path(args.save_maps).mkdir(parents=True, exist_ok=True)
            np.savez_compressed(Path(args.save_maps) / f"maps_fold{k}.npz", maps=maps.astype(np.float32),
                                held_out=held, held_rows=held_rows)
        feats = maps.mean(axis=(1, 2)).astype(np.float64)
        variants = {"round1": feats, "round1_mirror": (feats + mirror.mean(axis=(1, 2))) / 2.0}
        if args.round2:  # the second MIL round, re-labelled from this fold's own round-1 CNN and head
            rows2 = relabelled_rows(table, rows, maps, counts, args.seed)
            with tempfile.TemporaryDirectory() as tmp:
                maps2, _ = _fit_export(table, rows2, rows, config, args.seed, Path(tmp) / "extractor.tflite", watch.log,
                                       counts)
            variants["round2"] = maps2.mean(axis=(1, 2)).astype(np.float64)
        for variant, f in variants.items():
            by_rule, slices = fold_scores(table, f, held, counts, c, args.seed, args.assess_cut, held_rows, c_dwi)
            for rule, scores in by_rule.items():
                result["oof"].setdefault(variant, {}).setdefault(rule, {}).update(scores)
            for source, scores in slices.items():
                result["oof_slices"].setdefault(variant, {}).setdefault(source, {}).update(scores)
        result["done"].append(k)
        _write(out, result, table, studies, ys, folds, metrics, args)
        watch.log(f"fold {k + 1}: served-rule AUC " + ", ".join(f"{v} {f[str(k)]:.3f}" for v, f in result["fold_auc"].items()))
    _write(out, result, table, studies, ys, folds, metrics, args)
    return result


def matching_record(path: Path, build_recipe: dict, chosen_round: int = 1) -> dict | None:
    """The record at ``path`` when it is complete and measured ``build_recipe`` (:func:`recipe`) with the
    MIL round the build kept; None otherwise (a record of another recipe says nothing about this build)."""
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    if (r.get("recipe") != build_recipe or r.get("scheme") != SCHEME
            or len(r.get("done", [])) != r.get("folds_total")):
        return None
    return r if f"round{chosen_round}" in r["oof"] else None


def oof_scores(record: dict, chosen_round: int = 1) -> dict:
    """The build's own out-of-fold scores in a matching record: ``study`` ({rule: {study: raw score}}),
    ``study_auc`` ({rule: pooled ROC AUC}), ``ct-slices`` and ``dwi`` ({path: slice probability}) and
    ``dwi_head_C`` (the C of the DWI head that scored ``dwi``)."""
    variant = f"round{chosen_round}"
    return {"study": record["oof"][variant], "dwi_head_C": record.get("dwi_head_C"),
            "study_auc": {k.split("/")[1]: v["value"] for k, v in record["summary"].items() if k.startswith(variant + "/")},
            **record.get("oof_slices", {}).get(variant, {})}


def card_block(path: Path, build_recipe: dict, chosen_round: int, rule: str, fixed_cnn_auc: float) -> dict | None:
    """The model card's cross-fitted block (the build's MIL round and pooling ``rule``; ``fixed_cnn_auc``
    is the grouped-CV figure of that rule with the CNN fixed) from :func:`matching_record`, or None."""
    r = matching_record(path, build_recipe, chosen_round)
    if r is None:
        return None
    variant = f"round{chosen_round}"
    return {"ct_ich_study_roc_auc": r["summary"][f"{variant}/{rule}"], "rule": rule, "mil_round": chosen_round,
            "folds": r["folds_total"], "measured_with_build": r.get("model_version"),
            "grouped_cv_with_cnn_fixed": fixed_cnn_auc,
            "by_rule": {k.split("/")[1]: v["value"] for k, v in r["summary"].items() if k.startswith(variant + "/")},
            "other_variants": {_variant(r, k.split("/")[0]): v["value"] for k, v in r["summary"].items()
                               if k.endswith("/" + rule) and not k.startswith(variant + "/")},
            "slice_roc_auc": r.get("slice_summary", {}).get(variant, {}),
            "how": f"the whole pipeline (CNN, heads, pooling) re-trained per fold on the TRAINING splits "
                   f"({r['folds_total']} folds: ct-ich by study, ct-hemorrhage and mri-dwi by group); nothing held out "
                   "reached its fold's CNN. `make crossfit` measures it."}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m training.v2.crossfit")
    ap.add_argument("--cache", default="build/model_v2/cache.npz", help="the v2 run's preprocessed table")
    ap.add_argument("--metrics", default="build/model_v2/v2_metrics.json",
                    help="the v2 run's metrics: its sources and choices (the MIL head's C, the pooling rule)")
    ap.add_argument("--out", default="build/crossfit")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--trunks", type=int, default=TRUNKS, help="CNN trunks (a candidate recipe; the record says which)")
    ap.add_argument("--bag-k", type=int, default=BAG_K,
                    help="a candidate recipe: the CNN learns ct-ich studies through a bag loss on top-k pooled "
                         "slice logits (0: naive study labels)")
    ap.add_argument("--study-targets", choices=("naive", "share"), default=STUDY_TARGETS,
                    help="a candidate recipe: a haemorrhage study's slices target haemorrhage (naive) or the study's "
                         "share of slices with blood (share, soft targets)")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--assess-cut", type=float, default=ASSESS_CUT)
    ap.add_argument("--round2", action="store_true",
                    help="also the second MIL round per fold (a second CNN re-trained on re-labelled slices)")
    ap.add_argument("--save-maps", default="", metavar="DIR",
                    help="also write each fold's feature maps (DIR/maps_fold<k>.npz) for training.v2.headstudy")
    args = ap.parse_args(argv)
    if args.round2 and args.bag_k:
        ap.error("--round2 re-labels slices that a bag loss leaves out of the slice loss anyway: choose one")
    return args


if __name__ == "__main__":
    run(parse_args())
