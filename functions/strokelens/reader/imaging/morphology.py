"""Binary morphology and connected components in numpy: the few ``scipy.ndimage`` functions the head
crop (``preprocess.crop_to_head``, model v2) needs, with scipy's results, so the inference package
ships without scipy (about 100 MB).

Same conventions as ``scipy.ndimage`` with its default 2-D structuring element (the 3 x 3 cross,
4-connectivity) and ``border_value=0``; components are numbered in raster order of their first pixel,
as ``scipy.ndimage.label`` does. ``tests/unit/test_morphology.py`` checks them against scipy.
"""

from __future__ import annotations

import numpy as np


def _shifts_or(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[1:, :] |= x[:-1, :]
    out[:-1, :] |= x[1:, :]
    out[:, 1:] |= x[:, :-1]
    out[:, :-1] |= x[:, 1:]
    return out


def _shifts_and(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[1:, :] &= x[:-1, :]
    out[:-1, :] &= x[1:, :]
    out[:, 1:] &= x[:, :-1]
    out[:, :-1] &= x[:, 1:]
    out[0, :] = out[-1, :] = False  # outside the image counts as background (border_value=0)
    out[:, 0] = out[:, -1] = False
    return out


def binary_dilation(x: np.ndarray, iterations: int = 1) -> np.ndarray:
    out = np.asarray(x, bool)
    for _ in range(iterations):
        out = _shifts_or(out)
    return out


def binary_erosion(x: np.ndarray, iterations: int = 1) -> np.ndarray:
    out = np.asarray(x, bool)
    for _ in range(iterations):
        out = _shifts_and(out)
    return out


def binary_opening(x: np.ndarray, iterations: int = 1) -> np.ndarray:
    return binary_dilation(binary_erosion(x, iterations), iterations)


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the True runs of a 1-D bool array."""
    edges = np.diff(np.concatenate(([0], row.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def label(x: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components: (labels, n), labels 1..n in raster order of each component's first pixel."""
    x = np.asarray(x, bool)
    runs: list[tuple[int, int, int]] = []  # (row, start, end), in raster order
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev_starts = prev_ends = np.empty(0, np.int64)
    prev_first = 0
    for r in range(x.shape[0]):
        starts, ends = _runs(x[r])
        first = len(runs)
        # previous-row runs overlapping [s, e): those with start < e and end > s
        lo = np.searchsorted(prev_ends, starts, side="right")
        hi = np.searchsorted(prev_starts, ends, side="left")
        for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            i = len(runs)
            runs.append((r, s, e))
            parent.append(i)
            for j in range(int(lo[k]), int(hi[k])):
                a, b = find(i), find(prev_first + j)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the root stays the earliest run
        prev_starts, prev_ends, prev_first = starts, ends, first
    labels = np.zeros(x.shape, np.int32)
    ids: dict[int, int] = {}
    for i, (r, s, e) in enumerate(runs):
        root = find(i)
        if root not in ids:
            ids[root] = len(ids) + 1
        labels[r, s:e] = ids[root]
    return labels, len(ids)


def sum(x: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:  # noqa: A001 (scipy's name)
    """Sum of ``x`` over each label in ``index``."""
    totals = np.bincount(labels.ravel(), weights=np.asarray(x, np.float64).ravel(), minlength=int(np.max(index, initial=0)) + 1)
    return totals[np.asarray(index)]


def binary_fill_holes(x: np.ndarray) -> np.ndarray:
    """``x`` with every background region that does not reach the image border filled."""
    x = np.asarray(x, bool)
    background, _ = label(~x)
    border = np.unique(np.concatenate((background[0], background[-1], background[:, 0], background[:, -1])))
    outside = np.isin(background, border[border > 0])
    return ~outside
