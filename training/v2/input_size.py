"""``python -m training.v2.input_size``: model v2's input size chosen by measurement (training splits only).

For each candidate size the round-1 CNN (naive study labels, fewer epochs than the release to fit
the CPU budget; stated in the report) is trained on the TRAINING splits of every source, exported
int8, and scored by grouped cross-validation on the training splits: ct-hemorrhage slice OOF ROC AUC
(logistic head), ct-ich study OOF ROC AUC (MIL head + best aggregation) and mri-dwi slice OOF ROC AUC;
plus the warm int8 CNN latency per slice on one thread. Test splits are not read.
Writes ``OUT/input_size.json`` and ``OUT/input_size.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from strokelens.reader.model.predictor import Extractor
from training import cnn
from training.progress import Stopwatch
from training.v2 import data
from training.v2.experiment import ASSESS_CUT, study_counts
from training.v2.extractor import _fit_export, cnn_config, study_oof_auc, training_rows
from training.v2.fit import compare_heads


def latency_ms(model: Path, x: np.ndarray, repeats: int = 50) -> float:
    """Median warm latency (ms) of the int8 CNN on one slice, one thread."""
    ex = Extractor(model, num_threads=1)
    for _ in range(5):
        ex.run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ex.run(x)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def measure_size(size: int, epochs: int, seed: int, out: Path, log) -> dict:
    sources = dict(data.DEFAULT_SOURCES)
    table = data.load(sources, size, seed, cache=out / f"cache{size}.npz")
    config = cnn_config(size, epochs)
    rows = training_rows(table, ASSESS_CUT)
    t0 = time.perf_counter()
    maps, nbytes = _fit_export(table, rows, rows, config, seed, out / f"extractor{size}.tflite", log)
    train_s = time.perf_counter() - t0
    E = maps.mean(axis=(1, 2)).astype(np.float64)
    res = {"size": size, "epochs": epochs, "train_and_embed_s": round(train_s, 1), "extractor_bytes": nbytes,
           "cnn_latency_ms_1_thread": latency_ms(out / f"extractor{size}.tflite", table.x[0])}
    for key, src, pos in (("ct_hemorrhage_slice_oof_auc", "ct-slices", "hemorrhage"), ("dwi_slice_oof_auc", "dwi", "ischemic")):
        r = np.flatnonzero((table.source == src) & (table.split == "train"))
        heads, _, _ = compare_heads(E[r], (table.label[r] == pos).astype(int), table.group[r], seed)
        res[key] = next(h["oof_roc_auc"] for h in heads if h["head"] == "logistic_regression")
    res["ct_ich_study_oof_auc"] = study_oof_auc(table, maps, study_counts(sources["ct-studies"]), ASSESS_CUT, seed)
    log(f"size {size}: {res}")
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.v2.input_size")
    ap.add_argument("--sizes", default="128,192")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/input_size")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cnn.configure(args.seed)
    watch = Stopwatch()
    rows = [measure_size(int(s), args.epochs, args.seed, out, watch.log) for s in args.sizes.split(",")]
    (out / "input_size.json").write_text(json.dumps(rows, indent=1))
    cols = ["size", "ct_ich_study_oof_auc", "ct_hemorrhage_slice_oof_auc", "dwi_slice_oof_auc",
            "cnn_latency_ms_1_thread", "train_and_embed_s", "extractor_bytes"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |" for r in rows]
    (out / "input_size.md").write_text(f"Round-1 CNN, {args.epochs} epochs, seed {args.seed}, grouped OOF on training "
                                       "splits only.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
