"""``python -m strokelens predict PATH...``: the served reading for files or folders, as JSON lines.

Uses exactly the inference function's path (decode -> preprocess -> int8 TFLite -> numpy head),
with no TensorFlow and no AWS, so researchers can batch-evaluate what the service returns.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from strokelens.core.errors import ScanError
from strokelens.core.records import MODALITIES

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


def predict(paths: list[str], model_dir: str | None, modality: str | None = None, out=sys.stdout) -> int:
    """One JSON line per file; exit status 1 when any file failed."""
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_scan

    model = ServedModel(Path(model_dir) if model_dir else None)
    failures = 0
    for path in iter_files(paths):
        line: dict = {"file": str(path)}
        try:
            reading = read_scan(path.read_bytes(), model, modality)
            line.update(status="DONE", label=reading.result.label, probabilities=reading.result.probabilities,
                        model_version=reading.result.model_version, warnings=[w.to_dict() for w in reading.warnings])
            if reading.result.stroke_type is not None:  # model v2: what was and was not assessed
                line.update(finding_assessed=reading.result.finding_assessed, not_assessed=reading.result.not_assessed,
                            stroke_type=reading.result.stroke_type, routed_as=reading.result.routed_as)
        except ScanError as err:
            failures += 1
            line.update(status="FAILED", error={"code": err.code, "message": err.message})
        except OSError as err:
            failures += 1
            line.update(status="FAILED", error={"code": "UNREADABLE", "message": str(err)})
        out.write(json.dumps(line) + "\n")
    return 1 if failures else 0


def predict_study(folder: str, model_dir: str | None, modality: str | None = None, out=sys.stdout) -> int:
    """One JSON line for the whole folder read as one study (files in natural name order; DICOM
    series grouped and ordered by their headers)."""
    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import read_study

    model = ServedModel(Path(model_dir) if model_dir else None)
    files = sorted(iter_files([folder]), key=lambda p: natural_key(p.relative_to(folder).as_posix()))
    reading = read_study([p.read_bytes() for p in files], model, modality)
    study = reading.result
    line = {"study": folder, "files": len(files), "label": study.label, "probabilities": study.probabilities,
            "model_version": study.model_version, "aggregation": study.aggregation,
            "key_slices": [str(files[study.stack[p]]) for p in study.key_slices], "counts": study.counts,
            "unreadable": {str(files[i]): code for i, code in reading.unreadable_files().items()},
            "series": study.series}
    if study.finding_assessed is not None or study.stroke_type is not None:  # model v2
        line.update(finding_assessed=study.finding_assessed, not_assessed=study.not_assessed,
                    stroke_type=study.stroke_type, routed_as=study.routed_as)
    out.write(json.dumps(line) + "\n")
    return 0 if study.counts["assessed"] else 1


def natural_key(name: str) -> list:
    """'slice2' before 'slice10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strokelens")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="read PNG/JPEG/TIFF/DICOM files or folders; one JSON line per file")
    p.add_argument("paths", nargs="*")
    p.add_argument("--study", metavar="DIR", help="read every file in DIR as one study; one JSON line")
    p.add_argument("--modality", choices=MODALITIES, help="declared modality (a DICOM header wins)")
    p.add_argument("--model-dir", help="artifact folder (default: the packaged model)")
    args = parser.parse_args(argv)
    if args.study:
        return predict_study(args.study, args.model_dir, args.modality)
    if not args.paths:
        parser.error("give files or folders, or --study DIR")
    return predict(args.paths, args.model_dir, args.modality)
