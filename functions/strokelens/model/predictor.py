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


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    model_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)


class Extractor:
    """The int8 TFLite CNN run by LiteRT: (S, S) image in [0, 1] -> embedding (D,).

    Training uses this very class to compute the embeddings its head is fitted on.
    """

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    def embed(self, model_input: np.ndarray) -> np.ndarray:
        """Embedding of one float image, quantised with the scale/zero point the converter chose."""
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
        return out.astype(np.float32).reshape(-1)

    def embed_many(self, inputs: "list[np.ndarray] | np.ndarray") -> np.ndarray:
        return np.stack([self.embed(x) for x in inputs])


class Predictor:
    """The served model. Not thread-safe (one TFLite interpreter); Lambda runs one event at a time."""

    def __init__(self, folder: Path | None = None, num_threads: int = 1) -> None:
        self.folder = Path(folder) if folder else artifacts_dir()
        self.manifest = Manifest.load(self.folder)
        self.head = LinearHead.load(self.folder / "head.npz")
        self.extractor = Extractor(self.folder / "extractor.tflite", num_threads=num_threads)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def input_size(self) -> int:
        return self.manifest.input_size

    def predict(self, model_input: np.ndarray) -> Prediction:
        t0 = time.perf_counter()
        features = self.extractor.embed(model_input)
        t1 = time.perf_counter()
        proba = self.head.predict_proba(features)[0]
        t2 = time.perf_counter()
        probabilities = {label: float(p) for label, p in zip(self.labels, proba)}
        return Prediction(
            label=self.labels[int(np.argmax(proba))],
            probabilities=probabilities,
            model_version=self.version,
            timings_ms={"cnn": (t1 - t0) * 1e3, "head": (t2 - t1) * 1e3},
        )
