"""The clinical model card (``clinical_card.json`` + ``.md``): origin, split, selection, metrics, limitations."""

from __future__ import annotations

import json

import sklearn

from training.cards import bullets, metric_rows, reproduce
from training.clinical.data import TEST_FRACTION
from training.metrics import ECE_BINS

DATA_ORIGIN = (
    'Public "Stroke Prediction Dataset" (Kaggle, fedesoriano): one row per patient with gender, age, '
    "hypertension, heart disease, ever married, work type, residence type, average glucose level, BMI, "
    "smoking status and a stroke flag. Its publisher does not name the source (one anonymous source). "
    "{n} patients ({pos} with stroke, {rate:.1%}) are used here; some rows are kept aside for "
    "independent evaluation. Research use."
)
LIMITS = [
    "One anonymous source: the publisher does not say where, when or how the patients were collected; "
    "there is no external validation and performance on any real clinical population is unknown.",
    "Cross-sectional: 'stroke' marks a stroke in the record, not a stroke that happened after the "
    "measurements; glucose and BMI may have been taken after the event. The model describes association "
    "in this data set, not a prospective risk or a cause.",
    "Self-reported or loosely defined fields (smoking status, work type, ever married, residence type); "
    "smoking status is 'Unknown' for {unknown_smoking:.0%} of patients (many of them children) and is kept as "
    "its own level.",
    "BMI is missing for {bmi_missing:.1%} of patients, and their stroke rate was {bmi_missing_rate:.1%} against "
    "{bmi_present_rate:.1%} for the rest (missingness depends on the outcome). The served model imputes the "
    "training median and does NOT use a 'BMI missing' flag: such a flag raises CV AUC here but would make a blank "
    "BMI field raise a new patient's risk (see the ablation above and in clinical_metrics.json).",
    "Training data ranges: age {age[0]:g}-{age[1]:g} years, glucose {avg_glucose_level[0]:g}-"
    "{avg_glucose_level[1]:g} mg/dL, BMI {bmi[0]:g}-{bmi[1]:g}. The API accepts wider plausible ranges (age 0-120, "
    "glucose 40-400, BMI 10-100) and notes values outside the training range as extrapolation.",
    "Per-field contributions are associations adjusted for the other fields in this sample, not causal effects; "
    "small ones (under about 0.1 log-odds) are within noise and some may look counter-intuitive.",
    "Gender 'Other' occurs {other_gender} time(s) in the data: it is treated as unknown (gender contributes nothing).",
    "About {prevalence:.0%} positives: the held-out split has {n_test_positive} strokes, so the confidence "
    "intervals are wide.",
    "Not a validated clinical score (unlike e.g. CHA2DS2-VASc or Framingham); not a medical device; not for "
    "diagnosis or treatment decisions.",
]
NO_FUSION = (
    "The clinical risk and the image reading are two separate readings, shown side by side and never combined "
    "into one number. No available data set has head images and clinical fields for the same patients, so any "
    "fused score would be an invented rule whose accuracy and calibration could not be measured. The two also "
    "answer different questions: the image model reads one CT slice for hemorrhage now; the clinical model "
    "describes how strongly risk factors were associated with a recorded stroke in one population."
)
METRIC_NAMES = {
    "roc_auc": "ROC AUC", "pr_auc": "PR AUC (average precision)", "brier": "Brier score",
    "ece": f"ECE ({ECE_BINS} equal-width bins)",
    "sensitivity_at_90_specificity": "Sensitivity at 90 % specificity (threshold from training OOF)",
    "specificity_at_train_threshold": "Specificity achieved at that threshold",
    "sensitivity_at_90_specificity_test_picked":
        "Sensitivity at 90 % specificity (threshold picked on the test set; reference only, optimistic)",
}


