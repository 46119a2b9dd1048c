"""Build a Lambda deployment package (python3.12, x86_64) for one StrokeLens function.

    python infra/package.py {inference|api} OUTDIR [--zip]

Used by ``functions/Makefile`` (SAM's ``BuildMethod: makefile``) and by the package-size
benchmark, so both measure the same thing. Dependencies are installed cross-platform with
pip (Linux x86_64 CPython 3.12 wheels only, glibc <= 2.34 = Amazon Linux 2023), then the
packages the Lambda runtime already provides (boto3 and its dependency tree) are removed,
then the function's folders of ``strokelens`` and its model files are copied (``CODE`` below), and
every module is compiled to bytecode (Lambda cannot write it at run time).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "strokelens"
REQUIREMENTS = {"inference": ROOT / "requirements" / "inference.txt", "api": ROOT / "requirements" / "api.txt"}

# pip does not expand manylinux_2_X to older glibc versions by itself: list them all.
# python3.12 Lambda runs on Amazon Linux 2023 (glibc 2.34).
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 35))]

# Shipped by the python3.12 runtime: boto3, botocore and the dependencies only botocore needs.
# aws-xray-sdk pulls in botocore; a second copy would add ~25 MB and shadow the runtime's.
# jmespath stays: aws-lambda-powertools imports it directly.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "python_dateutil", "six")

# Installed files the CPU-only inference function never loads (GPU/NPU accelerators, converter
# tools, test data). tests/unit/test_package.py runs a prediction from the pruned package.
PRUNE = (
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/tools",
    "ai_edge_litert/vendors",
    "ai_edge_litert/aot",
    "pydicom/data/test_files",
    "pydicom/data/charset_files",
    "numpy/*/tests",
    "numpy/tests",
    "numpy/_pyinstaller",
    "numpy/f2py",
    "numpy/typing/tests",
)

# What each function ships of the strokelens package: whole folders (the package layout is the
# split: core/ and aws/ import no numpy, reader/ is inference-only) plus the model files the
# artifact catalogue assigns to it. The catalogue is read from source: this script runs before
# any dependency is installed.
CODE: dict[str, tuple[str, ...]] = {
    "inference": ("__init__.py", "core", "aws", "reader", "inference"),
    "api": ("__init__.py", "core", "aws", "api", "dlq"),
}
ALWAYS_EXCLUDED = ("__pycache__", "*.pyc", ".DS_Store")


def _artifact_patterns(function: str) -> tuple[str, ...]:
    sys.path.insert(0, str(SOURCE.parent))
    try:
        from strokelens.core import catalogue
    finally:
        sys.path.pop(0)
    return catalogue.INFERENCE_FILES if function == "inference" else catalogue.API_FILES


def _pip_install(requirements: Path, outdir: Path) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(outdir), *platforms, "--implementation", "cp", "--python-version", "3.12",
         "--only-binary=:all:", "--upgrade", "-r", str(requirements)],
        check=True,
    )


def _remove_distribution(outdir: Path, name: str) -> None:
    """Uninstall ``name`` from a --target directory using its dist-info RECORD."""
    for dist_info in outdir.glob("*.dist-info"):
        if dist_info.name.split("-")[0].lower().replace(".", "_") != name.lower():
            continue
        record = dist_info / "RECORD"
        top_dirs: set[Path] = set()
        if record.exists():
            for line in record.read_text().splitlines():
                relative = line.rsplit(",", 2)[0]
                path = (outdir / relative).resolve()
                if outdir.resolve() in path.parents and path.is_file():
                    path.unlink()
                    top_dirs.add(outdir / Path(relative).parts[0])
        for directory in top_dirs | {dist_info}:
            if directory.is_dir():
                shutil.rmtree(directory)


def _copy_code(function: str, outdir: Path) -> None:
    target = outdir / "strokelens"
    if target.exists():
        shutil.rmtree(target)
    wanted = [SOURCE / name for name in CODE[function]]
    artifacts = SOURCE / "artifacts"
    wanted += [p for pattern in _artifact_patterns(function) for p in sorted(artifacts.glob(pattern))]
    for root in wanted:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            relative = path.relative_to(SOURCE).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(part, p) for part in relative.split("/") for p in ALWAYS_EXCLUDED):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / relative)


def _strip_symbols(outdir: Path) -> bool:
    """Drop debug symbols from shared libraries (about a third of the package); False without binutils."""
    strip = shutil.which("strip")
    if strip is None:
        return False
    libraries = [str(p) for p in outdir.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    for start in range(0, len(libraries), 200):
        subprocess.run([strip, "--strip-unneeded", *libraries[start:start + 200]], check=True)
    return True


def _strip_caches(outdir: Path) -> None:
    for cache in list(outdir.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _compile(outdir: Path) -> int:
    """Bytecode next to every module (``__pycache__``), so a new container does not compile what it
    imports: Lambda's /var/task is read-only, so without .pyc files in the package every cold start
    compiles its imports again (measured: 0.91 s to the first PNG reading from the package without
    them, 0.57 s with them). Unchecked-hash .pyc (PEP 552) are used whatever the files' times after
    unzipping; a package never changes once built. Only by a Python 3.12 (the runtime's): another
    version's bytecode would never be read. Returns the number of .pyc files written."""
    import compileall
    import py_compile

    if sys.version_info[:2] != (3, 12):
        print(f"warning: Python {sys.version_info[0]}.{sys.version_info[1]} cannot compile bytecode for the "
              "python3.12 runtime: the package ships none, and every cold start compiles its imports", file=sys.stderr)
        return 0
    if not compileall.compile_dir(outdir, quiet=2, workers=0,
                                  invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
        print("warning: some modules did not compile; those compile on every cold start", file=sys.stderr)
    return sum(1 for _ in outdir.rglob("*.pyc"))


def _zip(outdir: Path) -> Path:
    archive = outdir.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(outdir.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(outdir).as_posix())
    return archive


def build_package(function: str, outdir: Path, *, make_zip: bool = False) -> dict:
    """Build ``function``'s package into ``outdir`` and return its size summary."""
    if function not in REQUIREMENTS:
        raise ValueError(f"unknown function {function!r}; expected one of {sorted(REQUIREMENTS)}")
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    _pip_install(REQUIREMENTS[function], outdir)
    for name in RUNTIME_PROVIDED:
        _remove_distribution(outdir, name)
    shutil.rmtree(outdir / "bin", ignore_errors=True)  # console scripts are useless in Lambda
    for pattern in PRUNE:
        for path in outdir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    stripped = _strip_symbols(outdir)
    _copy_code(function, outdir)
    _strip_caches(outdir)
    compiled = _compile(outdir)
    files = [p for p in outdir.rglob("*") if p.is_file()]
    summary: dict = {"function": function, "unzipped_bytes": sum(p.stat().st_size for p in files),
                     "files": len(files), "stripped": stripped, "bytecode_files": compiled}
    if make_zip:
        summary["zipped_bytes"] = _zip(outdir).stat().st_size
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", choices=sorted(REQUIREMENTS))
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--zip", action="store_true", help="also write OUTDIR.zip and report its size")
    args = parser.parse_args(argv)
    print(json.dumps(build_package(args.function, args.outdir, make_zip=args.zip)))


if __name__ == "__main__":
    main()
