"""Keras CNN for ~100-200 grayscale slices, trained deterministically on 2 CPU threads.

The served extractor is ONE Keras graph whose output is the LAST FEATURE MAP (h, w, K):

- ``trunks`` independently initialised CNN trunks (an ensemble), each 4 blocks of
  (conv3x3-BN-ReLU) x ``convs_per_block`` + 2x2 max-pool, channels ``widths``; their final maps
  (S/16 x S/16) are concatenated along channels;
- optionally a FIXED (non-trainable) "soft intensity band" branch: a 1x1 conv + ReLU + fixed 1x1
  conv computes triangular memberships of each pixel in ``bands`` intensity bands, averaged over
  16x16 cells to the same h x w grid and concatenated. Being part of the graph, it is quantised
  with the rest and stays inside the class activation map.

Serving average-pools that map (``strokelens.reader.model.predictor.Extractor.pool``), so a linear head
over the pooled vector decomposes exactly into a class activation map.

BatchNorm uses momentum ``bn_momentum`` (default 0.9, not Keras' 0.99): a run is only a few hundred
steps (~100 images / batch 16 x 40 epochs), and with 0.99 the moving statistics used at inference
(and by the int8 export) lag the trained weights, which made the trunks' features nearly useless
(grouped-CV softmax AUC ~0.66 vs ~0.84 with 0.9, ``training.select``). With working BatchNorm, two
convs per block (the default) lift the cross-fitted OOF ROC AUC of the logistic head on the training
split from 0.916 (1 conv, momentum 0.99) to 0.957 (4 grouped folds, seed 0, int8 features).

Training: each trunk has its own dropout + softmax layer on its own pooled features and the
losses are summed (independent members trained on the same augmented batches; the band branch
has no trainable weights). Adam with cosine-decay LR, label smoothing, a FIXED number of epochs
(no early stopping, so the same recipe can be run on cross-fitting folds and on all data).
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
    trunks: int = 2
    widths: tuple[int, ...] = (8, 16, 32, 64)
    convs_per_block: int = 2
    bands: int = 8  # fixed intensity-band channels (0 = none)
    l2: float = 1e-4
    bn_momentum: float = 0.9  # BatchNorm moving-statistics momentum (few steps per run: 0.99 lags)
    dropout: float = 0.4
    learning_rate: float = 2e-3
    label_smoothing: float = 0.1
    batch_size: int = 16
    epochs: int = 40
    augment: bool = True
    bag_k: int = 0  # > 0: also a bag (multiple-instance) loss on top-k mean pooled slice logits (see train)
    bag_studies: int = 2  # bags per bag step
    study_targets: str = "naive"  # how training.v2.extractor labels a haemorrhage study's slices ("naive" | "share")
    extra: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.trunks * self.widths[-1] + self.bands

    @property
    def grid(self) -> int:
        return self.input_size // 2 ** len(self.widths)


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


def band_centres(n: int) -> np.ndarray:
    """Centres of ``n`` triangular intensity bands spanning the foreground (0.05-1]."""
    return np.linspace(0.05, 1.0, n + 1)[1:] - (0.95 / n) / 2


def _band_branch(inputs, config: CNNConfig):
    """Fixed layers: (S, S, 1) -> (h, w, bands), the fraction of each cell's pixels in each band (soft)."""
    from keras import layers

    n = config.bands
    centres = band_centres(n)
    half = 0.95 / n  # half-width: neighbouring triangles overlap, memberships sum to ~1 on the foreground
    # tri(x) = [relu(x-c+h) - 2 relu(x-c) + relu(x-c-h)] / h
    w1 = np.ones((1, 1, 1, 3 * n), np.float32)
    b1 = np.concatenate([-(centres - half), -centres, -(centres + half)]).astype(np.float32)
    w2 = np.zeros((1, 1, 3 * n, n), np.float32)
    for i in range(n):
        w2[0, 0, i, i], w2[0, 0, n + i, i], w2[0, 0, 2 * n + i, i] = 1 / half, -2 / half, 1 / half
    ramps = layers.Conv2D(3 * n, 1, activation="relu", trainable=False, name="bands_ramps")
    tri = layers.Conv2D(n, 1, activation="relu", trainable=False, name="bands_triangles")
    x = tri(ramps(inputs))
    ramps.set_weights([w1, b1])
    tri.set_weights([w2, np.zeros(n, np.float32)])
    cell = 2 ** len(config.widths)
    return layers.AveragePooling2D(cell, name="bands_pool")(x)


