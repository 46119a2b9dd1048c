"""Lambda packages built for python3.12 x86_64: within budget, and the pruned inference package
still reads PNG and compressed DICOM with the real model (run from the package, not the venv)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.package import build_package

pytestmark = pytest.mark.slow

INFERENCE_BUDGET = 150 * 1024 * 1024  # issue floor; Lambda's own limit is 250 MB
API_BUDGET = 10 * 1024 * 1024

SMOKE = """
import json, sys
pkg = sys.argv[1]
class NoScipy:  # the package ships without scipy/scikit-learn: the venv's copies must not stand in
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scipy", "sklearn"):
            raise ImportError(f"{name} is not in the inference package")
sys.meta_path.insert(0, NoScipy())
sys.path.insert(0, pkg)
import numpy, ai_edge_litert
assert numpy.__file__.startswith(pkg) and ai_edge_litert.__file__.startswith(pkg)
from pydicom.data import get_testdata_file  # test files are pruned from the package: read them from the venv
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan
model = ServedModel()
assert model.predictor.catalogue.root.as_posix().startswith(pkg)
out = {}
for name in sys.argv[2:]:
    reading = read_scan(open(name, "rb").read(), model, with_previews=True)
    r = reading.result
    # A model that refuses a slice (v2: an MRI sequence other than DWI) still read it and says why.
    out[name] = sorted(r.probabilities) if not r.out_of_distribution else ["refused: " + (r.ood_reason or "")]
# Lambda cannot write bytecode (/var/task is read-only): every module the reading used from the
# package must have shipped with its own .pyc, unchecked-hash (flags 1: used whatever the file times).
from importlib.util import MAGIC_NUMBER
import os
missing = []
for module in list(sys.modules.values()):
    source = getattr(module, "__file__", None) or ""
    if source.startswith(pkg) and source.endswith(".py"):
        cached = getattr(module, "__cached__", None)
        header = open(cached, "rb").read(8) if cached and os.path.isfile(cached) else b""
        if header[:4] != MAGIC_NUMBER or int.from_bytes(header[4:8], "little") != 1:
            missing.append(source[len(pkg):])
out["modules_without_bytecode"] = missing
print(json.dumps(out))
"""


# The API handler imported from the built API package with the ML stack made unimportable: the
# package layout, not luck, keeps numpy out of the API function.
API_SMOKE = """
import json, os, sys
pkg, event_path = sys.argv[1], sys.argv[2]
class NoMl:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "PIL", "pydicom", "ai_edge_litert", "sklearn", "scipy"):
            raise ImportError(f"{name} is not available in the API function")
sys.meta_path.insert(0, NoMl())
sys.path.insert(0, pkg)
os.environ.update(SCANS_TABLE="t", UPLOADS_BUCKET="u", ARTIFACTS_BUCKET="a", AWS_DEFAULT_REGION="us-east-1",
                  AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", POWERTOOLS_TRACE_DISABLED="1",
                  POWERTOOLS_METRICS_NAMESPACE="StrokeLens")
from strokelens.api import app
assert app.__file__.startswith(pkg)
event = json.load(open(event_path))
event.update(rawPath="/contract", routeKey="GET /contract")
event["requestContext"]["http"].update(method="GET", path="/contract")
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "ApiFunction", 256, "req"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
response = app.handler(event, Context())
print(json.dumps({"status": response["statusCode"], "body": json.loads(response["body"]),
                  "numpy": "numpy" in sys.modules}))
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("packages")
    return {fn: (root / fn, build_package(fn, root / fn)) for fn in ("inference", "api")}


def test_sizes_are_within_budget(packages):
    assert packages["inference"][1]["unzipped_bytes"] <= INFERENCE_BUDGET
    assert packages["api"][1]["unzipped_bytes"] <= API_BUDGET
    api_dir = packages["api"][0]
    assert not (api_dir / "numpy").exists() and not (api_dir / "ai_edge_litert").exists()
    assert not (api_dir / "boto3").exists(), "boto3 comes with the Lambda runtime"
    assert (api_dir / "strokelens" / "artifacts" / "model_card.json").is_file()


def test_pruned_inference_package_still_predicts(packages, ct_png, tmp_path):
    from pydicom.data import get_testdata_file

    png = tmp_path / "ct.png"
    png.write_bytes(ct_png)
    files = [str(png), get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), get_testdata_file("693_J2KI.dcm")]
    run = subprocess.run([sys.executable, "-I", "-B", "-c", SMOKE, str(packages["inference"][0]), *files],
                         capture_output=True, text=True, timeout=120)  # -B: as read-only as /var/task
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.pop("modules_without_bytecode") == [], "a cold start would compile these"
    assert packages["inference"][1]["bytecode_files"] > 500
    assert len(result) == 3 and all(result.values())
    assert result[str(png)] and not result[str(png)][0].startswith("refused"), "the CT slice is scored"


def test_api_handler_imports_and_serves_from_its_package_without_numpy(packages):
    from tests.conftest import EVENTS

    run = subprocess.run([sys.executable, "-c", API_SMOKE, str(packages["api"][0]), str(EVENTS / "api_get_scan.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["numpy"] is False
    assert out["body"]["limits"]["max_upload_bytes"] > 0 and out["body"]["model"]["findings"]
    api_dir = packages["api"][0] / "strokelens"
    assert not (api_dir / "reader").exists() and not (api_dir / "artifacts" / "extractor.tflite").exists()
