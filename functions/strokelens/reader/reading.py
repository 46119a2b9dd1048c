"""Reading pipelines: bytes -> decode -> served model -> result (+ previews). No AWS here.

The inference function, the command-line predictor, training's held-out evaluation and the
benchmarks all call these, so a batch evaluation measures exactly what the service serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strokelens.core.errors import ScanError
from strokelens.core.schema import Notice, SliceResult, StudyResult
from strokelens.reader.imaging.decode import decode_image
from strokelens.reader.imaging.previews import preview_pngs
from strokelens.reader.model.cam import overlay_png
from strokelens.reader.model.served import ServedModel
from strokelens.reader.timing import Timer


@dataclass(frozen=True)
class Reading:
    result: SliceResult
    warnings: list[Notice] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict)  # de-identified PNGs by name


def read_scan(data: bytes, model: ServedModel, declared_modality: str | None = None,
              with_previews: bool = False, with_heatmap: bool = True) -> Reading:
    """Read one uploaded file; raises :class:`strokelens.core.errors.ScanError` for bad input.

    Order: decode -> served model (window, model input, CNN + head, OOD, heat map) -> previews.
    """
    timer = Timer()
    with timer("decode"):
        decoded = decode_image(data)
    slice_ = model.read(decoded, declared_modality, timer=timer, with_heatmap=with_heatmap)
    previews: dict[str, bytes] = {}
    if with_previews:
        with timer("previews"):
            previews = preview_pngs(decoded, slice_.display, slice_.model_input)
            if slice_.heat is not None:
                previews["heatmap"] = overlay_png(slice_.heat)
    return Reading(result=slice_.result, warnings=slice_.notices, timings_ms=timer.rounded(), previews=previews)


@dataclass(frozen=True)
class StudyReading:
    result: StudyResult
    failures: dict[int, str]  # slice position -> error code, for slices that could not be read


def read_study(files: list[bytes], model: ServedModel, declared_modality: str | None = None) -> StudyReading:
    """Read a stack of slices (in stack order) as one study.

    Each slice goes through :func:`read_scan`; unreadable slices are counted, not fatal. Slices
    judged out of distribution are not assessable and never count as evidence. The study's
    probability of each class is the maximum over assessed slices for the positive class (and
    its complement for the other), the aggregation the model issue will refine; key slices are
    the assessed ones ordered by that score.
    """
    slices: list[SliceResult] = []
    positions: list[int] = []
    failures: dict[int, str] = {}
    for position, data in enumerate(files):
        try:
            slices.append(read_scan(data, model, declared_modality, with_heatmap=False).result)
            positions.append(position)
        except ScanError as err:
            failures[position] = err.code
    assessed = [i for i, s in enumerate(slices) if not s.out_of_distribution]
    manifest = model.manifest
    positive = manifest.positive_label or manifest.labels[0]
    order = sorted(assessed, key=lambda i: -slices[i].probabilities[positive])
    probabilities: dict[str, float] = {}
    label = None
    if order:
        top = slices[order[0]].probabilities[positive]
        others = [name for name in manifest.labels if name != positive]
        probabilities = {positive: top, **{name: (1.0 - top) / len(others) for name in others}}
        label = positive if top >= manifest.decision_threshold else others[0]
    result = StudyResult(
        probabilities=probabilities, label=label, model_version=model.version, aggregation="max",
        key_slices=[positions[i] for i in order[:3]], slices=slices,
        counts={"assessed": len(assessed), "not_assessable": len(slices) - len(assessed), "unreadable": len(failures)},
    )
    return StudyReading(result, failures)