def build_models(n_classes: int, config: CNNConfig):  # -> tuple[keras.Model, keras.Model]
    """(trainer, extractor) sharing weights. trainer: image -> one softmax per trunk; extractor:
    image (S, S, 1) in [0, 1] -> concatenated last feature map (h, w, K)."""
    import keras
    from keras import layers, regularizers

    reg = regularizers.L2(config.l2)
    inputs = keras.Input((config.input_size, config.input_size, 1), name="image")
    maps, outputs = [], []
    for t in range(config.trunks):
        x = inputs
        for b, width in enumerate(config.widths):
            for c in range(config.convs_per_block):
                x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=reg,
                                  name=f"t{t}_conv{b}_{c}")(x)
                x = layers.BatchNormalization(momentum=config.bn_momentum, name=f"t{t}_bn{b}_{c}")(x)
                x = layers.ReLU(name=f"t{t}_relu{b}_{c}")(x)
            x = layers.MaxPooling2D(2, name=f"t{t}_pool{b}")(x)
        maps.append(x)
        pooled = layers.GlobalAveragePooling2D(name=f"t{t}_embedding")(x)
        dropped = layers.Dropout(config.dropout, name=f"t{t}_dropout")(pooled)
        outputs.append(layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name=f"t{t}_probabilities")(dropped))
    if config.bands:
        maps.append(_band_branch(inputs, config))
    feature_map = layers.Concatenate(name="feature_map")(maps) if len(maps) > 1 else maps[0]
    trainer = keras.Model(inputs, outputs, name="strokelens_trainer")
    extractor = keras.Model(inputs, feature_map, name="strokelens_extractor")
    return trainer, extractor


def _compile(trainer, config: CNNConfig, steps: int) -> None:
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=max(1, steps), alpha=0.02)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                    loss=[keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)] * config.trunks)


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


def ensemble_proba(trainer, x: np.ndarray) -> np.ndarray:
    """Mean of the trunks' softmax outputs (N, C): the CNN's own classifier (a reference head)."""
    out = trainer.predict(x[..., None], batch_size=64, verbose=0)
    out = out if isinstance(out, list) else [out]
    return np.mean([np.asarray(o, np.float64) for o in out], axis=0)


@dataclass(frozen=True)
class Bags:
    """Labelled bags of slices for the multiple-instance loss: ``images`` (M, S, S), ``bag`` (M,) the bag
    index of each image, ``labels`` (B,) 0/1 per bag, and the classes whose logit difference scores a
    slice (``positive`` vs ``negative``)."""

    images: np.ndarray
    bag: np.ndarray
    labels: np.ndarray
    positive: int
    negative: int


