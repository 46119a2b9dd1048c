"""Model v2's classical stage on cached int8 embeddings: heads per finding, MIL on ct-ich, the study
aggregation chosen by grouped CV, the router, OOD per modality, and every held-out measurement.

All model choices use grouped cross-validation on TRAINING splits only; the test splits are scored
once at the end (``evaluate_test``).

Caveat stated in the card: the shared CNN was trained once on the training splits of every source,
so the grouped-CV scores below (used only to CHOOSE heads and the aggregation) come from an
extractor that saw the held-out folds' images; the test splits never reached the CNN.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from strokelens.reader.model.aggregate import RULES, raw_score
from training.heads import make_logreg
from training.metrics import bootstrap

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
MIL_ROUNDS = 3


def auc(y, p) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def gfolds(y, groups, n, seed):
    y, groups = np.asarray(y), np.asarray(groups)
    per_class = min(len(set(groups[y == c])) for c in np.unique(y))
    n = max(2, min(n, per_class))
    return list(StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


# ------------------------------------------------------------------ CT: slices + MIL on studies


def ct_training_set(t, feats, rows_slices, rows_studies, counts: dict, scores=None):
    """(X, y, w): ct-slices with their labels; ct-studies slices: normal studies' slices negative;
    positive studies' slices positive for their top-n slices by the current score (n = the study's
    annotated count of slices with haemorrhage, from studies.csv), negative... never: the rest are
    left out (unknown). Without scores (first round) every positive-study slice is positive, weight 1/8."""
    X = [feats[rows_slices]]
    y = [(t.label[rows_slices] == "hemorrhage").astype(int)]
    w = [np.full(len(rows_slices), 2.0)]
    for study in sorted(set(t.study[rows_studies])):
        r = rows_studies[t.study[rows_studies] == study]
        if t.label[r[0]] != "hemorrhage":
            X.append(feats[r])
            y.append(np.zeros(len(r), int))
            w.append(np.ones(len(r)))
            continue
        if scores is None:
            X.append(feats[r])
            y.append(np.ones(len(r), int))
            w.append(np.full(len(r), 0.125))
        else:
            n = max(1, min(len(r), int(counts.get(study, max(1, len(r) // 8)))))
            top = r[np.argsort(-scores[r])[:n]]
            X.append(feats[top])
            y.append(np.ones(len(top), int))
            w.append(np.ones(len(top)))
    return np.concatenate(X), np.concatenate(y), np.concatenate(w)


def fit_ct_head(t, feats, rows_slices, rows_studies, counts, C, seed, rounds=MIL_ROUNDS):
    """Logistic head with MIL re-labelling of positive studies' slices (mi-SVM style)."""
    scores = None
    head = None
    for _ in range(rounds):
        X, y, w = ct_training_set(t, feats, rows_slices, rows_studies, counts, scores)
        head = make_logreg(C, seed)
        head.fit(X, y, logreg__sample_weight=w)
        scores = np.zeros(len(feats))
        scores[rows_studies] = head.decision_function(feats[rows_studies])
    return head


def study_scores(t, p_slice, rows, rule, params):
    studies = sorted(set(t.study[rows]))
    out = []
    for st in studies:
        r = rows[t.study[rows] == st]
        out.append(raw_score(rule, p_slice[r], params) if len(r) else 0.0)
    ys = [int(t.label[rows[t.study[rows] == st][0]] == "hemorrhage") for st in studies]
    return studies, np.array(out), np.array(ys)


def fit_attention(logit_lists, y):
    """beta, a, b of the learned attention pooling, by maximum likelihood on (training-fold) studies."""
    def nll(theta):
        beta, a, b = theta
        z = []
        for logits in logit_lists:
            w = np.exp(beta * (logits - logits.max()))
            z.append((w / w.sum()) @ logits)
        z = a * np.array(z) + b
        return float(np.sum(np.logaddexp(0, z) - y * z) + 0.01 * (a * a + beta * beta))
    res = minimize(nll, x0=[1.0, 1.0, 0.0], method="Nelder-Mead", options={"maxiter": 600})
    beta, a, b = res.x
    return {"beta": float(np.clip(beta, 0.0, 20.0))}


