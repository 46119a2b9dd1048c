"""Model v2's measurements on a trained extractor's cached feature maps (``maps.npy``).

``python -m training.v2.experiment --maps build/v2/e15/maps.npy`` prints and writes ``v2_metrics.json``:
head comparison per finding, aggregation comparison (grouped CV on ct-ich training studies), router
accuracy, OOD refusal / false-refusal rates, shortcut audit, transfer, and test metrics with grouped
bootstrap CIs (test splits used once).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from strokelens.reader.model.aggregate import RULES
from training.heads import make_logreg
from training.v2 import data
from training.v2.fit import (auc, auc_ci, compare_aggregations, compare_heads, fit_attention, fit_ct_head, gfolds,
                             mahalanobis, mahalanobis_fit, ood_threshold, platt_fit, sens_spec, served_head,
                             study_scores)

ASSESS_CUT = 0.10  # set by eye on a montage of ct-ich TRAINING slices (neck / skull base below)
TARGET_SENS = 0.85


def study_counts(root: str) -> dict:
    with open(Path(root) / "studies.csv", newline="") as h:
        return {r["study"]: int(r["slices_with_hemorrhage"] or 0) for r in csv.DictReader(h)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", required=True)
    ap.add_argument("--cache", default="build/v2/cache128.npz")
    ap.add_argument("--brain", default=None, help="(debug) a saved brain-fraction array instead of the cache's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bigru", action="store_true")
    args = ap.parse_args(argv)
    seed = args.seed
    t = data.load(size=128, cache=Path(args.cache))
    if args.brain:
        t.brain = np.load(args.brain).astype(np.float32)
    maps = np.load(args.maps).astype(np.float32)
    return measure(t, maps, seed, bigru=args.bigru, out_json=Path(args.maps).with_name("v2_metrics.json"))


def threshold_for_sensitivity(positive_scores: np.ndarray, target: float) -> float:
    """The highest threshold (floored to 0.001) at which at least ``target`` of the positives score above it."""
    pos = np.sort(np.asarray(positive_scores))[::-1]
    return float(np.floor(pos[max(1, int(np.ceil(target * len(pos)))) - 1] * 1000) / 1000)


def finding_heads(t, E, maps, source: str, positive: str, seed: int, bigru: bool):
    """Heads compared on one source's training split: (rows, labels, comparison, LR's C, LR's OOF scores)."""
    r = np.flatnonzero((t.source == source) & (t.split == "train"))
    y = (t.label[r] == positive).astype(int)
    rows, c, oof = compare_heads(E[r], y, t.group[r], seed, maps[r] if bigru else None)
    return r, y, rows, c, oof


def operating_points(t, cross_fitted: dict[str, dict[str, float]] | None, fallback: dict) -> tuple[dict, str]:
    """Thresholds for sensitivity >= target (CT slice and study 0.85, DWI 0.90) and the study calibration.

    From ``cross_fitted`` (:func:`training.v2.crossfit.oof_scores` of a record that measured this build:
    scores of CNNs that never saw the slices or studies they scored) when given; else ``fallback``'s,
    set on grouped-CV scores of the one CNN that saw every training slice (optimistic: such a CT slice
    threshold gave test sensitivity 0.65 for a 0.85 target). Returns ({slice, study, dwi, a, b}, source).
    """
    if not cross_fitted:
        return fallback, "grouped CV on training splits with the CNN fixed (optimistic: it saw every fold)"
    label = dict(zip(t.path, t.label))
    study_label = {s: lab for s, lab in zip(t.study, t.label) if s}
    names = sorted(cross_fitted["study"])
    z = np.array([cross_fitted["study"][s] for s in names])
    y = np.array([int(study_label[s] == "hemorrhage") for s in names])
    a, b = platt_fit(z, y)
    out = {"a": a, "b": b, "study": threshold_for_sensitivity(1 / (1 + np.exp(-(a * z[y == 1] + b))), TARGET_SENS)}
    for key, source, positive, target in (("slice", "ct-slices", "hemorrhage", TARGET_SENS), ("dwi", "dwi", "ischemic", 0.90)):
        scores = cross_fitted.get(source) or {}
        pos = [p for path, p in scores.items() if label[path] == positive]
        out[key] = threshold_for_sensitivity(np.array(pos), target) if pos else fallback[key]
    return out, ("cross-fitted: each score from a CNN and head re-trained without that slice's or study's fold "
                 "(`make crossfit`, training splits only)")


