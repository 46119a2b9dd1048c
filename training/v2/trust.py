"""Can model v2's numbers and heat maps be trusted? Calibration per modality and heat-map faithfulness.

Called by :func:`training.v2.train.run` after the served-path metrics; the results go into the card
(``model_card.json`` keys ``calibration`` and ``heatmaps``, markdown sections, a reliability chart).

- **Calibration** (held-out test splits, once): the served heads of the written folder applied to the
  int8 embeddings (the spatial mean of the cached int8 feature maps, exactly what serving pools), for
  ct-hemorrhage slices, ct-ich STUDY probabilities (the manifest's aggregation over each study's
  assessable slices, Platt-calibrated as served) and mri-dwi slices. ECE is the project's one
  definition (:func:`training.metrics.ece`: 10 equal-width bins), with grouped bootstrap 95 % CIs.
- **Heat-map faithfulness on phantoms** (known lesion masks), through the served path
  (:func:`strokelens.reader.reading.read_scan` with the modality declared): CT haemorrhage phantoms
  read as CT, DWI-like ischaemic phantoms read as MR. On lesion slices the model reads and calls
  positive: share of the heat map's mass inside the lesion next to the lesion's share of the brain and
  of the image, the pointing game (peak within half a feature cell of the lesion) and the deletion
  test of :mod:`training.faithfulness` (top 10 % cells blurred vs random 10 %).
- **Checked by eye**: a montage of real positive test slices (ct-hemorrhage and mri-dwi) with their
  served heat maps, and the list of the files shown. The montage shows research-only images: it stays
  in the build folder and must not be published.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFilter

from phantoms import make_ct_slice, make_mr_slice, png_bytes
from phantoms.slices import to_display as phantom_display
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.preprocess import head_box, pad_to_square, resize, to_display, to_model_input
from strokelens.reader.model.aggregate import study_probability
from strokelens.reader.model.cam import class_activation_map, normalised, upsample
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan
from training.charts import Chart, diagonal, reliability_points, style
from training.faithfulness import _delete
from training.metrics import ECE_BINS, bootstrap, ece, equal_width_bins

# (card key, source in the Table, positive label, what is scored)
CALIBRATION_SETS = (("ct_hemorrhage_slices", "ct-slices", "hemorrhage", "slice"),
                    ("ct_ich_studies", "ct-studies", "hemorrhage", "study"),
                    ("dwi_slices", "dwi", "ischemic", "slice"))
# (card key, declared modality, served route, finding, phantom maker)
PHANTOM_SETS = (("ct_hemorrhage_phantoms", "CT", "CT", "hemorrhage", make_ct_slice),
                ("dwi_ischemic_phantoms", "MR", "MR-DWI", "ischemic", make_mr_slice))
BOOT_REPS = 1000
CARD_DIR = "card"  # PNG files of the card (not served; the montage holds research-only images)


# ------------------------------------------------------------------ calibration

def calibration_of(p: np.ndarray, truth: np.ndarray, groups: np.ndarray, seed: int, reps: int = BOOT_REPS) -> dict:
    """ECE (10 equal-width bins, grouped bootstrap 95 % CI), Brier score, mean predicted vs observed
    rate, and the reliability diagram's points (mean predicted, observed rate, count per non-empty bin)."""
    p, truth, groups = np.asarray(p, np.float64), np.asarray(truth, np.float64), np.asarray(groups)
    point = {"ece": ece(p, truth), "brier": float(np.mean((p - truth) ** 2))}
    ci = bootstrap(point, lambda i: {"ece": ece(p[i], truth[i]), "brier": float(np.mean((p[i] - truth[i]) ** 2))},
                   list(groups), seed, reps)
    mean_p, observed, count = reliability_points(truth, p, equal_width_bins(p, ECE_BINS))
    return {"n": int(len(p)), "n_positive": int(truth.sum()), "n_groups": int(len(set(groups.tolist()))),
            "ece": ci["ece"], "brier": ci["brier"], "mean_predicted": float(p.mean()), "observed_rate": float(truth.mean()),
            "bins": ECE_BINS, "reliability": {"mean_predicted": mean_p, "observed_rate": observed, "count": count}}