def platt_fit(z, y):
    m = LogisticRegression(C=1e4, max_iter=5000).fit(np.asarray(z)[:, None], y)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def compare_aggregations(t, feats, assessable, counts, C, seed, folds=5, log=print):
    """Grouped CV over ct-studies TRAINING studies: per fold the CT head (with MIL) is fitted on
    ct-slices train + the other folds' studies; held-out studies are aggregated by every rule.
    Returns (table rows, OOF raw study scores per rule, study labels, chosen params per rule)."""
    rows_sl = np.flatnonzero((t.source == "ct-slices") & (t.split == "train"))
    rows_st = np.flatnonzero((t.source == "ct-studies") & (t.split == "train") & assessable)
    studies = np.array(sorted(set(t.study[rows_st])))
    ys = np.array([int(t.label[rows_st[t.study[rows_st] == s][0]] == "hemorrhage") for s in studies])
    sf = gfolds(ys, studies, folds, seed)
    oof = {r: np.zeros(len(studies)) for r in RULES}
    oof_slice = np.zeros(len(t.x))
    params_all = {r: [] for r in RULES}
    for k, (tr, va) in enumerate(sf):
        tr_rows = rows_st[np.isin(t.study[rows_st], studies[tr])]
        va_rows = rows_st[np.isin(t.study[rows_st], studies[va])]
        head = fit_ct_head(t, feats, rows_sl, tr_rows, counts, C, seed)
        p = np.zeros(len(t.x))
        p[rows_st] = head.predict_proba(feats[rows_st])[:, 1]
        oof_slice[va_rows] = p[va_rows]
        # the learned pooling is fitted on the training studies' (in-fold) slice scores
        tr_lists = [np.log(np.clip(p[tr_rows[t.study[tr_rows] == s]], 1e-6, 1 - 1e-6) /
                           np.clip(1 - p[tr_rows[t.study[tr_rows] == s]], 1e-6, 1)) for s in studies[tr]]
        att = fit_attention(tr_lists, ys[tr])
        fold_params = {"max": {}, "topk": {"k": 3}, "noisy_or": {"shift": -2.0}, "attention": att}
        for rule in RULES:
            _, z, _ = study_scores(t, p, va_rows, rule, fold_params[rule])
            oof[rule][va] = z
            params_all[rule].append(fold_params[rule])
        log(f"  aggregation fold {k + 1}/{len(sf)}: " + ", ".join(f"{r} {auc(ys[va], oof[r][va]):.2f}" for r in RULES))
    table = []
    for rule in RULES:
        table.append({"rule": rule, "oof_study_roc_auc": auc(ys, oof[rule]),
                      "fold_mean": float(np.nanmean([auc(ys[va], oof[rule][va]) for _, va in sf]))})
    return table, oof, ys, studies, params_all, oof_slice


# ------------------------------------------------------------------ heads compared (LR, SVM, RF, BiGRU)


