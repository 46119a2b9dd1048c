"""Grouped, stratified train/test split and CV folds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from training.datasets import Sample
from training.split import cv_folds, save_split, train_test_split


def _samples(n_per_class: int = 40) -> list[Sample]:
    out = []
    for label in ("hemorrhage", "normal"):
        for i in range(n_per_class):
            group = f"{label}-pair{i // 2}" if i < 12 else f"{label}/{i}"  # 6 pairs per class
            out.append(Sample(Path(f"/d/{label}/{i}.png"), label, "CT", group))
    out.append(Sample(Path("/d/hemorrhage/x.png"), "hemorrhage", "CT", "cross"))  # cross-class group
    out.append(Sample(Path("/d/normal/x.png"), "normal", "CT", "cross"))
    return out


def test_split_keeps_groups_whole_and_is_stratified() -> None:
    samples = _samples()
    splits = train_test_split(samples, seed=0)
    by_group: dict[str, set[str]] = {}
    for s, sp in zip(samples, splits):
        by_group.setdefault(s.group, set()).add(sp)
    assert all(len(v) == 1 for v in by_group.values())
    test = Counter(s.label for s, sp in zip(samples, splits) if sp == "test")
    assert abs(test["hemorrhage"] - test["normal"]) <= 2
    assert 0.2 <= sum(test.values()) / len(samples) <= 0.3
    assert splits == train_test_split(samples, seed=0)


def test_preset_split_is_honoured() -> None:
    samples = [Sample(Path(f"/k/{i}.png"), "stroke" if i % 2 else "normal", None, str(i), "test" if i < 3 else "train")
               for i in range(10)]
    assert train_test_split(samples, seed=0) == ["test"] * 3 + ["train"] * 7


def test_cv_folds_are_grouped() -> None:
    samples = _samples()
    folds = cv_folds([s.label for s in samples], [s.group for s in samples], 5, seed=0)
    assert len(folds) == 5
    for tr, val in folds:
        assert not {samples[i].group for i in tr} & {samples[i].group for i in val}
        assert {samples[i].label for i in val} == {"hemorrhage", "normal"}


def test_save_split_is_relative(tmp_path: Path) -> None:
    samples = _samples(4)
    save_split(samples, train_test_split(samples, 0), Path("/d"), tmp_path / "split.json", 0)
    rows = json.loads((tmp_path / "split.json").read_text())["files"]
    assert rows[0]["file"] == "hemorrhage/0.png" and rows[0]["split"] in ("train", "test")
