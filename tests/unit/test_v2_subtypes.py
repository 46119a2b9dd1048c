"""The study reading broken down by haemorrhage subtype and extent (training.v2.subtypes)."""

from __future__ import annotations

from training.v2.subtypes import by_group, group_of


def test_extra_axial_only_is_its_own_group() -> None:
    assert group_of({"epidural"}) == group_of({"epidural", "subdural"}) != group_of({"epidural", "intraparenchymal"})
    assert group_of(set()) == "subtype not recorded"


def test_each_group_is_ranked_against_every_normal_study_and_called_at_the_threshold() -> None:
    studies = [
        {"study": "e1", "label": "hemorrhage", "slices_with_hemorrhage": "2", "subtypes": "epidural"},
        {"study": "e2", "label": "hemorrhage", "slices_with_hemorrhage": "3", "subtypes": "subdural"},
        {"study": "i1", "label": "hemorrhage", "slices_with_hemorrhage": "9", "subtypes": "intraparenchymal"},
        {"study": "n1", "label": "normal", "slices_with_hemorrhage": "0", "subtypes": ""},
        {"study": "n2", "label": "normal", "slices_with_hemorrhage": "0", "subtypes": ""},
        {"study": "x", "label": "normal", "slices_with_hemorrhage": "0", "subtypes": ""},  # not scored: left out
    ]
    # extra-axial studies score below both normals; the intra-axial one above them
    scores = {"e1": -2.0, "e2": -1.5, "i1": 3.0, "n1": 0.0, "n2": 1.0}
    out = by_group(studies, scores, a=1.0, b=0.0, threshold=0.5)
    assert out["normal_studies"] == 2 and out["normal_called_positive"] == 1.0  # sigmoid(0) = 0.5 counts
    groups = out["groups"]
    extra = groups["extra-axial only (epidural, subdural)"]
    assert extra["studies"] == 2 and extra["roc_auc"]["value"] == 0.0 and extra["called_positive"] == 0.0
    intra = groups["intra-axial or subarachnoid (with or without extra-axial)"]
    assert intra["studies"] == 1 and intra["roc_auc"]["value"] == 1.0 and intra["called_positive"] == 1.0
    assert groups["blood on <= 3 slices"]["studies"] == 2 and groups["blood on > 3 slices"]["studies"] == 1
