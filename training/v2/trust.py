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
from strokelens.reader.model.cam import upsample
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
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
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


def _finding_score(model: ServedModel, route: str, model_input: np.ndarray) -> float:
    """The served finding head's probability for the finding on one model input."""
    assert model.v2 is not None
    emb = model.predictor.extractor.embed(model_input)
    return float(model.v2.findings[route].head.predict_proba(emb)[0, 1])


def phantom_faithfulness(model: ServedModel, declared: str, route: str, finding: str,
                         make: Callable, n: int = 40, seed: int = 1234, fraction: float = 0.1, draws: int = 5) -> dict:
    """Heat-map faithfulness on ``n`` fresh lesion phantoms read through the served path (see the module).

    Counts how the phantoms were routed, refused and called; the heat-map figures are over the
    phantoms read (not refused) and called positive, whose heat map is the finding's.
    """
    rng = np.random.default_rng(seed)
    size = model.manifest.input_size
    routed: dict[str, int] = {}
    refused = called = 0
    inside, share_brain, share_image, hits, top_drops, random_drops = [], [], [], [], [], []
    for _ in range(n):
        phantom = make(rng, 256, finding)
        result, display, model_input, heat = served_heat(png_bytes(phantom_display(phantom)), model, declared)
        routed[str(result.routed_as)] = routed.get(str(result.routed_as), 0) + 1
        if result.out_of_distribution:
            refused += 1
            continue
        if result.label != finding or heat is None or result.routed_as != route:
            continue
        called += 1
        mask = mask_in_model_space(phantom.lesion_mask, display, size)
        brain = mask_in_model_space(phantom.brain_mask, display, size)
        share = mass_inside(heat, mask)
        if share is None or not mask.any():
            continue
        inside.append(share)
        share_brain.append(float(mask.sum() / max(1, brain.sum())))
        share_image.append(float(mask.mean()))
        grid = np.asarray(result.heatmap.grid)
        hits.append(pointing_hit(heat, mask, size // grid.shape[0] // 2))
        base = _finding_score(model, route, model_input)
        k = max(1, round(fraction * grid.size))
        as_8bit = Image.fromarray(np.round(model_input * 255).astype(np.uint8))
        blurred = np.asarray(as_8bit.filter(ImageFilter.GaussianBlur(size / 16)), np.float32) / 255.0
        top = _delete(model_input, blurred, np.argsort(grid.ravel(), kind="stable")[-k:], grid.shape)
        top_drops.append(base - _finding_score(model, route, top))
        random_drops.append(float(np.mean([
            base - _finding_score(model, route, _delete(model_input, blurred, rng.choice(grid.size, k, replace=False),
                                                        grid.shape)) for _ in range(draws)])))

    def mean(values: list) -> float | None:
        return float(np.mean(values)) if values else None

    return {"phantoms": n, "declared": declared, "routed_as": routed, "refused": refused,
            "called_positive": called, "measured": len(inside),
            "heat_mass_inside_lesion": mean(inside), "lesion_share_of_brain": mean(share_brain),
            "lesion_share_of_image": mean(share_image),
            "mass_over_brain_share": (mean(inside) / mean(share_brain)) if inside and mean(share_brain) else None,
            "pointing_game": mean([float(h) for h in hits]), "deletion_fraction": fraction,
            "deletion_drop_top": mean(top_drops), "deletion_drop_random": mean(random_drops)}


def faithfulness(model: ServedModel, n: int = 40, seed: int = 1234) -> dict:
    """:func:`phantom_faithfulness` for CT haemorrhage and DWI-like ischaemic phantoms."""
    return {key: phantom_faithfulness(model, declared, route, finding, make, n=n, seed=seed + i)
            for i, (key, declared, route, finding, make) in enumerate(PHANTOM_SETS)}


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
            ImageDraw.Draw(pair).text((4, model.manifest.input_size * scale + 4), f"{_short(table.path[i])[-34:]}  {note}",
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
    """Calibration, phantom faithfulness and the real-slice montage of the model folder ``out``;
    PNG files under ``out/card/``. Returns the card's ``trust`` block (JSON-serialisable)."""
    model = ServedModel(out)
    log("trust: calibration per modality on the test splits")
    cal = calibration(model, table, maps, seed)
    png_error = write_png(calibration_chart(cal)[3], out / CARD_DIR / "calibration.png")
    log(f"trust: heat-map faithfulness on {phantoms} CT and {phantoms} DWI-like lesion phantoms (served path)")
    faith = faithfulness(model, n=phantoms, seed=seed + 1234)
    log("trust: montage of real positive test slices with their heat maps")
    shown = real_montage(model, table, out / CARD_DIR / "heatmaps_real_test.png", per_set=per_set, seed=seed)
    return {"calibration": cal, "calibration_png": None if png_error else f"{CARD_DIR}/calibration.png",
            "calibration_png_error": png_error,
            "heatmaps": {"faithfulness": faith, "method": "served read_scan heat map (class activation map of the "
                         "called class) upsampled to the model input; lesion masks moved through the same head crop, "
                         "pad and resize; figures over phantoms read and called positive",
                         "checked_by_eye": {"montage": f"{CARD_DIR}/heatmaps_real_test.png", "files": shown,
                                            "selection": f"{per_set} positive test slices per set, drawn at random "
                                                         f"(seed {seed}), not chosen by score",
                                            "note": "research-only images: keep the montage out of published docs"}}}


def charts(trust: dict) -> list[Chart]:
    """The card's charts from the ``trust`` block."""
    return [calibration_chart(trust["calibration"])] if trust.get("calibration") else []


def markdown(trust: dict) -> list[str]:
    """The card's markdown sections for the ``trust`` block."""
    lines = ["", f"## Calibration per modality (held-out test splits, ECE with {ECE_BINS} equal-width bins, "
                 "grouped bootstrap 95% CI)", ""]
    for key, c in trust["calibration"].items():
        e, b = c["ece"], c["brier"]
        lines.append(f"- {key} ({c['n']} {c['unit']}s, {c['n_positive']} positive): ECE {e['value']:.3f} "
                     f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}], Brier {b['value']:.3f}; mean predicted "
                     f"{c['mean_predicted']:.3f} vs observed {c['observed_rate']:.3f}")
    lines += ["", "## Heat maps: faithfulness on phantoms (served path)", ""]
    for key, f in trust["heatmaps"]["faithfulness"].items():
        lines.append(f"- {key}: {f['phantoms']} phantoms declared {f['declared']}, routed {f['routed_as']}, "
                     f"{f['refused']} refused, {f['called_positive']} called positive; heat-map mass inside the "
                     f"lesion {num(f['heat_mass_inside_lesion'])} vs lesion share of the brain "
                     f"{num(f['lesion_share_of_brain'])} (of the image {num(f['lesion_share_of_image'])}); pointing "
                     f"game {num(f['pointing_game'])}; deletion of the top {f['deletion_fraction']:.0%} cells drops the "
                     f"score by {num(f['deletion_drop_top'])} vs {num(f['deletion_drop_random'])} for random cells")
    eye = trust["heatmaps"]["checked_by_eye"]
    lines += ["", "## Heat maps checked by eye (real positive test slices)", "",
              f"Montage `{eye['montage']}` ({eye['selection']}; {eye['note']}):", ""]
    for s in eye["files"]:
        said = "refused" if s["refused"] else f"{s['label']} (p {s['probability']})"
        lines.append(f"- `{s['file']}` read as {s['declared']} -> {s['routed_as']}: {said}")
    return lines
