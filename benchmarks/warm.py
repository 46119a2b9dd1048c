"""Warm inference per scan, by stage, for PNG and DICOM: served LiteRT stack vs the float Keras baseline.

Each stack runs in its own child process on one thread. The LiteRT child calls the served
:func:`strokelens.reader.reading.read_scan` (CT declared, as the site uploads a CT slice) twice
per repeat: once with every optional stage off ("core": decode -> probabilities, the budgeted
path) and once with every ``with_*`` stage on (previews, and heat map / OOD when ``read_scan``
offers them). The TensorFlow child decodes and preprocesses with the same strokelens code (with
model v2's head crop when the manifest asks for it), then runs the Keras classifier of the same
architecture (training/cnn.py) with ``model.predict`` (as the seed app did) and with a direct
``model(x, training=False)`` call.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, core_options, dicom_input, png_inputs, run_child, summary, workdir

WARMUP = 5
DECLARED = "CT"  # the inputs are CT slices, uploaded as the site does (modality chosen); model v2 routes by it


def _stats(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {stage: summary(values) for stage, values in samples.items()}


def litert_child(args: dict[str, Any]) -> dict[str, Any]:
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    predictor = ServedModel(Path(args["model_dir"]), num_threads=1)
    core_kwargs = core_options(read_scan)
    optional = list(core_kwargs)
    full_kwargs: dict[str, Any] = {name: True for name in optional}
    out: dict[str, Any] = {"optional_stages": optional, "input_size": predictor.manifest.input_size,
                           "model_version": predictor.version}
    for fmt, paths in args["inputs"].items():
        core: dict[str, list[float]] = defaultdict(list)
        full: dict[str, list[float]] = defaultdict(list)
        for i in range(WARMUP + args["repeats"]):
            path = Path(paths[i % len(paths)])
            t0 = time.perf_counter()
            data = path.read_bytes()
            read_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            reading = read_scan(data, predictor, DECLARED, **core_kwargs)
            core_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            everything = read_scan(data, predictor, DECLARED, **full_kwargs)
            full_ms = (time.perf_counter() - t0) * 1e3
            if i < WARMUP:
                continue
            core["read_bytes"].append(read_ms)
            for stage, ms in reading.timings_ms.items():
                core[stage].append(ms)
            core["total"].append(core_ms)
            for stage, ms in everything.timings_ms.items():
                full[stage].append(ms)
            full["total"].append(full_ms)
        out[fmt] = {"core": _stats(core), "all_stages": _stats(full),
                    "image_size": reading.result.image_size, "files": len(paths)}
    return out


def tf_child(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from benchmarks.baseline import float_twin
    from strokelens.reader.imaging.decode import decode_image
    from strokelens.reader.imaging.preprocess import to_display, to_model_input

    size, keras_path, crop = int(args["input_size"]), Path(args["keras_path"]), bool(args.get("crop"))
    model, about = float_twin(Path(args["model_dir"]), int(args["n_classes"]))
    model.save(keras_path)  # the cold-start benchmark loads this file
    out: dict[str, Any] = {**about, "tensorflow": tf.__version__}
    for fmt, paths in args["inputs"].items():
        samples: dict[str, list[float]] = defaultdict(list)
        for i in range(WARMUP + args["repeats"]):
            path = Path(paths[i % len(paths)])
            t0 = time.perf_counter()
            data = path.read_bytes()
            t1 = time.perf_counter()
            decoded = decode_image(data)
            t2 = time.perf_counter()
            x = to_model_input(to_display(decoded)[0], size, crop=crop)[None, :, :, None].astype(np.float32)
            t3 = time.perf_counter()
            proba = model.predict(x, verbose=0)[0]
            t4 = time.perf_counter()
            direct = model(x, training=False).numpy()[0]
            t5 = time.perf_counter()
            assert proba.shape == direct.shape and abs(float(proba.sum()) - 1) < 1e-3
            if i < WARMUP:
                continue
            for stage, ms in (("read_bytes", t1 - t0), ("decode", t2 - t1), ("preprocess", t3 - t2),
                              ("predict", t4 - t3), ("direct_call", t5 - t4)):
                samples[stage].append(ms * 1e3)
            samples["total"].append((t4 - t1) * 1e3)  # decode -> probabilities with model.predict
            samples["total_direct"].append((t3 - t1 + t5 - t4) * 1e3)
        out[fmt] = _stats(samples)
    return out


def run(settings: Settings) -> dict[str, Any]:
    from strokelens.core.catalogue import Catalogue

    manifest = Catalogue(settings.model_dir).load_manifest()
    work = workdir(settings.out)
    inputs = {"png": [str(p) for p in png_inputs(16)], "dicom": [str(dicom_input(work))]}
    common = {"model_dir": str(settings.model_dir), "inputs": inputs, "repeats": settings.repeats}
    litert = run_child("benchmarks.warm", {"stack": "litert", **common})
    keras_path = work / "baseline.keras"
    tf = run_child("benchmarks.warm", {"stack": "tf", **common, "input_size": manifest.input_size,
                                       "n_classes": len(manifest.labels), "keras_path": str(keras_path),
                                       "crop": manifest.raw.get("crop") == "head"})
    ratios = {}
    for fmt in inputs:
        lite_total = litert[fmt]["core"]["total"]["median"]
        lite_cnn = litert[fmt]["core"]["cnn"]["median"] + litert[fmt]["core"]["head"]["median"]
        ratios[fmt] = {
            "total_predict": round(tf[fmt]["total"]["median"] / lite_total, 2),
            "total_direct": round(tf[fmt]["total_direct"]["median"] / lite_total, 2),
            "model_predict": round(tf[fmt]["predict"]["median"] / lite_cnn, 2),
            "model_direct": round(tf[fmt]["direct_call"]["median"] / lite_cnn, 2),
        }
    return {"litert": litert, "tensorflow": tf, "ratio_tf_over_litert": ratios, "keras_path": str(keras_path),
            "inputs": {"png": f"{len(inputs['png'])} real head CT PNGs (~256 px), cycled",
                       "dicom": "synthetic 512 x 512 CT phantom, Part-10 DICOM (phantoms)"},
            "repeats": settings.repeats, "warmup": WARMUP}


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    result = litert_child(arguments) if arguments["stack"] == "litert" else tf_child(arguments)
    print(json.dumps(result))
