"""The heat map is measured, not decorative: on phantoms with known lesion masks, a model of the
served recipe points at the lesion and deleting its top-ranked pixels hurts more than random ones."""

from __future__ import annotations

import json

import pytest

from strokelens.core.settings import PACKAGED_MODEL_DIR as DEFAULT_DIR
from training.faithfulness import mask_in_model_space, measure

pytestmark = pytest.mark.slow


def test_mask_follows_the_image_geometry():
    import numpy as np

    mask = np.zeros((100, 200), bool)
    mask[40:60, 90:110] = True  # centre of a wide image
    moved = mask_in_model_space(mask, 64)
    ys, xs = np.nonzero(moved)
    assert abs(ys.mean() - 32) < 2 and abs(xs.mean() - 32) < 2  # padded to a square: still central


def test_heat_maps_point_at_lesions_and_deletion_hurts_more_than_random():
    report = measure(seed=0)
    assert report["correctly_classified"] >= 20
    assert report["pointing_game"] >= 0.80
    assert report["deletion_drop_top"] > report["deletion_drop_random"]


def _installed_is_v2() -> bool:
    return bool(json.loads((DEFAULT_DIR / "manifest.json").read_text()).get("findings"))


@pytest.mark.xfail(_installed_is_v2(), strict=True,
                   reason="model v2's card records no heat-map faithfulness: not re-measured for v2 "
                          "(docs/model_v2/README.md, Caveats); strict, so this flips once training records it")
def test_the_card_records_the_heat_map_faithfulness():
    card = json.loads((DEFAULT_DIR / "metrics.json").read_text()).get("faithfulness")
    assert card is not None, "make train records these figures in the model card"
    assert card["pointing_game"] >= 0.80 and card["deletion_drop_top"] > card["deletion_drop_random"]
