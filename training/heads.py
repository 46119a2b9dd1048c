"""Heads compared by CROSS-FITTING on the training split, and the operating point chosen on their
out-of-fold (OOF) scores.

Why cross-fitting and not one head fitted on pooled OOF embeddings: every CNN training starts from
its own random init, so the channels of two CNNs do not correspond and a head fitted on one CNN's
embeddings means nothing on another's. What transfers is the RECIPE. So, per grouped fold f of the
training split: the CNN is trained on the other folds (exactly as the final CNN is trained on all of
them), every head is fitted on that CNN's embeddings of ITS OWN training images (exactly as the
served head will be), and scored on the held-out fold, whose images neither the CNN nor the head
saw. The held-out scores, pooled over folds, are honest OOF scores of "CNN + head" as served: they
pick the head and its hyper-parameters, fit the Platt calibration and set the decision threshold.

Heads: logistic regression (StandardScaler + L2, C by OOF ROC AUC), SVM (RBF, Platt probabilities,
C by OOF ROC AUC), random forest (300 trees), a BiGRU over the h*w feature-map positions as a
sequence of K-d vectors (Keras), and the CNN's own softmax (mean over trunks) as a reference.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from training.metrics import C_GRID, roc_auc, sigmoid

# The image head's grid stops at C = 1 (the served model was selected on it); the clinical model also tries 3.
LOGREG_C_GRID = tuple(c for c in C_GRID if c <= 1.0)
SVM_C_GRID = (0.3, 1.0, 3.0, 10.0)
HEAD_NAMES = {
    "logistic_regression": "Logistic regression (L2) on pooled features",
    "svm_rbf": "SVM, RBF kernel, Platt probabilities",
    "random_forest": "Random forest, 300 trees",
    "bigru": "BiGRU over the h*w feature-map positions (Keras)",
    "cnn_softmax": "CNN's own softmax (mean over trunks), reference",
}


def make_logreg(c: float, seed: int) -> Pipeline:
    return Pipeline([
        ("scaler", StandardScaler()),
        ("logreg", LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed)),
    ])


def _bigru_proba(seq_tr: np.ndarray, y_tr: np.ndarray, seq_val: np.ndarray, n_classes: int, seed: int,
                 epochs: int) -> np.ndarray:
    import keras
    from keras import layers

    from training.cnn import configure

    configure(seed)
    mean = seq_tr.mean(axis=(0, 1), keepdims=True)
    std = seq_tr.std(axis=(0, 1), keepdims=True) + 1e-6
    inputs = keras.Input(seq_tr.shape[1:])
    x = layers.Bidirectional(layers.GRU(16))(inputs)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit((seq_tr - mean) / std, y_tr, batch_size=16, epochs=epochs, shuffle=True, verbose=0)
    return np.asarray(model.predict((seq_val - mean) / std, verbose=0), np.float64)


def cross_fit(folds: list[tuple[np.ndarray, np.ndarray]], maps: list[np.ndarray], cnn_proba: np.ndarray, y: np.ndarray,
              n_classes: int, seed: int, bigru_epochs: int = 40) -> dict:
    """OOF probabilities (N, C) per head (and per C for the tuned ones), from per-fold feature maps.

    ``maps[f]`` holds the feature maps (N, h, w, K) of ALL training images under fold f's CNN;
    ``cnn_proba`` the OOF softmax of the CNNs. Returns {"oof": {name: proba}, "logit": OOF logistic
    decision values for the chosen C, "choice": {"C": .., "svm_C": ..}}.
    """
    n = len(y)
    grid = {("logistic_regression", c): np.zeros((n, n_classes)) for c in LOGREG_C_GRID}
    grid.update({("svm_rbf", c): np.zeros((n, n_classes)) for c in SVM_C_GRID})
    logits = {c: np.zeros(n) for c in LOGREG_C_GRID}
    rf, gru = np.zeros((n, n_classes)), np.zeros((n, n_classes))
    for (tr, val), fmap in zip(folds, maps):
        pooled = fmap.mean(axis=(1, 2))
        for c in LOGREG_C_GRID:
            head = make_logreg(c, seed).fit(pooled[tr], y[tr])
            grid[("logistic_regression", c)][val] = head.predict_proba(pooled[val])
            if n_classes == 2:
                logits[c][val] = head.decision_function(pooled[val])
        for c in SVM_C_GRID:
            svm = Pipeline([("scaler", StandardScaler()),
                            ("svm", SVC(C=c, gamma="scale", probability=True, class_weight="balanced", random_state=seed))])
            grid[("svm_rbf", c)][val] = svm.fit(pooled[tr], y[tr]).predict_proba(pooled[val])
        forest = RandomForestClassifier(300, min_samples_leaf=2, class_weight="balanced", random_state=seed, n_jobs=2)
        rf[val] = forest.fit(pooled[tr], y[tr]).predict_proba(pooled[val])
        seq = fmap.reshape(len(fmap), -1, fmap.shape[-1])
        gru[val] = _bigru_proba(seq[tr], y[tr], seq[val], n_classes, seed, bigru_epochs)

    def best(name: str, grid_values) -> float:
        scores = {c: roc_auc(y, grid[(name, c)]) for c in grid_values}
        valid = {c: s for c, s in scores.items() if np.isfinite(s)}
        return max(valid, key=lambda c: (valid[c], -c)) if valid else grid_values[len(grid_values) // 2]

    c_lr, c_svm = best("logistic_regression", LOGREG_C_GRID), best("svm_rbf", SVM_C_GRID)
    return {
        "oof": {"logistic_regression": grid[("logistic_regression", c_lr)], "svm_rbf": grid[("svm_rbf", c_svm)],
                "random_forest": rf, "bigru": gru, "cnn_softmax": cnn_proba},
        "logit": logits[c_lr],
        "choice": {"C": c_lr, "svm_C": c_svm},
        "auc_by_C": {str(c): roc_auc(y, grid[("logistic_regression", c)]) for c in LOGREG_C_GRID},
    }


def compare(oof: dict[str, np.ndarray], y: np.ndarray, folds) -> list[dict]:
    """Rows of the comparison table: OOF ROC AUC (pooled and mean over folds), macro-F1 at argmax, Brier."""
    rows = []
    for name, proba in oof.items():
        per_fold = [roc_auc(y[val], proba[val]) for _, val in folds]
        row = {"head": name, "description": HEAD_NAMES[name], "oof_roc_auc": roc_auc(y, proba),
               "fold_roc_auc_mean": float(np.nanmean(per_fold)), "fold_roc_auc_sd": float(np.nanstd(per_fold)),
               "oof_macro_f1": float(f1_score(y, proba.argmax(axis=1), average="macro"))}
        if proba.shape[1] == 2:
            row["oof_brier"] = float(brier_score_loss(y, proba[:, 1]))
        rows.append(row)
    return rows


# ------------------------------------------------------------------ calibration and operating point


def platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) with P(class 1) = sigmoid(a * logit + b), fitted on OOF logits (near-unpenalised)."""
    model = LogisticRegression(C=1e4, max_iter=5000).fit(logit[:, None], y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def platt_proba(logit: np.ndarray, calibration: tuple[float, float]) -> np.ndarray:
    """Two-class probabilities (N, 2) from logits of class 1 and the Platt calibration (a, b)."""
    a, b = calibration
    p1 = sigmoid(a * logit + b)
    return np.stack([1 - p1, p1], axis=1)


def threshold_for_sensitivity(p_pos: np.ndarray, is_pos: np.ndarray, target: float) -> float:
    """The largest t with sensitivity(p_pos >= t) >= target (maximal specificity at that sensitivity)."""
    scores = np.sort(p_pos[is_pos])[::-1]
    k = int(np.ceil(target * len(scores)))
    return float(np.floor(scores[max(k, 1) - 1] * 1000) / 1000)
