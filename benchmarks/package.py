"""Deployment package sizes: the inference and API functions as built by infra/package.py, and
what the same inference function would need with TensorFlow in place of LiteRT.

TensorFlow method: ``pip download`` the Linux x86_64 CPython 3.12 wheels (same platform tags as
infra/package.py) of ``tensorflow-cpu`` plus the inference requirements other than
``ai-edge-litert``, drop the distributions the Lambda runtime provides (as infra/package.py
does), and sum each wheel's uncompressed member sizes ("unzipped") and the wheel files
themselves ("zipped": wheels are deflate zips). No stripping or pruning is applied to it.
The wheels are cached under ``OUT/cache/tf-wheels`` between runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Settings

TF_REQUIREMENT = "tensorflow-cpu==2.21.0"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit for a .zip deployment (code + layers)


def _dist_name(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "_", wheel.name.split("-")[0]).lower()


def tf_wheels(cache: Path) -> list[Path]:
    from infra.package import PLATFORMS, REQUIREMENTS

    requirements = [line.split("#")[0].strip() for line in REQUIREMENTS["inference"].read_text().splitlines()]
    requirements = [r for r in requirements if r and not r.startswith("ai-edge-litert")]
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", *platforms, "--implementation", "cp", "--python-version", "3.12",
                    "-d", str(cache), TF_REQUIREMENT, *requirements], check=True, capture_output=True, text=True)
    return sorted(cache.glob("*.whl"))


def tf_size(cache: Path) -> dict[str, Any]:
    from infra.package import RUNTIME_PROVIDED

    started = time.perf_counter()
    wheels = tf_wheels(cache)
    provided = {name.lower() for name in RUNTIME_PROVIDED}
    kept = [w for w in wheels if _dist_name(w) not in provided]
    unzipped = zipped = tf_unzipped = 0
    for wheel in kept:
        with zipfile.ZipFile(wheel) as zf:
            size = sum(info.file_size for info in zf.infolist())
        unzipped += size
        zipped += wheel.stat().st_size
        if _dist_name(wheel) == "tensorflow_cpu":
            tf_unzipped = size
    return {"method": "pip download of Linux x86_64 cp312 wheels; sum of uncompressed wheel members (no strip/prune)",
            "requirement": TF_REQUIREMENT, "wheels": len(kept), "unzipped_bytes": unzipped, "zipped_bytes": zipped,
            "tensorflow_wheel_unzipped_bytes": tf_unzipped,
            "fits_lambda_zip_limit": unzipped <= LAMBDA_UNZIPPED_LIMIT, "seconds": round(time.perf_counter() - started, 1)}


def packaged_model(package: Path) -> dict[str, Any]:
    """The model inside a built inference package: version, files, bytes, and whether it is complete
    (the version hash checks out and every file the manifest names, v2 heads / OOD / router, is there)."""
    from strokelens.core.catalogue import Catalogue

    catalogue = Catalogue(package / "strokelens" / "artifacts")
    files = catalogue.inference_files()
    missing = [p.name for p in catalogue.named_by_manifest() if not p.is_file()]
    try:
        version, verified = catalogue.load_manifest(verify=True).version, True
    except (RuntimeError, FileNotFoundError) as err:
        version, verified = f"unverified ({err})", False
    return {"version": version, "verified": verified, "files": len(files), "names": [p.name for p in files],
            "bytes": sum(p.stat().st_size for p in files), "missing": missing,
            "complete": verified and not missing}


def run(settings: Settings) -> dict[str, Any]:
    from infra.package import build_package

    out: dict[str, Any] = {}
    root = settings.out / "packages"
    for function in ("inference", "api"):
        started = time.perf_counter()
        summary = build_package(function, root / function, make_zip=True)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        out[function] = summary
    out["inference"]["model"] = packaged_model(root / "inference")
    if settings.tf_package:
        out["tensorflow_inference"] = tf_size(settings.out / "cache" / "tf-wheels")
        out["ratio_tf_over_inference_unzipped"] = round(
            out["tensorflow_inference"]["unzipped_bytes"] / out["inference"]["unzipped_bytes"], 2)
    else:
        out["tensorflow_inference"] = None
    out["artifacts_packaged_from"] = str((ROOT / "functions" / "strokelens" / "artifacts").relative_to(ROOT))
    return out
