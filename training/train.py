"""``python -m training.train``: data -> CNN -> int8 TFLite -> head -> evaluation -> artifacts.

Example (the ``make train`` target)::

    python -m training.train --data ../shared/data/ct-hemorrhage --out functions/strokelens/artifacts --seed 0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

if importlib.util.find_spec("strokelens") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from training import cnn, evaluate, export, model_card  # noqa: E402
from training.datasets import detect_layout, discover, labels_of, load_inputs  # noqa: E402
from training.split import cv_folds, save_split, train_test_split  # noqa: E402

# What this pipeline writes into --out; only these are removed before a run (other tools share the folder).
ARTIFACT_FILES = ("extractor.tflite", "head.npz", "head.joblib", "labels.json", "manifest.json", "metrics.json",
                  "split.json", "model_card.json", "model_card.md")
VALIDATION_FOLDS = 5  # one grouped fold (~20 % of training groups) early-stops the CNN
HEAD_FOLDS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/ct-hemorrhage", help="data root (three layouts read)")
    parser.add_argument("--out", default="functions/strokelens/artifacts", help="artifact folder (cleaned first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=cnn.CNNConfig.epochs)
    parser.add_argument("--input-size", type=int, default=cnn.CNNConfig.input_size)
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
    return {
        "summary": f"{len(config.widths)} blocks of (conv3x3-BN-ReLU)x{config.convs_per_block} + maxpool, "
                   f"channels {blocks}, global average pooling -> embedding",
        "parameters": parameters,
        "input_size": config.input_size,
        "l2": config.l2, "dropout": config.dropout, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "max_epochs": config.epochs, "patience": config.patience,
        "augmentation": "rotation +-10 deg, horizontal flip, shift +-6 %, zoom 0.92-1.08, contrast/brightness +-10 %, Gaussian noise",
    }


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    cnn.configure(args.seed)
    import tensorflow as tf

    from strokelens.model.artifacts import version_hash
    from strokelens.model.predictor import Predictor

    data, out = Path(args.data), Path(args.out)
    synthetic = bool(args.synthetic or "phantom" in str(args.data).lower())
    config = cnn.CNNConfig(input_size=args.input_size, epochs=3 if args.quick else args.epochs,
                           patience=3 if args.quick else cnn.CNNConfig.patience,
                           min_epochs=1 if args.quick else cnn.CNNConfig.min_epochs)
    samples = discover(data)
    labels = labels_of(samples)
    x, samples = load_inputs(samples, config.input_size)
    y = np.array([labels.index(s.label) for s in samples])
    splits = train_test_split(samples, args.seed)
    train_idx = np.array([i for i, sp in enumerate(splits) if sp == "train"])
    test_idx = np.array([i for i, sp in enumerate(splits) if sp == "test"])
    groups = [s.group for s in samples]
    clean(out)

    # CNN: early stopping on one grouped validation fold of the training split.
    tr_groups = [groups[i] for i in train_idx]
    inner_tr, inner_val = cv_folds([samples[i].label for i in train_idx], tr_groups, VALIDATION_FOLDS, args.seed)[0]
    classifier, history = cnn.train(x[train_idx][inner_tr], y[train_idx][inner_tr], len(labels), config, args.seed,
                                    validation=(x[train_idx][inner_val], y[train_idx][inner_val]))
    extractor = cnn.build_extractor(classifier)

    # int8 TFLite + head on embeddings from the served extractor.
    tflite_bytes = export.to_int8_tflite(extractor, x[train_idx], out / "extractor.tflite")
    feats_train = export.embed(out / "extractor.tflite", x[train_idx])
    head_folds = cv_folds([samples[i].label for i in train_idx], tr_groups, HEAD_FOLDS, args.seed)
    pipeline, head_info = export.fit_head(feats_train, y[train_idx], head_folds, args.seed)
    parity = export.save_head(pipeline, labels, out, feats_train)

    manifest = {
        "version": version_hash(out),
        "labels": labels,
        "input_size": config.input_size,
        "window": "brain",
        "synthetic": synthetic,
        "seed": args.seed,
        "data": {"path": str(args.data), "layout": detect_layout(data), "counts": _counts([s.label for s in samples], splits),
                 "groups_file": (data / "groups.csv").is_file(),
                 "split_method": "preset" if all(s.split for s in samples) else "StratifiedGroupKFold"},
        "created_by": "make train",
        "embedding_dim": int(feats_train.shape[1]),
        "tensorflow": tf.__version__,
        "head": "logistic_regression",
        "head_C": head_info["C"],
        "decision_threshold": 0.5,
        "extractor_bytes": tflite_bytes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    save_split(samples, splits, data, out / "split.json", args.seed)

    # Held-out test through the served path.
    predictor = Predictor(out, num_threads=2)
    proba = np.array([[predictor.predict(x[i]).probabilities[lab] for lab in labels] for i in test_idx])
    test_groups = [groups[i] for i in test_idx]
    reps = 200 if args.quick else evaluate.BOOTSTRAP_REPS
    metrics = evaluate.evaluate(y[test_idx], proba, test_groups, labels, args.seed, reps)
    metrics["model_version"] = manifest["version"]
    metrics["validation"] = {"best_epoch": history["best_epoch"], "epochs_run": len(history["loss"]),
                             "monitor": config.monitor,
                             "val_auc_at_best": history["val_auc"][history["best_epoch"] - 1] if history["val_auc"] else None,
                             "val_loss_at_best": history["val_loss"][history["best_epoch"] - 1] if history["val_loss"] else None,
                             "head_cv_auc_by_C": head_info["cv_auc_by_C"], "head_C": head_info["C"],
                             "head_parity_max_abs_diff": parity}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    sample_labels = [s.label for s in samples]
    sizes = [Image.open(s.path).size for s in samples]
    evaluate.write_charts(out / "charts", [
        ("confusion_matrix", "Confusion matrix", "Test-split predictions of the served int8 model vs truth.",
         evaluate.confusion_chart(metrics["confusion_matrix"]["values"], labels)),
        ("roc_curve", "ROC curve", "Sensitivity vs 1-specificity on the held-out test split.",
         evaluate.roc_chart(y[test_idx], proba, labels)),
        ("reliability", "Reliability diagram", "Predicted probability vs observed frequency (5 bins, test split).",
         evaluate.reliability_chart(y[test_idx], proba, labels)),
        ("class_distribution", "Class distribution", "Images per class in the train and test splits.",
         evaluate.class_chart(manifest["data"]["counts"])),
        ("image_sizes", "Image sizes", "Width and height of the original images, per class.",
         evaluate.size_chart(sizes, sample_labels)),
        ("intensity_histogram", "Intensity histogram", "Foreground intensity of the model inputs, per class.",
         evaluate.intensity_chart(x, sample_labels)),
        ("training_loss", "Training curve", "CNN training and grouped-validation loss per epoch.",
         evaluate.history_chart(history)),
    ])

    params = int(sum(np.prod(w.shape) for w in extractor.weights))
    command = " ".join(["python -m training.train", "--data", str(args.data), "--out", str(args.out), "--seed", str(args.seed),
                        "--epochs", str(args.epochs), "--input-size", str(args.input_size)]
                       + ["--synthetic"] * args.synthetic + ["--quick"] * args.quick)
    card = model_card.build_card(manifest, metrics, architecture(config, params), command)
    model_card.write_card(out, card)
    metrics["runtime_s"] = round(time.perf_counter() - started, 1)
    return metrics


def summary(metrics: dict) -> str:
    lines = [f"model version {metrics['model_version']}  (test: {metrics['n_images']} images, {metrics['n_groups']} groups)"]
    for key, v in metrics["metrics"].items():
        lines.append(f"  {key:28s} {v['value']:.3f}  [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
    lines.append(f"  confusion matrix {metrics['confusion_matrix']['values']}  runtime {metrics['runtime_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    print(summary(run(parse_args(argv))))


if __name__ == "__main__":
    main()
