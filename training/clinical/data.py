"""The clinical CSV: columns, explicit missing values, the held-out split, API payloads, data facts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from strokelens.core import clinical as served

TEST_FRACTION = 0.25
COLUMNS = ("id", "gender", "age", "hypertension", "heart_disease", "ever_married", "work_type",
           "Residence_type", "avg_glucose_level", "bmi", "smoking_status", "stroke")
FEATURES = served.REQUIRED + served.OPTIONAL


def load_data(path: Path) -> pd.DataFrame:
    """The CSV with explicit missing values: only ``bmi`` may be missing ("N/A" or empty)."""
    df = pd.read_csv(path, keep_default_na=False, na_values={"bmi": ["N/A", "NA", ""]})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    df = df[list(COLUMNS)].copy()
    for name in ("age", "avg_glucose_level", "bmi"):
        df[name] = pd.to_numeric(df[name], errors="raise").astype(float)
    for name in ("id", "hypertension", "heart_disease", "stroke"):
        df[name] = pd.to_numeric(df[name], errors="raise").astype(int)
    for name, levels in served.CATEGORIES.items():
        bad = sorted(set(df[name]) - set(levels))
        if bad:
            raise ValueError(f"{path}: column {name} has unexpected values {bad}; expected {list(levels)}")
    for name in ("hypertension", "heart_disease", "stroke"):
        if not df[name].isin((0, 1)).all():
            raise ValueError(f"{path}: column {name} must be 0/1")
    if df.drop(columns="bmi").isna().any().any():
        raise ValueError(f"{path}: unexpected missing values outside bmi")
    if not df["id"].is_unique:
        raise ValueError(f"{path}: id is not unique")
    return df


def split_ids(df: pd.DataFrame, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, test): stratified on ``stroke``, in file order."""
    train, test = train_test_split(np.arange(len(df)), test_size=test_fraction, stratify=df["stroke"].to_numpy(),
                                   random_state=seed)
    return np.sort(train), np.sort(test)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def payload_of(row: dict) -> dict:
    """A data row as an API payload (missing BMI -> null)."""
    payload = {name: row[name] for name in FEATURES}
    payload["bmi"] = None if pd.isna(payload["bmi"]) else float(payload["bmi"])
    for name in ("hypertension", "heart_disease"):
        payload[name] = int(payload[name])
    for name in ("age", "avg_glucose_level"):
        payload[name] = float(payload[name])
    return payload


def data_facts(df: pd.DataFrame, spec: dict, n_test_positive: int) -> dict:
    """The numbers the card's limitations quote, computed from the data rather than typed in."""
    missing = df["bmi"].isna()
    return {"unknown_smoking": float((df["smoking_status"] == "Unknown").mean()),
            "bmi_missing": float(missing.mean()), "bmi_missing_rate": float(df.loc[missing, "stroke"].mean()),
            "bmi_present_rate": float(df.loc[~missing, "stroke"].mean()),
            "other_gender": int((df["gender"] == "Other").sum()), "prevalence": float(df["stroke"].mean()),
            "n_test_positive": n_test_positive, **spec["training"]["ranges"]}
