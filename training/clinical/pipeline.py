"""The clinical pipeline's stages: load -> split -> fit -> calibrate -> export -> evaluate -> card.

Each stage is a function; small frozen dataclasses carry what the later stages need.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from strokelens.core import clinical as served
from strokelens.core.catalogue import CLINICAL_MODEL_FILES
from training.cards import write_card
from training.artifacts import clear
from training.charts import write_charts
from training.clinical import card as cards, charts, data as dataset, evaluate, export as exporting, models
from training.metrics import BOOTSTRAP_REPS, sigmoid
from training.progress import Stopwatch


@dataclass(frozen=True)
class Split:
    df: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    X_train: pd.DataFrame  # the model's fields of each part, and its stroke labels
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray


@dataclass(frozen=True)
class Fit:
    cv: StratifiedKFold
    families: dict  # per family: {"best": CV result, "all": [CV results]}
    decision: dict
    ablation: dict  # CV of the served configuration plus a "BMI missing" flag (not served)

    @property
    def best_c(self) -> float:
        return self.families["logistic_regression"]["best"]["config"]["C"]


@dataclass(frozen=True)
class Calibration:
    model: CalibratedClassifierCV
    a: float
    b: float
    prevalence: float
    t90: float  # 90 %-specificity threshold on out-of-fold calibrated training scores


@dataclass(frozen=True)
class Export:
    spec: dict
    parity: float
    p_test: np.ndarray  # the exported (standard-library) model's probabilities on the held-out patients


def split(df: pd.DataFrame, seed: int) -> Split:
    train_idx, test_idx = dataset.split_ids(df, seed)
    train, test = df.iloc[train_idx].reset_index(drop=True), df.iloc[test_idx].reset_index(drop=True)
    features = list(dataset.FEATURES)
    return Split(df, train, test, train[features], train["stroke"].to_numpy(), test[features], test["stroke"].to_numpy())


def fit(data: Split, seed: int) -> Fit:
    cv = StratifiedKFold(n_splits=models.CV_FOLDS, shuffle=True, random_state=seed)
    families = models.compare(data.X_train, data.y_train, cv, seed)
    decision = models.serving_decision(families)
    best_c = families["logistic_regression"]["best"]["config"]["C"]
    ablation = models.cross_validate(models.linear(best_c, bmi_indicator=True), data.X_train, data.y_train, cv)
    return Fit(cv, families, decision, ablation)


def calibrate(data: Split, fitted: Fit) -> Calibration:
    """Platt scaling on the CV folds' decision values; risk bands from the OOF calibrated scores."""
    y = data.y_train
    model = CalibratedClassifierCV(models.linear(fitted.best_c), method="sigmoid", cv=fitted.cv,
                                   ensemble=False).fit(data.X_train, y)
    calibrator = model.calibrated_classifiers_[0].calibrators[0]
    a, b = -calibrator.a_, -calibrator.b_
    oof_p = sigmoid(a * fitted.families["logistic_regression"]["best"]["oof"] + b)  # same folds as the calibration
    prevalence = float(y.mean())
    t90 = float(np.quantile(oof_p[y == 0], evaluate.SPECIFICITY))
    if not 0 < prevalence < t90 < 1:
        raise RuntimeError(f"risk bands not monotone: prevalence {prevalence} vs 90 %-specificity threshold {t90}")
    return Calibration(model, a, b, prevalence, t90)


def export(out: Path, data: Split, cal: Calibration, seed: int) -> Export:
    """Clean ``out``, write ``clinical.json`` and score the held-out patients with the exported model."""
    spec = exporting.export_spec(cal.model, data.train, {"prevalence": cal.prevalence, "specificity_90": cal.t90},
                                 seed)
    clear(out, CLINICAL_MODEL_FILES)  # this pipeline's files from a previous run, nothing else
    (out / "clinical.json").write_text(json.dumps(spec, indent=1))
    model = served.RiskModel.load(out)
    gap = exporting.check_parity(model, cal.model, data.X_test)
    p_test = np.array([model.predict(served.validate(dataset.payload_of(r)))["probability"]
                       for r in data.X_test.to_dict("records")])
    return Export(spec, gap, p_test)


def add_test_references(data: Split, fitted: Fit, p_test: np.ndarray, seed: int) -> None:
    """Held-out ROC/PR AUC of each family's best configuration refitted on train: reference only."""
    for family, result in fitted.families.items():
        best = result["best"]
        if family == "logistic_regression":
            ref = p_test
        else:
            configs = [r["config"] for r in result["all"]]
            model = dict(models.candidates(seed))[family][configs.index(best["config"])][1]
            ref = models.scores(model.fit(data.X_train, data.y_train), data.X_test)
        best["test_roc_auc"] = float(roc_auc_score(data.y_test, ref))
        best["test_pr_auc"] = float(average_precision_score(data.y_test, ref))


