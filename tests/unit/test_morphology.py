"""The numpy morphology the head crop uses (``reader/imaging/morphology.py``) gives scipy.ndimage's
results, so the inference package needs no scipy and model v2 reads as it was trained."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from strokelens.reader.imaging import morphology


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((5, 7), bool)
    yield np.ones((6, 4), bool)
    for density in (0.1, 0.4, 0.6, 0.9):
        yield rng.random((37, 53)) < density
    yy, xx = np.mgrid[:80, :90]
    ring = np.abs(np.hypot(yy - 40, xx - 45) - 25) < 3  # a skull ring: one hole to fill
    yield ring | (rng.random((80, 90)) < 0.02)
    u = np.zeros((20, 20), bool)
    u[2:18, 2] = u[2:18, 10] = u[17, 2:11] = True  # a U: its two arms join only at the bottom
    yield u
    comb = np.zeros((30, 41), bool)
    comb[::2, :] = True
    comb[1::4, -1] = comb[3::4, 0] = True  # one snake: every row joins the next at alternate ends
    yield comb


def _scipy_largest(mask):
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, bool)
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == int(np.argmax(sizes)) + 1


@pytest.mark.parametrize("mask", list(_masks()))
def test_same_as_scipy(mask):
    assert np.array_equal(morphology.binary_dilation(mask, iterations=2), ndimage.binary_dilation(mask, iterations=2))
    assert np.array_equal(morphology.binary_erosion(mask), ndimage.binary_erosion(mask))
    assert np.array_equal(morphology.binary_opening(mask, iterations=1), ndimage.binary_opening(mask, iterations=1))
    assert np.array_equal(morphology.binary_fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert np.array_equal(morphology.binary_closing(mask, iterations=3, border_value=0),
                          ndimage.binary_closing(mask, iterations=3, border_value=0))
    ours, n = morphology.label(mask)
    theirs, m = ndimage.label(mask)
    assert n == m and np.array_equal(ours, theirs)
    assert np.array_equal(morphology.largest_object(mask), _scipy_largest(mask))


def test_largest_object_ties_go_to_the_first_in_raster_order():
    mask = np.zeros((6, 9), bool)
    mask[4, 0:3] = mask[1, 5:8] = True  # two objects of 3 pixels: the upper one comes first
    assert np.array_equal(morphology.largest_object(mask), _scipy_largest(mask))
    assert morphology.largest_object(mask)[1, 5:8].all() and not morphology.largest_object(mask)[4].any()


def test_the_head_crop_of_real_slices_is_unchanged(monkeypatch):
    """head_box and crop_to_head on real slices of every source: identical with scipy and without."""
    from strokelens.reader.imaging import preprocess
    from strokelens.reader.imaging.decode import decode_image
    from tests.conftest import SHARED_DATA

    files = []
    for source in ("ct-hemorrhage", "ct-ich", "mri-dwi", "mri-other-sequences"):
        found = sorted((SHARED_DATA / source).rglob("*.png")) + sorted((SHARED_DATA / source).rglob("*.jp*g"))
        assert found, f"no slices of the shared data set under {SHARED_DATA / source}"
        files += found[:: max(1, len(found) // 6)][:6]
    for path in files:
        display, _ = preprocess.to_display(decode_image(path.read_bytes()))
        ours = preprocess.crop_to_head(display), preprocess.head_box(display)
        with monkeypatch.context() as m:
            for name in ("binary_opening", "binary_closing", "binary_fill_holes", "binary_dilation"):
                m.setattr(morphology, name, getattr(ndimage, name))  # preprocess imports the module at call time
            m.setattr(morphology, "largest_object", _scipy_largest)
            theirs = preprocess.crop_to_head(display), preprocess.head_box(display)
        assert ours[1] == theirs[1], path
        assert np.array_equal(ours[0], theirs[0]), path
