"""The float Keras twin of the served model, built from training/cnn.py (TensorFlow children only).

The served extractor's architecture is read from the model card (``model.extractor``: input
size, trunks, channel widths, band channels) so the baseline matches the artifacts being
served even while training/cnn.py's defaults move; the twin is extractor -> global average
pooling -> dense softmax (the served numpy head, in float). Weights are random unless a trained
``.keras`` file sits in the model folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any


def served_config(model_dir: Path, input_size: int | None = None) -> Any:
    """training.cnn.CNNConfig matching the served extractor (from its model card), at ``input_size``."""
    from training.cnn import CNNConfig

    manifest = json.loads((model_dir / "manifest.json").read_text())
    card_path = model_dir / "model_card.json"
    card = json.loads(card_path.read_text()).get("model", {}).get("extractor", {}) if card_path.exists() else {}
    summary = card.get("summary", "")
    names = {f.name for f in fields(CNNConfig)}
    overrides: dict[str, Any] = {"input_size": int(input_size or manifest["input_size"])}
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

    trained = sorted(model_dir.glob("*.keras"))
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
    card = json.loads((model_dir / "model_card.json").read_text()) if (model_dir / "model_card.json").exists() else {}
    served_params = card.get("model", {}).get("extractor", {}).get("parameters")
    return model, {"weights": "untrained (random init; timing only)", "parameters": int(model.count_params()),
                   "extractor_parameters": int(trunk.count_params()), "served_extractor_parameters": served_params,
                   "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items() if k != "extra"}}
