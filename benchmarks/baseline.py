"""The float Keras twin of the served model, built from training/cnn.py (TensorFlow children only).
Every model file is found through :class:`strokelens.core.catalogue.Catalogue`.

The served extractor's architecture is read from the model card (``model.extractor``: input
size, trunks, channel widths, band channels) so the baseline matches the artifacts being
served even while training/cnn.py's defaults move (model v2's card has no such block: one trunk,
as training/v2/train.py trains, with training/cnn.py's widths); the twin is extractor -> global average
pooling -> dense softmax (the served numpy head, in float). Weights are random unless a trained
``.keras`` file sits in the model folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any


def _card(catalogue: Any) -> dict[str, Any]:
    """The model card of a :class:`strokelens.core.catalogue.Catalogue`'s folder ({} without one)."""
    return json.loads(catalogue.card.read_text()) if catalogue.card.exists() else {}


def served_config(model_dir: Path, input_size: int | None = None) -> Any:
    """training.cnn.CNNConfig matching the served extractor (from its model card), at ``input_size``."""
    from strokelens.core.catalogue import Catalogue
    from training.cnn import CNNConfig

    catalogue = Catalogue(model_dir)
    manifest = json.loads(catalogue.manifest.read_text())
    card = _card(catalogue).get("model", {}).get("extractor", {})
    summary = card.get("summary", "")
    names = {f.name for f in fields(CNNConfig)}
    overrides: dict[str, Any] = {"input_size": int(input_size or manifest["input_size"])}
    if manifest.get("findings") and "trunks" in names:
        overrides["trunks"] = 1  # model v2's card has no extractor block; training/v2/train.py trains one trunk
    for key in ("convs_per_block", "trunks", "bands"):
        if key in card and key in names:
            overrides[key] = card[key]
    if summary:
        if (m := re.search(r"channels ([\d >-]+\d)", summary)) and "widths" in names:
            overrides["widths"] = tuple(int(w) for w in re.findall(r"\d+", m.group(1)))
        if (m := re.search(r"x(\d+) \+ maxpool", summary)) and "convs_per_block" in names:
            overrides["convs_per_block"] = int(m.group(1))
        if "trunks" in names:
            m = re.search(r"ensemble of (\d+)", summary)
            overrides["trunks"] = int(m.group(1)) if m else 1
        if "bands" in names:
            m = re.search(r"\+ (\d+) fixed soft intensity-band", summary)
            overrides["bands"] = int(m.group(1)) if m else 0
    return replace(CNNConfig(), **overrides)


def extractor(n_classes: int, config: Any) -> Any:
    """The served extractor graph (image -> embedding or last feature map) from training/cnn.py."""
    from training import cnn

    if hasattr(cnn, "build_models"):
        return cnn.build_models(n_classes, config)[1]
    return cnn.build_extractor(cnn.build_classifier(n_classes, config))


def float_twin(model_dir: Path, n_classes: int) -> tuple[Any, dict[str, Any]]:
    """(keras model image -> probabilities, description)."""
    import keras
    from keras import layers

    from strokelens.core.catalogue import Catalogue

    catalogue = Catalogue(model_dir)
    trained = sorted(catalogue.root.glob("*.keras"))  # a trained float model, when one was left beside the artifacts
    if trained:
        model = keras.models.load_model(trained[0])
        return model, {"weights": f"trained ({trained[0].name})", "parameters": int(model.count_params())}
    keras.utils.set_random_seed(0)
    config = served_config(model_dir)
    trunk = extractor(n_classes, config)
    x = trunk.output
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="head")(x)
    model = keras.Model(trunk.input, outputs, name="strokelens_float_twin")
    served_params = _card(catalogue).get("model", {}).get("extractor", {}).get("parameters")
    return model, {"weights": "untrained (random init; timing only)", "parameters": int(model.count_params()),
                   "extractor_parameters": int(trunk.count_params()), "served_extractor_parameters": served_params,
                   "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items() if k != "extra"}}
