"""The heat map is measured, not decorative: on phantoms with known lesion masks, a model of the
served recipe points at the lesion and deleting its top-ranked pixels hurts more than random ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from strokelens.core.settings import PACKAGED_MODEL_DIR as DEFAULT_DIR
from training.faithfulness import mask_in_model_space, measure

pytestmark = pytest.mark.slow


def test_mask_follows_the_image_geometry():
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


def wilson_low(share: float, n: int, z: float = 1.96) -> float:
    """Lower end of the Wilson score interval of a proportion ``share`` observed on ``n`` cases."""
    centre = share + z * z / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def _installed_is_v2() -> bool:
    return bool(json.loads((DEFAULT_DIR / "manifest.json").read_text()).get("findings"))


def test_the_card_records_the_heat_map_faithfulness():
    if not _installed_is_v2():
        card = json.loads((DEFAULT_DIR / "metrics.json").read_text()).get("faithfulness")
        assert card is not None, "make train records these figures in the model card"
        assert card["pointing_game"] >= 0.80 and card["deletion_drop_top"] > card["deletion_drop_random"]
        return
    heat = json.loads((DEFAULT_DIR / "model_card.json").read_text())["heatmaps"]
    ct = heat["phantoms"]["ct_hemorrhage_phantoms"]["served"]
    # Served maps are measured on the phantoms called positive, so the population moves with the
    # operating point (24 at threshold 0.79: 0.83; 34 at 0.586: 0.76). The claim kept: the map's peak
    # is in the lesion (under 2 % of the brain) more often than not, at 95 % confidence.
    assert ct["measured"] >= 20 and wilson_low(ct["pointing_game"], ct["measured"]) > 0.5
    assert ct["deletion_drop_top"] > ct["deletion_drop_random"]
    dwi = heat["phantoms"]["dwi_ischemic_phantoms"]["finding_map"]
    assert dwi["pointing_game"] >= 0.80 and dwi["heat_mass_inside_lesion"] > dwi["lesion_share_of_brain"]
    for real in heat["real_test_positives"].values():  # real slices: no masks, but the deletion test applies
        assert real["deletion_top_beats_random"] >= 0.8 and real["heat_mass_inside_head"] > real["head_share_of_input"]


def test_v2_card_heat_map_figures_are_what_the_installed_model_does():
    """The CT phantom figures recomputed through the served path equal the card's."""
    if not _installed_is_v2():
        pytest.skip("the installed model is v1 (its phantom measurement is the test above)")
    from strokelens.reader.model.served import ServedModel
    from training.v2.trust import PHANTOM_SETS, phantom_faithfulness

    card = json.loads((DEFAULT_DIR / "model_card.json").read_text())["heatmaps"]["phantoms"]["ct_hemorrhage_phantoms"]
    seed = json.loads((DEFAULT_DIR / "manifest.json").read_text()).get("seed", 0)
    key, declared, route, finding, make = PHANTOM_SETS[0]  # training measures it with seed + 1234 + set index
    assert key == "ct_hemorrhage_phantoms"
    again = phantom_faithfulness(ServedModel(DEFAULT_DIR), declared, route, finding, make, card["phantoms"], seed + 1234)
    served, recorded = dict(again["served"]), dict(card["served"])
    assert served.pop("routed_as") == recorded.pop("routed_as")
    assert served == pytest.approx(recorded, rel=1e-6, abs=1e-9)


def test_v2_heat_map_states_its_per_modality_reference():
    """v2 maps are measured against their modality's mean training map, and say so (v1: one mean map)."""
    if not _installed_is_v2():
        pytest.skip("the installed model is v1")

    from phantoms import make_slice
    from phantoms.files import png_bytes
    from phantoms.slices import to_display
    from strokelens.reader.model.served import HEATMAP_METHOD_PER_MODALITY, ServedModel
    from strokelens.reader.reading import read_scan

    model = ServedModel(DEFAULT_DIR)
    assert {"CT", "MR-DWI"} <= set(model.cam_baselines)
    ct = png_bytes(to_display(make_slice(np.random.default_rng(5), "CT", 256, "hemorrhage")))
    heatmap = read_scan(ct, model, "CT").result.heatmap
    assert heatmap is not None and heatmap.method == HEATMAP_METHOD_PER_MODALITY
    assert "mean training feature map of the slice's modality" in heatmap.method
