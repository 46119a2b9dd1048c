"""Warm read per slice by finding route (1 thread), and a whole CT study through ``read_study``.

Routes: a CT slice (real ct-hemorrhage PNGs, declared ``CT``) and, for a model v2 folder (a manifest
with an ``MR-DWI`` finding), a DWI slice (real mri-dwi PNGs, declared ``MR``; v2 reads it with the
DWI head, OOD model and operating point after the head crop). A v1 folder reads CT only: its DWI
route is reported as not served. Each slice goes through the served
:func:`strokelens.reader.reading.read_scan` with the heat map on and previews off; its stage timings
(decode, preprocess = window + head crop + resize, cnn, route, head, ood, heatmap) come from the
reading itself, the total is wall time around the call; the head crop alone is timed again apart.
Slices the served path refused (router or OOD) are counted apart: their reading stops before the
head, so they are left out of the per-stage figures.

Study: ``read_study`` of a 40-slice ct-ich study (CT declared, no previews), timed whole.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import CT_DATA, ROOT, Settings, paired_inputs, png_inputs, run_child, summary
from benchmarks.studies import FLOOR_MS_PER_SLICE, FLOOR_SIZE, study_inputs

DWI_DATA = ROOT.parent / "shared" / "data" / "mri-dwi"
WARMUP = 5
STAGES = ("decode", "preprocess", "crop", "cnn", "route", "head", "ood", "heatmap")


def dwi_inputs(limit: int = 16) -> list[Path]:
    """Real DWI MRI PNGs, alternating normal / ischaemic."""
    return paired_inputs(DWI_DATA, "ischemic", limit)


def served_routes(model_dir: Path) -> dict[str, str | None]:
    """Route name -> the modality a client declares for it, or None where the model does not read it."""
    from strokelens.core.catalogue import Catalogue

    raw = Catalogue(model_dir).load_manifest(verify=False).raw
    findings = raw.get("findings") or {}
    return {"CT": "CT" if not findings or "CT" in findings else None, "DWI": "MR" if "MR-DWI" in findings else None}


def _crop_ms(data: bytes) -> float:
    """Time of the head crop alone (part of ``preprocess`` for model v2), on the slice's display image."""
    from strokelens.reader.imaging.decode import decode_image
    from strokelens.reader.imaging.preprocess import crop_to_head, to_display

    display = to_display(decode_image(data))[0]
    t0 = time.perf_counter()
    crop_to_head(display)
    return (time.perf_counter() - t0) * 1e3


def _route_child(model: Any, declared: str, paths: list[str], repeats: int) -> dict[str, Any]:
    """Warm ``read_scan`` of ``paths`` (cycled) declared as ``declared``: stage and total timings
    (with the head crop, for a model that crops, also timed on its own outside ``read_scan``)."""
    from strokelens.reader.reading import read_scan

    crops = model.v2 is not None and model.v2.crop

    stages: dict[str, list[float]] = defaultdict(list)
    routed: Counter[str] = Counter()
    refused = 0
    blobs = [Path(p).read_bytes() for p in paths]
    for i in range(WARMUP + repeats):
        data = blobs[i % len(blobs)]
        t0 = time.perf_counter()
        reading = read_scan(data, model, declared, with_previews=False, with_heatmap=True)
        total = (time.perf_counter() - t0) * 1e3
        if i < WARMUP:
            continue
        result = reading.result
        routed[str(result.routed_as or result.modality)] += 1
        if result.out_of_distribution:
            refused += 1
            stages["total_refused"].append(total)
            continue
        for stage, ms in reading.timings_ms.items():
            stages[stage].append(ms)
        stages["total"].append(total)
        if crops:
            stages["crop"].append(_crop_ms(data))
    return {"declared": declared, "files": len(paths), "reads": repeats, "refused": refused,
            "routed_as": dict(routed), "stages_ms": {k: summary(v) for k, v in stages.items()}}


def _study_child(model: Any, paths: list[str], repeats: int) -> dict[str, Any]:
    """``read_study`` of one CT study, ``repeats`` times after one warm-up read of its first slices."""
    from strokelens.reader.reading import read_study

    files: list[bytes | None] = [Path(p).read_bytes() for p in paths]
    read_study(files[:2], model, "CT")
    totals: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        t0 = time.perf_counter()
        study = read_study(files, model, "CT")
        totals.append((time.perf_counter() - t0) * 1e3)
        for stage, ms in study.timings_ms.items():
            stages[stage].append(ms)
    counts = study.result.counts
    return {"slices": len(paths), "repeats": repeats, "total_ms": summary(totals),
            "per_slice_ms": summary([t / len(paths) for t in totals]),
            "stages_ms": {k: summary(v) for k, v in stages.items()},
            "assessed": counts.get("assessed"), "outside_brain": counts.get("outside_brain"),
            "not_assessable": counts.get("not_assessable"), "aggregation": study.result.aggregation,
            "label": study.result.label}


