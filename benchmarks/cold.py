"""Cold start: a fresh interpreter from spawn to its first prediction, and its peak RSS.

Three kinds of child, each started ``repeats`` times (alternating, page cache warm after the first):

- ``handler``: ``import strokelens.inference.app`` (config, boto3 clients, powertools, model load,
  exactly what a new Lambda container does at init) with the template's environment and dummy
  credentials; no AWS call happens at import, so nothing is mocked. Then one ``read_scan`` on
  ``app.MODEL``. S3/DynamoDB calls of the first event are not included.
- ``handler_dicom``: the same, but the first file is a DICOM (the PNG as CT Hounsfield units):
  pydicom is imported only when a DICOM arrives, so its import lands in this first inference.
- ``predictor``: ``ServedModel()`` + one ``read_scan`` (no AWS modules).
- ``tensorflow``: ``import tensorflow``, ``keras.models.load_model`` of the baseline ``.keras``,
  the same decode/preprocess, one ``model.predict``.

Given the built inference package (``make bench`` builds it first), the handler and predictor children
start from it as a python3.12 Lambda does: its ``sys.path`` only (no site-packages; boto3 and its
dependencies as the runtime ships them) and unable to write bytecode, since /var/task is read-only. So
the figure includes whatever the package leaves to compile (``infra.package`` ships .pyc files). The
TensorFlow child, the baseline, runs in this environment.

Spawn-to-first-prediction is wall-clock time from just before ``Popen`` in the parent to the
child's ``time.time()`` after its prediction (same clock). Peak RSS is the child's own
``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Settings, child_env, png_inputs, summary

_PRELUDE = """
import resource, sys, time
t_start = time.time()
def done(extra):
    import json
    t_end = time.time()
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"t_end": t_end, "t_start": t_start, "maxrss_mb": maxrss_mb, **extra}))
path = sys.argv[1]
def core(read_scan):
    import inspect
    return {n: False for n in inspect.signature(read_scan).parameters if n.startswith("with_")}
"""

_HANDLER = _PRELUDE + """
t0 = time.time()
import boto3  # imported by the handler module anyway; split out to show where init time goes
tb = time.time()
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor
tp = time.time()
import strokelens.inference.app as app
t1 = time.time()
from strokelens.reader.reading import read_scan
reading = read_scan(open(path, "rb").read(), app.MODEL, **core(read_scan))
t2 = time.time()
done({"import_s": t1 - t0, "import_boto3_s": tb - t0, "import_powertools_s": tp - tb,
      "model_load_s": app.MODEL_LOAD_MS / 1e3, "first_inference_s": t2 - t1, "label": reading.result.label})
"""

CHILDREN = {
    "handler": _HANDLER,
    "handler_dicom": _HANDLER,  # the same code, given a DICOM
    "predictor": _PRELUDE + """
t0 = time.time()
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan
t1 = time.time()
predictor = ServedModel(num_threads=1)
t2 = time.time()
reading = read_scan(open(path, "rb").read(), predictor, **core(read_scan))
t3 = time.time()
done({"import_s": t1 - t0, "model_load_s": t2 - t1, "first_inference_s": t3 - t2, "label": reading.result.label})
""",
    "tensorflow": _PRELUDE + """
