"""Shared pieces: statistics, the machine description, inputs, pinned-thread child processes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
CT_DATA = ROOT.parent / "shared" / "data" / "ct-hemorrhage"

# Both stacks run on one thread: the inference Lambda sets OMP_NUM_THREADS=1 and Extractor(num_threads=1);
# TensorFlow gets intra/inter-op parallelism 1 in its child processes.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@dataclass(frozen=True)
class Settings:
    quick: bool
    out: Path
    model_dir: Path
    repeats: int  # warm repeats per input
    cold_repeats: int
    scans: int  # end-to-end scans
    workers: int
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    scaling_repeats: int
    tf_package: bool

    @classmethod
    def make(cls, quick: bool, out: Path, model_dir: Path, scans: int | None = None) -> "Settings":
        if quick:
            return cls(True, out, model_dir, repeats=15, cold_repeats=2, scans=scans or 10, workers=8,
                       sizes=(128, 256), batches=(1, 4), scaling_repeats=5, tf_package=False)
        return cls(False, out, model_dir, repeats=200, cold_repeats=7, scans=scans or 500, workers=16,
                   sizes=(128, 256, 512), batches=(1, 4, 16), scaling_repeats=30, tf_package=True)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median with p5/p95 and the quartiles (linear interpolation), plus n."""
    import numpy as np

    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p5, q1, med, q3, p95 = np.percentile(a, [5, 25, 50, 75, 95])
    return {"median": round(float(med), 4), "p5": round(float(p5), 4), "p95": round(float(p95), 4),
            "q1": round(float(q1), 4), "q3": round(float(q3), 4), "n": int(a.size)}


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **THREAD_ENV, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(FUNCTIONS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_child(module: str, args: dict[str, Any], timeout: float = 900, **env: str) -> dict[str, Any]:
    """``python -m module JSON`` with pinned threads; returns the JSON its last stdout line holds."""
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, env=child_env(**env), cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> dict[str, str]:
    out = {}
    for dist in ("numpy", "ai-edge-litert", "tensorflow-cpu", "tensorflow", "keras", "pillow", "pydicom", "moto"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    cpu = "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f in ("avx2", "avx512f", "avx512_vnni", "fma")]
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu, "cpu_flags": flags, "logical_cores": os.cpu_count(), "ram_gb": ram_gb,
        "os": platform.platform(), "python": platform.python_version(), "versions": versions(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "threads": "1 for both stacks (OMP_NUM_THREADS=1, LiteRT num_threads=1, TF intra/inter-op threads=1)",
    }


def paired_inputs(root: Path, positive: str, limit: int = 16) -> list[Path]:
    """PNGs of ``root/normal`` and ``root/<positive>`` alternating, read in place from the shared data."""
    normal = sorted((root / "normal").glob("*.png"))
    lesion = sorted((root / positive).glob("*.png"))
    mixed = [p for pair in zip(normal, lesion) for p in pair]
    if not mixed:
        raise FileNotFoundError(f"no PNGs under {root}")
    return mixed[:limit]


def png_inputs(limit: int = 16) -> list[Path]:
    """Real head CT PNGs (about 256 px), alternating classes."""
    return paired_inputs(CT_DATA, "hemorrhage", limit)


def dicom_input(folder: Path, size: int = 512) -> Path:
    """A synthetic 512 x 512 CT slice as a Part-10 DICOM (the ``phantoms`` package), written to ``folder``."""
    import numpy as np

    from phantoms import make_ct_slice, write_dicom

    path = folder / f"phantom_ct_{size}.dcm"
    if not path.exists():
        write_dicom(make_ct_slice(np.random.default_rng(0), size=size), path)
    return path


def core_options(read_scan: Any) -> dict[str, Any]:
    """``read_scan`` keyword arguments that turn every optional stage (``with_*``) off."""
    import inspect

    return {name: False for name in inspect.signature(read_scan).parameters if name.startswith("with_")}


def workdir(out: Path) -> Path:
    path = out / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path
