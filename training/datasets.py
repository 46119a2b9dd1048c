"""Find labelled slices on disk and turn them into model inputs with the serving code.

Three layouts are read (detected automatically):

1. ``ROOT/<class>/*.{png,jpg,jpeg,dcm}``: one modality (``CT`` unless told otherwise);
2. ``ROOT/<modality>/<class>/*``: modality folders such as ``CT``, ``MRI``/``MR``;
3. the Kaggle "Multimodal Stroke Image Dataset" ``deep/`` layout (``train/1- Stroke``,
   ``train/2- Control/NormalBT|NormalMR``, ``test/strokeBT|strokeMR|normalBT|normalMR``);
   labels are ``stroke``/``normal`` and its train/test folders are the split.

Groups (files that must stay in one split) come from ``ROOT/groups.csv`` when present;
every other file is its own group.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
MODALITY_ALIASES = {"ct": "CT", "bt": "CT", "mr": "MR", "mri": "MR"}
Layout = Literal["class", "modality", "kaggle", "study", "flat"]


@dataclass(frozen=True)
class Sample:
    """One labelled slice: where it is, what it shows, which group and preset split it has."""

    path: Path
    label: str
    modality: str | None
    group: str
    split: str | None = None  # "train" | "test" | None (split decided by training/split.py)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def normalise_modality(name: str) -> str | None:
    """"CT", "MR" for a folder or tag name naming a modality, else None."""
    return MODALITY_ALIASES.get(name.strip().lower())


def _kaggle_root(root: Path) -> Path | None:
    for candidate in (root, root / "deep"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            names = {p.name.lower() for p in _subdirs(candidate / "train")}
            if any("stroke" in n for n in names) and any("control" in n for n in names):
                return candidate
    return None


def detect_layout(root: Path) -> Layout:
    """Which of the three layouts ``root`` holds."""
    if _kaggle_root(root) is not None:
        return "kaggle"
    if is_study_layout(root):
        return "study"
    subdirs = _subdirs(root)
    if subdirs and all(normalise_modality(d.name) for d in subdirs):
        return "modality"
    if subdirs:
        return "class"
    if _images(root):
        return "flat"
    raise ValueError(f"no class folders under {root}")


def _modality_from_name(name: str) -> str | None:
    """Infer a modality from a file name (Kaggle stroke folder mixes CT and MR)."""
    tokens = re.split(r"[^a-z]+", name.lower())
    for token in tokens:
        if token in MODALITY_ALIASES:
            return MODALITY_ALIASES[token]
    upper = name.upper()
    if "MR" in upper:
        return "MR"
    if "CT" in upper or "BT" in upper:
        return "CT"
    return None


def _kaggle_folder_modality(name: str) -> str | None:
    """"normalBT" -> CT, "NormalMR" -> MR, "1- Stroke" -> None (mixed)."""
    lowered = name.lower()
    if lowered.endswith(("bt", "ct")):
        return "CT"
    if lowered.endswith(("mr", "mri")):
        return "MR"
    return None


def _kaggle_samples(deep: Path) -> list[tuple[Path, str, str | None, str | None]]:
    found: list[tuple[Path, str, str | None, str | None]] = []
    for split in ("train", "test"):
        for folder in _subdirs(deep / split):
            label = "stroke" if "stroke" in folder.name.lower() else "normal"
            for leaf in _subdirs(folder) or [folder]:
                folder_modality = _kaggle_folder_modality(leaf.name)
                for path in _images(leaf):
                    found.append((path, label, folder_modality or _modality_from_name(path.stem), split))
    return found


def read_groups(root: Path) -> dict[str, str]:
    """Map relative file path -> group name from ``root/groups.csv`` (empty when absent)."""
    table = root / "groups.csv"
    if not table.is_file():
        return {}
    groups: dict[str, str] = {}
    with table.open(newline="") as handle:
        for row in csv.DictReader(handle):
            # Two forms: ``group,files`` (";"-joined, ct-hemorrhage) and ``file,label,group,...`` (mri-dwi).
            for rel in (row.get("files") or row.get("file") or "").split(";"):
                if rel.strip():
                    groups[rel.strip()] = row["group"]
    return groups


@dataclass(frozen=True)
class Study:
    """One study of the study layout: ``ROOT/studies/<study>/*`` with ``ROOT/studies.csv``
    (``study,label,...``); the label is the study's (no slice labels)."""

    name: str
    label: str
    slices: tuple[Path, ...]
    info: dict


def is_study_layout(root: Path | str) -> bool:
    root = Path(root)
    return (root / "studies.csv").is_file() and (root / "studies").is_dir()


def discover_studies(root: Path | str) -> list[Study]:
    """Every labelled study under ``root`` (study layout), slices in natural name order."""
    root = Path(root)
    out = []
    with (root / "studies.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            folder = root / "studies" / row["study"]
            if not folder.is_dir():
                continue  # kept aside or missing: never assume every listed study is here
            files = sorted(_images(folder), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
            if files:
                out.append(Study(row["study"], row["label"].strip().lower(), tuple(files), dict(row)))
    if not out:
        raise ValueError(f"no studies found under {root}")
    return out


def discover(root: Path | str, modality: str = "CT") -> list[Sample]:
    """All labelled slices under ``root``, sorted by path; labels are lowercased folder names."""
    root = Path(root)
    layout = detect_layout(root)
    rows: list[tuple[Path, str, str | None, str | None]] = []
    if layout == "kaggle":
        rows = _kaggle_samples(_kaggle_root(root))  # type: ignore[arg-type]
    elif layout == "study":  # every slice carries its study's label and the study as its group
        return [Sample(p, st.label, modality, f"study:{st.name}") for st in discover_studies(root) for p in st.slices]
    elif layout == "modality":
        for mod_dir in _subdirs(root):
            for class_dir in _subdirs(mod_dir):
                rows += [(p, class_dir.name.lower(), normalise_modality(mod_dir.name), None) for p in _images(class_dir)]
    elif layout == "flat":  # one folder of unlabelled images (e.g. other MRI sequences: OOD examples)
        rows = [(p, "other", modality, None) for p in _images(root)]
    else:
        for class_dir in _subdirs(root):
            rows += [(p, class_dir.name.lower(), modality, None) for p in _images(class_dir)]
    groups = read_groups(root)
    samples = []
    for path, label, mod, split in sorted(rows, key=lambda r: str(r[0])):
        rel = path.relative_to(root).as_posix()
        samples.append(Sample(path, label, mod, groups.get(rel, rel), split))
    if not samples:
        raise ValueError(f"no images found under {root}")
    return samples


def labels_of(samples: list[Sample]) -> list[str]:
    """Class names, sorted: the order of the head's outputs."""
    return sorted({s.label for s in samples})


def load_inputs(samples: list[Sample], size: int) -> tuple[np.ndarray, list[Sample]]:
    """Model inputs (N, size, size) float32 via the serving preprocessing, and the samples kept.

    Files the server would reject (:class:`strokelens.core.errors.ScanError`) are skipped and reported.
    """
    from strokelens.core.errors import ScanError
    from strokelens.reader.imaging.preprocess import preprocess_bytes

    arrays: list[np.ndarray] = []
    kept: list[Sample] = []
    for sample in samples:
        try:
            _, _, model_input, _ = preprocess_bytes(sample.path.read_bytes(), size)
        except ScanError as exc:
            print(f"skipped {sample.path}: {exc.code}", file=sys.stderr)
            continue
        arrays.append(model_input)
        kept.append(sample)
    if not arrays:
        return np.zeros((0, size, size), np.float32), kept
    return np.stack(arrays).astype(np.float32), kept
