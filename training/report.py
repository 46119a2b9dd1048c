"""The image pipeline's reporting stages: evaluate (the held-out test split through the served
path) -> charts -> card. The fitting stages are in :mod:`training.pipeline`."""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image

from training import evaluate, faithfulness, image_charts, model_card, ood, ood_sets
from training.cards import write_card
from training.charts import Chart, roc_chart, write_charts
from training.metrics import BOOTSTRAP_REPS, positive_index
from training.pipeline import TARGET_SENSITIVITY, CrossFit, Data, Model, OperatingPoint, Run

HEADS_METHOD = ("cross-fitting: per grouped fold the CNN is trained on the other folds, each head is fitted on that "
                "CNN's int8 embeddings of its own training images and scored on the held-out fold")


def evaluate_model(run: Run, data: Data, cross: CrossFit, point: OperatingPoint, model: Model) -> tuple[dict, np.ndarray]:
    """``metrics.json`` (also written) and the served model's test probabilities: every test file
    through read_scan (decode, preprocess, model, OOD checks)."""
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    test_idx, labels, positive = data.test_idx, data.labels, data.positive
    predictor = ServedModel(run.out, num_threads=2)
    results = [read_scan(data.samples[i].path.read_bytes(), predictor).result for i in test_idx]
    proba = np.array([[r.probabilities[lab] for lab in labels] for r in results])
    refused = np.array([r.out_of_distribution for r in results])
    latency = []
    for i in test_idx[:20]:
        t0 = time.perf_counter()
        predictor.predictor.extractor.run(data.x[i])
        latency.append((time.perf_counter() - t0) * 1e3)
    threshold = point.threshold if positive else None
    metrics = evaluate.evaluate(data.y[test_idx], proba, [data.groups[i] for i in test_idx], labels, run.seed,
                                200 if run.quick else BOOTSTRAP_REPS, threshold, positive)
    metrics["model_version"] = model.manifest["version"]
    metrics["operating_point"] = {"positive_label": positive, "decision_threshold": point.threshold,
                                  "uncertain_band": model.manifest["uncertain_band"],
                                  "chosen_on": f"OOF training scores (cross-fitting, {len(data.folds)} grouped folds), "
                                               f"target sensitivity >= {TARGET_SENSITIVITY}",
                                  "oof_metrics_at_threshold": point.oof_point,
                                  "test_uncertain_rate": float(np.mean([r.uncertain for r in results]))}
    metrics["ood_false_refusal_rate"] = float(refused.mean()) if len(refused) else None
    metrics["ood_sets"] = ood_sets.evaluate(predictor, [data.samples[i].path.read_bytes() for i in test_idx], run.seed)
    if not (run.quick or run.synthetic):  # the heat map's faithfulness needs lesion masks: a phantom model
        metrics["faithfulness"] = faithfulness.measure(run.seed)
    metrics["ood"] = {"threshold": point.ood_threshold, "image_threshold": model.image_threshold,
                      "percentile": ood.PERCENTILE,
                      "refused_test_files": [data.names[i] for i, r in zip(test_idx, refused) if r],
                      "reasons": sorted({r.ood_reason for r in results if r.out_of_distribution})}
    metrics["calibration"] = calibration_summary(data, point, metrics["metrics"])
    fitted = cross.fitted
    metrics["heads"] = {"method": HEADS_METHOD, "folds": len(data.folds), "table": cross.table,
                        "served": "logistic_regression", "logistic_C": fitted["choice"]["C"],
                        "logistic_oof_auc_by_C": fitted["auc_by_C"], "svm_C": fitted["choice"]["svm_C"]}
    metrics["duplicates"] = data.duplicates
    metrics["validation"] = {"cv_val_auc_last_epoch": [c["val_auc"][-1] for c in cross.curves if c["val_auc"]],
                             "head_parity_max_abs_diff": model.parity}
    metrics["latency_ms_cnn_warm_median_2_threads"] = float(np.median(latency)) if latency else None
    (run.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics, proba


def calibration_summary(data: Data, point: OperatingPoint, test: dict) -> dict:
    """Brier and ECE of the OOF scores before/after Platt scaling, and on the test split."""
    raw = evaluate.point_metrics(data.y[data.train_idx], point.oof_raw, data.labels, None, data.positive)
    calibrated = point.calibration is not None
    return {
        "method": "Platt sigmoid on OOF logits of the logistic head, folded into coef/intercept" if calibrated else None,
        "a": point.calibration[0] if calibrated else None, "b": point.calibration[1] if calibrated else None,
        "oof_brier_before": raw.get("brier"), "oof_ece_before": raw.get("ece"),
        "oof_brier_after": point.oof_point.get("brier"), "oof_ece_after": point.oof_point.get("ece"),
        "test_brier": test.get("brier", {}).get("value"), "test_ece": test.get("ece", {}).get("value"),
    }


def charts(data: Data, cross: CrossFit, point: OperatingPoint, model: Model, metrics: dict,
           proba: np.ndarray) -> list[Chart]:
    labels, y_test, y_tr, x = data.labels, data.y[data.test_idx], data.y[data.train_idx], data.x
    sample_labels = [s.label for s in data.samples]
    sizes = [Image.open(s.path).size for s in data.samples]
    history, curves = dict(model.history), cross.curves
    history["cv_val_auc"] = np.mean([c["val_auc"] for c in curves], axis=0).tolist() if curves else []
    history["cv_loss"] = np.mean([c["loss"] for c in curves], axis=0).tolist() if curves else []
    k_pos = labels.index(data.positive) if data.positive else positive_index(labels)
    series = {"OOF before Platt": (y_tr, point.oof_raw), "OOF after Platt": (y_tr, point.oof_cal)}
    return [
        ("confusion_matrix", "Confusion matrix",
         f"Test-split predictions of the served int8 model vs truth ({metrics['decision_rule']}).",
         image_charts.confusion_chart(metrics["confusion_matrix"]["values"], labels)),
        ("roc_curve", "ROC curve", "Sensitivity vs 1-specificity on the held-out test split.",
         roc_chart(y_test, proba, labels)),
        ("reliability", "Calibration (reliability diagram)",
         "Predicted probability vs observed frequency: held-out test, and OOF training scores before/after Platt scaling.",
         image_charts.reliability_chart(y_test, proba, labels, k=k_pos, series=series)),
        ("heads_comparison", "Heads compared",
         "Cross-fitted OOF ROC AUC (+- SD over folds) and macro-F1 of each head, training split only.",
         image_charts.heads_chart(cross.table)),
        ("class_distribution", "Class distribution", "Images per class in the train and test splits.",
         image_charts.class_chart(model.manifest["data"]["counts"])),
        ("image_sizes", "Image sizes", "Width and height of the original images, per class.",
         image_charts.size_chart(sizes, sample_labels)),
        ("intensity_histogram", "Intensity histogram", "Foreground intensity of the model inputs, per class.",
         image_charts.intensity_chart(x, sample_labels)),
        ("training_loss", "Training curve",
         "Final CNN training loss; mean cross-fitting fold loss and held-out-fold ROC AUC per epoch (monitored only).",
         image_charts.history_chart(history)),
    ]


def write_report(run: Run, data: Data, cross: CrossFit, point: OperatingPoint, model: Model, metrics: dict,
                 proba: np.ndarray) -> None:
    """Charts and the model card."""
    write_charts(run.out / "charts", charts(data, cross, point, model, metrics, proba))
    card = model_card.build_card(model.manifest, metrics, architecture(run.config, model.parameters), run.command)
    write_card(run.out, "model_card", card, model_card.to_markdown(card))


def architecture(config, parameters: int) -> dict:
    blocks = " -> ".join(f"{w}" for w in config.widths)
    bands = (f" + {config.bands} fixed soft intensity-band channels (1x1 conv + ReLU, averaged over "
             f"{2 ** len(config.widths)}x{2 ** len(config.widths)} cells)") if config.bands else ""
    return {
        "summary": f"ensemble of {config.trunks} CNN trunks, each {len(config.widths)} blocks of (conv3x3-BN-ReLU)"
                   f"x{config.convs_per_block} + maxpool, channels {blocks}; last feature maps concatenated{bands} -> "
                   f"{config.grid}x{config.grid}x{config.feature_dim} feature map (the TFLite output), average-pooled at serving",
        "parameters": parameters,
        "input_size": config.input_size,
        "feature_map": [config.grid, config.grid, config.feature_dim],
        "l2": config.l2, "dropout": config.dropout, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "schedule": "Adam, cosine decay to 2 % over all steps",
        "label_smoothing": config.label_smoothing, "epochs": config.epochs,
        "training": "each trunk has its own dropout + softmax on its pooled map during training, losses summed; "
                    "fixed epochs (no early stopping)",
        "augmentation": ("rotation +-10 deg, horizontal flip, shift +-6 %, zoom 0.92-1.08, contrast/brightness +-10 %, "
                         "Gaussian noise"),
    }
