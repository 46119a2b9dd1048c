"""Reading pipelines: bytes -> decode -> served model -> result (+ previews). No AWS here.

The inference function, the command-line predictor, training's held-out evaluation and the
benchmarks all call these, so a batch evaluation measures exactly what the service serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from strokelens.core.errors import ScanError
from strokelens.core.schema import Notice, SliceResult, StudyResult
from strokelens.reader.imaging.decode import BURNED_IN_REPORTED, decode_image
from strokelens.reader.imaging.previews import preview_pngs
from strokelens.reader.model.cam import overlay_png
from strokelens.reader.model.served import ServedModel
from strokelens.reader.series import group_series, header_of, pick_series
from strokelens.reader.timing import Timer


@dataclass(frozen=True)
class Reading:
    result: SliceResult
    warnings: list[Notice] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    previews: dict[str, bytes] = field(default_factory=dict)  # de-identified PNGs by name


def read_scan(data: bytes, model: ServedModel, declared_modality: str | None = None,
              with_previews: bool = False, with_heatmap: bool = True,
              preview_names: tuple[str, ...] | None = None, text_reported: bool = False) -> Reading:
    """Read one uploaded file; raises :class:`strokelens.core.errors.ScanError` for bad input.

    Order: decode -> served model (window, model input, CNN + head, OOD, heat map) -> previews.
    ``text_reported``: the uploader's page found what looks like burned-in text (a PNG or JPEG has
    no header to say so); the previews then keep only the head, as for a DICOM whose header says so.
    """
    timer = Timer()
    with timer("decode"):
        decoded = decode_image(data)
        if text_reported and not decoded.burned_in_text:
            decoded = replace(decoded, burned_in_text=BURNED_IN_REPORTED)
    slice_ = model.read(decoded, declared_modality, timer=timer, with_heatmap=with_heatmap)
    previews: dict[str, bytes] = {}
    if with_previews:
        with timer("previews"):
            previews = preview_pngs(decoded, slice_.display, slice_.model_input, preview_names, slice_.cropped)
            if slice_.heat is not None and (preview_names is None or "heatmap" in preview_names):
                previews["heatmap"] = overlay_png(slice_.heat)
    return Reading(result=slice_.result, warnings=slice_.notices, timings_ms=timer.rounded(), previews=previews)


# What a study keeps per slice (the stack viewer) and, for its key slices, everything.
STACK_PREVIEWS = ("display", "heatmap")
KEY_SLICES = 3


@dataclass(frozen=True)
class StudySlice:
    position: int  # in stack order of the series read
    index: int  # the file's place in the upload
    result: SliceResult | None  # None when the file could not be read
    error: str | None = None
    warnings: list[Notice] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"position": self.position, "index": self.index, "error": self.error,
                "result": None if self.result is None else self.result.to_dict(),
                "warnings": [w.to_dict() for w in self.warnings]}


@dataclass(frozen=True)
class StudyReading:
    result: StudyResult
    slices: list[StudySlice]
    previews: dict[tuple[int, str], bytes] = field(default_factory=dict)  # (stack position, name) -> PNG
    timings_ms: dict[str, float] = field(default_factory=dict)

    def unreadable_files(self) -> dict[int, str]:
        """Upload index -> error code of every file that could not be read."""
        return {**self.rejected, **{s.index: s.error for s in self.slices if s.error}}

    rejected: dict[int, str] = field(default_factory=dict)  # files that are no image at all


def read_study(files: list[bytes | None], model: ServedModel, declared_modality: str | None = None,
               with_previews: bool = False, *, time_left: Callable[[], float] | None = None,
               text_reported: bool = False) -> StudyReading:
    """Read the files of one upload as a study; ``None`` marks a file that never arrived.

    Order: headers -> series grouped, ordered, de-duplicated -> the series the model is for ->
    each slice through :func:`read_scan` (unreadable slices counted, not fatal; slices judged out
    of distribution, and with model v2 CT slices outside the brain, are not assessable and never
    count as evidence) -> aggregate: v1 takes the maximum over assessed slices; v2 uses the rule
    chosen by grouped cross-validation on ct-ich (``manifest.aggregation``, calibrated) over the
    slices of the study's finding -> key slices, most suspicious first -> with previews, full
    previews of the key slices.

    ``time_left`` (seconds this study may still take; None: no limit, as for the CLI and training)
    is asked before each file's header, each slice and each key slice's previews; at zero or below the study
    ends with ``ScanError("STUDY_TOO_LONG")`` and nothing partial is returned. A slice already
    started is not interrupted (the decoder's own per-file deadline bounds it). ``text_reported``
    applies to every slice (:func:`read_scan`).
    """
    timer = Timer()
    with timer("headers"):
        headers = []
        for i, data in enumerate(files):
            if data is not None:
                within_budget(time_left, f"{i} of {len(files)} headers read")
                headers.append(header_of(i, data))
        selection = pick_series(group_series(headers), model.manifest.modalities, declared_modality)
    positive = model.manifest.positive_label or model.manifest.labels[0]
    slices: list[StudySlice] = []
    previews: dict[tuple[int, str], bytes] = {}
    stack = [h.index for h in selection.chosen.slices] if selection.chosen else []
    stacked: list[bytes] = [files[i] or b"" for i in stack]  # every stacked file is present
    with timer("slices"):
        for position, index in enumerate(stack):
            within_budget(time_left, f"{position} of {len(stack)} slices read")
            try:
                reading = read_scan(stacked[position], model, declared_modality, with_previews=with_previews,
                                    preview_names=STACK_PREVIEWS, text_reported=text_reported)
            except ScanError as err:
                slices.append(StudySlice(position, index, None, err.code))
                continue
            slices.append(StudySlice(position, index, reading.result, None, reading.warnings))
            previews.update({(position, name): png for name, png in reading.previews.items()})
    v2 = getattr(model, "v2", None)
    finding = None
    if v2 is not None:  # the study's finding: that of the modality most of its read slices were routed to
        routed = [s.result.finding_assessed for s in slices if s.result is not None and s.result.finding_assessed]
        finding = max(sorted(set(routed)), key=routed.count) if routed else None
        positive = finding or positive
    scores = [None if s.result is None or s.result.out_of_distribution or s.result.assessable is False
              or (v2 is not None and s.result.finding_assessed != finding)
              else s.result.probabilities[positive] for s in slices]
    assessed = [p for p, score in enumerate(scores) if score is not None]
    if v2 is not None:
        from strokelens.reader.model.aggregate import key_slices as _key_slices

        agg = model.manifest.raw.get("aggregation") or {"rule": "max", "params": {}}
        assessed_scores = np.asarray([scores[p] or 0.0 for p in assessed])
        order = [assessed[i] for i in _key_slices(assessed_scores, agg["rule"], agg["params"], KEY_SLICES)]
    else:
        order = sorted(assessed, key=lambda p: -(scores[p] or 0.0))[:KEY_SLICES]
    if with_previews:
        with timer("key_previews"):
            for done, position in enumerate(order):  # every preview (windows, model input) for the slices shown first
                within_budget(time_left, f"all {len(stack)} slices read, {done} of {len(order)} key previews")
                full = read_scan(stacked[position], model, declared_modality, with_previews=True,
                                 text_reported=text_reported)
                previews.update({(position, name): png for name, png in full.previews.items()})
    if v2 is not None:
        probabilities, label, rule = _aggregate_v2(model, finding, [scores[p] or 0.0 for p in assessed])
    else:
        probabilities, label = _aggregate(model, positive, [scores[p] or 0.0 for p in assessed])
        rule = "max"
    unreadable: dict[str, int] = {}
    not_images = sum(1 for h in headers if not h.readable)
    if not_images:
        unreadable["UNSUPPORTED_FORMAT"] = not_images
    for s in slices:
        if s.error:
            unreadable[s.error] = unreadable.get(s.error, 0) + 1
    result = StudyResult(
        probabilities=probabilities, label=label, model_version=model.version, aggregation=rule,
        key_slices=order,
        counts={"files": len(files), "assessed": len(assessed),
                "not_assessable": sum(1 for s in slices if s.result is not None and (s.result.out_of_distribution
                                                                                     or s.result.assessable is False)),
                "outside_brain": sum(1 for s in slices if s.result is not None and not s.result.out_of_distribution
                                     and s.result.assessable is False),
                "unreadable": sum(unreadable.values()), "duplicates": sum(s.duplicates for s in selection.series),
                "missing": sum(1 for data in files if data is None),
                "skipped": sum(len(s.slices) for s in selection.series if not s.chosen)},
        unreadable=unreadable, series=[s.report() for s in selection.series], stack=stack,
        scores=[None if v is None else round(v, 6) for v in scores], synthetic_model=model.manifest.synthetic,
        mixed_modalities=selection.mixed_modalities,
        **(_study_findings(model, finding, label, slices) if v2 is not None else {}),
    )
    rejected = {h.index: "UNSUPPORTED_FORMAT" for h in headers if not h.readable}
    return StudyReading(result, slices, previews, timer.rounded(), rejected)


def within_budget(time_left: Callable[[], float] | None, progress: str) -> None:
    """Raise ``STUDY_TOO_LONG`` once the study's time is spent; ``progress`` goes to the detail (logs)."""
    if time_left is None:
        return
    left = time_left()
    if left <= 0:
        raise ScanError("STUDY_TOO_LONG", f"time budget spent ({left:.1f} s left): {progress}")


def _aggregate_v2(model: ServedModel, finding: str | None, scores: list[float]) -> tuple[dict[str, float], str | None, str]:
    """Model v2: the aggregation rule chosen by grouped CV on ct-ich (manifest ``aggregation``), its
    calibrated study probability, and the study threshold (CT); DWI studies use the same rule with the
    DWI slice threshold (no DWI study labels exist to fit one)."""
    from strokelens.reader.model.aggregate import study_probability

    agg = model.manifest.raw.get("aggregation") or {"rule": "max", "params": {}}
    if not scores or finding is None:
        return {}, None, agg["rule"]
    if finding == "hemorrhage":
        p = study_probability(agg["rule"], np.asarray(scores), agg["params"])
        threshold = float(agg.get("study_threshold", model.manifest.decision_threshold))
        rule = agg["rule"]
    else:
        assert model.v2 is not None
        p, threshold, rule = max(scores), model.v2.findings["MR-DWI"].threshold, "max"
    return {finding: p, "normal": 1.0 - p}, finding if p >= threshold else "normal", rule


def _study_findings(model: ServedModel, finding: str | None, label: str | None, slices) -> dict:
    from strokelens.reader.model.findings import stroke_type

    assert model.v2 is not None
    routed = [s.result.routed_as for s in slices if s.result is not None and s.result.finding_assessed == finding]
    spec = next((m for m in model.v2.findings.values() if m.finding == finding), None)
    return {"finding_assessed": finding, "not_assessed": list(spec.not_assessed) if spec else ["hemorrhage", "ischemic"],
            "stroke_type": stroke_type(finding, label), "routed_as": routed[0] if routed else None}


def _aggregate(model: ServedModel, positive: str, scores: list[float]) -> tuple[dict[str, float], str | None]:
    """Max over assessed slices for the positive class (the rest share its complement); no label
    without an assessed slice."""
    if not scores:
        return {}, None
    top = max(scores)
    others = [name for name in model.manifest.labels if name != positive]
    probabilities = {positive: top, **{name: (1.0 - top) / len(others) for name in others}}
    threshold = model.manifest.decision_threshold
    return probabilities, positive if top >= threshold else others[0]
