"""From a trained Keras extractor to the served artifacts: int8 TFLite CNN + exported linear head.

The TFLite model outputs the LAST FEATURE MAP (1, h, w, K), full-integer int8 in and out; serving
average-pools it in float (:meth:`strokelens.reader.model.predictor.Extractor.pool`), so a linear head over
the pooled vector decomposes exactly into a class activation map. The head is fitted on embeddings
computed by the int8 model through that serving class, so it sees exactly what serving computes.
A Platt calibration (a, b) fitted on out-of-fold logits is folded into the linear head:
logit' = a * logit + b  =>  coef' = a * coef, intercept' = a * intercept + b.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from strokelens.reader.model.head import LinearHead
from strokelens.reader.model.predictor import Extractor
from training.heads import platt_proba

PARITY_TOLERANCE = 1e-6


def to_int8_tflite(extractor, representative: np.ndarray, path: Path) -> int:
    """Convert ``extractor`` to a full-integer int8 TFLite model at ``path``; returns its size in bytes.

    ``representative`` (N, S, S) model inputs calibrate the activation ranges.
    """
    import tensorflow as tf

    def samples():
        for image in representative:
            yield [image[None, :, :, None].astype(np.float32)]

    size = representative.shape[1]
    with tempfile.TemporaryDirectory() as saved:
        spec = tf.TensorSpec((1, size, size, 1), tf.float32, name="image")
        extractor.export(saved, format="tf_saved_model", input_signature=[spec], verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        blob = converter.convert()
    path.write_bytes(blob)
    return len(blob)


def feature_maps(model_path: Path, inputs: np.ndarray) -> np.ndarray:
    """Dequantised feature maps (N, h, w, K) computed by the served int8 model."""
    extractor = Extractor(model_path, num_threads=2)
    return np.stack([extractor.run(x) for x in inputs])


def embed(model_path: Path, inputs: np.ndarray) -> np.ndarray:
    """Embeddings (N, D) computed by the served int8 model."""
    if len(inputs) == 0:
        return np.zeros((0, 0), np.float32)
    return Extractor(model_path, num_threads=2).embed_many(inputs)


def linear_head(pipeline: Pipeline, calibration: tuple[float, float] | None = None) -> LinearHead:
    """The numpy head with the same arithmetic as ``pipeline.predict_proba`` (binary: with the
    Platt ``calibration`` (a, b) folded in)."""
    scaler, logreg = pipeline.named_steps["scaler"], pipeline.named_steps["logreg"]
    coef, intercept = np.asarray(logreg.coef_, np.float64), np.asarray(logreg.intercept_, np.float64)
    if calibration is not None and coef.shape[0] == 1:
        a, b = calibration
        coef, intercept = a * coef, a * intercept + b
    return LinearHead(mean=np.asarray(scaler.mean_, np.float64), scale=np.asarray(scaler.scale_, np.float64),
                      coef=coef, intercept=intercept)


def reference_proba(pipeline: Pipeline, features: np.ndarray, calibration: tuple[float, float] | None = None) -> np.ndarray:
    """scikit-learn's probabilities, with the Platt calibration applied to its decision function."""
    if calibration is None or len(pipeline.classes_) != 2:
        return pipeline.predict_proba(features)
    return platt_proba(pipeline.decision_function(features), calibration)


def check_parity(pipeline: Pipeline, head: LinearHead, features: np.ndarray,
                 calibration: tuple[float, float] | None = None) -> float:
    """Max |LinearHead - sklearn| probability difference; raises if above 1e-6."""
    diff = float(np.max(np.abs(head.predict_proba(features) - reference_proba(pipeline, features, calibration))))
    if diff >= PARITY_TOLERANCE:
        raise AssertionError(f"exported head differs from scikit-learn by {diff:.3g}")
    return diff


def save_head(pipeline: Pipeline, labels: list[str], out: Path, features: np.ndarray,
              calibration: tuple[float, float] | None = None) -> float:
    """Write head.joblib (pipeline + calibration), head.npz (calibration folded in) and labels.json;
    returns the parity error on ``features``."""
    head = linear_head(pipeline, calibration)
    diff = check_parity(pipeline, head, features, calibration)
    joblib.dump({"pipeline": pipeline, "platt": calibration} if calibration is not None else pipeline, out / "head.joblib")
    np.savez(out / "head.npz", mean=head.mean, scale=head.scale, coef=head.coef, intercept=head.intercept)
    (out / "labels.json").write_text(json.dumps(labels))
    return diff
