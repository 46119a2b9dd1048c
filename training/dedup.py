"""Near-duplicate detection with perceptual hashes, and merging duplicates into split groups.

Hashes are computed on the preprocessed MODEL INPUT (the same square [0, 1] image the CNN sees),
in numpy (PIL only resizes):

- dHash (difference hash): resize to 9x8, one bit per horizontal neighbour comparison -> 64 bits;
- pHash (perceptual hash): resize to 32x32, 2-D DCT-II, the 8x8 lowest frequencies without the DC
  term compared with their median -> 63 bits.

The two are concatenated into one 127-bit hash; two images are near-duplicates when its Hamming
distance is at most HAMMING_MAX (= 11 of 127 bits): re-saved, rescaled, slightly re-cropped or
brightened copies stay within it (<= 9 measured), unrelated phantom slices of the same synthetic
anatomy do not (>= 12) (checked in tests/unit/test_training_dedup.py and on the
data set: the pairs found are listed in the training summary). Duplicates are merged into one
split group with union-find, on top of ``groups.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HAMMING_MAX = 11


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    pil = Image.fromarray(np.asarray(image, np.float32))
    return np.asarray(pil.resize((width, height), Image.Resampling.BOX), np.float64)


def dhash(image: np.ndarray) -> np.ndarray:
    """64 bits (bool array): is each pixel brighter than its right neighbour, on a 9x8 thumbnail."""
    small = _resize(image, 9, 8)
    return (small[:, 1:] > small[:, :-1]).ravel()


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))
    m[0] *= np.sqrt(1 / n)
    m[1:] *= np.sqrt(2 / n)
    return m


_DCT32 = _dct_matrix(32)


def phash(image: np.ndarray) -> np.ndarray:
    """63 bits: the 8x8 low-frequency DCT coefficients (DC dropped) above their median."""
    small = _resize(image, 32, 32)
    coeffs = (_DCT32 @ small @ _DCT32.T)[:8, :8].ravel()[1:]
    return coeffs > np.median(coeffs)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between two stacks of bit vectors (N, B) x (M, B) -> (N, M)."""
    a, b = a.astype(np.int32), b.astype(np.int32)
    return a @ (1 - b).T + (1 - a) @ b.T


@dataclass(frozen=True)
class DuplicatePair:
    i: int
    j: int
    phash_distance: int
    dhash_distance: int


def find_duplicates(images: np.ndarray, max_distance: int = HAMMING_MAX) -> list[DuplicatePair]:
    """All pairs i < j of near-duplicate images (N, S, S)."""
    if len(images) < 2:
        return []
    p = np.stack([phash(x) for x in images])
    d = np.stack([dhash(x) for x in images])
    dp, dd = hamming(p, p), hamming(d, d)
    close = (dp + dd) <= max_distance
    ii, jj = np.nonzero(np.triu(close, k=1))
    return [DuplicatePair(int(i), int(j), int(dp[i, j]), int(dd[i, j])) for i, j in zip(ii, jj)]


def merge_groups(groups: list[str], pairs: list[DuplicatePair]) -> list[str]:
    """Union-find over the existing groups plus duplicate pairs; each merged set takes the
    alphabetically first group name among its members (deterministic)."""
    parent = {g: g for g in groups}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for pair in pairs:
        a, b = find(groups[pair.i]), find(groups[pair.j])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(g) for g in groups]


def report(pairs: list[DuplicatePair], names: list[str], groups_before: list[str]) -> dict:
    """JSON-able summary: every pair, and which were NOT already in one group (e.g. groups.csv)."""
    rows = [{"a": names[p.i], "b": names[p.j], "phash_distance": p.phash_distance, "dhash_distance": p.dhash_distance,
             "already_grouped": groups_before[p.i] == groups_before[p.j]} for p in pairs]
    return {"method": f"pHash (DCT 8x8, 63 bits) + dHash (9x8, 64 bits), Hamming distance <= {HAMMING_MAX} of 127 "
                      "bits, on the preprocessed model input; duplicates merged into one split group "
                      "(union-find with groups.csv)",
            "pairs_found": len(rows), "new_pairs": sum(not r["already_grouped"] for r in rows), "pairs": rows}
