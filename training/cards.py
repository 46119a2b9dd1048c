"""Model cards, shared by both pipelines: the card is a dict written as ``<stem>.json`` and rendered
as ``<stem>.md`` (``model_card`` for the image model, ``clinical_card`` for the clinical model)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def metric_rows(values: dict[str, dict[str, float]], names: dict[str, str] | None = None) -> str:
    """Markdown table rows ``| metric | value | low - high |`` (3 decimals), metric names from ``names``."""
    names = names or {}
    return "\n".join(f"| {names.get(k, k)} | {v['value']:.3f} | {v['ci_low']:.3f} - {v['ci_high']:.3f} |"
                     for k, v in values.items())


def bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def reproduce(training: dict, library: str, version_key: str) -> str:
    """The one-line recipe: the command, its seed and the version of the library that fitted the model."""
    return f"`{training['command']}` (seed {training['seed']}, {library} {training[version_key]})."


def write_card(out: Path, stem: str, card: dict, markdown: str) -> None:
    (out / f"{stem}.json").write_text(json.dumps(card, indent=1))
    (out / f"{stem}.md").write_text(markdown)