def held_out_scores(model: ServedModel, table, maps: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{set key: (probability, truth 0/1, bootstrap group)} on the test splits, from the served heads.

    Slices: the finding head of the modality on the pooled int8 feature map. ct-ich studies: the served
    aggregation (rule, parameters and Platt calibration from the manifest) over the study's assessable
    slices (brain fraction >= the manifest's cut); a study without any is left out.
    """
    v2 = model.v2
    if v2 is None:
        raise ValueError("not a model v2 folder (no findings block in the manifest)")
    agg = model.manifest.raw["aggregation"]
    cut = v2.assess_cut if v2.assess_cut is not None else 0.0
    heads = {"ct-slices": v2.findings["CT"], "ct-studies": v2.findings["CT"], "dwi": v2.findings["MR-DWI"]}
    out = {}
    for key, source, positive, unit in CALIBRATION_SETS:
        rows = np.flatnonzero((table.source == source) & (table.split == "test"))
        if not len(rows):
            continue
        emb = maps[rows].astype(np.float64).mean(axis=(1, 2))
        p = heads[source].head.predict_proba(emb)[:, 1]
        truth = (table.label[rows] == positive).astype(float)
        if unit == "slice":
            out[key] = (p, truth, table.group[rows])
            continue
        names, ps, ys = [], [], []
        for study in sorted(set(table.study[rows].tolist())):
            inside = (table.study[rows] == study) & (table.brain[rows] >= cut)
            if inside.any():
                names.append(study)
                ps.append(study_probability(agg["rule"], p[inside], agg["params"]))
                ys.append(truth[inside][0])
        out[key] = (np.array(ps), np.array(ys), np.array(names))
    return out


def calibration(model: ServedModel, table, maps: np.ndarray, seed: int) -> dict:
    """{set key: :func:`calibration_of`} for every test set present (see :func:`held_out_scores`)."""
    return {key: {**calibration_of(p, y, g, seed), "unit": "study" if key == "ct_ich_studies" else "slice"}
            for key, (p, y, g) in held_out_scores(model, table, maps).items()}


def calibration_chart(report: dict) -> Chart:
    """The reliability diagram of every test set (points sized by their bin's count) and the diagonal."""
    fig = go.Figure()
    for key, c in report.items():
        r = c["reliability"]
        size = [6 + 18 * np.sqrt(n / max(r["count"])) for n in r["count"]]
        fig.add_trace(go.Scatter(x=r["mean_predicted"], y=r["observed_rate"], mode="lines+markers", marker={"size": size},
                                 text=[f"n={n}" for n in r["count"]],
                                 name=f"{key} (n={c['n']}, ECE {c['ece']['value']:.3f})"))
    fig.add_trace(diagonal(1, "perfect calibration"))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[-0.02, 1.02])
    return ("calibration", "Calibration per modality (test splits)",
            f"Reliability diagram ({ECE_BINS} equal-width bins) of the served probabilities on the held-out test splits: "
            "ct-hemorrhage slices, ct-ich studies (aggregated, Platt-calibrated) and mri-dwi slices; marker size grows "
            "with the bin's count.",
            style(fig, "Reliability diagram (held-out test splits)", "mean predicted probability", "observed rate"))


# ------------------------------------------------------------------ heat-map geometry

def mask_in_model_space(mask: np.ndarray, display: np.ndarray, size: int) -> np.ndarray:
    """A mask on the display image moved through model v2's geometry: head crop box
    (:func:`head_box` of the display), pad to a square, resize; True where it covers > half a pixel."""
    top, bottom, left, right = head_box(display)
    return resize(pad_to_square(mask[top:bottom, left:right].astype(np.float32)), size) > 0.5


def mass_inside(heat: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of the heat map's (non-negative) mass inside ``mask``; None for an empty map."""
    h = np.clip(heat, 0.0, None)
    total = float(h.sum())
    return float(h[mask].sum() / total) if total > 0 else None


def pointing_hit(heat: np.ndarray, mask: np.ndarray, tolerance: int) -> bool:
    """Does the heat map's peak fall within ``tolerance`` pixels (a square window) of the mask?"""
    y, x = (int(v) for v in np.unravel_index(int(np.argmax(heat)), heat.shape))
    return bool(mask[max(0, y - tolerance):y + tolerance + 1, max(0, x - tolerance):x + tolerance + 1].any())


def served_heat(data: bytes, model: ServedModel, declared: str) -> tuple:
    """(result, display, model input, heat map in model-input space or None) of one file read by
    :func:`read_scan`; display and model input are recomputed with the same serving functions."""
    result = read_scan(data, model, declared, with_heatmap=True).result
    display, _ = to_display(decode_image(data))
    size = model.manifest.input_size
    model_input = to_model_input(display, size, crop=True)
    heat = None if result.heatmap is None else upsample(np.asarray(result.heatmap.grid, np.float32), size)
    return result, display, model_input, heat


def finding_heat(model: ServedModel, route: str, model_input: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(grid, heat map in model-input space, probability) of the FINDING of ``route``'s served head on one
    model input, whatever the served path would call or refuse: the served code (int8 CNN, CAM against
    the training baseline, positive evidence scaled to [0, 1]) without routing or OOD."""
    assert model.v2 is not None
    head = model.v2.findings[route].head
    output = model.predictor.extractor.run(model_input)
    p = float(head.predict_proba(model.predictor.extractor.pool(output))[0, 1])
    grid = normalised(class_activation_map(output, head, 1, model.baseline_for(route)[0]))
    return grid, upsample(grid, model.manifest.input_size), p


def _finding_score(model: ServedModel, route: str, model_input: np.ndarray) -> float:
    """The served finding head's probability for the finding on one model input."""
    assert model.v2 is not None
    emb = model.predictor.extractor.embed(model_input)
    return float(model.v2.findings[route].head.predict_proba(emb)[0, 1])


def deletion_drops(model: ServedModel, route: str, model_input: np.ndarray, grid: np.ndarray, rng: np.random.Generator,
                   fraction: float = 0.1, draws: int = 5) -> tuple[float, float]:
    """(drop of the finding's probability when the heat map's top ``fraction`` of cells are blurred away,
    mean drop over ``draws`` random sets of as many cells), as :mod:`training.faithfulness` defines it."""
    size = model_input.shape[0]
    base = _finding_score(model, route, model_input)
    k = max(1, round(fraction * grid.size))
    as_8bit = Image.fromarray(np.round(model_input * 255).astype(np.uint8))  # Pillow blurs 8-bit images
    blurred = np.asarray(as_8bit.filter(ImageFilter.GaussianBlur(size / 16)), np.float32) / 255.0
    top = base - _finding_score(model, route, _delete(model_input, blurred, np.argsort(grid.ravel(), kind="stable")[-k:],
                                                      grid.shape))
    random = [base - _finding_score(model, route, _delete(model_input, blurred, rng.choice(grid.size, k, replace=False),
                                                          grid.shape)) for _ in range(draws)]
    return float(top), float(np.mean(random))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _heat_record(model: ServedModel, route: str, model_input: np.ndarray, grid: np.ndarray, heat: np.ndarray,
                 mask: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> dict:
    """One lesion slice's figures: heat mass inside the lesion, the lesion's shares, pointing hit, deletion."""
    top, random = deletion_drops(model, route, model_input, grid, rng)
    return {"inside": mass_inside(heat, mask), "share_brain": float(mask.sum() / max(1, brain.sum())),
            "share_image": float(mask.mean()), "hit": float(pointing_hit(heat, mask, model_input.shape[0] // grid.shape[0] // 2)),
            "top": top, "random": random}


def _summary(records: list[dict]) -> dict:
    inside, brain = _mean([r["inside"] for r in records]), _mean([r["share_brain"] for r in records])
    return {"measured": len(records), "heat_mass_inside_lesion": inside, "lesion_share_of_brain": brain,
            "lesion_share_of_image": _mean([r["share_image"] for r in records]),
            "mass_over_brain_share": inside / brain if inside is not None and brain else None,
            "pointing_game": _mean([r["hit"] for r in records]), "deletion_fraction": 0.1,
            "deletion_drop_top": _mean([r["top"] for r in records]),
            "deletion_drop_random": _mean([r["random"] for r in records])}


def phantom_faithfulness(model: ServedModel, declared: str, route: str, finding: str,
                         make: Callable, n: int = 40, seed: int = 1234) -> dict:
    """Heat-map faithfulness on ``n`` fresh lesion phantoms (see the module).

    ``served``: each phantom read by :func:`read_scan` with ``declared``; how they were routed, refused
    and called, and the figures over the phantoms read (routed to ``route``, not refused) and called
    positive (their heat map is the finding's). ``finding_map``: the same figures for the finding's
    heat map (:func:`finding_heat`) on EVERY phantom, routing and OOD aside, with the mean probability.
    """
    rng, draws = np.random.default_rng(seed), np.random.default_rng([seed, 1])  # phantoms | deletion draws
    size = model.manifest.input_size
    routed: dict[str, int] = {}
    refused, called, probabilities = 0, 0, []
    served, forced = [], []
    for _ in range(n):
        phantom = make(rng, 256, finding)
        result, display, model_input, heat = served_heat(png_bytes(phantom_display(phantom)), model, declared)
        route_name = result.routed_as or "none (refused before routing)"
        routed[route_name] = routed.get(route_name, 0) + 1
        refused += int(result.out_of_distribution)
        mask = mask_in_model_space(phantom.lesion_mask, display, size)
        brain = mask_in_model_space(phantom.brain_mask, display, size)
        if not mask.any():
            continue
        if (not result.out_of_distribution and result.routed_as == route and result.label == finding
                and heat is not None and result.heatmap is not None):
            called += 1
            served.append(_heat_record(model, route, model_input, np.asarray(result.heatmap.grid), heat, mask, brain, draws))
        grid_f, heat_f, p = finding_heat(model, route, model_input)
        probabilities.append(p)
        forced.append(_heat_record(model, route, model_input, grid_f, heat_f, mask, brain, draws))
    return {"phantoms": n, "declared": declared, "served": {"routed_as": routed, "refused": refused,
                                                           "called_positive": called, **_summary(served)},
            "finding_map": {"mean_probability": _mean(probabilities), **_summary(forced)}}


def faithfulness(model: ServedModel, n: int = 40, seed: int = 1234) -> dict:
    """:func:`phantom_faithfulness` for CT haemorrhage and DWI-like ischaemic phantoms."""
    return {key: phantom_faithfulness(model, declared, route, finding, make, n=n, seed=seed + i)
            for i, (key, declared, route, finding, make) in enumerate(PHANTOM_SETS)}


def real_heatmaps(model: ServedModel, table, seed: int) -> dict:
    """On every POSITIVE test slice of ct-hemorrhage and mri-dwi (no lesion masks here): the finding's
    heat map (:func:`finding_heat`) on the cached model input (the serving preprocessing's output):
    share of its mass inside the head (non-zero model input, the crop zeroes the rest) next to the
    head's share of the input, and the deletion test."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, source, positive, route in (("ct_hemorrhage_slices", "ct-slices", "hemorrhage", "CT"),
                                         ("dwi_slices", "dwi", "ischemic", "MR-DWI")):
        rows = np.flatnonzero((table.source == source) & (table.split == "test") & (table.label == positive))
        in_head, head_share, tops, randoms = [], [], [], []
        for i in rows:
            x = table.x[i].astype(np.float32)
            grid, heat, _ = finding_heat(model, route, x)
            head = x > 0.02
            in_head.append(mass_inside(heat, head))
            head_share.append(float(head.mean()))
            top, random = deletion_drops(model, route, x, grid, rng)
            tops.append(top)
            randoms.append(random)
        out[key] = {"slices": int(len(rows)), "heat_mass_inside_head": _mean(in_head), "head_share_of_input": _mean(head_share),
                    "deletion_fraction": 0.1, "deletion_drop_top": _mean(tops), "deletion_drop_random": _mean(randoms),
                    "deletion_top_beats_random": _mean([float(t > r) for t, r in zip(tops, randoms)])}
    return out


# ------------------------------------------------------------------ checked by eye

def _overlay(model_input: np.ndarray, heat: np.ndarray | None, scale: int) -> Image.Image:
    """The model input in gray with the heat map blended in (hot ramp, alpha 0.6 x heat)."""
    gray = np.repeat(model_input[..., None], 3, axis=-1)
    if heat is not None:
        h = np.clip(heat, 0, 1)[..., None]
        hot = np.concatenate([np.clip(3 * h, 0, 1), np.clip(3 * h - 1, 0, 1), np.clip(3 * h - 2, 0, 1)], axis=-1)
        gray = gray * (1 - 0.6 * h) + hot * 0.6 * h
    image = Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def _short(path: str) -> str:
    """The file as ``<data set>/<class>/<name>`` (the last three path parts)."""
    return "/".join(Path(path).parts[-3:])


def real_montage(model: ServedModel, table, target: Path, per_set: int = 6, seed: int = 0) -> list[dict]:
    """A montage PNG of ``per_set`` randomly drawn (seeded) POSITIVE test slices of ct-hemorrhage (read
    as CT) and mri-dwi (read as MR), each as model input | input with its served heat map; returns the
    files shown with what the served model said."""
    rng = np.random.default_rng(seed)
    scale = max(1, 192 // model.manifest.input_size)
    shown, rows_img = [], []
    for source, positive, declared in (("ct-slices", "hemorrhage", "CT"), ("dwi", "ischemic", "MR")):
        rows = np.flatnonzero((table.source == source) & (table.split == "test") & (table.label == positive))
        if not len(rows):
            continue
        picked = np.sort(rng.choice(rows, min(per_set, len(rows)), replace=False))
        cells = []
        for i in picked:
            result, _, model_input, heat = served_heat(Path(table.path[i]).read_bytes(), model, declared)
            p = result.probabilities.get(positive)
            shown.append({"file": _short(table.path[i]), "declared": declared, "routed_as": result.routed_as,
                          "refused": bool(result.out_of_distribution), "label": result.label,
                          "probability": None if p is None else round(float(p), 3),
                          "heatmap_of": None if result.heatmap is None else result.heatmap.class_})
            pair = Image.new("RGB", (2 * model.manifest.input_size * scale + 4, model.manifest.input_size * scale + 28))
            pair.paste(_overlay(model_input, None, scale), (0, 0))
            pair.paste(_overlay(model_input, heat, scale), (model.manifest.input_size * scale + 4, 0))
            note = "refused" if result.out_of_distribution else f"{result.label} p={p:.2f}"
            ImageDraw.Draw(pair).text((4, model.manifest.input_size * scale + 4), f"{Path(table.path[i]).name}: {note}",
                                      fill=(255, 255, 255))
            cells.append(pair)
        rows_img.append(cells)
    if not rows_img:
        return shown
    cw, ch = rows_img[0][0].size
    width = max(len(r) for r in rows_img) * (cw + 6)
    canvas = Image.new("RGB", (width, len(rows_img) * (ch + 6)), (40, 40, 40))
    for r, cells in enumerate(rows_img):
        for c, cell in enumerate(cells):
            canvas.paste(cell, (c * (cw + 6), r * (ch + 6)))
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, format="PNG")
    return shown


def write_png(fig: go.Figure, target: Path) -> str | None:
    """PNG copy of a chart (kaleido with the system chromium, as :mod:`training.chart_images`); the
    error message instead of raising when it cannot be rendered (the JSON chart is the source)."""
    os.environ.setdefault("BROWSER_PATH", shutil.which("chromium") or "/usr/bin/chromium")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.write_image(target, width=720, height=460, scale=1)
    except Exception as exc:  # a missing browser must not lose a finished training run
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


# ------------------------------------------------------------------ all of it, for the card

def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def measure(out: Path, table, maps: np.ndarray, seed: int, *, phantoms: int = 40, per_set: int = 6,
            log: Callable[[str], None] = print) -> dict:
    """Calibration, heat-map faithfulness (phantoms, real positive test slices) and the real-slice montage
    of the model folder ``out``; PNG files under ``out/card/``. Returns the card's blocks
    ``calibration`` and ``heatmaps`` (JSON-serialisable) and where the PNG files are."""
    model = ServedModel(out)
    log("trust: calibration per modality on the test splits")
    cal = calibration(model, table, maps, seed)
    png_error = write_png(calibration_chart(cal)[3], out / CARD_DIR / "calibration.png")
    if png_error:
        log(f"trust: calibration PNG not written ({png_error})")
    log(f"trust: heat-map faithfulness on {phantoms} CT and {phantoms} DWI-like lesion phantoms (served path)")
    faith = faithfulness(model, n=phantoms, seed=seed + 1234)
    log("trust: heat maps on the real positive test slices (mass inside the head, deletion test)")
    real = real_heatmaps(model, table, seed)
    log("trust: montage of real positive test slices with their heat maps")
    shown = real_montage(model, table, out / CARD_DIR / "heatmaps_real_test.png", per_set=per_set, seed=seed)
    return {"calibration": cal,
            "calibration_png": None if png_error else f"{CARD_DIR}/calibration.png", "calibration_png_error": png_error,
            "heatmaps": {
                "method": "served heat map (class activation map of the called class, positive evidence scaled to "
                          "[0, 1]) upsampled to the model input; phantom lesion masks moved through the same head crop, "
                          "pad and resize. 'served': phantoms read by read_scan with the modality declared, figures "
                          "over those read and called positive; 'finding_map': the finding's map on every phantom, "
                          "routing and OOD aside. Deletion: top 10% of the map's cells blurred vs random 10% "
                          "(5 draws), drop of the finding's probability.",
                "phantoms": faith, "real_test_positives": real,
                "checked_by_eye": {"montage": f"{CARD_DIR}/heatmaps_real_test.png", "files": shown,
                                   "selection": f"{per_set} positive test slices per set, drawn at random (seed {seed}), "
                                                "not chosen by score; each shown as model input | served heat map",
                                   "note": "research-only images: keep the montage out of published docs"}}}


def charts(trust: dict) -> list[Chart]:
    """The card's charts from the ``trust`` block."""
    return [calibration_chart(trust["calibration"])] if trust.get("calibration") else []


def _heat_line(f: dict) -> str:
    return (f"heat-map mass inside the lesion {num(f['heat_mass_inside_lesion'])} vs the lesion's share of the brain "
            f"{num(f['lesion_share_of_brain'])} (of the input {num(f['lesion_share_of_image'])}); pointing game "
            f"{num(f['pointing_game'])}; deleting the top 10% cells drops p by {num(f['deletion_drop_top'])} vs "
            f"{num(f['deletion_drop_random'])} for random cells")


def markdown(trust: dict) -> list[str]:
    """The card's markdown sections for the ``calibration`` and ``heatmaps`` blocks."""
    lines = ["", f"## Calibration per modality (held-out test splits, ECE with {ECE_BINS} equal-width bins, "
                 "grouped bootstrap 95% CI)", ""]
    for key, c in trust["calibration"].items():
        e, b = c["ece"], c["brier"]
        units = "studies" if c["unit"] == "study" else "slices"
        lines.append(f"- {key} ({c['n']} {units}, {c['n_positive']} positive): ECE {e['value']:.3f} "
                     f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}], Brier {b['value']:.3f}; mean predicted "
                     f"{c['mean_predicted']:.3f} vs observed {c['observed_rate']:.3f}")
    if trust.get("calibration_png"):
        lines.append(f"- reliability diagram: `{trust['calibration_png']}` (plotly JSON: `charts/calibration.json`)")
    h = trust["heatmaps"]
    lines += ["", "## Heat maps: faithfulness on phantoms with known lesions", ""]
    for key, f in h["phantoms"].items():
        s = f["served"]
        lines.append(f"- {key}, served path ({f['phantoms']} phantoms declared {f['declared']}; routed {s['routed_as']}; "
                     f"{s['refused']} refused; {s['called_positive']} called positive): {_heat_line(s)}")
        lines.append(f"- {key}, the finding's map on all {f['finding_map']['measured']} (mean p "
                     f"{num(f['finding_map']['mean_probability'])}): {_heat_line(f['finding_map'])}")
    lines += ["", "## Heat maps on real positive test slices (no lesion masks)", ""]
    for key, r in h["real_test_positives"].items():
        lines.append(f"- {key} ({r['slices']} slices): heat-map mass inside the head {num(r['heat_mass_inside_head'])} "
                     f"(head = {num(r['head_share_of_input'])} of the input); deleting the top 10% cells drops p by "
                     f"{num(r['deletion_drop_top'])} vs {num(r['deletion_drop_random'])} for random cells (top beats "
                     f"random on {num(r['deletion_top_beats_random'])} of slices)")
    eye = h["checked_by_eye"]
    lines += ["", "## Heat maps checked by eye (real positive test slices)", "",
              f"Montage `{eye['montage']}` ({eye['selection']}; {eye['note']}):", ""]
    for s in eye["files"]:
        said = "refused" if s["refused"] else f"{s['label']} (p {s['probability']}, map of {s['heatmap_of']})"
        lines.append(f"- `{s['file']}` read as {s['declared']} -> {s['routed_as']}: {said}")
    return lines
