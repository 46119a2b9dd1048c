"""One scan's reading: bytes -> decode -> preprocess -> model -> result. No AWS here.

The inference function and the command-line predictor both call :func:`read_scan`, so a
batch evaluation with the CLI measures exactly what the service serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from strokelens.imaging.decode import decode_image
from strokelens.imaging.preprocess import to_display, to_model_input
from strokelens.imaging.previews import preview_pngs
from strokelens.model.predictor import Predictor

SYNTHETIC_WARNING = "This model was trained on synthetic phantom images; its output is not evidence about real scans."


@dataclass(frozen=True)
class Reading:
    result: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict)  # de-identified PNGs by name


def read_scan(data: bytes, predictor: Predictor, declared_modality: str | None = None,
              with_previews: bool = False) -> Reading:
    """Read one uploaded file; raises :class:`strokelens.errors.ScanError` for bad input."""
    t0 = time.perf_counter()
    decoded = decode_image(data)
    t1 = time.perf_counter()
    display, display_how = to_display(decoded)
    model_input = to_model_input(display, predictor.input_size)
    t2 = time.perf_counter()
    prediction = predictor.predict(model_input)

    warnings: list[str] = list(decoded.notes)
    modality = decoded.modality or declared_modality
    if decoded.modality and declared_modality and decoded.modality != declared_modality:
        # The header wins over what was chosen in the UI; say so rather than refuse.
        warnings.append(f"MODALITY_MISMATCH: chosen {declared_modality}, the DICOM header says {decoded.modality}; the header was used.")
    if predictor.manifest.synthetic:
        warnings.append(SYNTHETIC_WARNING)

    result = {
        "label": prediction.label,
        "probabilities": prediction.probabilities,
        "model_version": prediction.model_version,
        "synthetic_model": predictor.manifest.synthetic,
        "modality": modality,
        "source_format": decoded.source_format,
        "preprocessing": display_how,
        "image_size": list(decoded.pixels.shape),
    }
    if decoded.dicom_tags:
        result["dicom"] = decoded.dicom_tags
    timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, **prediction.timings_ms}
    previews: dict[str, bytes] = {}
    if with_previews:
        t2 = time.perf_counter()
        previews = preview_pngs(decoded, display, model_input)
        timings["previews"] = (time.perf_counter() - t2) * 1e3
    return Reading(result=result, warnings=warnings, timings_ms={k: round(v, 3) for k, v in timings.items()},
                   previews=previews)
