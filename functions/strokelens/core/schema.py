"""The contract between training, serving, records, the API and the site, typed once.

- :class:`Manifest`: what training writes about a model (operating point defaults live here only);
- :class:`Notice`: a warning on a result, ``{code, message}`` with codes registered in ``errors.py``;
- :class:`SliceResult`: one slice's reading as stored in DynamoDB and returned by the API;
- :class:`StudyResult`: a stack of slices read as one study (slice results plus an aggregate);
- :data:`WINDOW_PRESETS`: the CT display windows (the reader applies them, the site names them).

Standard library only, so the API function can import it without numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from strokelens.core.errors import WARNINGS

# The operating point when training does not state one (one place for the default).
DEFAULT_THRESHOLD = 0.5
DEFAULT_UNCERTAIN_BAND = 0.1


@dataclass(frozen=True)
class WindowPreset:
    name: str
    level: float
    width: float
    label: str


# CT display windows in Hounsfield units; "brain" is also the model's input window.
WINDOW_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("brain", 40.0, 80.0, "Brain"),
    WindowPreset("subdural", 75.0, 215.0, "Subdural"),
    WindowPreset("stroke", 40.0, 40.0, "Stroke"),
    WindowPreset("bone", 600.0, 2800.0, "Bone"),
)


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of a model folder, with ``labels.json``'s class names."""

    version: str
    labels: tuple[str, ...]
    input_size: int
    synthetic: bool = False
    modalities: tuple[str, ...] = ("CT",)
    positive_label: str | None = None  # two classes: scored against decision_threshold
    decision_threshold: float = DEFAULT_THRESHOLD
    uncertain_band: float = DEFAULT_UNCERTAIN_BAND  # |p - threshold| below this is INDETERMINATE
    raw: dict = field(default_factory=dict, repr=False, compare=False)  # training's provenance, for the card

    @classmethod
    def from_dict(cls, raw: dict, labels: tuple[str, ...] | None = None) -> "Manifest":
        return cls(
            version=raw["version"],
            labels=tuple(labels if labels is not None else raw["labels"]),
            input_size=int(raw["input_size"]),
            synthetic=bool(raw.get("synthetic", False)),
            modalities=tuple(raw.get("modalities", ("CT",))),
            positive_label=raw.get("positive_label"),
            decision_threshold=float(raw.get("decision_threshold", DEFAULT_THRESHOLD)),
            uncertain_band=float(raw.get("uncertain_band", DEFAULT_UNCERTAIN_BAND)),
            raw=raw,
        )

    def operating_point(self) -> dict[str, Any]:
        """The fields training writes for the decision rule (merged into ``manifest.json``)."""
        return {"positive_label": self.positive_label, "decision_threshold": self.decision_threshold,
                "uncertain_band": self.uncertain_band}


@dataclass(frozen=True)
class Notice:
    """A warning attached to a result: a stable code (``errors.WARNINGS``) and a sentence for people."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in WARNINGS:
            raise ValueError(f"unknown warning code {self.code!r}")

    @classmethod
    def of(cls, code: str, detail: str | None = None) -> "Notice":
        """The registered message, with a specific detail appended when there is one."""
        return cls(code, f"{WARNINGS[code]} {detail}".strip() if detail else WARNINGS[code])

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Heatmap:
    method: str
    class_: str
    grid: list[list[float]]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "class": self.class_, "grid": self.grid}


@dataclass(frozen=True)
class SliceResult:
    """One slice's reading. ``label`` is None when the image is out of distribution: no claim is
    made, while ``model_label`` and ``probabilities`` stay visible."""

    label: str | None
    model_label: str
    probabilities: dict[str, float]
    uncertain: bool
    out_of_distribution: bool
    ood_reason: str | None
    model_version: str
    synthetic_model: bool
    modality: str | None
    source_format: str
    preprocessing: str
    image_size: list[int]
    ood_distance: float | None = None
    ood_threshold: float | None = None
    dicom: dict[str, Any] | None = None  # allow-listed technical tags only
    heatmap: Heatmap | None = None
    # DICOM: {"removed_by": "browser" | "server" | "none", "counts": {category: n}} (counts, never values)
    deidentification: dict[str, Any] | None = None
    # Model v2 (per-modality findings). ``finding_assessed``: "hemorrhage" (non-contrast CT) or
    # "ischemic" (DWI MRI), None when nothing was assessed; ``not_assessed``: findings this modality is
    # not read for; ``stroke_type``: "haemorrhagic" | "ischaemic" | "no finding" | "not assessed";
    # ``routed_as``: "CT" | "MR-DWI" | "MR-other" (what was read, after header/declared/learned checks);
    # ``assessable``: False for a CT slice with little or no brain (left out of a study's evidence).
    finding_assessed: str | None = None
    not_assessed: list[str] | None = None
    stroke_type: str | None = None
    routed_as: str | None = None
    assessable: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored/served shape: optional fields are left out rather than null."""
        out = {k: v for k, v in asdict(self).items() if k not in ("heatmap",)}
        for optional in ("ood_distance", "ood_threshold", "dicom", "deidentification", "finding_assessed",
                         "not_assessed", "stroke_type", "routed_as", "assessable"):
            if out[optional] is None:
                del out[optional]
        if self.heatmap is not None:
            out["heatmap"] = self.heatmap.to_dict()
        return out


@dataclass(frozen=True)
class StudyResult:
    """A study read as a stack: the aggregate, the series report and one score per stack position.

    Per-slice results (up to 300+ of them) are not part of this record: they go to S3 as JSON
    next to the previews, so a study's DynamoDB item stays far below the 400 KB item limit.
    """

    probabilities: dict[str, float]
    label: str | None
    model_version: str
    aggregation: str
    key_slices: list[int]  # stack positions, most suspicious first
    counts: dict[str, int]  # files, assessed, not_assessable, unreadable, duplicates, missing
    unreadable: dict[str, int] = field(default_factory=dict)  # error code -> files
    series: list[dict[str, Any]] = field(default_factory=list)  # one report per series, read or skipped
    stack: list[int] = field(default_factory=list)  # upload index of each stack position
    scores: list[float | None] = field(default_factory=list)  # positive-class probability per position
    synthetic_model: bool = False
    mixed_modalities: bool = False
    # Model v2: what the study was read for, and the resulting stroke type (see SliceResult).
    finding_assessed: str | None = None
    not_assessed: list[str] = field(default_factory=list)
    stroke_type: str | None = None
    routed_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