def compare_heads(X, y, groups, seed, maps=None, folds=4, weights=None, bigru_epochs=15):
    """Grouped OOF ROC AUC of each head on one binary task; returns (rows, best C of LR)."""
    from training.heads import _bigru_proba

    sf = gfolds(y, groups, folds, seed)
    oof = {f"lr_C{c}": np.zeros(len(y)) for c in C_GRID}
    oof.update({"svm_rbf": np.zeros(len(y)), "random_forest": np.zeros(len(y)), "bigru": np.zeros(len(y))})
    for tr, va in sf:
        for c in C_GRID:
            oof[f"lr_C{c}"][va] = make_logreg(c, seed).fit(X[tr], y[tr]).predict_proba(X[va])[:, 1]
        svm = Pipeline([("s", StandardScaler()), ("svm", SVC(C=1.0, probability=True, class_weight="balanced",
                                                               random_state=seed))])
        oof["svm_rbf"][va] = svm.fit(X[tr], y[tr]).predict_proba(X[va])[:, 1]
        rf = RandomForestClassifier(200, min_samples_leaf=2, class_weight="balanced", random_state=seed, n_jobs=2)
        oof["random_forest"][va] = rf.fit(X[tr], y[tr]).predict_proba(X[va])[:, 1]
        if maps is not None:
            seq = maps.reshape(len(maps), -1, maps.shape[-1]).astype(np.float32)
            oof["bigru"][va] = _bigru_proba(seq[tr], y[tr], seq[va], 2, seed, bigru_epochs)[:, 1]
    best_c = max(C_GRID, key=lambda c: auc(y, oof[f"lr_C{c}"]))
    rows = [{"head": "logistic_regression", "C": best_c, "oof_roc_auc": auc(y, oof[f"lr_C{best_c}"])},
            {"head": "svm_rbf", "oof_roc_auc": auc(y, oof["svm_rbf"])},
            {"head": "random_forest", "oof_roc_auc": auc(y, oof["random_forest"])}]
    if maps is not None:
        rows.append({"head": "bigru", "oof_roc_auc": auc(y, oof["bigru"])})
    return rows, best_c, oof[f"lr_C{best_c}"]


# A non-linear head must beat the logistic head by more than this (grouped OOF ROC AUC) to be worth
# losing the exact class activation map; set before model v2's heads were compared on its new CNN.
HEAD_MARGIN = 0.02


def served_head(rows: list[dict], margin: float = HEAD_MARGIN) -> dict:
    """Which compared head is served and why: the logistic head (exact heat map, exported to numpy)
    unless another head's OOF ROC AUC is more than ``margin`` higher; then that is recorded as a lead
    the service does not yet take (no numpy export for SVM / RF / BiGRU), never hidden."""
    lr = next(r for r in rows if r["head"] == "logistic_regression")
    best = max(rows, key=lambda r: r["oof_roc_auc"])
    lead = best["oof_roc_auc"] - lr["oof_roc_auc"]
    return {"served": "logistic_regression", "best_oof": best["head"], "lead_of_best": float(lead),
            "margin": margin, "within_margin": bool(lead <= margin)}


# ------------------------------------------------------------------ OOD per modality


def mahalanobis_fit(E):
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(E)
    return lw.location_, np.linalg.inv(lw.covariance_)


def mahalanobis(mean, prec, E):
    d = E - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, prec, d), 0))


def ood_threshold(E, groups, seed, percentile=99.0, folds=5):
    """Threshold at ``percentile`` of grouped out-of-fold distances of in-distribution training slices."""
    y = np.zeros(len(E), int)
    y[::2] = 1  # StratifiedGroupKFold needs two strata; the labels here are irrelevant
    dist = np.zeros(len(E))
    for tr, va in gfolds(y, groups, folds, seed):
        m, p = mahalanobis_fit(E[tr])
        dist[va] = mahalanobis(m, p, E[va])
    return float(np.percentile(dist, percentile))


# ------------------------------------------------------------------ bootstrap helper


def auc_ci(y, p, groups, seed, reps=1000):
    y, p, groups = np.asarray(y), np.asarray(p), np.asarray(groups)
    out = bootstrap({"roc_auc": auc(y, p)}, lambda i: {"roc_auc": auc(y[i], p[i])}, list(groups), seed, reps,
                    accept=lambda i: len(np.unique(y[i])) == 2)
    return out["roc_auc"]


def sens_spec(y, p, thr):
    y, pred = np.asarray(y).astype(bool), np.asarray(p) >= thr
    return float((pred & y).sum() / max(1, y.sum())), float((~pred & ~y).sum() / max(1, (~y).sum()))
