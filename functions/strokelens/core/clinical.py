"""Patient-level stroke risk from clinical fields: validation and a calibrated linear model.

Standard library only (no numpy, no scikit-learn): the API function ships without ML
dependencies. ``training/clinical.py`` fits a scikit-learn pipeline (imputation, encoding,
StandardScaler, class-weighted LogisticRegression, Platt scaling on out-of-fold scores) and
exports it as plain numbers in ``clinical.json``; :class:`RiskModel` evaluates the same
arithmetic and matches ``predict_proba`` to 1e-6 (``tests/unit/test_clinical.py``).

This is a separate reading from the image model, never fused with it: no data set holds
head images and clinical fields for the same patients.

The model (per exported column j, in order)::

    x_j = encode(field)                 # numeric as given, BMI imputed, 0/1 flags, one-hot levels
    s_j = (x_j - mean_j) / scale_j      # StandardScaler fitted on the training split
    z   = intercept + sum_j coef_j * s_j          # LogisticRegression decision function
    p   = 1 / (1 + exp(-(a * z + b)))             # Platt scaling fitted on out-of-fold z

Because every standardised column has mean 0 on the training split, ``a * coef_j * s_j``
is column j's contribution to the calibrated log-odds relative to the average training
patient, and ``a * intercept + b`` is that average patient's log-odds: contributions summed
per field plus the baseline reproduce ``logit(p)`` exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from strokelens.core.settings import clinical_model_dir

FORMAT = "strokelens-clinical-risk/1"
MODEL_FILE = "clinical.json"

# The API contract: field -> levels, in the data set's spelling.
GENDERS = ("Male", "Female", "Other")
EVER_MARRIED = ("Yes", "No")
WORK_TYPES = ("Private", "Self-employed", "Govt_job", "children", "Never_worked")
RESIDENCE_TYPES = ("Urban", "Rural")
SMOKING_STATUSES = ("formerly smoked", "never smoked", "smokes", "Unknown")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "ever_married": EVER_MARRIED,
    "work_type": WORK_TYPES,
    "Residence_type": RESIDENCE_TYPES,
    "smoking_status": SMOKING_STATUSES,
}
# field -> (low, high), inclusive. Wider than the training data on purpose: values outside the
# training range are accepted and flagged in the notes (extrapolation), values outside these
# are rejected as implausible.
RANGES: dict[str, tuple[float, float]] = {
    "age": (0.0, 120.0),
    "avg_glucose_level": (40.0, 400.0),
    "bmi": (10.0, 100.0),
}
FLAGS = ("hypertension", "heart_disease")
REQUIRED = ("gender", "age", "hypertension", "heart_disease", "ever_married", "work_type",
            "Residence_type", "avg_glucose_level", "smoking_status")
OPTIONAL = ("bmi",)
ALLOWED = REQUIRED + OPTIONAL

NEUTRAL = 1e-9  # |contribution| (log-odds) below this is reported as "neutral" (e.g. an imputed mean)

UNITS = {"age": "years", "avg_glucose_level": "mg/dL", "bmi": "kg/m²"}


class ClinicalValidationError(ValueError):
    """A payload problem, naming the offending field (answered 400 by the API)."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.message = f"{field} {detail}"  # a whole sentence naming the field, for the API response
        super().__init__(self.message)


