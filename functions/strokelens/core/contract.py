"""``GET /contract``: what the site must know of the server, served instead of copied into JavaScript.

Accepted file types, limits, modalities, CT window presets, the model's findings (per modality: what
is assessed and what is not, with the words to say it), error and warning codes with their messages,
and the clinical risk form (fields, levels, ranges, units).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from strokelens.core import clinical
from strokelens.core.errors import MESSAGES, WARNINGS
from strokelens.core.findings import (AGGREGATION_WORDS, FINDING_NAMES, MODALITY_WORDS, NO_FINDING, NOT_ASSESSED,
                                      STROKE_TYPES, finding_labels, modality_findings)
from strokelens.core.records import CONTENT_TYPES, EXTENSION_TYPES, MODALITIES
from strokelens.core.schema import WINDOW_PRESETS, Manifest
from strokelens.core.studies import MAX_FILES, MAX_STUDY_BYTES

# How the risk form presents each field (the validation rules come from core/clinical.py).
RISK_LABELS = {
    "age": "Age", "gender": "Sex", "hypertension": "Hypertension", "heart_disease": "Heart disease",
    "avg_glucose_level": "Average glucose level", "bmi": "BMI", "smoking_status": "Smoking",
    "ever_married": "Ever married", "work_type": "Work type", "Residence_type": "Residence",
}
RISK_LEVEL_LABELS = {
    "work_type": {"Private": "Private sector", "Govt_job": "Government job", "children": "Child",
                  "Never_worked": "Never worked"},
    "smoking_status": {"never smoked": "Never smoked", "formerly smoked": "Formerly smoked", "smokes": "Smokes"},
}
RISK_ORDER = ("age", "gender", "hypertension", "heart_disease", "avg_glucose_level", "bmi", "smoking_status",
              "ever_married", "work_type", "Residence_type")
RISK_HINTS = {"bmi": "Leave blank if unknown."}


def risk_form() -> list[dict[str, Any]]:
    """The clinical risk form's fields in display order, with the API's own levels and ranges."""
    out: list[dict[str, Any]] = []
    for name in RISK_ORDER:
        field: dict[str, Any] = {"name": name, "label": RISK_LABELS[name], "required": name in clinical.REQUIRED}
        if name in clinical.RANGES:
            low, high = clinical.RANGES[name]
            field.update(type="number", min=low, max=high, unit=clinical.UNITS.get(name))
        elif name in clinical.FLAGS:
            field.update(type="flag", options=[[1, "Yes"], [0, "No"]])
        else:
            labels = RISK_LEVEL_LABELS.get(name, {})
            field.update(type="choice", options=[[level, labels.get(level, level)] for level in clinical.CATEGORIES[name]])
        if name in RISK_HINTS:
            field["hint"] = RISK_HINTS[name]
        out.append(field)
    return out


@cache
def deid_rules() -> dict[str, Any]:
    """The de-identification rules the browser applies before upload (and the server re-checks)."""
    return json.loads((Path(__file__).resolve().parent / "deid_rules.json").read_text())


def model_contract(manifest: Manifest) -> dict[str, Any]:
    """The installed model as the site needs it: every class in display order (``findings``), and per
    modality what is assessed and what is not (``reads``), with the words to say it, so the site names
    no finding itself. v1 and v2 folders answer the same shape (v1 reads one finding on CT)."""
    raw = manifest.raw
    aggregation = raw.get("aggregation") or {}
    rule = aggregation.get("rule", "max")
    return {"version": manifest.version, "generation": raw.get("model", "v1"),
            "findings": finding_labels(raw, manifest.labels), "positive_label": manifest.positive_label,
            "modalities": list(manifest.modalities), "synthetic": manifest.synthetic,
            "reads": modality_findings(raw, manifest.labels),
            "finding_names": dict(FINDING_NAMES), "stroke_types": {**STROKE_TYPES, "none": NO_FINDING, "unknown": NOT_ASSESSED},
            "modality_names": {**MODALITY_WORDS, "MR-other": "MRI other than DWI (not read)"},
            "aggregation": {"rule": rule, "description": AGGREGATION_WORDS.get(rule, rule)}}


def site_contract(manifest: Manifest, *, max_upload_bytes: int, upload_expires: int) -> dict[str, Any]:
    return {
        "accepted": {"content_types": sorted(CONTENT_TYPES), "extensions": sorted(EXTENSION_TYPES)},
        "limits": {"max_upload_bytes": max_upload_bytes, "upload_expires_seconds": upload_expires,
                   "max_study_files": MAX_FILES, "max_study_bytes": MAX_STUDY_BYTES},
        "modalities": list(MODALITIES),
        "window_presets": [asdict(w) for w in WINDOW_PRESETS],
        "model": model_contract(manifest),
        "errors": dict(MESSAGES),
        "warnings": dict(WARNINGS),
        "risk_form": risk_form(),
        "deidentification": deid_rules(),
    }
