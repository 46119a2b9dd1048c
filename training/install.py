"""``python -m training.install``: copy a trained model from the build folder into the package.

Training writes to ``build/model/`` (image model) and ``build/model/clinical/`` (clinical model);
this step copies exactly what :mod:`strokelens.core.catalogue` lists, IMAGE_MODEL_FILES with the
charts of ``charts/index.json`` and CLINICAL_MODEL_FILES with ``clinical/charts/``, into
``functions/strokelens/artifacts`` (``make install-model``; ``make train`` runs it after training).
The previous model's listed files are removed first (an optional file the new model lacks must
not survive), every other file in the destination is left alone. A model folder is installed
only when its version checks out (the image manifest's hash; the clinical spec's hash).

    python -m training.install [--src build/model] [--dest functions/strokelens/artifacts]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from strokelens.core.catalogue import CLINICAL_MODEL_FILES, IMAGE_MODEL_FILES, VERSIONED_FILES, Catalogue
from strokelens.core.clinical import RiskModel
from training.artifacts import clear, indexed_charts

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "model"
PACKAGE = ROOT / "functions" / "strokelens" / "artifacts"


def _copy_folder(src: Path, dest: Path, names: tuple[str, ...], required: set[str]) -> list[Path]:
    """Replace ``dest``'s listed files and indexed charts with ``src``'s; returns the files written."""
    missing = sorted(n for n in required if not (src / n).is_file())
    if missing:
        raise FileNotFoundError(f"{src} lacks {missing}: train first")
    clear(dest, names)
    written = [Path(shutil.copy2(src / n, dest / n)) for n in names if (src / n).is_file()]
    charts = indexed_charts(src / "charts")
    if charts:
        (dest / "charts").mkdir(exist_ok=True)
        written += [Path(shutil.copy2(p, dest / "charts" / p.name)) for p in (*charts, src / "charts" / "index.json")]
    return written


def install_image(src: Path, dest: Path) -> list[Path]:
    Catalogue(src).load_manifest(verify=True)  # refuses files that do not match their manifest
    written = _copy_folder(src, dest, IMAGE_MODEL_FILES, {*VERSIONED_FILES, "manifest.json"})
    Catalogue(dest).load_manifest(verify=True)
    return written


def install_clinical(src: Path, dest: Path) -> list[Path]:
    RiskModel.load(src)  # refuses a clinical.json that does not match its version
    return _copy_folder(src, dest, CLINICAL_MODEL_FILES, {"clinical.json"})


def install(src: Path, dest: Path) -> list[Path]:
    """Install the image model and/or the clinical model found under ``src``."""
    if src.resolve() == dest.resolve():
        raise ValueError(f"{src} is already the destination")
    written = []
    if (src / "manifest.json").is_file():
        written += install_image(src, dest)
    if (src / "clinical" / "clinical.json").is_file():
        written += install_clinical(src / "clinical", dest / "clinical")
    if not written:
        raise FileNotFoundError(f"no trained model under {src} (manifest.json or clinical/clinical.json): train first")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.install", description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=BUILD, help="the training output (default build/model)")
    parser.add_argument("--dest", type=Path, default=PACKAGE, help="the packaged artifacts folder")
    args = parser.parse_args(argv)
    for path in install(args.src, args.dest):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