@dataclass(frozen=True)
class ClinicalInput:
    gender: str
    age: float
    hypertension: int
    heart_disease: int
    ever_married: str
    work_type: str
    Residence_type: str
    avg_glucose_level: float
    smoking_status: str
    bmi: float | None = None  # None: not recorded, imputed by the model

    def as_record(self) -> dict[str, Any]:
        """The fields as a dict in the data set's column names (bmi None when unknown)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _number(payload: dict, name: str) -> float:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClinicalValidationError(name, f"must be a number ({UNITS[name]}), got {type(value).__name__}.")
    try:
        value = float(value)
    except OverflowError:  # JSON integers are unbounded; a 400-digit one is no measurement
        value = math.inf
    low, high = RANGES[name]
    if not math.isfinite(value) or not low <= value <= high:
        raise ClinicalValidationError(name, f"must be between {low:g} and {high:g} {UNITS[name]}.")
    return value


def _flag(payload: dict, name: str) -> int:
    value = payload[name]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    raise ClinicalValidationError(name, "must be 0 or 1 (or false/true).")


def _category(payload: dict, name: str) -> str:
    value = payload[name]
    levels = CATEGORIES[name]
    if not isinstance(value, str) or value not in levels:
        shown = repr(value) if isinstance(value, str) else type(value).__name__
        raise ClinicalValidationError(name, f"must be one of {', '.join(repr(v) for v in levels)}; got {shown}.")
    return value


def validate(payload: Any) -> ClinicalInput:
    """Check every field strictly and return a :class:`ClinicalInput`.

    Raises :class:`ClinicalValidationError` naming the first offending field: unknown extra
    fields, missing required fields, wrong types (a bool is not a number), values out of
    range, unknown categories. ``bmi`` may be null or absent (imputed by the model).
    """
    if not isinstance(payload, dict):
        raise ClinicalValidationError("body", "must be a JSON object with the clinical fields.")
    for name in sorted(payload, key=str):
        if name not in ALLOWED:
            raise ClinicalValidationError(str(name), f"is not an accepted field; allowed fields are {', '.join(ALLOWED)}.")
    for name in REQUIRED:
        if name not in payload or payload[name] is None:
            raise ClinicalValidationError(name, "is required.")
    bmi = None if payload.get("bmi") is None else _number(payload, "bmi")
    return ClinicalInput(
        gender=_category(payload, "gender"),
        age=_number(payload, "age"),
        hypertension=_flag(payload, "hypertension"),
        heart_disease=_flag(payload, "heart_disease"),
        ever_married=_category(payload, "ever_married"),
        work_type=_category(payload, "work_type"),
        Residence_type=_category(payload, "Residence_type"),
        avg_glucose_level=_number(payload, "avg_glucose_level"),
        smoking_status=_category(payload, "smoking_status"),
        bmi=bmi,
    )


def spec_hash(spec: dict) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of the spec without its ``version``."""
    body = {k: v for k, v in spec.items() if k != "version"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


@dataclass(frozen=True)
class RiskModel:
    spec: dict

    @classmethod
    def load(cls, folder: Path | str | None = None, verify: bool = True) -> "RiskModel":
        path = Path(folder if folder is not None else clinical_model_dir()) / MODEL_FILE
        spec = json.loads(path.read_text())
        if spec.get("format") != FORMAT:
            raise RuntimeError(f"{path}: unsupported format {spec.get('format')!r} (expected {FORMAT})")
        if verify and spec_hash(spec) != spec["version"]:
            raise RuntimeError(f"{path} does not match its version ({spec_hash(spec)} != {spec['version']})")
        n = len(spec["columns"])
        if not all(len(spec[k]) == n for k in ("mean", "scale", "coef")):
            raise RuntimeError(f"{path}: column, mean, scale and coef lengths differ")
        for column in spec["columns"]:
            if column["field"] not in ALLOWED:
                raise RuntimeError(f"{path}: column {column['name']} reads unknown field {column['field']}")
            if column["kind"] == "indicator" and column["level"] not in CATEGORIES[column["field"]]:
                raise RuntimeError(f"{path}: level {column['level']!r} is not accepted by the API")
        if spec["calibration"]["a"] <= 0:
            raise RuntimeError(f"{path}: calibration slope must be positive")
        return cls(spec)

    @property
    def version(self) -> str:
        return self.spec["version"]

    def encode(self, inp: ClinicalInput) -> tuple[list[float], list[str]]:
        """Unscaled model columns for one patient, and notes on imputations and extrapolation."""
        record = inp.as_record()
        values: list[float] = []
        notes: list[str] = []
        for column in self.spec["columns"]:
            raw = record[column["field"]]
            kind = column["kind"]
            if kind == "numeric":
                if raw is None:
                    values.append(float(column["impute"]))
                    notes.append(column["impute_note"])
                else:
                    values.append(float(raw))
            elif kind == "indicator":
                values.append(1.0 if raw == column["level"] else 0.0)
            elif kind == "mapped":
                if raw in column["map"]:
                    values.append(float(column["map"][raw]))
                else:
                    values.append(float(column["impute"]))
                    notes.append(column["impute_note"].format(value=raw))
            else:  # pragma: no cover - guarded by the format version
                raise RuntimeError(f"unknown column kind {kind!r}")
        for name, (low, high) in self.spec["training"]["ranges"].items():
            value = record.get(name)
            if value is not None and not low <= value <= high:
                notes.append(f"{name} {value:g} is outside the training data's range ({low:g}-{high:g}): "
                             "the model extrapolates, treat the estimate with extra caution.")
        return values, notes

    def band(self, probability: float) -> str:
        for band in self.spec["bands"]:
            if band["upper"] is None or probability < band["upper"]:
                return band["name"]
        raise RuntimeError("risk bands do not cover [0, 1]")  # pragma: no cover

    def predict(self, inp: ClinicalInput) -> dict[str, Any]:
        spec = self.spec
        values, notes = self.encode(inp)
        a, b = spec["calibration"]["a"], spec["calibration"]["b"]
        z = spec["intercept"]
        per_field: dict[str, float] = {}
        for column, x, mean, scale, coef in zip(spec["columns"], values, spec["mean"], spec["scale"], spec["coef"]):
            term = coef * ((x - mean) / scale)
            z += term
            per_field[column["field"]] = per_field.get(column["field"], 0.0) + a * term
        log_odds = a * z + b
        probability = _sigmoid(log_odds)
        record = inp.as_record()
        imputed = {c["field"]: c["impute"] for c in spec["columns"] if c["kind"] == "numeric"}
        contributions = []
        for name, contribution in per_field.items():
            missing = record[name] is None
            contributions.append({
                "feature": name,
                "value": imputed[name] if missing else record[name],
                "imputed": missing,
                "contribution": contribution,
                "direction": "raises" if contribution > NEUTRAL else "lowers" if contribution < -NEUTRAL else "neutral",
            })
        contributions.sort(key=lambda c: -abs(c["contribution"]))
        baseline = a * spec["intercept"] + b
        return {
            "probability": probability,
            "band": self.band(probability),
            "bands": [{"name": band["name"], "upper": band["upper"], "meaning": band["meaning"]} for band in spec["bands"]],
            "log_odds": log_odds,
            "baseline": {"log_odds": baseline, "probability": _sigmoid(baseline),
                         "meaning": spec["baseline_meaning"]},
            "contributions": contributions,
            "contribution_method": spec["contribution_method"],
            "model_version": self.version,
            "notes": notes,
            "disclaimer": spec["disclaimer"],
        }

    def predict_payload(self, payload: Any) -> dict[str, Any]:
        """:func:`validate` then :meth:`predict`."""
        return self.predict(validate(payload))
