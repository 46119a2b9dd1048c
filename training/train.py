"""``python -m training.train``: data -> CNN -> int8 TFLite -> head -> evaluation -> artifacts.

Example (the ``make train`` target)::

    python -m training.train --data ../shared/data/ct-hemorrhage --out functions/strokelens/artifacts --seed 0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

if importlib.util.find_spec("strokelens") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from strokelens.reader.imaging.decode import decode_image  # noqa: E402
from strokelens.reader.imaging.preprocess import to_display  # noqa: E402
from training import cnn, dedup, evaluate, export, faithfulness, heads, model_card, ood, ood_sets  # noqa: E402
from training.datasets import detect_layout, discover, labels_of, load_inputs  # noqa: E402
from training.split import cv_folds, save_split, train_test_split  # noqa: E402

# What this pipeline writes into --out; only these are removed before a run (other tools share the folder).
ARTIFACT_FILES = ("extractor.tflite", "head.npz", "head.joblib", "labels.json", "manifest.json", "metrics.json",
                  "split.json", "model_card.json", "model_card.md", "ood.npz", "ood_image.npz", "cam_baseline.npz")
CROSS_FIT_FOLDS = 4  # grouped folds of the training split: OOF scores for head choice, calibration, threshold, OOD
TARGET_SENSITIVITY = 0.85
UNCERTAIN_BAND = 0.1
POSITIVE_LABEL = "hemorrhage"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ct-hemorrhage", help="data root (three layouts read)")
    parser.add_argument("--out", default="functions/strokelens/artifacts", help="artifact folder (cleaned first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=cnn.CNNConfig.epochs)
    parser.add_argument("--input-size", type=int, default=cnn.CNNConfig.input_size)
    parser.add_argument("--trunks", type=int, default=cnn.CNNConfig.trunks)
    parser.add_argument("--folds", type=int, default=CROSS_FIT_FOLDS)
    parser.add_argument("--synthetic", action="store_true", help="mark the artifacts as trained on phantoms")
    parser.add_argument("--quick", action="store_true", help="a few epochs, fewer bootstrap reps (CI smoke run)")
    return parser.parse_args(argv)


def clean(out: Path) -> None:
    """Remove this pipeline's artifacts from a previous run (ARTIFACT_FILES and the charts its
    ``charts/index.json`` lists), nothing else: other tools share the folder."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        (out / name).unlink(missing_ok=True)
    index = out / "charts" / "index.json"
    if index.is_file():
        for chart in json.loads(index.read_text()):
            (out / "charts" / f"{Path(chart['id']).name}.json").unlink(missing_ok=True)
        index.unlink()


def _counts(labels: list[str], splits: list[str]) -> dict[str, dict[str, int]]:
    pairs = Counter(zip(splits, labels))
    return {sp: {lab: pairs[(sp, lab)] for lab in sorted(set(labels))} for sp in ("train", "test")}


def architecture(config: cnn.CNNConfig, parameters: int) -> dict:
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
        "augmentation": "rotation +-10 deg, horizontal flip, shift +-6 %, zoom 0.92-1.08, contrast/brightness +-10 %, Gaussian noise",
    }