def evaluate_model(args: argparse.Namespace, data: Split, fitted: Fit, cal: Calibration, exported: Export) -> dict:
    """``clinical_metrics.json``: held-out metrics with patient-bootstrap CIs, bands, CV results, decision."""
    y, p, spec, families = data.y_test, exported.p_test, exported.spec, fitted.families
    add_test_references(data, fitted, p, args.seed)
    df = data.df
    return {
        "split": "held-out (test)",
        "n_test": int(len(y)), "n_test_positive": int(y.sum()),
        "data": {"path": str(args.data), "sha256": dataset.file_sha256(Path(args.data)), "n_rows": int(len(df)),
                 "n_positive": int(df["stroke"].sum()), "facts": dataset.data_facts(df, spec, int(y.sum()))},
        "bootstrap": {"reps": args.reps, "unit": "patient", "seed": args.seed, "interval": "percentile 95%"},
        "metrics": evaluate.bootstrap(y, p, cal.t90, args.seed, args.reps),
        "threshold": {"value": cal.t90, "chosen_on": "training out-of-fold calibrated scores",
                      "rule": "90th percentile of non-stroke patients' scores; flagged when p >= threshold",
                      "brier_prevalence_reference": float(np.mean((cal.prevalence - y) ** 2))},
        "calibration": {"mean_predicted": float(p.mean()), "observed_rate": float(y.mean()), "a": cal.a, "b": cal.b},
        "bands": evaluate.band_table(spec, y, p),
        "cv": {"folds": models.CV_FOLDS, "seed": args.seed, "selection": "PR AUC, tie-break ROC AUC",
               "families": {f: {k: v for k, v in r["best"].items() if k != "oof"} for f, r in families.items()},
               "all": {f: [{k: v for k, v in c.items() if k not in ("oof", "roc_auc_folds", "pr_auc_folds")}
                           for c in r["all"]] for f, r in families.items()},
               "ablation_bmi_missing_indicator": {"C": fitted.best_c, "roc_auc": fitted.ablation["roc_auc"],
                                                  "pr_auc": fitted.ablation["pr_auc"], "served": False}},
        "decision": fitted.decision,
        "parity_max_abs_diff": exported.parity,
        "model_version": spec["version"],
    }


def write_report(args: argparse.Namespace, data: Split, fitted: Fit, cal: Calibration, exported: Export,
                 metrics: dict) -> None:
    """Metrics, split, card, the scikit-learn pipeline (research only) and the charts."""
    out, test = Path(args.out), data.test
    split_record = {"seed": args.seed, "test_fraction": dataset.TEST_FRACTION, "stratify": "stroke",
                    "method": "sklearn.model_selection.train_test_split(row positions, stratify=stroke, "
                              "random_state=seed)",
                    "data_sha256": metrics["data"]["sha256"], "n_train": int(len(data.train)),
                    "n_test": int(len(test)), "test_ids": sorted(int(i) for i in test["id"])}
    command = (f"python -m training.clinical --data {args.data} --out {args.out} --seed {args.seed}"
               + (f" --reps {args.reps}" if args.reps != BOOTSTRAP_REPS else ""))
    card = cards.build_card(exported.spec, metrics, fitted.decision, str(args.data), command)
    (out / "clinical_metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "clinical_split.json").write_text(json.dumps(split_record))
    write_card(out, "clinical_card", card, cards.to_markdown(card))
    joblib.dump(cal.model, out / "clinical_pipeline.joblib", compress=3)
    write_charts(out / "charts", charts.charts(data.y_test, exported.p_test, metrics, fitted.families,
                                               fitted.decision, exported.spec))


def run(args: argparse.Namespace) -> dict:
    watch = Stopwatch()
    data = split(dataset.load_data(Path(args.data)), args.seed)
    watch.log(f"data: {len(data.df)} rows ({int(data.df['stroke'].sum())} strokes); train {len(data.train)}, "
              f"test {len(data.test)} ({int(data.y_test.sum())} strokes)")
    fitted = fit(data, args.seed)
    watch.log(f"cv winner: {fitted.decision['cv_winner']}; served: logistic regression. {fitted.decision['why']}")
    cal = calibrate(data, fitted)
    exported = export(Path(args.out), data, cal, args.seed)
    watch.log(f"exported {exported.spec['version']}; bootstrap ({args.reps} reps)")
    metrics = evaluate_model(args, data, fitted, cal, exported)
    write_report(args, data, fitted, cal, exported, metrics)
    print(summary(metrics, watch.seconds), flush=True)
    return metrics


def summary(metrics: dict, seconds: float) -> str:
    v = metrics["metrics"]
    return (f"held-out: ROC AUC {v['roc_auc']['value']:.3f} [{v['roc_auc']['ci_low']:.3f}, "
            f"{v['roc_auc']['ci_high']:.3f}]  PR AUC {v['pr_auc']['value']:.3f}  Brier {v['brier']['value']:.4f}  "
            f"ECE {v['ece']['value']:.4f}  sens@90spec {v['sensitivity_at_90_specificity']['value']:.3f}  "
            f"parity {metrics['parity_max_abs_diff']:.2e}  version {metrics['model_version']}  ({seconds:.0f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.clinical",
                                     description="Patient-level stroke risk from clinical fields.")
    parser.add_argument("--data", default="../shared/data/clinical/healthcare-dataset-stroke-data.csv")
    parser.add_argument("--out", default="build/model/clinical",
                        help="artifact folder (this pipeline's files are replaced; `make install-model` copies them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=BOOTSTRAP_REPS, help="bootstrap repetitions")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    # Single-threaded OpenMP: on 3,000 rows gradient boosting is 3-7x faster than with threads
    # competing for a busy machine, and the results are identical.
    with threadpool_limits(limits=1, user_api="openmp"):
        return run(parse_args(argv))
