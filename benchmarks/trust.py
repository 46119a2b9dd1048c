"""Trust figures measured in this run: out-of-distribution refusals and heat-map faithfulness.

- OOD: the generated OOD sets and the held-out CT test slices of the model's own data, through
  ``read_scan`` with nothing declared (training/ood_sets.py), for v1 and v2 folders alike.
- Per route (declared as the site uploads them): the held-out test split of each source the model
  was trained on, found through the artifact catalogue's ``split.json`` and the manifest's data
  paths. v1: CT slices. v2: CT slices (declared CT) and DWI slices (declared MR), where a refusal is
  a false refusal, and other MRI sequences (declared MR), which must be refused.
- Faithfulness: a phantom model of the served recipe is trained (full mode only, ~3 min) and its
  heat maps are scored by the pointing game and the deletion test (training/faithfulness.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Settings

# v2 split sources read per route: source -> (route shown, declared modality, should be refused)
V2_ROUTES = {"ct-slices": ("CT slices", "CT", False), "dwi": ("DWI slices", "MR", False),
             "mr-other": ("other MRI sequences", "MR", True)}


def test_sets(model_dir: Path) -> dict[str, list[Path]]:
    """Held-out test files per source: {"ct-slices": [...]} for v1, every v2 source for v2."""
    from strokelens.core.catalogue import Catalogue

    catalogue = Catalogue(model_dir)
    split = json.loads(catalogue.split.read_text())
    manifest = json.loads(catalogue.manifest.read_text())
    if "sources" in manifest:  # model v2: one data folder per source, "files" are the ct-slices source's
        roots = {name: (ROOT / path).resolve() for name, path in manifest["sources"].items()}
        listed = {"ct-slices": split["files"], **split.get("sources", {})}
    else:
        roots = {"ct-slices": (ROOT / manifest["data"]["path"]).resolve()}
        listed = {"ct-slices": split["files"]}
    return {name: [roots[name] / f["file"] for f in files if f["split"] == "test"]
            for name, files in listed.items() if name in roots}


def _refused(data: bytes, model: Any, declared: str) -> bool:
    """Whether the served path gives no reading of ``data`` declared as ``declared`` (OOD, router, bad input)."""
    from strokelens.core.errors import ScanError
    from strokelens.reader.reading import read_scan

    try:
        return bool(read_scan(data, model, declared, with_heatmap=False).result.out_of_distribution)
    except ScanError:
        return True


def _routes(model: Any, sets: dict[str, list[Path]]) -> dict[str, Any]:
    """Refusal rate per route, declared as the site would: false refusals, or refusals where due."""
    out: dict[str, Any] = {}
    for source, (shown, declared, due) in V2_ROUTES.items():
        if source not in sets or (source != "ct-slices" and model.v2 is None):
            continue
        outcomes = [_refused(path.read_bytes(), model, declared) for path in sets[source]]
        n = len(outcomes)
        out[source] = {"route": shown, "declared": declared, "n": n, "refusal_rate": sum(outcomes) / n if n else None,
                       "should_refuse": due}
    return out


def run(settings: Settings) -> dict[str, Any]:
    from strokelens.reader.model.served import ServedModel
    from training import faithfulness, ood_sets

    sets = test_sets(settings.model_dir)
    model = ServedModel(settings.model_dir)
    ct_test = [p.read_bytes() for p in sets["ct-slices"]]
    out: dict[str, Any] = {"ood": ood_sets.evaluate(model, ct_test), "routes": _routes(model, sets)}
    out["faithfulness"] = None if settings.quick else faithfulness.measure(seed=0)
    return out


def markdown(t: dict[str, Any]) -> list[str]:
    ood = t["ood"]
    lines = ["| set | n | refused |", "|---|---|---|"]
    lines += [f"| {name} | {v['n']} | {v['refusal_rate']:.2f} |" for name, v in ood["sets"].items()]
    lines += [f"| **all out-of-distribution** | {ood['ood_n']} | **{ood['ood_refusal_rate']:.3f}** |",
              f"| held-out in-distribution CT, nothing declared (false refusals) | {ood['in_distribution_n']} | "
              f"**{ood['false_refusal_rate']:.3f}** |", ""]
    routes = t.get("routes") or {}
    if routes:
        lines += ["Held-out test splits per route, declared as the site uploads them:", "",
                  "| route (declared) | n | refused | meaning |", "|---|---|---|---|"]
        for r in routes.values():
            rate = "–" if r["refusal_rate"] is None else f"{r['refusal_rate']:.3f}"
            meaning = "should all be refused" if r["should_refuse"] else "false refusals"
            lines.append(f"| {r['route']} ({r['declared']}) | {r['n']} | **{rate}** | {meaning} |")
        lines.append("")
    f = t.get("faithfulness")
    if f:
        lines += [f"Heat-map faithfulness ({f['model']}): pointing game **{f['pointing_game']:.2f}** on "
                  f"{f['correctly_classified']} correctly classified phantom lesion slices (floor 0.80); deletion of "
                  f"the top {f['deletion_fraction']:.0%} of heat-map cells drops the class score by "
                  f"**{f['deletion_drop_top']:.3f}** vs **{f['deletion_drop_random']:.3f}** for random cells."]
    else:
        lines += ["Heat-map faithfulness: not run in quick mode (it trains a phantom model)."]
    return lines
