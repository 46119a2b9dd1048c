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


def binary_closing(x: np.ndarray, iterations: int = 1, border_value: int = 0) -> np.ndarray:
    """Dilation then erosion; ``border_value`` must be 0 (outside the image is background)."""
    assert border_value == 0
    return binary_erosion(binary_dilation(x, iterations), iterations)


def _runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every True run of every row, in raster order: (row, start, end exclusive)."""
    padded = np.zeros((x.shape[0], x.shape[1] + 2), bool)
    padded[:, 1:-1] = x
    edges = np.flatnonzero(padded[:, 1:] != padded[:, :-1])  # a run's start and end alternate along each row
    rows, cols = np.divmod(edges, x.shape[1] + 1)
    return rows[::2], cols[::2], cols[1::2]


def _components(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """4-connected components at run level: (rows, starts, ends, component of each run, n), components
    0..n-1 in raster order of their first pixel (scipy's numbering, less one).

    Runs of consecutive rows that overlap are joined (union-find on arrays: roots hooked under the
    smaller root, then pointer jumping), so every run ends with the smallest run index of its
    component; runs are in raster order, so that index orders the components as scipy numbers them.
    """
    x = np.asarray(x, bool)
    rows, starts, ends = _runs(x)
    n = len(rows)
    if n == 0:
        return rows, starts, ends, rows, 0
    width = x.shape[1] + 2
    key_start, key_end = rows * width + starts, rows * width + ends  # both ascending (raster order)
    # next-row runs overlapping run i: start < end_i and end > start_i
    lo = np.searchsorted(key_end, (rows + 1) * width + starts, side="right")
    hi = np.searchsorted(key_start, (rows + 1) * width + ends, side="left")
    count = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(n), count)
    b = np.repeat(lo, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    root = np.arange(n)
    while True:  # hook each edge's larger root under its smaller one, then compress every path
        ra, rb = root[a], root[b]
        split = ra != rb
        if not split.any():
            break
        np.minimum.at(root, np.maximum(ra[split], rb[split]), np.minimum(ra[split], rb[split]))
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    ids, component = np.unique(root, return_inverse=True)
    return rows, starts, ends, component, int(len(ids))


def _paint(shape: tuple[int, int], rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, values: np.ndarray | np.integer,
           dtype=np.int32) -> np.ndarray:
    """An image holding ``values[i]`` on run i and 0 elsewhere: +v at each start, -v just past each end,
    summed along the row (runs of a row never touch, so no two marks share a cell)."""
    h, w = shape
    delta = np.zeros((h, w + 1), dtype)
    delta[rows, starts] = values
    delta[rows, ends] -= values
    return np.cumsum(delta, axis=1, dtype=dtype)[:, :w]


def label(x: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components: (labels, n), labels 1..n in raster order of each component's first pixel.
    The crop needs only :func:`largest_object`; this full labelling is what the tests hold against scipy."""
    x = np.asarray(x, bool)
    rows, starts, ends, component, n = _components(x)
    return _paint(x.shape, rows, starts, ends, component + 1), n


def largest_object(x: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a mask (ties: the first in raster order, as ``argmax`` over
    scipy's label sizes picks); all False when the mask is empty."""
    x = np.asarray(x, bool)
    rows, starts, ends, component, n = _components(x)
    if n == 0:
        return np.zeros_like(x)
    largest = int(np.argmax(np.bincount(component, weights=ends - starts, minlength=n)))
    keep = component == largest
    return _paint(x.shape, rows[keep], starts[keep], ends[keep], np.int8(1), np.int8).astype(bool)


def binary_fill_holes(x: np.ndarray) -> np.ndarray:
    """``x`` with every background region that does not reach the image border filled."""
    x = np.asarray(x, bool)
    h, w = x.shape
    rows, starts, ends, component, n = _components(~x)
    touches = (rows == 0) | (rows == h - 1) | (starts == 0) | (ends == w)
    outside = np.isin(component, component[touches])
    return ~_paint(x.shape, rows[outside], starts[outside], ends[outside], np.int8(1), np.int8).astype(bool)