def child(args: dict[str, Any]) -> dict[str, Any]:
    """In a pinned 1-thread child: every served route, then the study."""
    from strokelens.reader.model.served import ServedModel

    model = ServedModel(Path(args["model_dir"]), num_threads=1)
    out: dict[str, Any] = {"model_version": model.version, "v2": model.v2 is not None, "routes": {}}
    for name, spec in args["routes"].items():
        out["routes"][name] = _route_child(model, spec["declared"], spec["inputs"], args["repeats"])
    out["study"] = _study_child(model, args["study"], args["study_repeats"])
    return out


def run(settings: Settings) -> dict[str, Any]:
    """Measure every route the model serves and one 40-slice CT study; floors stated with the result."""
    declared = served_routes(settings.model_dir)
    sources = {"CT": (png_inputs(16), f"16 real head CT PNGs from {CT_DATA.name} (~256 px), cycled"),
               "DWI": (dwi_inputs(16), f"16 real DWI MRI PNGs from {DWI_DATA.name}, cycled")}
    routes = {name: {"declared": declared[name], "inputs": [str(p) for p in sources[name][0]]}
              for name in sources if declared[name]}
    study_paths, study_source = study_inputs(FLOOR_SIZE, 0)
    measured = run_child("benchmarks.routes", {"model_dir": str(settings.model_dir), "routes": routes,
                                               "repeats": settings.repeats, "study": [str(p) for p in study_paths],
                                               "study_repeats": 2 if settings.quick else 5})
    for name, (_, about) in sources.items():
        route = measured["routes"].get(name)
        if route is None:
            measured["routes"][name] = {"served": False, "note": "not read by this model (model v1 reads CT only)"}
            continue
        total = route["stages_ms"].get("total", {})
        route.update({"served": True, "inputs": about,
                      "meets_floor": bool(total.get("n")) and total["median"] <= FLOOR_MS_PER_SLICE})
    study = measured["study"]
    study["source"] = study_source
    study["meets_floor"] = study["per_slice_ms"]["median"] <= FLOOR_MS_PER_SLICE
    return {**measured, "floor_ms_per_slice": FLOOR_MS_PER_SLICE, "warmup": WARMUP, "repeats": settings.repeats}


def budgets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Budget rows: each served route's warm median, and the study's time per slice, against the floor."""
    floor = r["floor_ms_per_slice"]
    rows: list[dict[str, Any]] = []
    for name, route in r["routes"].items():
        if not route.get("served"):
            continue
        total = route["stages_ms"].get("total", {})
        measured = f"{total['median']:.2f} ms" if total.get("n") else "no slice read"
        rows.append({"budget": f"{name} slice, warm read (decode → finding + heat map, `read_scan` declared "
                               f"{route['declared']}), 1 thread ≤ {floor:g} ms median", "floor": True,
                     "measured": f"{measured} ({route['refused']}/{route['reads']} refused)",
                     "pass": route["meets_floor"]})
    s = r["study"]
    rows.append({"budget": f"{s['slices']}-slice CT study, `read_study` (no previews), 1 thread ≤ {floor:g} ms per slice",
                 "floor": True, "measured": f"{s['total_ms']['median']:.0f} ms = {s['per_slice_ms']['median']:.2f} ms per slice",
                 "pass": s["meets_floor"]})
    return rows


def _cell(s: dict[str, float] | None) -> str:
    if not s or not s.get("n"):
        return "–"
    return f"{s['median']:.2f} ({s['p5']:.2f}–{s['p95']:.2f})"


def markdown(r: dict[str, Any]) -> list[str]:
    """The route table, the study line and the floor."""
    served = {name: route for name, route in r["routes"].items() if route.get("served")}
    out = ["| stage (ms, median (p5–p95)) | " + " | ".join(f"{n} slice" for n in served) + " |",
           "|---" * (len(served) + 1) + "|"]
    for stage in (*STAGES, "total", "total_refused"):
        cells = [_cell(route["stages_ms"].get(stage)) for route in served.values()]
        if all(c == "–" for c in cells):
            continue
        label = {"total": "**total** (wall time of `read_scan`)", "total_refused": "total of refused slices",
                 "preprocess": "preprocess (window + head crop + resize)",
                 "crop": "… of which the head crop (timed apart, outside `read_scan`)"}.get(stage, stage)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, route in served.items():
        out.append("")
        out.append(f"{name}: {route['inputs']}, declared {route['declared']}; {route['reads']} reads after {r['warmup']} "
                   f"warm-up; routed as {route['routed_as']}; {route['refused']} refused (left out of the stage rows).")
    for name, route in r["routes"].items():
        if not route.get("served"):
            out += ["", f"{name}: {route['note']}."]
    s = r["study"]
    out += ["", f"Study: `read_study` of {s['source']} ({s['slices']} slices, CT declared, no previews), "
            f"{s['repeats']} runs: **{_cell(s['total_ms'])} ms**, {_cell(s['per_slice_ms'])} ms per slice; "
            f"{s['assessed']} slices assessed, {s['outside_brain']} outside the brain, aggregation {s['aggregation']}.",
            "", f"Floor (issue): ≤ {r['floor_ms_per_slice']:g} ms per slice warm on 1 thread."]
    return out


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
