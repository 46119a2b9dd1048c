"""How warm latency grows with model input size and with slices per request.

For each input size a fresh int8 TFLite model of the served architecture (training/cnn.py) is
converted with training/export.py's ``to_int8_tflite`` from 8 random representative images, in
a TensorFlow child; its weights are UNTRAINED (random init), which does not change the op
count or the int8 kernel timings. Each size's folder reuses the served head and labels, so the
whole served path (``read_scan`` declared CT: decode -> preprocess -> CNN -> (v2: route ->) head)
runs; with untrained weights a v2 router may refuse a slice, whose reading then stops before the
head (CNN timings are unaffected). Model files are found through the artifact catalogue. Timing happens in a
separate LiteRT child on one thread: batches of 1, 4, 16 different real CT PNGs read one after
another, as a multi-slice request would be.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, core_options, png_inputs, run_child, summary, workdir


def convert_child(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from benchmarks.baseline import extractor as build_extractor
    from benchmarks.baseline import served_config
    from strokelens.core.catalogue import Catalogue, version_hash
    from training import export
    from training.cnn import configure

    configure(0, threads=1)
    served = Catalogue(Path(args["model_dir"]))
    manifest = json.loads(served.manifest.read_text())
    out: dict[str, Any] = {}
    for size in args["sizes"]:
        target = Catalogue(Path(args["work"]) / f"size_{size}")
        target.root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        extractor = build_extractor(len(manifest["labels"]), served_config(served.root, size))
        representative = np.random.default_rng(0).random((8, size, size), dtype=np.float32)
        nbytes = export.to_int8_tflite(extractor, representative, target.extractor)
        for path in served.inference_files():  # heads, router, labels, OOD models...: all but the CNN and manifest
            if path not in (served.extractor, served.manifest):
                shutil.copy2(path, target.root / path.name)
        meta = {**manifest, "input_size": size, "synthetic": False, "created_by": "benchmarks.scaling (untrained)",
                "extractor_bytes": nbytes}
        meta["version"] = version_hash(target.root, meta)
        target.manifest.write_text(json.dumps(meta, indent=1))
        folder = target.root
        out[str(size)] = {"folder": str(folder), "tflite_bytes": nbytes,
                          "convert_s": round(time.perf_counter() - started, 1)}
    return out


def time_child(args: dict[str, Any]) -> dict[str, Any]:
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    data = [Path(p).read_bytes() for p in args["inputs"]]
    core = core_options(read_scan)
    out: dict[str, Any] = {}
    for size, folder in args["folders"].items():
        predictor = ServedModel(Path(folder), num_threads=1)
        for blob in data[:3]:
            read_scan(blob, predictor, "CT", **core)  # warm-up
        cnn_ms: list[float] = []
        per_batch: dict[str, Any] = {}
        for batch in args["batches"]:
            totals = []
            for r in range(args["repeats"]):
                t0 = time.perf_counter()
                for k in range(batch):
                    reading = read_scan(data[(r + k) % len(data)], predictor, "CT", **core)
                    if batch == 1:
                        cnn_ms.append(reading.timings_ms["cnn"])
                totals.append((time.perf_counter() - t0) * 1e3)
            per_batch[str(batch)] = {"total_ms": summary(totals), "per_slice_ms": summary([t / batch for t in totals])}
        out[size] = {"batches": per_batch, "cnn_ms": summary(cnn_ms)}
    return out


def run(settings: Settings) -> dict[str, Any]:
    work = workdir(settings.out) / "scaling"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    converted = run_child("benchmarks.scaling", {"step": "convert", "model_dir": str(settings.model_dir),
                                                  "sizes": list(settings.sizes), "work": str(work)})
    timed = run_child("benchmarks.scaling", {"step": "time", "inputs": [str(p) for p in png_inputs(16)],
                                              "folders": {s: c["folder"] for s, c in converted.items()},
                                              "batches": list(settings.batches), "repeats": settings.scaling_repeats})
    sizes = {s: {**timed[s], "tflite_bytes": converted[s]["tflite_bytes"], "convert_s": converted[s]["convert_s"]}
             for s in converted}
    from strokelens.core.catalogue import Catalogue

    catalogue = Catalogue(settings.model_dir)
    served = json.loads(catalogue.manifest.read_text())["input_size"]
    return {"weights": "untrained (random init), int8 from 8 random representative images", "sizes": sizes,
            "served_input_size": served, "served_tflite_bytes": catalogue.extractor.stat().st_size,
            "batches": list(settings.batches), "repeats": settings.scaling_repeats,
            "inputs": "16 real head CT PNGs (~256 px), resized to each input size by the served preprocessing"}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(convert_child(arguments) if arguments["step"] == "convert" else time_child(arguments)))
