"""The image pipeline's fitting stages (``python -m training.train``): load -> split -> fit
(cross-fitting) -> calibrate -> export. Evaluation and the card are in :mod:`training.report`.

Each stage is a function; small frozen dataclasses carry what the later stages need.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from strokelens.core.catalogue import IMAGE_MODEL_FILES
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.preprocess import to_display
from training import cnn, dedup, evaluate, export, heads, ood
from training.artifacts import clear
from training.datasets import Sample, detect_layout, discover, labels_of, load_inputs
from training.progress import Stopwatch
from training.split import cv_folds, save_split, train_test_split

TARGET_SENSITIVITY = 0.85
UNCERTAIN_BAND = 0.1
POSITIVE_LABEL = "hemorrhage"


@dataclass(frozen=True)
class Run:
    """What the command line asked for."""

    data: Path
    out: Path
    seed: int
    config: cnn.CNNConfig
    folds: int
    quick: bool
    synthetic: bool
    command: str
    watch: Stopwatch


@dataclass(frozen=True)
class Data:
    """The model inputs with labels, groups (near-duplicates merged) and the train/test split."""

    samples: list[Sample]
    labels: list[str]
    x: np.ndarray  # (N, S, S) model inputs
    y: np.ndarray
    names: list[str]  # file paths relative to the data root
    duplicates: dict
    splits: list[str]  # "train" / "test" per sample
    folds: list[tuple[np.ndarray, np.ndarray]]  # grouped folds of the training split (indices into train_idx)

    @property
    def train_idx(self) -> np.ndarray:
        return np.array([i for i, sp in enumerate(self.splits) if sp == "train"])

    @property
    def test_idx(self) -> np.ndarray:
        return np.array([i for i, sp in enumerate(self.splits) if sp == "test"])

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.samples]

    @property
    def positive(self) -> str | None:
        return POSITIVE_LABEL if POSITIVE_LABEL in self.labels else None


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold results of the recipe (CNN -> int8 -> heads) on the training split."""

    maps: list[np.ndarray]  # per fold: int8 feature maps of ALL training images under that fold's CNN
    curves: list[dict]  # per fold: CNN training history with held-out-fold AUC
    fitted: dict  # heads.cross_fit
    table: list[dict]  # heads.compare


@dataclass(frozen=True)
class OperatingPoint:
    """Platt calibration, decision threshold and OOD threshold, all from OOF training scores."""

    calibration: tuple[float, float] | None
    oof_raw: np.ndarray
    oof_cal: np.ndarray
    threshold: float
    oof_point: dict
    ood_threshold: float


@dataclass(frozen=True)
class Model:
    """The exported final model."""

    manifest: dict
    history: dict
    parameters: int
    parity: float
    image_threshold: float


def load(run: Run) -> Data:
    """Discover and preprocess the images; near-duplicates (perceptual hashes) join one group."""
    samples = discover(run.data)
    labels = labels_of(samples)
    x, samples = load_inputs(samples, run.config.input_size)
    y = np.array([labels.index(s.label) for s in samples])
    names = [s.path.relative_to(run.data).as_posix() for s in samples]
    pairs = dedup.find_duplicates(x)
    before = [s.group for s in samples]
    samples = [replace(s, group=g) for s, g in zip(samples, dedup.merge_groups(before, pairs))]
    duplicates = dedup.report(pairs, names, before)
    run.watch.log(f"{len(samples)} images; {duplicates['pairs_found']} near-duplicate pairs, "
                  f"{duplicates['new_pairs']} not already grouped")
    return Data(samples, labels, x, y, names, duplicates, splits=[], folds=[])


def split(run: Run, data: Data) -> Data:
    """Grouped, stratified train/test split and grouped folds of the training split."""
    data = replace(data, splits=train_test_split(data.samples, run.seed))
    train = data.train_idx
    folds = cv_folds([data.samples[i].label for i in train], [data.groups[i] for i in train], run.folds, run.seed)
    return replace(data, folds=folds)


def fit(run: Run, data: Data) -> CrossFit:
    """Cross-fitting: per grouped fold the CNN -> int8 -> heads recipe; OOF scores of every head."""
    x_tr, y_tr, n_classes = data.x[data.train_idx], data.y[data.train_idx], len(data.labels)
    maps, cnn_oof, curves = [], np.zeros((len(x_tr), n_classes)), []
    with tempfile.TemporaryDirectory() as tmp:
        for f, (tr, val) in enumerate(data.folds):
            trainer, extractor, hist = cnn.train(x_tr[tr], y_tr[tr], n_classes, run.config, run.seed,
                                                 validation=(x_tr[val], y_tr[val]))
            cnn_oof[val] = cnn.ensemble_proba(trainer, x_tr[val])
            path = Path(tmp) / f"fold{f}.tflite"
            export.to_int8_tflite(extractor, x_tr[tr], path)
            maps.append(export.feature_maps(path, x_tr))
            curves.append(hist)
            run.watch.log(f"fold {f + 1}/{len(data.folds)}: val AUC (CNN softmax) {hist['val_auc'][-1]:.3f}")
    fitted = heads.cross_fit(data.folds, maps, cnn_oof, y_tr, n_classes, run.seed,
                             bigru_epochs=2 if run.quick else 40)
    table = heads.compare(fitted["oof"], y_tr, data.folds)
    run.watch.log("heads: " + ", ".join(f"{r['head']} {r['oof_roc_auc']:.3f}" for r in table))
    return CrossFit(maps, curves, fitted, table)


