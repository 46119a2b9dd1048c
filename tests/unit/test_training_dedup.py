"""Perceptual-hash near-duplicate detection and group merging."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from strokelens.reader.imaging.preprocess import preprocess_bytes
from training import dedup
from phantoms import ct_to_display, make_ct_slice


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _model_input(data: bytes) -> np.ndarray:
    return preprocess_bytes(data, 128)[2]


def _slice(seed: int) -> np.ndarray:
    return ct_to_display(make_ct_slice(np.random.default_rng(seed)).hu)


def test_resaved_rescaled_cropped_copies_are_duplicates_unrelated_are_not() -> None:
    original = _slice(1)
    h, w = original.shape[:2]
    variants = {
        "resaved": original.copy(),
        "rescaled": np.asarray(Image.fromarray(original).resize((int(w * 0.8), int(h * 0.8)), Image.Resampling.BILINEAR)),
        "cropped": original[h // 30: h - h // 40, w // 35: w - w // 30],
        "brighter": np.clip(original.astype(int) + 6, 0, 255).astype(np.uint8),
    }
    images = [_model_input(_png(original))] + [_model_input(_png(v)) for v in variants.values()]
    others = [_model_input(_png(_slice(seed))) for seed in range(10, 16)]
    pairs = dedup.find_duplicates(np.stack(images + others))
    found = {(p.i, p.j) for p in pairs}
    for k, name in enumerate(variants, start=1):
        assert (0, k) in found, f"{name} copy not detected"
    assert not [p for p in pairs if p.j >= len(images)], "unrelated phantoms flagged as duplicates"


def test_merge_groups_is_union_find() -> None:
    groups = ["a", "b", "c", "d", "b"]
    pairs = [dedup.DuplicatePair(0, 2, 0, 0), dedup.DuplicatePair(2, 3, 1, 1)]
    merged = dedup.merge_groups(groups, pairs)
    assert merged == ["a", "b", "a", "a", "b"]
    rep = dedup.report(pairs, ["f0", "f1", "f2", "f3", "f4"], groups)
    assert rep["pairs_found"] == 2 and rep["new_pairs"] == 2


def test_hamming_matches_bit_count() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 64)) > 0.5, rng.random((4, 64)) > 0.5
    expected = np.array([[np.sum(x != y) for y in b] for x in a])
    assert np.array_equal(dedup.hamming(a, b), expected)
