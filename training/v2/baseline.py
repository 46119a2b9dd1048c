"""The previous (v1) model on model v2's held-out test splits, through the served path, so the two can
be compared on the same images: ct-hemorrhage slice ROC AUC and ct-ich study ROC AUC (v1's rule: max
over slices not judged out of distribution), with grouped bootstrap CIs and v1's refusal rates.

    python -m training.v2.baseline --model functions/strokelens/artifacts --cache build/model_v2/cache.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.v2.data import Table
from training.v2.fit import auc_ci


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="functions/strokelens/artifacts")
    ap.add_argument("--cache", default="build/model_v2/cache.npz")
    ap.add_argument("--out", default="build/model_v2/v1_on_v2_test.json")
    args = ap.parse_args(argv)
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    with np.load(args.cache, allow_pickle=False) as a:
        t = Table(**{k: a[k] for k in Table.__dataclass_fields__})
    model = ServedModel(Path(args.model))
    res: dict = {"model_version": model.version}
    rows = np.flatnonzero((t.source == "ct-slices") & (t.split == "test"))
    p, ood = [], []
    for i in rows:
        r = read_scan(Path(t.path[i]).read_bytes(), model, "CT", with_heatmap=False).result
        p.append(r.probabilities["hemorrhage"])
        ood.append(r.out_of_distribution)
    y = (t.label[rows] == "hemorrhage").astype(int)
    res["ct_hemorrhage_slice_auc"] = auc_ci(y, np.array(p), t.group[rows], 0)
    res["ct_hemorrhage_refused"] = float(np.mean(ood))
    rows = np.flatnonzero((t.source == "ct-studies") & (t.split == "test"))
    studies = sorted(set(t.study[rows]))
    scores, ys, refused = [], [], []
    for st in studies:
        best = 0.0
        for i in rows[t.study[rows] == st]:
            r = read_scan(Path(t.path[i]).read_bytes(), model, "CT", with_heatmap=False).result
            refused.append(r.out_of_distribution)
            if not r.out_of_distribution:
                best = max(best, r.probabilities["hemorrhage"])
        scores.append(best)
        ys.append(int(t.label[rows[t.study[rows] == st][0]] == "hemorrhage"))
    res["ct_ich_study_auc_max"] = auc_ci(np.array(ys), np.array(scores), studies, 0)
    res["ct_ich_slices_refused"] = float(np.mean(refused))
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps(res, indent=1, default=float))
    return res


if __name__ == "__main__":
    main()