def measure(t, maps, seed, bigru=False, out_json=None, log=print, assess_cut=ASSESS_CUT, crossfit_for=None):
    """Every v2 measurement. ``crossfit_for(ct_head_C)`` returns the cross-fitted out-of-fold scores
    (:func:`training.v2.crossfit.oof_scores`) of this build's recipe with that C, or None; when given,
    they choose the study pooling and set the operating points."""
    E = maps.mean(axis=(1, 2)).astype(np.float64)
    out: dict = {}
    st_rows = np.flatnonzero(t.source == "ct-studies")
    counts = study_counts(str(Path(t.path[st_rows[0]]).parent.parent.parent)) if len(st_rows) else {}
    is_ct = np.isin(t.source, ["ct-slices", "ct-studies"])
    assess = ~(t.source == "ct-studies") | (t.brain >= assess_cut)
    out["assessable"] = {s: float(assess[t.source == s].mean()) if s == "ct-studies" else None for s in ["ct-studies"]}
    out["assess_rule_ct_slices_pass"] = float((t.brain[t.source == "ct-slices"] >= assess_cut).mean())

    # ---- CT slice heads on ct-slices train (grouped OOF)
    r, y, rows, c_ct, _ = finding_heads(t, E, maps, "ct-slices", "hemorrhage", seed, bigru)
    out["heads_ct_slices"], out["head_served_ct"] = rows, served_head(rows)
    log(f"CT-slice heads {rows}")

    # ---- aggregation comparison on ct-ich train studies
    # The MIL head's C is chosen with the aggregation, on grouped-CV study AUC (training studies only).
    by_c = {}
    for c in sorted({c_ct, 0.01, 0.1, 1.0}):
        log(f"aggregation comparison, CT head C={c}")
        by_c[c] = compare_aggregations(t, E, assess, counts, c, seed, log=log)
    c_ct = max(by_c, key=lambda c: (max(r["oof_study_roc_auc"] for r in by_c[c][0]), -c))
    out["ct_head_C_by_study_oof"] = {str(c): max(r["oof_study_roc_auc"] for r in v[0]) for c, v in by_c.items()}
    out["ct_head_C"] = c_ct
    table, oof, ys, studies, params, oof_slice = by_c[c_ct]
    out["aggregation"] = table
    log(f"aggregation {table}")
    cross = crossfit_for(c_ct) if crossfit_for else None
    if cross:  # the fixed-CNN figures above are optimistic by ~0.1; the best of 4 cross-fitted ones only mildly
        best = max(RULES, key=lambda rule: cross["study_auc"].get(rule, -1.0))
        out["aggregation_chosen_by"] = ("the best cross-fitted study ROC AUC of the rules (`make crossfit`, training "
                                        "studies only; the best of four, so mildly optimistic)")
    else:
        best = max(table, key=lambda row: row["oof_study_roc_auc"])["rule"]
        out["aggregation_chosen_by"] = "grouped CV on training studies with the CNN fixed (optimistic)"
    out["aggregation_chosen"] = best
    a_pl, b_pl = platt_fit(oof[best], ys)

    # ---- final CT head on all training CT (slices + studies, MIL)
    rows_sl = np.flatnonzero((t.source == "ct-slices") & (t.split == "train"))
    rows_st = np.flatnonzero((t.source == "ct-studies") & (t.split == "train") & assess)
    head_ct = fit_ct_head(t, E, rows_sl, rows_st, counts, c_ct, seed)
    p_ct = np.zeros(len(t.x))
    p_ct[is_ct] = head_ct.predict_proba(E[is_ct])[:, 1]
    if best == "attention":
        tr_lists = [np.log(np.clip(p_ct[rows_st[t.study[rows_st] == s]], 1e-6, 1 - 1e-6)
                           / np.clip(1 - p_ct[rows_st[t.study[rows_st] == s]], 1e-6, 1)) for s in studies]
        agg_params = fit_attention(tr_lists, ys)
    else:
        agg_params = {"max": {}, "topk": {"k": 3}, "noisy_or": {"shift": -2.0}}[best]
    # study threshold from OOF study scores (calibrated) for sensitivity >= target; only the fallback
    # when cross-fitted scores exist (operating_points below)
    oof_cal = 1 / (1 + np.exp(-(a_pl * oof[best] + b_pl)))
    study_thr = threshold_for_sensitivity(oof_cal[ys == 1], TARGET_SENS)
    # slice threshold (single-slice reading): OOF scores of the served CT head (MIL, chosen C) on the
    # ct-slices training split, grouped folds (all training studies stay in every fold's fit)
    oof_lr = np.zeros(len(r))
    for tr, va in gfolds(y, t.group[r], 4, seed):
        h = fit_ct_head(t, E, r[tr], rows_st, counts, c_ct, seed)
        oof_lr[va] = h.predict_proba(E[r[va]])[:, 1]
    out["ct_slices_oof_auc_served_head"] = auc(y, oof_lr)
    slice_thr = threshold_for_sensitivity(oof_lr[y == 1], TARGET_SENS)

    # ---- DWI
    rd, yd, rows_d, c_dwi, oof_d = finding_heads(t, E, maps, "dwi", "ischemic", seed, bigru)
    out["heads_dwi"], out["head_served_dwi"] = rows_d, served_head(rows_d)
    log(f"DWI heads {rows_d}")
    head_dwi = make_logreg(c_dwi, seed).fit(E[rd], yd)
    dwi_thr = threshold_for_sensitivity(oof_d[yd == 1], 0.90)
    points, out["operating_points_from"] = operating_points(
        t, {**cross, "study": cross["study"][best],
            # DWI scores of a head with another C say nothing about this one's threshold
            "dwi": cross.get("dwi") if cross.get("dwi_head_C") == c_dwi else None} if cross else None,
        {"slice": slice_thr, "study": study_thr, "dwi": dwi_thr, "a": a_pl, "b": b_pl})
    slice_thr, study_thr, dwi_thr, a_pl, b_pl = (points[k] for k in ("slice", "study", "dwi", "a", "b"))
    agg_params = {**agg_params, "a": a_pl, "b": b_pl}

    # ---- shortcut audit (size/aspect alone, on the training split, grouped CV)
    hw = t.original_size[rd].astype(float)
    feats_size = np.c_[np.log(hw[:, 0]), np.log(hw[:, 1]), np.log(hw[:, 1] / hw[:, 0])]
    oof_s = np.zeros(len(rd))
    for tr, va in gfolds(yd, t.group[rd], 5, seed):
        from sklearn.ensemble import RandomForestClassifier
        oof_s[va] = RandomForestClassifier(200, min_samples_leaf=5, random_state=seed).fit(feats_size[tr], yd[tr]).predict_proba(feats_size[va])[:, 1]
    out["shortcut_size_aspect_oof_auc"] = auc(yd, oof_s)

    # ---- router: CT / MR-DWI / MR-other from embeddings (grouped CV on train, test once)
    kind = np.array([data.SOURCE_KIND[s] for s in t.source])
    kinds = sorted(set(kind))
    yk = np.array([kinds.index(k) for k in kind])
    rr = np.flatnonzero(t.split == "train")
    router = Pipeline([("scaler", StandardScaler()), ("logreg", LogisticRegression(C=0.1, max_iter=5000))])
    # every SOURCE weighs the same (ct-slices, 120 images, would otherwise be drowned by ct-ich's 1,400)
    src_w = {s_: len(rr) / (len(set(t.source[rr])) * np.sum(t.source[rr] == s_)) for s_ in set(t.source[rr])}
    w_k = np.array([src_w[s_] for s_ in t.source[rr]])
    oof_k = np.zeros(len(rr), int)
    for tr, va in gfolds(yk[rr], t.group[rr], 5, seed):
        oof_k[va] = router.fit(E[rr][tr], yk[rr][tr], logreg__sample_weight=w_k[tr]).predict(E[rr][va])
    out["router_oof_accuracy"] = float((oof_k == yk[rr]).mean())
    out["router_oof_accuracy_per_source"] = {s_: float((oof_k == yk[rr])[t.source[rr] == s_].mean())
                                             for s_ in sorted(set(t.source[rr]))}
    router.fit(E[rr], yk[rr], logreg__sample_weight=w_k)

    # ---- OOD per modality: one Mahalanobis component per training source (a slice is refused only when
    # far from every component of its modality), threshold at the 99th pct of grouped OOF distances
    ood = {}
    for key, srcs in (("CT", ["ct-studies"]), ("CT-slices", ["ct-slices"]), ("MR-DWI", ["dwi"])):
        m_rows = np.flatnonzero(np.isin(t.source, srcs) & (t.split == "train") & assess)
        thr = ood_threshold(E[m_rows], t.group[m_rows], seed)
        mean, prec = mahalanobis_fit(E[m_rows])
        ood[key] = (mean, prec, thr)

    # ================================================================ TEST (once)
    te = t.split == "test"
    res: dict = {}
    # ct-hemorrhage slices
    rt = np.flatnonzero((t.source == "ct-slices") & te)
    yt = (t.label[rt] == "hemorrhage").astype(int)
    res["ct_hemorrhage_slice_auc"] = auc_ci(yt, p_ct[rt], t.group[rt], seed)
    res["ct_hemorrhage_sens_spec"] = sens_spec(yt, p_ct[rt], slice_thr)
    # ct-ich studies
    rst = np.flatnonzero((t.source == "ct-studies") & te & assess)
    st_names, z, yst = study_scores(t, p_ct, rst, best, agg_params)
    p_st = 1 / (1 + np.exp(-(a_pl * z + b_pl)))
    res["ct_ich_study_auc"] = auc_ci(yst, p_st, st_names, seed)
    res["ct_ich_study_sens_spec_at_thr"] = sens_spec(yst, p_st, study_thr)
    res["ct_ich_study_n"] = [int(yst.sum()), int(len(yst) - yst.sum())]
    for rule in ("max", "topk", "noisy_or"):
        _, zz, _ = study_scores(t, p_ct, rst, rule, {"topk": {"k": 3}, "noisy_or": {"shift": -2.0}}.get(rule, {}))
        res[f"ct_ich_study_auc_{rule}"] = auc(yst, zz)
    # dwi
    rdt = np.flatnonzero((t.source == "dwi") & te)
    ydt = (t.label[rdt] == "ischemic").astype(int)
    p_dwi_t = head_dwi.predict_proba(E[rdt])[:, 1]
    res["dwi_slice_auc"] = auc_ci(ydt, p_dwi_t, t.group[rdt], seed)
    res["dwi_sens_spec"] = sens_spec(ydt, p_dwi_t, dwi_thr)
    # size-matched subset: within original-size bins holding both classes, equal numbers per class
    hw_t = t.original_size[rdt]
    key = np.array([f"{round(h / 50)}x{round(w / 50)}" for h, w in hw_t])
    keep = []
    rng = np.random.default_rng(seed)
    for k in sorted(set(key)):
        a = np.flatnonzero((key == k) & (ydt == 1))
        b = np.flatnonzero((key == k) & (ydt == 0))
        n = min(len(a), len(b))
        if n:
            keep += list(rng.choice(a, n, replace=False)) + list(rng.choice(b, n, replace=False))
    keep = np.array(sorted(keep))
    res["dwi_size_matched_n"] = int(len(keep))
    if len(keep) > 10:
        res["dwi_size_matched_auc"] = auc_ci(ydt[keep], p_dwi_t[keep], t.group[rdt][keep], seed)
    # router on test
    rtt = np.flatnonzero(te)
    res["router_test_accuracy"] = float((router.predict(E[rtt]) == yk[rtt]).mean())
    res["router_test_accuracy_per_source"] = {s_: float((router.predict(E[rtt]) == yk[rtt])[t.source[rtt] == s_].mean())
                                              for s_ in sorted(set(t.source[rtt]))}
    # OOD on test: false refusals per in-distribution test set, refusal of other MRI by the DWI reading
    def refused(mod, rows):
        parts_ = [ood["CT"], ood["CT-slices"]] if mod == "CT" else [ood[mod]]
        return np.all([mahalanobis(mean, prec, E[rows]) > thr for mean, prec, thr in parts_], axis=0)
    res["false_refusal"] = {
        "ct-slices": float(refused("CT", rt).mean()),
        "ct-studies(assessable)": float(refused("CT", rst).mean()),
        "dwi": float(refused("MR-DWI", rdt).mean()),
    }
    ro = np.flatnonzero((t.source == "mr-other") & te)
    router_says_other = router.predict(E[ro]) != kinds.index("MR-DWI")
    res["mr_other_refused_as_dwi"] = {"ood_only": float(refused("MR-DWI", ro).mean()),
                                      "router_only": float(router_says_other.mean()),
                                      "either": float((refused("MR-DWI", ro) | router_says_other).mean())}
    # transfer: CT head on one source tested on the other (same shared extractor)
    rs_all = np.flatnonzero((t.source == "ct-studies") & (t.split == "train") & assess)
    h_sl = make_logreg(c_ct, seed).fit(E[rows_sl], (t.label[rows_sl] == "hemorrhage").astype(int))
    p1 = np.zeros(len(t.x))
    p1[is_ct] = h_sl.predict_proba(E[is_ct])[:, 1]
    _, z1, _ = study_scores(t, p1, rst, "max", {})
    h_st = fit_ct_head(t, E, np.array([], int), rs_all, counts, c_ct, seed)
    p2 = np.zeros(len(t.x))
    p2[is_ct] = h_st.predict_proba(E[is_ct])[:, 1]
    res["transfer"] = {"slices_only_head->ct_ich_study_auc(max)": auc_ci(yst, 1 / (1 + np.exp(-z1)), st_names, seed),
                       "studies_only_head->ct_hemorrhage_slice_auc": auc_ci(yt, p2[rt], t.group[rt], seed),
                       "both->ct_ich_study_auc": res["ct_ich_study_auc"],
                       "both->ct_hemorrhage_slice_auc": res["ct_hemorrhage_slice_auc"]}
    out["test"] = res
    out["thresholds"] = {"slice": slice_thr, "study": study_thr, "dwi": dwi_thr}
    out["agg_params"] = agg_params
    log(json.dumps(res, indent=1, default=float))
    if out_json is not None:
        out_json.write_text(json.dumps(out, indent=1, default=float))
    return out, dict(head_ct=head_ct, head_dwi=head_dwi, router=router, ood=ood, kinds=kinds, c_ct=c_ct)


if __name__ == "__main__":
    main()
