"""Model v2's data: every source read into one table of model inputs (cached), with splits by group.

Sources (paths are arguments; the defaults are the project's shared data):

- ``ct-slices``  (class layout, ``groups.csv``): CT slices labelled hemorrhage / normal;
- ``ct-studies`` (study layout: ``studies/<study>/*``, ``studies.csv``): CT studies with a study label
  only (multiple-instance learning); the group is the study;
- ``dwi``        (class layout, ``groups.csv`` with ``file,label,group,original_size``): DWI MRI slices
  labelled ischemic / normal;
- ``mr-other``   (one flat folder): other MRI sequences, used only as examples to refuse.

Every slice goes through the serving code (decode -> display -> crop to the head -> model input), so
the cache holds exactly what the served model sees. Splits are by group, stratified by label:
ct-studies by study, the others by their groups.csv groups (a file without a group is its own group).
Test splits are drawn once, here, with a fixed seed and used once, for the card.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.datasets import discover, discover_studies
from training.split import cv_folds, train_test_split
from training.datasets import Sample

# The router's classes (what kind of image is this?) and each source's kind.
KINDS = ("CT", "MR-DWI", "MR-other", "not-head")
SOURCE_KIND = {"ct-slices": "CT", "ct-studies": "CT", "dwi": "MR-DWI", "mr-other": "MR-other"}
DEFAULT_SOURCES = {
    "ct-slices": "../shared/data/ct-hemorrhage",
    "ct-studies": "../shared/data/ct-ich",
    "dwi": "../shared/data/mri-dwi",
    "mr-other": "../shared/data/mri-other-sequences",
}


@dataclass
class Table:
    """One row per slice (numpy arrays of equal length)."""

    x: np.ndarray  # (N, S, S) model inputs (cropped to the head)
    source: np.ndarray  # source name
    label: np.ndarray  # hemorrhage / normal / ischemic / other (ct-studies: the STUDY's label)
    group: np.ndarray  # split unit
    study: np.ndarray  # ct-studies: study name, else ""
    path: np.ndarray  # file path
    original_size: np.ndarray  # (N, 2) h, w of the original (groups.csv) or of the file
    brain: np.ndarray  # (N,) brain-tissue fraction (training.v2.assess)
    split: np.ndarray  # train / test

    def where(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)


def _original_sizes(root: Path) -> dict[str, tuple[int, int]]:
    table = root / "groups.csv"
    out: dict[str, tuple[int, int]] = {}
    if table.is_file():
        with table.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("file") and row.get("original_size"):
                    w, h = row["original_size"].lower().split("x")
                    out[row["file"]] = (int(h), int(w))
    return out


def _rows(sources: dict[str, str]) -> list[tuple[str, Sample, str]]:
    rows: list[tuple[str, Sample, str]] = []
    for name, root in sources.items():
        if not root:
            continue
        root_p = Path(root)
        if name == "ct-studies":
            for st in discover_studies(root_p):
                rows += [(name, Sample(p, st.label, "CT", f"{name}:{st.name}"), st.name) for p in st.slices]
        else:
            for s in discover(root_p, "MR" if name != "ct-slices" else "CT"):
                rows.append((name, Sample(s.path, s.label, s.modality, f"{name}:{s.group}"), ""))
    return rows


def cache_key(sources: dict[str, str], size: int, seed: int) -> str:
    """What a cached table depends on: sources, input size, seed and the preprocessing code itself
    (the crop and its morphology: a changed crop must not be served from a stale cache)."""
    import hashlib

    from strokelens.reader.imaging import morphology, preprocess

    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (preprocess, morphology))).hexdigest()[:12]
    return repr((sorted(sources.items()), size, seed, code))


def load(sources: dict[str, str] | None = None, size: int = 128, seed: int = 0, cache: Path | None = None,
         progress=None) -> Table:
    """Read, preprocess (serving code, head crop), split; cached in ``cache`` (an .npz) when given."""
    from strokelens.core.errors import ScanError
    from strokelens.reader.imaging.decode import decode_image
    from strokelens.reader.imaging.preprocess import to_display, to_model_input
    from training.v2.assess import brain_fraction

    sources = dict(DEFAULT_SOURCES if sources is None else sources)
    key = cache_key(sources, size, seed)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as a:
            if str(a["key"]) == key:
                return Table(**{k: a[k] for k in Table.__dataclass_fields__})
    rows = _rows(sources)
    sizes = {name: _original_sizes(Path(root)) for name, root in sources.items() if root}
    xs, kept, orig, brain = [], [], [], []
    for i, (name, sample, study) in enumerate(rows):
        if progress:
            progress(i, len(rows))
        try:
            decoded = decode_image(sample.path.read_bytes())
        except ScanError as exc:
            print(f"skipped {sample.path}: {exc.code}", file=sys.stderr)
            continue
        display, _ = to_display(decoded)
        x = to_model_input(display, size, crop=True)
        xs.append(x)
        kept.append((name, sample, study))
        rel = sample.path.relative_to(sources[name]).as_posix()
        orig.append(sizes[name].get(rel, tuple(display.shape)))
        brain.append(brain_fraction(x))
    groups = np.array([s.group for _, s, _ in kept])
    labels = np.array([s.label for _, s, _ in kept])
    srcs = np.array([n for n, _, _ in kept])
    split = np.array(["train"] * len(kept), dtype=object)
    for name in sorted(set(srcs)):
        idx = np.flatnonzero(srcs == name)
        part = train_test_split([Sample(Path(""), labels[i], None, groups[i]) for i in idx], seed)
        split[idx] = part
    table = Table(np.stack(xs).astype(np.float32), srcs, labels, groups, np.array([st for _, _, st in kept]),
                  np.array([str(s.path) for _, s, _ in kept]), np.array(orig, dtype=np.int32),
                  np.array(brain, dtype=np.float32), split.astype(str))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=key, **table.__dict__)
    return table


def folds_of(table: Table, idx: np.ndarray, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped stratified folds over the rows ``idx`` (indices into ``idx``)."""
    strata = [f"{table.source[i]}/{table.label[i]}" for i in idx]
    return cv_folds(strata, list(table.group[idx]), n, seed)
