"""Clinical stroke-risk model: validation, stdlib-vs-scikit-learn parity, contributions, bands, metric floor.

Reads the committed artifacts (functions/strokelens/artifacts/clinical) and the shared CSV; never retrains.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from strokelens.core.catalogue import CLINICAL_MODEL_FILES
from strokelens.core.clinical import (CATEGORIES, REQUIRED, ClinicalInput, ClinicalValidationError, RiskModel, spec_hash,
                                 validate)
from tests.conftest import ROOT, SHARED_DATA
from training.clinical import data as clinical_data
from training.metrics import ece

ART = ROOT / "functions" / "strokelens" / "artifacts" / "clinical"
CSV = SHARED_DATA / "clinical" / "healthcare-dataset-stroke-data.csv"
ROC_AUC_FLOOR = 0.83

VALID = {"gender": "Male", "age": 67, "hypertension": 0, "heart_disease": 1, "ever_married": "Yes",
         "work_type": "Private", "Residence_type": "Urban", "avg_glucose_level": 228.69, "bmi": 36.6,
         "smoking_status": "formerly smoked"}


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return RiskModel.load(ART)


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((ART / "clinical_metrics.json").read_text())


@pytest.fixture(scope="module")
def split() -> dict:
    return json.loads((ART / "clinical_split.json").read_text())


@pytest.fixture(scope="module")
def held_out(split):
    """The held-out rows (by saved id) of the shared CSV, as a DataFrame."""
    assert CSV.is_file(), f"the shared clinical data set is expected at {CSV}"
    df = clinical_data.load_data(CSV)
    rows = df[df["id"].isin(split["test_ids"])]
    assert len(rows) == len(split["test_ids"]), "held-out ids missing from the data"
    return rows


def _with(**changes) -> dict:
    payload = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            payload.pop(key)
        else:
            payload[key] = value
    return payload


_DROP = object()


# ---------------------------------------------------------------- artifacts


def test_artifacts_small_complete_and_versioned(model):
    names = {p.name for p in ART.iterdir() if p.is_file()}
    assert set(CLINICAL_MODEL_FILES) <= names
    total = sum(p.stat().st_size for p in ART.rglob("*") if p.is_file())
    assert total < 200_000, f"clinical artifacts are {total} bytes"
    assert len(model.version) == 12 and model.version == spec_hash(model.spec)
    card = json.loads((ART / "clinical_card.json").read_text())
    metrics = json.loads((ART / "clinical_metrics.json").read_text())
    assert card["version"] == metrics["model_version"] == model.version


def test_tampered_artifacts_are_refused(tmp_path):
    shutil.copy(ART / "clinical.json", tmp_path / "clinical.json")
    spec = json.loads((tmp_path / "clinical.json").read_text())
    spec["coef"][0] += 0.1
    (tmp_path / "clinical.json").write_text(json.dumps(spec))
    with pytest.raises(RuntimeError, match="does not match its version"):
        RiskModel.load(tmp_path)


def test_charts_index_lists_every_chart():
    index = json.loads((ART / "charts" / "index.json").read_text())
    ids = [entry["id"] for entry in index]
    assert {"clinical_roc", "clinical_pr", "clinical_reliability", "clinical_model_comparison",
            "clinical_coefficients"} <= set(ids)
    for entry in index:
        assert entry["title"] and entry["description"]
        figure = json.loads((ART / "charts" / f"{entry['id']}.json").read_text())
        assert figure["data"]


def test_serving_module_needs_no_ml_libraries():
    code = ("import sys, json; from strokelens.core.clinical import RiskModel; "
            f"m = RiskModel.load({str(ART)!r}); print(m.predict_payload({VALID!r})['band']); "
            "print(json.dumps(sorted({'numpy', 'sklearn', 'pandas', 'scipy'} & set(sys.modules))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "functions").stdout.split()
    assert out[0] in ("low", "moderate", "high") and json.loads(out[1]) == []


# ---------------------------------------------------------------- parity and metrics


def test_stdlib_model_matches_sklearn_pipeline_on_held_out_rows(model, held_out):
    pipeline = joblib.load(ART / "clinical_pipeline.joblib")
    expected = pipeline.predict_proba(held_out[list(clinical_data.FEATURES)])[:, 1]
    got = np.array([model.predict_payload(clinical_data.payload_of(r))["probability"]
                    for r in held_out.to_dict("records")])
    assert held_out["bmi"].isna().any(), "the held-out rows should exercise BMI imputation"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_split_is_reproducible_from_the_seed(split):
    df = clinical_data.load_data(CSV)
    if clinical_data.file_sha256(CSV) != split["data_sha256"]:
        pytest.skip("the shared CSV changed since training; the saved ids still define the held-out rows")
    _, test_idx = clinical_data.split_ids(df, split["seed"], split["test_fraction"])
    assert sorted(df["id"].iloc[test_idx].tolist()) == split["test_ids"]


def test_roc_auc_floor_reported_and_recomputed(model, metrics, held_out):
    reported = metrics["metrics"]["roc_auc"]
    assert reported["value"] >= ROC_AUC_FLOOR
    assert reported["ci_low"] <= reported["value"] <= reported["ci_high"]
    p = [model.predict_payload(clinical_data.payload_of(r))["probability"] for r in held_out.to_dict("records")]
    recomputed = roc_auc_score(held_out["stroke"], p)
    assert recomputed >= ROC_AUC_FLOOR
    assert recomputed == pytest.approx(reported["value"], abs=1e-9)
    for key in ("pr_auc", "brier", "ece", "sensitivity_at_90_specificity"):
        entry = metrics["metrics"][key]
        assert entry["ci_low"] <= entry["ci_high"]
    assert metrics["bootstrap"]["reps"] == 2000


def test_calibration_figures_recomputed(model, metrics, held_out):
    """Brier and ECE (training.metrics.ece: 10 equal-width bins, the image model's definition too)."""
    p = np.array([model.predict_payload(clinical_data.payload_of(r))["probability"] for r in held_out.to_dict("records")])
    y = held_out["stroke"].to_numpy()
    assert ece(p, y) == pytest.approx(metrics["metrics"]["ece"]["value"], abs=1e-12)
    assert np.mean((p - y) ** 2) == pytest.approx(metrics["metrics"]["brier"]["value"], abs=1e-12)
    assert "ece_uniform_bins" not in metrics["metrics"], "one ECE definition"


# ---------------------------------------------------------------- contributions and bands


def _check_contributions(result: dict) -> None:
    total = result["baseline"]["log_odds"] + sum(c["contribution"] for c in result["contributions"])
    assert total == pytest.approx(result["log_odds"], abs=1e-9)
    p = result["probability"]
    assert math.log(p / (1 - p)) == pytest.approx(result["log_odds"], abs=1e-7)
    sizes = [abs(c["contribution"]) for c in result["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    assert {c["feature"] for c in result["contributions"]} == set(REQUIRED) | {"bmi"}
    for c in result["contributions"]:
        assert c["direction"] == ("raises" if c["contribution"] > 1e-9 else "lowers" if c["contribution"] < -1e-9
                                  else "neutral")


def test_contributions_reproduce_the_log_odds(model, held_out):
    for row in held_out.head(60).to_dict("records"):
        _check_contributions(model.predict_payload(clinical_data.payload_of(row)))


def test_contributions_point_the_expected_way(model):
    result = model.predict_payload(VALID)
    by = {c["feature"]: c for c in result["contributions"]}
    assert by["age"]["direction"] == "raises" and by["age"]["value"] == 67
    young = model.predict_payload(_with(age=20, heart_disease=0, avg_glucose_level=85.0))
    assert young["probability"] < result["probability"]
    assert {c["feature"]: c for c in young["contributions"]}["age"]["direction"] == "lowers"


def test_band_thresholds_monotone(model):
    bands = model.spec["bands"]
    assert [b["name"] for b in bands] == ["low", "moderate", "high"]
    uppers = [b["upper"] for b in bands]
    assert uppers[-1] is None and 0 < uppers[0] < uppers[1] < 1
    assert uppers[0] == pytest.approx(model.spec["training"]["prevalence"])
    grid = [i / 1000 for i in range(1001)]
    order = {"low": 0, "moderate": 1, "high": 2}
    ranks = [order[model.band(p)] for p in grid]
    assert ranks == sorted(ranks) and set(ranks) == {0, 1, 2}
    assert model.band(uppers[0]) == "moderate" and model.band(uppers[1]) == "high"


_valid_payloads = st.fixed_dictionaries(
    {"gender": st.sampled_from(CATEGORIES["gender"]), "age": st.floats(0, 120),
     "hypertension": st.sampled_from([0, 1, True, False]), "heart_disease": st.sampled_from([0, 1, True, False]),
     "ever_married": st.sampled_from(CATEGORIES["ever_married"]), "work_type": st.sampled_from(CATEGORIES["work_type"]),
     "Residence_type": st.sampled_from(CATEGORIES["Residence_type"]),
     "avg_glucose_level": st.floats(40, 400) | st.integers(40, 400),
     "smoking_status": st.sampled_from(CATEGORIES["smoking_status"])},
    optional={"bmi": st.none() | st.floats(10, 100)},
)


@settings(max_examples=150, deadline=None)
@given(payload=_valid_payloads)
def test_any_valid_payload_gives_a_consistent_reading(model, payload):
    result = model.predict_payload(payload)
    assert 0 < result["probability"] < 1
    assert result["band"] == model.band(result["probability"])
    assert result["model_version"] == model.version
    _check_contributions(result)
    if payload.get("bmi") is None:
        assert any("BMI missing" in note for note in result["notes"])


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("payload, field", [
    (_with(age=_DROP), "age"),
    (_with(age=None), "age"),
    (_with(age=True), "age"),
    (_with(age="67"), "age"),
    (_with(age=-1), "age"),
    (_with(age=120.5), "age"),
    (_with(age=float("nan")), "age"),
    (_with(age=10 ** 400), "age"),  # JSON integers are unbounded: float() overflows
    (_with(avg_glucose_level=39.9), "avg_glucose_level"),
    (_with(avg_glucose_level=401), "avg_glucose_level"),
    (_with(avg_glucose_level=float("inf")), "avg_glucose_level"),
    (_with(bmi=9.9), "bmi"),
    (_with(bmi=100.1), "bmi"),
    (_with(bmi="N/A"), "bmi"),
    (_with(bmi=False), "bmi"),
    (_with(gender="male"), "gender"),
    (_with(gender=1), "gender"),
    (_with(gender=_DROP), "gender"),
    (_with(hypertension=2), "hypertension"),
    (_with(hypertension="yes"), "hypertension"),
    (_with(hypertension=1.0), "hypertension"),
    (_with(heart_disease=-1), "heart_disease"),
    (_with(ever_married="yes"), "ever_married"),
    (_with(work_type="Retired"), "work_type"),
    (_with(Residence_type="City"), "Residence_type"),
    (_with(residence_type="Urban"), "residence_type"),
    (_with(smoking_status="sometimes"), "smoking_status"),
    (_with(smoking_status=None), "smoking_status"),
    (_with(id=1234), "id"),
    (_with(stroke=1), "stroke"),
    (["not", "an", "object"], "body"),
])
def test_validation_errors_name_the_field(payload, field):
    with pytest.raises(ClinicalValidationError) as info:
        validate(payload)
    assert info.value.field == field
    assert info.value.message and field in str(info.value)


def test_validation_accepts_bools_ints_and_unknowns():
    inp = validate(_with(hypertension=True, heart_disease=False, age=45, bmi=None, smoking_status="Unknown"))
    assert isinstance(inp, ClinicalInput)
    assert (inp.hypertension, inp.heart_disease, inp.age, inp.bmi) == (1, 0, 45.0, None)
    assert validate(_with(bmi=_DROP)).bmi is None


def test_missing_bmi_is_imputed_with_a_note(model):
    absent, null = model.predict_payload(_with(bmi=_DROP)), model.predict_payload(_with(bmi=None))
    assert absent["probability"] == null["probability"]
    assert any("BMI missing" in note for note in absent["notes"])
    bmi = {c["feature"]: c for c in absent["contributions"]}["bmi"]
    assert bmi["imputed"] is True and bmi["value"] == model.spec["columns"][2]["impute"]


def test_rare_gender_and_extrapolation_are_noted(model):
    result = model.predict_payload(_with(gender="Other", age=101))
    gender = {c["feature"]: c for c in result["contributions"]}["gender"]
    assert gender["direction"] == "neutral"
    assert any("Other" in note for note in result["notes"])
    assert any("outside the training data's range" in note and "age" in note for note in result["notes"])
