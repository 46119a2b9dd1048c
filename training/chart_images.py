"""PNG copies of the model's charts for the README (``docs/charts/``), rendered by kaleido with
Debian's chromium. The plotly JSON in the artifacts stays the source served by ``GET /metrics``.
PNGs in the output folder of charts the installed model no longer has (a previous model's) are removed.

    python -m training.chart_images [--artifacts functions/strokelens/artifacts] [--out docs/charts]
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import plotly.io as pio

from training.artifacts import indexed_charts

ROOT = Path(__file__).resolve().parent.parent


def chart_files(artifacts: Path) -> list[tuple[str, Path]]:
    return [(path.stem, path) for folder in (artifacts / "charts", artifacts / "clinical" / "charts")
            for path in indexed_charts(folder)]


def render(artifacts: Path, out: Path) -> list[Path]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    os.environ.setdefault("BROWSER_PATH", browser)  # kaleido drives the system chromium; it downloads nothing
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for chart_id, path in chart_files(artifacts):
        figure = pio.from_json(path.read_text())
        target = out / f"{chart_id}.png"
        figure.write_image(target, width=720, height=460, scale=1)
        written.append(target)
    for stale in sorted(set(out.glob("*.png")) - set(written)):
        stale.unlink()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=ROOT / "functions" / "strokelens" / "artifacts")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "charts")
    args = parser.parse_args(argv)
    for path in render(args.artifacts, args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