def calibrate(data: Data, cross: CrossFit) -> OperatingPoint:
    """Platt scaling and the operating threshold on OOF scores of the served head (logistic
    regression); the embedding OOD threshold on OOF distances."""
    y_tr, labels, positive = data.y[data.train_idx], data.labels, data.positive
    binary = len(labels) == 2
    logit, oof_raw = cross.fitted["logit"], cross.fitted["oof"]["logistic_regression"]
    calibration = heads.platt(logit, y_tr) if binary else None
    oof_cal = heads.platt_proba(logit, calibration) if calibration is not None else oof_raw
    threshold = 0.5
    if positive is not None and binary:
        pos = labels.index(positive)
        threshold = heads.threshold_for_sensitivity(oof_cal[:, pos], y_tr == pos, TARGET_SENSITIVITY)
    oof_point = evaluate.point_metrics(y_tr, oof_cal, labels, threshold if positive else None, positive)
    distances = ood.oof_distances(data.folds, [m.mean(axis=(1, 2)) for m in cross.maps], len(y_tr))
    return OperatingPoint(calibration, oof_raw, oof_cal, threshold, oof_point,
                          float(np.percentile(distances, ood.PERCENTILE)))


def export_model(run: Run, data: Data, cross: CrossFit, point: OperatingPoint) -> Model:
    """The final CNN on all training images, its int8 export, the head, the OOD models, the manifest."""
    out, train = run.out, data.train_idx
    x_tr, y_tr = data.x[train], data.y[train]
    clear(out, IMAGE_MODEL_FILES)  # this pipeline's files from a previous run, nothing else
    trainer, extractor, history = cnn.train(x_tr, y_tr, len(data.labels), run.config, run.seed)
    tflite_bytes = export.to_int8_tflite(extractor, x_tr, out / "extractor.tflite")
    # float64: scikit-learn keeps float32 inputs in float32, which would miss the 1e-6 parity with numpy.
    feats_train = export.embed(out / "extractor.tflite", x_tr).astype(np.float64)
    pipeline = heads.make_logreg(cross.fitted["choice"]["C"], run.seed).fit(feats_train, y_tr)
    parity = export.save_head(pipeline, data.labels, out, feats_train, point.calibration)
    ood.save(out / "ood.npz", feats_train, point.ood_threshold)
    # The heat map's reference: the mean feature map of the training slices (see strokelens.reader.model.cam).
    np.savez(out / "cam_baseline.npz", mean_feature_map=export.feature_maps(out / "extractor.tflite", x_tr).mean(axis=0))
    displays = [to_display(decode_image(data.samples[i].path.read_bytes()))[0] for i in train]
    image_threshold = ood.fit_image_model(displays, [data.groups[i] for i in train], out / "ood_image.npz")
    run.watch.log(f"final CNN trained and exported ({tflite_bytes} bytes)")
    manifest = build_manifest(run, data, cross, point, embedding_dim=int(feats_train.shape[1]),
                              image_threshold=image_threshold, tflite_bytes=tflite_bytes)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    save_split(data.samples, data.splits, run.data, out / "split.json", run.seed)
    parameters = int(sum(np.prod(w.shape) for w in extractor.weights))
    return Model(manifest, history, parameters, parity, image_threshold)


def build_manifest(run: Run, data: Data, cross: CrossFit, point: OperatingPoint, *, embedding_dim: int,
                   image_threshold: float, tflite_bytes: int) -> dict:
    import tensorflow as tf

    from strokelens.core.catalogue import version_hash

    positive, threshold, calibration = data.positive, point.threshold, point.calibration
    manifest = {
        "labels": data.labels,
        "input_size": run.config.input_size,
        "window": "brain",
        # What the model has seen; the OOD checks refuse the other modalities (strokelens.reader.model.ood).
        "modalities": sorted({s.modality or "CT" for s in data.samples}),
        "synthetic": run.synthetic,
        "seed": run.seed,
        "data": {"path": str(run.data), "layout": detect_layout(run.data), "counts": counts(data),
                 "groups_file": (run.data / "groups.csv").is_file(),
                 "split_method": "preset" if all(s.split for s in data.samples) else "StratifiedGroupKFold"},
        "created_by": "make train",
        "embedding_dim": embedding_dim,
        "feature_map": [int(v) for v in cross.maps[0].shape[1:]],
        "tensorflow": tf.__version__,
        "head": "logistic_regression",
        "head_C": cross.fitted["choice"]["C"],
        "calibration": {"method": "Platt (sigmoid) on OOF logits, folded into the linear head",
                        "a": calibration[0], "b": calibration[1]} if calibration else None,
        "positive_label": positive,
        "decision_threshold": threshold,
        "uncertain_band": UNCERTAIN_BAND,
        "operating_point": (f"threshold {threshold} chosen on OOF training scores for sensitivity >= {TARGET_SENSITIVITY}"
                            if positive else "argmax"),
        "ood": {"method": "Ledoit-Wolf Mahalanobis distances of the image statistics and of the pooled int8 embedding",
                "threshold": point.ood_threshold, "image_threshold": image_threshold, "percentile": ood.PERCENTILE},
        "extractor_bytes": tflite_bytes,
    }
    return {"version": version_hash(run.out, manifest), **manifest}


def counts(data: Data) -> dict[str, dict[str, int]]:
    """Images per class in each split."""
    labels = [s.label for s in data.samples]
    pairs = Counter(zip(data.splits, labels))
    return {sp: {lab: pairs[(sp, lab)] for lab in sorted(set(labels))} for sp in ("train", "test")}

