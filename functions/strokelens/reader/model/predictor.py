"""Serving-time model: int8 TFLite feature extractor (LiteRT) + numpy linear head.

Loaded once per container; ``predict`` takes the preprocessed model input from
:func:`strokelens.reader.imaging.preprocess.to_model_input`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokelens.core.catalogue import Catalogue
from strokelens.core.schema import Manifest
from strokelens.core.settings import model_dir
from strokelens.reader.model.head import LinearHead
from strokelens.reader.timing import Timer


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    model_version: str
    uncertain: bool = False
    embedding: np.ndarray | None = field(default=None, repr=False)
    feature_map: np.ndarray | None = field(default=None, repr=False)  # (h, w, K) when the model exposes it


class Extractor:
    """The int8 TFLite CNN run by LiteRT: (S, S) image in [0, 1] -> feature map or embedding.

    A model whose output is the last feature map (1, h, w, K) is average-pooled here, in float,
    so that class activation maps decompose the served logits exactly; a model whose output is
    already the embedding (1, D) is used as it is. Training computes its embeddings with this
    very class, so the head is fitted on exactly what serving computes.
    """

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    @property
    def spatial(self) -> bool:
        return len(self._output["shape"]) == 4

    def run(self, model_input: np.ndarray) -> np.ndarray:
        """Dequantised model output for one float image: (h, w, K) or (D,)."""
        x = model_input.astype(np.float32)[None, :, :, None]
        dtype = self._input["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])[0]
        if self._output["dtype"] in (np.int8, np.uint8):
            scale, zero = self._output["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    @staticmethod
    def pool(output: np.ndarray) -> np.ndarray:
        """Embedding (D,) from a model output: global average pooling of a feature map."""
        return output.mean(axis=(0, 1)) if output.ndim == 3 else output.reshape(-1)

    def embed(self, model_input: np.ndarray) -> np.ndarray:
        return self.pool(self.run(model_input))

    def embed_many(self, inputs: "list[np.ndarray] | np.ndarray") -> np.ndarray:
        return np.stack([self.embed(x) for x in inputs])


class Predictor:
    """CNN + head + decision rule of one model folder. Not thread-safe (one TFLite interpreter);
    Lambda runs one event at a time. :class:`strokelens.reader.model.served.ServedModel` adds the
    out-of-distribution checks and heat map around it."""

    def __init__(self, folder: Path | None = None, num_threads: int = 1) -> None:
        self.catalogue = Catalogue(Path(folder) if folder else model_dir())
        self.manifest: Manifest = self.catalogue.load_manifest()
        self.head = LinearHead.load(self.catalogue.head)
        self.extractor = Extractor(self.catalogue.extractor, num_threads=num_threads)

    def decide(self, proba: np.ndarray) -> tuple[str, bool]:
        """(label, uncertain): the operating threshold for two classes, else the top class; uncertain
        when the score lies within the stated band of the threshold (or the top two are that close)."""
        m = self.manifest
        labels = m.labels
        if len(labels) == 2 and m.positive_label in labels:
            pos = labels.index(m.positive_label)
            p = float(proba[pos])
            label = m.positive_label if p >= m.decision_threshold else labels[1 - pos]
            return label, abs(p - m.decision_threshold) < m.uncertain_band
        top2 = np.sort(proba)[-2:]
        return labels[int(np.argmax(proba))], float(top2[1] - top2[0]) < 2 * m.uncertain_band

    def predict(self, model_input: np.ndarray, timer: Timer | None = None) -> Prediction:
        timer = timer or Timer()
        with timer("cnn"):
            output = self.extractor.run(model_input)
            features = self.extractor.pool(output)
        with timer("head"):
            proba = self.head.predict_proba(features)[0]
            label, uncertain = self.decide(proba)
        return Prediction(
            label=label,
            probabilities={name: float(p) for name, p in zip(self.manifest.labels, proba)},
            model_version=self.manifest.version,
            uncertain=uncertain,
            embedding=features,
            feature_map=output if output.ndim == 3 else None,
        )
