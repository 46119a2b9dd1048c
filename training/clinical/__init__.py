"""``python -m training.clinical``: patient-level stroke risk from clinical fields.

Example::

    python -m training.clinical --data ../shared/data/clinical/healthcare-dataset-stroke-data.csv \\
        --out build/model/clinical --seed 0

Stages (:mod:`training.clinical.pipeline`; all deterministic from ``--seed``):

1. load (:mod:`~training.clinical.data`): the CSV with explicit missing values: ``bmi`` "N/A" ->
   missing (imputed with the training median inside the pipeline); ``smoking_status`` "Unknown"
   stays its own level;
2. split: stratified held-out split (25 %); the held-out ``id`` values are saved;
3. fit (:mod:`~training.clinical.models`): 5-fold stratified CV on the training part of
   class-weighted LogisticRegression (C tuned), HistGradientBoosting, RandomForest; the CV winner
   is chosen by PR AUC, then ROC AUC;
4. calibrate: the served model is always the calibrated logistic regression (see
   ``serving_decision``): Platt scaling fitted on out-of-fold decision values
   (CalibratedClassifierCV, sigmoid, ``ensemble=False``);
5. export (:mod:`~training.clinical.export`): numbers in ``clinical.json``, evaluated by
   ``strokelens.core.clinical`` without scikit-learn (parity checked);
6. evaluate (:mod:`~training.clinical.evaluate`): held-out metrics of the served model with
   2000-rep bootstrap CIs (:mod:`training.metrics`), plotly charts (:mod:`~training.clinical.charts`);
7. card (:mod:`~training.clinical.card`).

``python -m training.install`` then copies the artifacts into the package.
"""

from __future__ import annotations

import numpy as np

GENDER_MAP = {"Male": 1.0, "Female": 0.0}  # "Other" (one patient in the data) -> training mean


# Defined here, not in models.py: the fitted pipeline (clinical_pipeline.joblib) pickles this
# function by its qualified name, training.clinical.gender_male.
def gender_male(frame) -> np.ndarray:
    """Male 1, Female 0, anything else (``Other``) missing -> imputed with the training mean."""
    values = np.asarray(frame, dtype=object).reshape(-1)
    return np.array([GENDER_MAP.get(v, np.nan) for v in values], dtype=float).reshape(-1, 1)
