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
sys.path.insert(0, pkg)
import numpy, ai_edge_litert
assert numpy.__file__.startswith(pkg) and ai_edge_litert.__file__.startswith(pkg)
from pydicom.data import get_testdata_file  # test files are pruned from the package: read them from the venv
from strokelens.model.predictor import Predictor
from strokelens.reading import read_scan
predictor = Predictor()
assert predictor.folder.as_posix().startswith(pkg)
out = {}
for name in sys.argv[2:]:
    reading = read_scan(open(name, "rb").read(), predictor, with_previews=True)
    out[name] = sorted(reading.result["probabilities"])
print(json.dumps(out))
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
    run = subprocess.run([sys.executable, "-I", "-c", SMOKE, str(packages["inference"][0]), *files],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result) == 3 and all(result.values())
