"""``python -m strokelens predict PATH...``: the served reading for files or folders, as JSON lines.

Uses exactly the inference function's path (decode -> preprocess -> int8 TFLite -> numpy head),
with no TensorFlow and no AWS, so researchers can batch-evaluate what the service returns.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from strokelens.errors import ScanError

SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ""}


def iter_files(paths: list[str]) -> Iterator[Path]:
    """Files named, and files inside folders named (recursively, sorted), skipping hidden ones."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*")
                              if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def predict(paths: list[str], model_dir: str | None, out=sys.stdout) -> int:
    from strokelens.model.predictor import Predictor
    from strokelens.reading import read_scan

    predictor = Predictor(Path(model_dir) if model_dir else None)
    failures = 0
    for path in iter_files(paths):
        line: dict = {"file": str(path)}
        try:
            reading = read_scan(path.read_bytes(), predictor)
            line.update(status="DONE", **{k: reading.result[k] for k in ("label", "probabilities", "model_version")},
                        warnings=reading.warnings)
        except ScanError as err:
            failures += 1
            line.update(status="FAILED", error={"code": err.code, "message": err.message})
        except OSError as err:
            failures += 1
            line.update(status="FAILED", error={"code": "UNREADABLE", "message": str(err)})
        out.write(json.dumps(line) + "\n")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strokelens")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="read PNG/JPEG/TIFF/DICOM files or folders; one JSON line per file")
    p.add_argument("paths", nargs="+")
    p.add_argument("--model-dir", help="artifact folder (default: the packaged model)")
    args = parser.parse_args(argv)
    return predict(args.paths, args.model_dir)
