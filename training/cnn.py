"""A small Keras CNN for ~100-200 grayscale slices, trained deterministically on 2 CPU threads.

Architecture: 4 blocks (conv-BN-ReLU x ``convs_per_block``, 2x2 max-pool) with 16, 32, 64, 128
channels, global average pooling -> ``embedding`` (128-d) -> dropout -> dense softmax. The
softmax layer is only for training; serving uses the extractor (input -> embedding) plus a
separately fitted linear head.

Augmentation (numpy/scipy, seeded per epoch, so runs repeat exactly): rotation +-10 deg,
horizontal flip, shift +-6 %, zoom 0.92-1.08, contrast/brightness +-10 %, Gaussian noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class CNNConfig:
    input_size: int = 128
    widths: tuple[int, ...] = (16, 32, 64, 128)
    convs_per_block: int = 1
    l2: float = 1e-4
    dropout: float = 0.4
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 120
    patience: int = 30
    min_epochs: int = 10  # no early stop (and no "best" epoch) before this: BN statistics settle first
    monitor: str = "val_auc"  # "val_auc" (higher is better) or "val_loss"
    augment: bool = True
    extra: dict = field(default_factory=dict)


def configure(seed: int, threads: int = 2) -> None:
    """Fixed seeds, deterministic ops, ``threads`` CPU threads. Call before building models."""
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # runtime already initialised (e.g. second call in one process)
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_classifier(n_classes: int, config: CNNConfig):  # -> keras.Model
    """The training model: image (S, S, 1) in [0, 1] -> class probabilities; layer "embedding" is the feature."""
    import keras
    from keras import layers, regularizers

    reg = regularizers.L2(config.l2)
    inputs = keras.Input((config.input_size, config.input_size, 1), name="image")
    x = inputs
    for width in config.widths:
        for _ in range(config.convs_per_block):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    x = layers.Dropout(config.dropout)(embedding)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="strokelens_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    return model


def build_extractor(classifier):  # -> keras.Model
    """Input -> embedding, sharing the classifier's trained weights."""
    import keras

    return keras.Model(classifier.input, classifier.get_layer("embedding").output, name="strokelens_extractor")


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomly transformed copies of ``images`` (N, S, S) in [0, 1]; plausible for head CT."""
    out = np.empty_like(images)
    size = images.shape[1]
    centre = (size - 1) / 2.0
    for i, image in enumerate(images):
        angle = np.deg2rad(rng.uniform(-10, 10))
        zoom = rng.uniform(0.92, 1.08)
        shift = rng.uniform(-0.06, 0.06, size=2) * size
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
        offset = centre - rot @ (np.array([centre, centre]) + shift)
        moved = ndimage.affine_transform(image, rot, offset=offset, order=1, mode="constant", cval=0.0)
        if rng.random() < 0.5:
            moved = moved[:, ::-1]
        contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-0.1, 0.1)
        moved = moved * contrast + brightness * (moved > 0.02)  # shift tissue, keep the black background
        moved = moved + rng.normal(0.0, rng.uniform(0.0, 0.03), size=moved.shape)
        out[i] = np.clip(moved, 0.0, 1.0)
    return out


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y)
    return (len(y) / (len(counts) * counts[y])).astype(np.float32)


def _val_scores(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(cross-entropy, ROC AUC) on a validation set; AUC is macro one-vs-rest for >2 classes."""
    from sklearn.metrics import roc_auc_score

    p = model.predict(x[..., None], batch_size=64, verbose=0).astype(np.float64)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))
    if len(np.unique(y)) < 2:
        return loss, float("nan")
    if p.shape[1] == 2:
        return loss, float(roc_auc_score(y, p[:, 1]))
    p = p / p.sum(axis=1, keepdims=True)
    return loss, float(roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1])))


def train(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: CNNConfig,
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int | None = None,
):  # -> tuple[keras.Model, dict]
    """Train from scratch. With ``validation``, early-stop on its loss and restore the best weights.

    Returns (classifier, history) where history has per-epoch "loss", "val_loss" and "best_epoch".
    """
    configure(seed)
    model = build_classifier(n_classes, config)
    weights = _balanced_weights(y)
    n_epochs = epochs or config.epochs
    history: dict = {"loss": [], "val_loss": [], "val_auc": [], "best_epoch": n_epochs}
    best, best_weights, waited = -np.inf, None, 0
    for epoch in range(n_epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x))
        batch = augment(x[order], rng) if config.augment else x[order]
        fit = model.fit(batch[..., None], y[order], sample_weight=weights[order], batch_size=config.batch_size,
                        epochs=1, shuffle=False, verbose=0)
        history["loss"].append(float(fit.history["loss"][-1]))
        if validation is None:
            continue
        loss, auc = _val_scores(model, *validation)
        history["val_loss"].append(loss)
        history["val_auc"].append(auc)
        # Higher is better: AUC first, lower loss breaks ties (AUC on tens of images is coarse).
        score = (auc if np.isfinite(auc) else 0.0) - 1e-3 * loss if config.monitor == "val_auc" else -loss
        if epoch + 1 < config.min_epochs:
            continue
        if score > best + 1e-6:
            best, best_weights, waited, history["best_epoch"] = score, model.get_weights(), 0, epoch + 1
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    return model, history
