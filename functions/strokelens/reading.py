"""One scan's reading: bytes -> decode -> preprocess -> model -> result. No AWS here.

The inference function and the command-line predictor both call :func:`read_scan`, so a
batch evaluation with the CLI measures exactly what the service serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strokelens.imaging.decode import decode_image
from strokelens.imaging.preprocess import to_display, to_model_input
from strokelens.imaging.previews import preview_pngs
from strokelens.model.cam import class_activation_map, normalised, overlay_png, upsample
from strokelens.model.ood import judge
from strokelens.model.predictor import Predictor

OOD_MESSAGE = "This does not look like the head CT slices the model was trained on, so no reading is given."
UNCERTAIN_MESSAGE = "INDETERMINATE: the model's score is close to its decision threshold; review the image."
HEATMAP_METHOD = ("class activation map of the served int8 model: the predicted class's head weights applied "
                  "to the last feature map minus the mean training feature map (an exact decomposition of how the "
                  "logit differs from an average slice), positive evidence only, scaled to [0, 1]")
SYNTHETIC_WARNING = "This model was trained on synthetic phantom images; its output is not evidence about real scans."


@dataclass(frozen=True)
class Reading:
    result: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict)  # de-identified PNGs by name


def read_scan(data: bytes, predictor: Predictor, declared_modality: str | None = None,
              with_previews: bool = False, with_heatmap: bool = True) -> Reading:
    """Read one uploaded file; raises :class:`strokelens.errors.ScanError` for bad input.

    Order: decode -> display (window) -> model input -> CNN + head -> out-of-distribution
    judgement -> heat map of the predicted class (in model-input space) -> previews.
    """
    t0 = time.perf_counter()
    decoded = decode_image(data)
    t1 = time.perf_counter()
    display, display_how = to_display(decoded)
    model_input = to_model_input(display, predictor.input_size)
    t2 = time.perf_counter()
    prediction = predictor.predict(model_input)
    t3 = time.perf_counter()
    verdict = judge(decoded, display, prediction.embedding, predictor.ood, declared_modality, predictor.ood_image,
                    predictor.modalities)
    t4 = time.perf_counter()

    warnings: list[str] = list(decoded.notes)
    modality = decoded.modality or declared_modality
    if decoded.modality and declared_modality and decoded.modality != declared_modality:
        # The header wins over what was chosen in the UI; say so rather than refuse.
        warnings.append(f"MODALITY_MISMATCH: chosen {declared_modality}, the DICOM header says {decoded.modality}; the header was used.")
    if verdict.out_of_distribution:
        warnings.append(f"OUT_OF_DISTRIBUTION: {OOD_MESSAGE} {verdict.reason}")
    elif prediction.uncertain:
        warnings.append(UNCERTAIN_MESSAGE)
    if predictor.manifest.synthetic:
        warnings.append(SYNTHETIC_WARNING)

    result = {
        # No label claim for an image unlike the training data; the model output stays visible.
        "label": None if verdict.out_of_distribution else prediction.label,
        "model_label": prediction.label,
        "probabilities": prediction.probabilities,
        "uncertain": prediction.uncertain,
        "out_of_distribution": verdict.out_of_distribution,
        "ood_reason": verdict.reason,
        "model_version": prediction.model_version,
        "synthetic_model": predictor.manifest.synthetic,
        "modality": modality,
        "source_format": decoded.source_format,
        "preprocessing": display_how,
        "image_size": list(decoded.pixels.shape),
    }
    if verdict.distance is not None:
        result["ood_distance"] = round(verdict.distance, 3)
        result["ood_threshold"] = round(verdict.threshold, 3)
    if decoded.dicom_tags:
        result["dicom"] = decoded.dicom_tags
    timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, **prediction.timings_ms,
               "ood": (t4 - t3) * 1e3}

    heat = None
    if with_heatmap and prediction.feature_map is not None and not verdict.out_of_distribution:
        t5 = time.perf_counter()
        cam = class_activation_map(prediction.feature_map, predictor.head, predictor.labels.index(prediction.label),
                                   predictor.cam_baseline)
        grid = normalised(cam)
        heat = upsample(grid, predictor.input_size)
        result["heatmap"] = {"method": HEATMAP_METHOD, "class": prediction.label,
                             "grid": np.round(grid, 3).tolist()}
        timings["heatmap"] = (time.perf_counter() - t5) * 1e3

    previews: dict[str, bytes] = {}
    if with_previews:
        t6 = time.perf_counter()
        previews = preview_pngs(decoded, display, model_input)
        if heat is not None:
            previews["heatmap"] = overlay_png(heat)
        timings["previews"] = (time.perf_counter() - t6) * 1e3
    return Reading(result=result, warnings=warnings, timings_ms={k: round(v, 3) for k, v in timings.items()},
                   previews=previews)
