"""Serving-time model: int8 TFLite feature extractor (LiteRT) + numpy linear head.

Loaded once per container; ``predict`` takes the preprocessed model input from
:func:`strokelens.imaging.preprocess.to_model_input`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokelens.model.artifacts import Manifest, artifacts_dir
from strokelens.model.head import LinearHead
from strokelens.model.ood import MahalanobisModel


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    model_version: str
    uncertain: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
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
    """The served model. Not thread-safe (one TFLite interpreter); Lambda runs one event at a time."""

    def __init__(self, folder: Path | None = None, num_threads: int = 1) -> None:
        self.folder = Path(folder) if folder else artifacts_dir()
        self.manifest = Manifest.load(self.folder)
        self.head = LinearHead.load(self.folder / "head.npz")
        self.extractor = Extractor(self.folder / "extractor.tflite", num_threads=num_threads)
        ood_path, image_path = self.folder / "ood.npz", self.folder / "ood_image.npz"
        self.ood = MahalanobisModel.load(ood_path) if ood_path.exists() else None
        self.ood_image = MahalanobisModel.load(image_path) if image_path.exists() else None
        baseline_path = self.folder / "cam_baseline.npz"
        self.cam_baseline: np.ndarray | None = None
        if baseline_path.exists():
            with np.load(baseline_path) as arrays:
                self.cam_baseline = arrays["mean_feature_map"].astype(np.float64)
        raw = self.manifest.raw
        # Operating point for two classes: the positive class wins at or above its threshold.
        self.positive_label: str | None = raw.get("positive_label")
        self.threshold = float(raw.get("decision_threshold", 0.5))
        self.uncertain_band = float(raw.get("uncertain_band", 0.15))
        self.modalities: tuple[str, ...] = tuple(raw.get("modalities", ("CT",)))

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def input_size(self) -> int:
        return self.manifest.input_size

    def decide(self, proba: np.ndarray) -> tuple[str, bool]:
        """(label, uncertain): the operating threshold for two classes, else the top class; uncertain
        when the score lies within the stated band of the threshold (or the top two are that close)."""
        if len(self.labels) == 2 and self.positive_label in self.labels:
            pos = self.labels.index(self.positive_label)
            p = float(proba[pos])
            label = self.positive_label if p >= self.threshold else self.labels[1 - pos]
            return label, abs(p - self.threshold) < self.uncertain_band
        top2 = np.sort(proba)[-2:]
        return self.labels[int(np.argmax(proba))], float(top2[1] - top2[0]) < 2 * self.uncertain_band

    def predict(self, model_input: np.ndarray) -> Prediction:
        t0 = time.perf_counter()
        output = self.extractor.run(model_input)
        features = self.extractor.pool(output)
        t1 = time.perf_counter()
        proba = self.head.predict_proba(features)[0]
        label, uncertain = self.decide(proba)
        t2 = time.perf_counter()
        return Prediction(
            label=label,
            probabilities={name: float(p) for name, p in zip(self.labels, proba)},
            model_version=self.version,
            uncertain=uncertain,
            timings_ms={"cnn": (t1 - t0) * 1e3, "head": (t2 - t1) * 1e3},
            embedding=features,
            feature_map=output if output.ndim == 3 else None,
        )
