"""Where the study reading fails: the cross-fitted study scores of the served recipe by haemorrhage
subtype and extent, on ct-ich TRAINING studies only (no fitting, no test split).

Each group's positives (their subtypes and annotated slice counts from ``studies.csv``) are ranked
against every normal training study: ROC AUC with a bootstrap 95 % CI by study, and the share called
positive at the served operating point (the study calibration and threshold of the installed
manifest, which were themselves set on these cross-fitted scores). Groups are small (the largest has
11 studies): read them as where to look, not as measured rates.

``python -m training.v2.subtypes`` writes ``docs/model_v2/subtypes.json`` (seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from training.v2.fit import auc_ci

EXTRA_AXIAL = {"epidural", "subdural"}


def group_of(subtypes: set[str]) -> str:
    """A positive study's group: extra-axial blood only (epidural / subdural), any blood in or around
    the brain itself (intraparenchymal, intraventricular, subarachnoid), or subtype not recorded."""
    if not subtypes:
        return "subtype not recorded"
    return "extra-axial only (epidural, subdural)" if subtypes <= EXTRA_AXIAL else \
        "intra-axial or subarachnoid (with or without extra-axial)"


def by_group(studies: list[dict], scores: dict[str, float], a: float, b: float, threshold: float,
             seed: int = 0) -> dict:
    """``studies``: rows of ``studies.csv`` (study, label, slices_with_hemorrhage, subtypes); ``scores``:
    the served rule's raw study score of each (training) study. Returns per group: studies, ROC AUC
    against every normal study (bootstrap CI by study), and the share at or above ``threshold`` after
    the Platt calibration sigmoid(a * score + b); and the share of normal studies called positive."""
    known = [s for s in studies if s["study"] in scores]
    normals = [s["study"] for s in known if s["label"] != "hemorrhage"]
    positives = [s for s in known if s["label"] == "hemorrhage"]
    counts = sorted(int(s["slices_with_hemorrhage"] or 0) for s in positives)
    median = counts[len(counts) // 2] if counts else 0
    groups: dict[str, list[str]] = {}
    for s in positives:
        kinds = {k for k in (s["subtypes"] or "").split(";") if k}
        groups.setdefault(group_of(kinds), []).append(s["study"])
        extent = f"blood on <= {median} slices" if int(s["slices_with_hemorrhage"] or 0) <= median else \
            f"blood on > {median} slices"
        groups.setdefault(extent, []).append(s["study"])
    calibrated = {s: 1.0 / (1.0 + np.exp(-(a * scores[s] + b))) for s in scores}
    out: dict = {"normal_studies": len(normals),
                 "normal_called_positive": round(float(np.mean([calibrated[s] >= threshold for s in normals])), 3),
                 "groups": {}}
    for name, members in groups.items():
        ids = members + normals
        y = [1] * len(members) + [0] * len(normals)
        called = np.array([calibrated[s] >= threshold for s in members])
        out["groups"][name] = {"studies": len(members), "roc_auc": auc_ci(y, [scores[s] for s in ids], ids, seed),
                               "called_positive": round(float(called.mean()), 3)}
    return out


def run(record: Path, studies_csv: Path, manifest: Path) -> dict:
    r = json.loads(record.read_text())
    scores = {k: float(v) for k, v in r["oof"]["round1"][r["served_rule"]].items()}
    agg = json.loads(manifest.read_text())["aggregation"]
    with open(studies_csv, newline="") as h:
        rows = list(csv.DictReader(h))
    out = by_group(rows, scores, agg["params"]["a"], agg["params"]["b"], agg["study_threshold"])
    return {"record": str(record), "rule": r["served_rule"], "model_version": r.get("model_version"),
            "threshold": agg["study_threshold"], **out}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m training.v2.subtypes")
    ap.add_argument("--record", default="docs/model_v2/crossfit/crossfit.json")
    ap.add_argument("--studies", default="../shared/data/ct-ich/studies.csv")
    ap.add_argument("--manifest", default="functions/strokelens/artifacts/manifest.json")
    ap.add_argument("--out", default="docs/model_v2/subtypes.json")
    args = ap.parse_args()
    result = run(Path(args.record), Path(args.studies), Path(args.manifest))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"normal studies called positive: {result['normal_called_positive']:.2f} of {result['normal_studies']}")
    for name, g in result["groups"].items():
        v = g["roc_auc"]
        print(f"{name}: {g['studies']} studies, ROC AUC {v['value']:.3f} ({v['ci_low']:.3f}-{v['ci_high']:.3f}), "
              f"called positive {g['called_positive']:.2f}")