def _log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    cnn.configure(args.seed)
    import tensorflow as tf

    from strokelens.core.catalogue import version_hash
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    data, out = Path(args.data), Path(args.out)
    synthetic = bool(args.synthetic or "phantom" in str(args.data).lower())
    config = cnn.CNNConfig(input_size=args.input_size, epochs=3 if args.quick else args.epochs,
                           trunks=1 if args.quick else args.trunks)
    n_folds = 2 if args.quick else args.folds
    samples = discover(data)
    labels = labels_of(samples)
    x, samples = load_inputs(samples, config.input_size)
    y = np.array([labels.index(s.label) for s in samples])
    names = [s.path.relative_to(data).as_posix() for s in samples]

    # Near-duplicates (perceptual hashes of the model input) join one split group with groups.csv.
    pairs = dedup.find_duplicates(x)
    before = [s.group for s in samples]
    merged = dedup.merge_groups(before, pairs)
    samples = [replace(s, group=g) for s, g in zip(samples, merged)]
    duplicates = dedup.report(pairs, names, before)
    _log(started, f"{len(samples)} images; {duplicates['pairs_found']} near-duplicate pairs, "
                  f"{duplicates['new_pairs']} not already grouped")

    splits = train_test_split(samples, args.seed)
    train_idx = np.array([i for i, sp in enumerate(splits) if sp == "train"])
    test_idx = np.array([i for i, sp in enumerate(splits) if sp == "test"])
    groups = [s.group for s in samples]
    clean(out)
    x_tr, y_tr = x[train_idx], y[train_idx]
    tr_labels, tr_groups = [samples[i].label for i in train_idx], [groups[i] for i in train_idx]

    # Cross-fitting: the recipe (CNN -> int8 -> head) per grouped fold of the training split.
    folds = cv_folds(tr_labels, tr_groups, n_folds, args.seed)
    maps, cnn_oof, curves = [], np.zeros((len(train_idx), len(labels))), []
    with tempfile.TemporaryDirectory() as tmp:
        for f, (tr, val) in enumerate(folds):
            trainer, extractor, hist = cnn.train(x_tr[tr], y_tr[tr], len(labels), config, args.seed,
                                                 validation=(x_tr[val], y_tr[val]))
            cnn_oof[val] = cnn.ensemble_proba(trainer, x_tr[val])
            path = Path(tmp) / f"fold{f}.tflite"
            export.to_int8_tflite(extractor, x_tr[tr], path)
            maps.append(export.feature_maps(path, x_tr))
            curves.append(hist)
            _log(started, f"fold {f + 1}/{len(folds)}: val AUC (CNN softmax) {heads.auc(y_tr[val], cnn_oof[val]):.3f}")
    fitted = heads.cross_fit(folds, maps, cnn_oof, y_tr, len(labels), args.seed, bigru_epochs=2 if args.quick else 40)
    table = heads.compare(fitted["oof"], y_tr, folds)
    _log(started, "heads: " + ", ".join(f"{r['head']} {r['oof_roc_auc']:.3f}" for r in table))

    # Operating point and calibration, on OOF scores of the served head (logistic regression).
    binary = len(labels) == 2
    positive = POSITIVE_LABEL if POSITIVE_LABEL in labels else None
    calibration = heads.platt(fitted["logit"], y_tr) if binary else None
    oof_raw = fitted["oof"]["logistic_regression"]
    if calibration is not None:
        p1 = 1.0 / (1.0 + np.exp(-(calibration[0] * fitted["logit"] + calibration[1])))
        oof_cal = np.stack([1 - p1, p1], axis=1)
    else:
        oof_cal = oof_raw
    threshold, band = 0.5, UNCERTAIN_BAND
    if positive is not None and binary:
        pos = labels.index(positive)
        threshold = heads.threshold_for_sensitivity(oof_cal[:, pos], y_tr == pos, TARGET_SENSITIVITY)
    oof_point = evaluate.point_metrics(y_tr, oof_cal, labels, threshold if positive else None, positive)
    oof_distance = ood.oof_distances(folds, [m.mean(axis=(1, 2)) for m in maps], len(train_idx))
    ood_threshold = float(np.percentile(oof_distance, ood.PERCENTILE))

    # The final CNN on all training images, its int8 export, the head and the OOD model.
    trainer, extractor, history = cnn.train(x_tr, y_tr, len(labels), config, args.seed)
    tflite_bytes = export.to_int8_tflite(extractor, x_tr, out / "extractor.tflite")
    # float64: scikit-learn keeps float32 inputs in float32, which would miss the 1e-6 parity with numpy.
    feats_train = export.embed(out / "extractor.tflite", x_tr).astype(np.float64)
    pipeline = heads.make_logreg(fitted["choice"]["C"], args.seed).fit(feats_train, y_tr)
    parity = export.save_head(pipeline, labels, out, feats_train, calibration)
    ood.save(out / "ood.npz", feats_train, ood_threshold)
    # The heat map's reference: the mean feature map of the training slices (see strokelens.reader.model.cam).
    np.savez(out / "cam_baseline.npz", mean_feature_map=export.feature_maps(out / "extractor.tflite", x_tr).mean(axis=0))
    displays_tr = [to_display(decode_image(samples[i].path.read_bytes()))[0] for i in train_idx]
    image_threshold = ood.fit_image_model(displays_tr, tr_groups, out / "ood_image.npz")
    _log(started, f"final CNN trained and exported ({tflite_bytes} bytes)")

    manifest = {
        "version": version_hash(out),
        "labels": labels,
        "input_size": config.input_size,
        "window": "brain",
        # What the model has seen; the OOD checks refuse the other modalities (strokelens.reader.model.ood).
        "modalities": sorted({s.modality or "CT" for s in samples}),
        "synthetic": synthetic,
        "seed": args.seed,
        "data": {"path": str(args.data), "layout": detect_layout(data), "counts": _counts([s.label for s in samples], splits),
                 "groups_file": (data / "groups.csv").is_file(),
                 "split_method": "preset" if all(s.split for s in samples) else "StratifiedGroupKFold"},
        "created_by": "make train",
        "embedding_dim": int(feats_train.shape[1]),
        "feature_map": [int(v) for v in maps[0].shape[1:]],
        "tensorflow": tf.__version__,
        "head": "logistic_regression",
        "head_C": fitted["choice"]["C"],
        "calibration": {"method": "Platt (sigmoid) on OOF logits, folded into the linear head",
                        "a": calibration[0], "b": calibration[1]} if calibration else None,
        "positive_label": positive,
        "decision_threshold": threshold,
        "uncertain_band": band,
        "operating_point": (f"threshold {threshold} chosen on OOF training scores for sensitivity >= {TARGET_SENSITIVITY}"
                            if positive else "argmax"),
        "ood": {"method": "Ledoit-Wolf Mahalanobis distances of the image statistics and of the pooled int8 embedding",
                "threshold": ood_threshold, "image_threshold": image_threshold, "percentile": ood.PERCENTILE},
        "extractor_bytes": tflite_bytes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    save_split(samples, splits, data, out / "split.json", args.seed)

    # Held-out test through the served path (read_scan: decode, preprocess, model, OOD checks).
    predictor = ServedModel(out, num_threads=2)
    results = [read_scan(samples[i].path.read_bytes(), predictor).result for i in test_idx]
    proba = np.array([[r.probabilities[lab] for lab in labels] for r in results])
    refused = np.array([r.out_of_distribution for r in results])
    latency = []
    for i in test_idx[:20]:
        t0 = time.perf_counter()
        predictor.predictor.extractor.run(x[i])
        latency.append((time.perf_counter() - t0) * 1e3)
    test_groups = [groups[i] for i in test_idx]
    reps = 200 if args.quick else evaluate.BOOTSTRAP_REPS
    metrics = evaluate.evaluate(y[test_idx], proba, test_groups, labels, args.seed, reps,
                                threshold if positive else None, positive)
    metrics["model_version"] = manifest["version"]
    metrics["operating_point"] = {"positive_label": positive, "decision_threshold": threshold, "uncertain_band": band,
                                  "chosen_on": f"OOF training scores (cross-fitting, {len(folds)} grouped folds), "
                                               f"target sensitivity >= {TARGET_SENSITIVITY}",
                                  "oof_metrics_at_threshold": oof_point,
                                  "test_uncertain_rate": float(np.mean([r.uncertain for r in results]))}
    metrics["ood_false_refusal_rate"] = float(refused.mean()) if len(refused) else None
    metrics["ood_sets"] = ood_sets.evaluate(predictor, [samples[i].path.read_bytes() for i in test_idx], args.seed)
    if not (args.quick or synthetic):  # the heat map's faithfulness needs lesion masks: a phantom model
        metrics["faithfulness"] = faithfulness.measure(args.seed)
    metrics["ood"] = {"threshold": ood_threshold, "image_threshold": image_threshold, "percentile": ood.PERCENTILE,
                      "refused_test_files": [names[i] for i, r in zip(test_idx, refused) if r],
                      "reasons": sorted({r.ood_reason for r in results if r.out_of_distribution})}
    metrics["calibration"] = {
        "method": "Platt sigmoid on OOF logits of the logistic head, folded into coef/intercept" if calibration else None,
        "a": calibration[0] if calibration else None, "b": calibration[1] if calibration else None,
        "oof_brier_before": oof_point_raw(y_tr, oof_raw, labels, positive, "brier"),
        "oof_ece_before": oof_point_raw(y_tr, oof_raw, labels, positive, "ece"),
        "oof_brier_after": oof_point.get("brier"), "oof_ece_after": oof_point.get("ece"),
        "test_brier": metrics["metrics"].get("brier", {}).get("value"), "test_ece": metrics["metrics"].get("ece", {}).get("value"),
    }
    metrics["heads"] = {"method": "cross-fitting: per grouped fold the CNN is trained on the other folds, each head is "
                                  "fitted on that CNN's int8 embeddings of its own training images and scored on the "
                                  "held-out fold", "folds": len(folds), "table": table,
                        "served": "logistic_regression", "logistic_C": fitted["choice"]["C"],
                        "logistic_oof_auc_by_C": fitted["auc_by_C"], "svm_C": fitted["choice"]["svm_C"]}
    metrics["duplicates"] = duplicates
    metrics["validation"] = {"cv_val_auc_last_epoch": [c["val_auc"][-1] for c in curves if c["val_auc"]],
                             "head_parity_max_abs_diff": parity}
    metrics["latency_ms_cnn_warm_median_2_threads"] = float(np.median(latency)) if latency else None
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    sample_labels = [s.label for s in samples]
    sizes = [Image.open(s.path).size for s in samples]
    history["cv_val_auc"] = np.mean([c["val_auc"] for c in curves], axis=0).tolist() if curves else []
    history["cv_loss"] = np.mean([c["loss"] for c in curves], axis=0).tolist() if curves else []
    k_pos = labels.index(positive) if positive else evaluate.positive_index(labels)
    charts = [
        ("confusion_matrix", "Confusion matrix", f"Test-split predictions of the served int8 model vs truth ({metrics['decision_rule']}).",
         evaluate.confusion_chart(metrics["confusion_matrix"]["values"], labels)),
        ("roc_curve", "ROC curve", "Sensitivity vs 1-specificity on the held-out test split.",
         evaluate.roc_chart(y[test_idx], proba, labels)),
        ("reliability", "Calibration (reliability diagram)",
         "Predicted probability vs observed frequency: held-out test, and OOF training scores before/after Platt scaling.",
         evaluate.reliability_chart(y[test_idx], proba, labels, k=k_pos,
                                    series={"OOF before Platt": (y_tr, oof_raw), "OOF after Platt": (y_tr, oof_cal)})),
        ("heads_comparison", "Heads compared", "Cross-fitted OOF ROC AUC (+- SD over folds) and macro-F1 of each head, training split only.",
         evaluate.heads_chart(table)),
        ("class_distribution", "Class distribution", "Images per class in the train and test splits.",
         evaluate.class_chart(manifest["data"]["counts"])),
        ("image_sizes", "Image sizes", "Width and height of the original images, per class.",
         evaluate.size_chart(sizes, sample_labels)),
        ("intensity_histogram", "Intensity histogram", "Foreground intensity of the model inputs, per class.",
         evaluate.intensity_chart(x, sample_labels)),
        ("training_loss", "Training curve", "Final CNN training loss; mean cross-fitting fold loss and held-out-fold ROC AUC per epoch (monitored only).",
         evaluate.history_chart(history)),
    ]
    evaluate.write_charts(out / "charts", charts)

    params = int(sum(np.prod(w.shape) for w in extractor.weights))
    command = " ".join(["python -m training.train", "--data", str(args.data), "--out", str(args.out), "--seed", str(args.seed),
                        "--epochs", str(args.epochs), "--input-size", str(args.input_size), "--trunks", str(args.trunks),
                        "--folds", str(args.folds)] + ["--synthetic"] * args.synthetic + ["--quick"] * args.quick)
    card = model_card.build_card(manifest, metrics, architecture(config, params), command)
    model_card.write_card(out, card)
    metrics["runtime_s"] = round(time.perf_counter() - started, 1)
    return metrics


def oof_point_raw(y: np.ndarray, proba: np.ndarray, labels: list[str], positive: str | None, key: str) -> float | None:
    return evaluate.point_metrics(y, proba, labels, None, positive).get(key)


def summary(metrics: dict) -> str:
    lines = [f"model version {metrics['model_version']}  (test: {metrics['n_images']} images, {metrics['n_groups']} groups)"]
    for key, v in metrics["metrics"].items():
        lines.append(f"  {key:28s} {v['value']:.3f}  [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
    lines.append(f"  decision rule: {metrics['decision_rule']}")
    lines.append(f"  confusion matrix {metrics['confusion_matrix']['values']}  runtime {metrics['runtime_s']} s")
    lines.append(f"  OOD false-refusal rate (test) {metrics['ood_false_refusal_rate']}")
    for row in metrics["heads"]["table"]:
        lines.append(f"  head {row['head']:20s} OOF AUC {row['oof_roc_auc']:.3f}  macro-F1 {row['oof_macro_f1']:.3f}")
    dup = metrics["duplicates"]
    lines.append(f"  near-duplicate pairs {dup['pairs_found']} ({dup['new_pairs']} not in groups.csv): "
                 + ", ".join(f"{p['a']}~{p['b']}" for p in dup["pairs"] if not p["already_grouped"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    print(summary(run(parse_args(argv))))


if __name__ == "__main__":
    main()
