"""Trust figures measured in this run: out-of-distribution refusals and heat-map faithfulness.

- OOD: the generated OOD sets and the held-out test split of the model's own data, through
  ``read_scan`` (training/ood_sets.py).
- Faithfulness: a phantom model of the served recipe is trained (full mode only, ~3 min) and its
  heat maps are scored by the pointing game and the deletion test (training/faithfulness.py).
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import ROOT, Settings


def run(settings: Settings) -> dict[str, Any]:
    from strokelens.reader.model.served import ServedModel
    from training import faithfulness, ood_sets

    split = json.loads((settings.model_dir / "split.json").read_text())
    data_root = (ROOT / json.loads((settings.model_dir / "manifest.json").read_text())["data"]["path"]).resolve()
    test = [(data_root / f["file"]).read_bytes() for f in split["files"] if f["split"] == "test"]
    out: dict[str, Any] = {"ood": ood_sets.evaluate(ServedModel(settings.model_dir), test)}
    out["faithfulness"] = None if settings.quick else faithfulness.measure(seed=0)
    return out


def markdown(t: dict[str, Any]) -> list[str]:
    ood = t["ood"]
    lines = ["| set | n | refused |", "|---|---|---|"]
    lines += [f"| {name} | {v['n']} | {v['refusal_rate']:.2f} |" for name, v in ood["sets"].items()]
    lines += [f"| **all out-of-distribution** | {ood['ood_n']} | **{ood['ood_refusal_rate']:.3f}** |",
              f"| held-out in-distribution CT (false refusals) | {ood['in_distribution_n']} | "
              f"**{ood['false_refusal_rate']:.3f}** |", ""]
    f = t.get("faithfulness")
    if f:
        lines += [f"Heat-map faithfulness ({f['model']}): pointing game **{f['pointing_game']:.2f}** on "
                  f"{f['correctly_classified']} correctly classified phantom lesion slices (floor 0.80); deletion of "
                  f"the top {f['deletion_fraction']:.0%} of heat-map cells drops the class score by "
                  f"**{f['deletion_drop_top']:.3f}** vs **{f['deletion_drop_random']:.3f}** for random cells."]
    else:
        lines += ["Heat-map faithfulness: not run in quick mode (it trains a phantom model)."]
    return lines