def _bag_step(trainer, images: np.ndarray, bag: np.ndarray, labels: np.ndarray, bags: Bags, k: int) -> float:
    """One gradient step on the bag loss: per trunk, each slice's score is its logit difference
    (log p[positive] - log p[negative]); a bag's score is the mean of its top-``k`` slice scores (the
    served pooling's shape, on the CNN's own logits); binary cross-entropy against the bag label, plus
    the layers' L2 terms.

    The forward pass runs in inference mode (dropout off too): a bag batch holds CT slices only, and
    its batch statistics would both normalise it unlike serving and overwrite the BatchNorm moving
    averages every source shares (a first run that trained bags in training mode lost 0.12 DWI slice
    AUC on its first fold)."""
    import tensorflow as tf

    segments = [np.flatnonzero(bag == b) for b in range(len(labels))]
    with tf.GradientTape() as tape:
        outs = trainer(images[..., None], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        loss = 0.0
        for p in outs:
            logit = tf.math.log(p[:, bags.positive] + 1e-7) - tf.math.log(p[:, bags.negative] + 1e-7)
            scores = tf.stack([tf.reduce_mean(tf.math.top_k(tf.gather(logit, seg), min(k, len(seg))).values)
                               for seg in segments])
            loss += tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels.astype(np.float32), logits=scores))
        total = loss + tf.add_n(trainer.losses) if trainer.losses else loss
    grads = tape.gradient(total, trainer.trainable_variables)
    trainer.optimizer.apply_gradients(zip(grads, trainer.trainable_variables))
    return float(loss) / len(outs)


def _bag_batches(bags: Bags, n_per_step: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The bags in a random order, ``n_per_step`` per step (each step's ids sorted)."""
    order = rng.permutation(len(bags.labels))
    return [np.sort(order[i:i + n_per_step]) for i in range(0, len(order), n_per_step)]


def train(x: np.ndarray, y: np.ndarray, n_classes: int, config: CNNConfig, seed: int,
          validation: tuple[np.ndarray, np.ndarray] | None = None, epochs: int | None = None,
          bags: Bags | None = None):
    """Train from scratch for a fixed number of epochs. ``validation`` is only monitored (per-epoch
    ROC AUC of the trunks' mean softmax, for the training-curve chart), never used to stop or select.

    With ``bags`` and ``config.bag_k`` > 0, each epoch is (1) one pass of the slice loss over ``x``, then
    (2) one pass over the bags, ``config.bag_studies`` bags per step, on the same optimizer and learning-
    rate schedule: slices whose own label is unknown (a haemorrhage study's slices) learn only through
    their bag's label.

    Returns (trainer, extractor, history) with history "loss", "bag_loss" (with bags) and (with
    validation) "val_auc".
    """
    import keras

    from training.metrics import roc_auc

    configure(seed)
    trainer, extractor = build_models(n_classes, config)
    n_epochs = epochs or config.epochs
    use_bags = bags is not None and config.bag_k > 0
    bag_steps = int(np.ceil(len(bags.labels) / config.bag_studies)) if use_bags else 0
    steps = (int(np.ceil(len(x) / config.batch_size)) + bag_steps) * n_epochs
    _compile(trainer, config, steps)
    # ``y``: class ids (N,), or soft targets (N, n_classes) whose rows sum to 1
    onehot = (np.asarray(y, np.float32) if np.ndim(y) == 2 else keras.utils.to_categorical(y, n_classes).astype(np.float32))
    history: dict = {"loss": [], "val_auc": [], **({"bag_loss": []} if use_bags else {})}
    for epoch in range(n_epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x))
        batch = augment(x[order], rng) if config.augment else x[order]
        fit = trainer.fit(batch[..., None], [onehot[order]] * config.trunks, batch_size=config.batch_size,
                          epochs=1, shuffle=False, verbose=0)
        history["loss"].append(float(fit.history["loss"][-1]) / config.trunks)
        if use_bags:
            losses = []
            for chosen in _bag_batches(bags, config.bag_studies, rng):
                members = np.flatnonzero(np.isin(bags.bag, chosen))
                local = np.searchsorted(chosen, bags.bag[members])  # bag ids -> 0..len(chosen)-1
                images = augment(bags.images[members], rng) if config.augment else bags.images[members]
                losses.append(_bag_step(trainer, images, local, bags.labels[chosen], bags, config.bag_k))
            history["bag_loss"].append(float(np.mean(losses)))
        if validation is not None:
            history["val_auc"].append(roc_auc(validation[1], ensemble_proba(trainer, validation[0])))
    return trainer, extractor, history