def build_card(spec: dict, metrics: dict, decision: dict, data_path: str, command: str) -> dict:
    d = metrics["data"]
    return {
        "name": "StrokeLens clinical stroke-risk model",
        "version": spec["version"],
        "intended_use": (
            "Research demonstration: shows next to (never fused with) the image reading how strongly a patient's "
            "recorded risk factors were associated with stroke in one public data set. NOT a medical device and "
            "not a validated clinical score; not for diagnosis, triage or treatment decisions."),
        "data": {"origin": DATA_ORIGIN.format(n=d["n_rows"], pos=d["n_positive"], rate=d["n_positive"] / d["n_rows"]),
                 "path": data_path, "sha256": d["sha256"]},
        "split": (f"Stratified (on stroke) held-out split, {TEST_FRACTION:.0%} test, seed {spec['training']['seed']}; "
                  "the held-out patient ids are in clinical_split.json. Model selection, C, calibration, the "
                  "90 %-specificity threshold and the risk bands use the training split only (5-fold stratified CV); "
                  "the held-out split is used once, for the numbers below."),
        "preprocessing": (
            "BMI 'N/A' -> missing -> training median; smoking 'Unknown' kept as its own level; gender Male/Female "
            "-> 1/0 (the single 'Other' -> training mean); one-hot for ever_married, work_type, Residence_type, "
            "smoking_status (all levels); StandardScaler; class imbalance handled by class_weight='balanced', "
            "then probabilities recalibrated."),
        "model": {"served": spec["model"], "C": spec["C"], "calibration": spec["calibration"],
                  "selection": decision, "cv": metrics["cv"]},
        "metrics": {"n_test": metrics["n_test"], "n_test_positive": metrics["n_test_positive"],
                    "bootstrap": metrics["bootstrap"], "values": metrics["metrics"],
                    "threshold": metrics["threshold"], "bands": metrics["bands"]},
        "serving": {"route": "POST /risk", "output": "calibrated probability, risk band, per-field contributions "
                    "(exact, calibrated log-odds relative to the average training patient), notes",
                    "bands": spec["bands"], "dependencies": "Python standard library only (strokelens/core/clinical.py)"},
        "not_fused_with_images": NO_FUSION,
        "limitations": [item.format(**d["facts"]) for item in LIMITS],
        "training": {"command": command, "seed": spec["training"]["seed"], "scikit_learn": sklearn.__version__},
    }


def _selection_md(card: dict) -> str:
    cv, sel = card["model"]["cv"], card["model"]["selection"]
    rows = "\n".join(
        f"| {f.replace('_', ' ')} | {json.dumps(r['config'])} | {r['roc_auc']:.3f} ± {r['roc_auc_sd']:.3f} | "
        f"{r['pr_auc']:.3f} ± {r['pr_auc_sd']:.3f} | {r.get('test_roc_auc', float('nan')):.3f} | "
        f"{r.get('test_pr_auc', float('nan')):.3f} |" for f, r in cv["families"].items())
    abl, lr, cal = cv["ablation_bmi_missing_indicator"], cv["families"]["logistic_regression"], card["model"]["calibration"]
    return f"""### Model selection (5-fold stratified CV on the training split)
| model | best configuration | CV ROC AUC | CV PR AUC | held-out ROC AUC (reference) | held-out PR AUC (reference) |
|---|---|---|---|---|---|
{rows}

CV winner by PR AUC (tie-break ROC AUC): **{sel['cv_winner'].replace('_', ' ')}**. Served: **calibrated logistic
regression** (C = {card['model']['C']:g}). {sel['why']}

Rule: {sel['rule']} Held-out numbers of the other models are shown for reference only; they played no part in the choice.

Ablation (not served): adding a "BMI missing" flag gives CV ROC AUC {abl['roc_auc']:.3f} and PR AUC {abl['pr_auc']:.3f}
(vs {lr['roc_auc']:.3f} / {lr['pr_auc']:.3f}); the gain comes from
missingness that depends on the outcome in this data set, so the flag is left out.

Calibration: {cal['method']}; a = {cal['a']:.4f}, b = {cal['b']:.4f} ({cal['formula']})."""


def to_markdown(card: dict) -> str:
    m = card["metrics"]
    bands = "\n".join(f"| {b['name']} | {b['range']} | {b['n']} | {b['strokes']} | {b['observed_rate']:.3f} |"
                      for b in m["bands"])
    return f"""## Clinical stroke-risk model (tabular)

Version `{card['version']}` — {card['intended_use']}

### Two readings, not one number
{card['not_fused_with_images']}

### Data
{card['data']['origin']}

**Split:** {card['split']}

**Preprocessing:** {card['preprocessing']}

{_selection_md(card)}

### Held-out metrics (served model)
{m['n_test']} patients, {m['n_test_positive']} with stroke; 95 % CIs from a patient bootstrap
({m['bootstrap']['reps']} reps, seed {m['bootstrap']['seed']}, percentile).

| metric | value | 95 % CI |
|---|---|---|
{metric_rows(m['values'], METRIC_NAMES)}

The 90 %-specificity threshold ({m['threshold']['value']:.4f}) was chosen on out-of-fold training scores and applied
unchanged to the held-out patients. Brier score of always predicting the training prevalence:
{m['threshold']['brier_prevalence_reference']:.4f}.

### Risk bands (thresholds from the training split)
| band | probability | held-out patients | strokes | observed rate |
|---|---|---|---|---|
{bands}

### Known limitations
{bullets(card['limitations'])}

### Reproduce
{reproduce(card['training'], 'scikit-learn', 'scikit_learn')}
"""
