"""A model folder as training writes it (layout: :mod:`strokelens.core.catalogue`): the files a
pipeline owns, plus the charts ``charts/index.json`` lists. Other tools may share the folder, so
only these are ever removed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def indexed_charts(folder: Path) -> list[Path]:
    """The chart files ``folder/index.json`` lists, in display order (none without an index)."""
    index = folder / "index.json"
    if not index.is_file():
        return []
    return [folder / f"{Path(chart['id']).name}.json" for chart in json.loads(index.read_text())]


def clear(folder: Path, names: Iterable[str]) -> None:
    """Remove a pipeline's files ``names``, its indexed charts and the index from ``folder``
    (created if missing); nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).unlink(missing_ok=True)
    for path in indexed_charts(folder / "charts"):
        path.unlink(missing_ok=True)
    (folder / "charts" / "index.json").unlink(missing_ok=True)