t0 = time.time()
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.preprocess import to_display, to_model_input
t1 = time.time()
model = keras.models.load_model(sys.argv[2])
t2 = time.time()
size = model.input_shape[1]
x = to_model_input(to_display(decode_image(open(path, "rb").read()))[0], size)[None, :, :, None].astype(np.float32)
proba = model.predict(x, verbose=0)[0]
t3 = time.time()
done({"import_s": t1 - t0, "model_load_s": t2 - t1, "first_inference_s": t3 - t2, "label": int(proba.argmax())})
""",
}


def dicom_of(png: Path, out: Path) -> Path:
    """``png`` (an 8-bit brain-window CT slice) as a CT DICOM: 0-255 -> 0-80 HU, stored with the
    scanner-style rescale (intercept -1024), so the served reading sees the same image."""
    import numpy as np
    from PIL import Image
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from phantoms import set_ct_display

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    set_ct_display(ds, np.asarray(Image.open(png).convert("L")))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{png.stem}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _handler_env(model_dir: Path) -> dict[str, str]:
    from infra.template import Stack

    env = Stack.load().function_environment("InferenceFunction")
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "1", "MODEL_DIR": str(model_dir)})
    return env


# Import names of what the python3.12 runtime ships beside the function (infra.package.RUNTIME_PROVIDED).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six")


def lambda_path(package: Path, work: Path) -> str:
    """``sys.path`` as a python3.12 Lambda has it, less the standard library: the function's built package
    (/var/task), then the runtime's own boto3 and its dependencies (here linked from this environment)."""
    import importlib.util

    runtime = work / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} (shipped by the Lambda runtime) is not installed here")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = runtime / source.name
        link.unlink(missing_ok=True)  # a link left by an earlier run may point at a moved environment
        link.symlink_to(source)
    return os.pathsep.join([str(package), str(runtime)])


def _once(kind: str, image: Path, keras_path: Path, env: dict[str, str], path: str | None = None) -> dict[str, Any]:
    """One child; ``path``: run it as Lambda does, on that ``sys.path`` only (``-S``: no site-packages) and
    unable to write bytecode (``-B``: /var/task is read-only); None: in this environment."""
    started = time.time()
    flags, child = (["-S", "-B"], {**child_env(**env), "PYTHONPATH": path}) if path else ([], child_env(**env))
    proc = subprocess.run([sys.executable, *flags, "-c", CHILDREN[kind], str(image), str(keras_path)],
                          capture_output=True, text=True, timeout=300, env=child, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"cold start child {kind} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["spawn_to_first_prediction_s"] = out["t_end"] - started
    out["interpreter_start_s"] = out["t_start"] - started
    return out


def run(settings: Settings, keras_path: Path, package: Path | None = None) -> dict[str, Any]:
    """``package``: the built inference package (``benchmarks.package``); the handler and predictor
    children then start from it as Lambda would (:func:`lambda_path`), else from this environment."""
    image = png_inputs(1)[0]
    inputs = {kind: image for kind in CHILDREN}
    inputs["handler_dicom"] = dicom_of(image, settings.out / "cold")
    handler_env, plain_env = _handler_env(settings.model_dir), {"MODEL_DIR": str(settings.model_dir)}
    envs = {"handler": handler_env, "handler_dicom": handler_env, "predictor": plain_env, "tensorflow": plain_env}
    path = lambda_path(package, settings.out / "cold") if package is not None and package.is_dir() else None
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CHILDREN}
    for _ in range(settings.cold_repeats):
        for kind in CHILDREN:
            runs[kind].append(_once(kind, inputs[kind], keras_path, envs[kind], None if kind == "tensorflow" else path))
    result: dict[str, Any] = {}
    for kind, samples in runs.items():
        keys = [k for k in samples[0] if k.endswith("_s") or k == "maxrss_mb"]
        result[kind] = {key: summary([s[key] for s in samples]) for key in keys if key not in ("t_end", "t_start")}
    tf_s = result["tensorflow"]["spawn_to_first_prediction_s"]["median"]
    result["ratio_tf_over_handler"] = round(tf_s / result["handler"]["spawn_to_first_prediction_s"]["median"], 2)
    result["ratio_tf_over_handler_dicom"] = round(
        tf_s / result["handler_dicom"]["spawn_to_first_prediction_s"]["median"], 2)
    result["ratio_tf_over_predictor"] = round(tf_s / result["predictor"]["spawn_to_first_prediction_s"]["median"], 2)
    result["input"] = image.name
    result["input_dicom"] = inputs["handler_dicom"].name
    result["started_from"] = ("the built inference package, as Lambda loads it (its sys.path only, no bytecode "
                              "written; boto3 as the runtime ships it); TensorFlow from this environment"
                              if path else "this environment (no built package)")
    result["note"] = ("page cache warm after the first start (Lambda also fetches and unpacks the package, "
                      "not measured); the handler import creates boto3 clients but makes no AWS call")
    return result
