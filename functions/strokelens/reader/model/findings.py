"""Model v2: one int8 extractor, one finding per modality, a router that checks what the image is.

- non-contrast CT is read for intracranial haemorrhage (``hemorrhage``); ischaemic stroke is NOT
  assessed on CT by this model;
- DWI MRI is read for an acute ischaemic lesion (``ischemic``); haemorrhage is NOT assessed on DWI;
- any other MRI sequence (T1, T2, FLAIR...) is refused with its reason, never read as DWI.

Routing: a DICOM header decides the modality (and, for MR, the sequence when its tags name one); for
PNG/JPEG the declared modality is used. A small learned classifier over the embedding (the router:
CT / MR-DWI / MR-other) checks it: when it disagrees with a declared modality, or the header names no
MR sequence and the router says "other MRI", the slice is refused with the reason; when it disagrees
with a DICOM header, the header wins and a warning says so. Without any declared modality the router
decides.

The manifest's ``findings`` block names each modality's head, OOD model and operating point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strokelens.core.findings import MODALITY_WORDS, not_assessed_sentence, stroke_type
from strokelens.reader.model.head import LinearHead
from strokelens.reader.model.ood import MahalanobisModel

__all__ = ["FindingModel", "FindingModels", "Route", "Router", "decide_route", "stroke_type"]


@dataclass(frozen=True)
class FindingModel:
    modality: str  # "CT" | "MR-DWI"
    finding: str  # "hemorrhage" | "ischemic"
    head: LinearHead  # binary logistic head: class 1 = the finding
    threshold: float
    uncertain_band: float
    ood: tuple[MahalanobisModel, ...]  # one per training source; refused only when far from ALL of them
    not_assessed: tuple[str, ...]

    def ood_distance(self, embedding: np.ndarray) -> tuple[float, float] | None:
        """(distance, threshold) of the nearest component relative to its threshold; None without OOD models."""
        if not self.ood:
            return None
        pairs = [(m.distance(embedding), m.threshold) for m in self.ood]
        return min(pairs, key=lambda dt: dt[0] / dt[1])

    def probabilities(self, embedding: np.ndarray) -> dict[str, float]:
        p = float(self.head.predict_proba(embedding)[0, 1])
        return {self.finding: p, "normal": 1.0 - p}

    def not_assessed_sentence(self) -> str:
        return not_assessed_sentence(self.modality, self.not_assessed)


@dataclass(frozen=True)
class Router:
    head: LinearHead  # multinomial over classes
    classes: tuple[str, ...]

    def route(self, embedding: np.ndarray) -> tuple[str, float]:
        p = self.head.predict_proba(embedding)[0]
        k = int(np.argmax(p))
        return self.classes[k], float(p[k])


@dataclass(frozen=True)
class FindingModels:
    findings: dict[str, FindingModel]
    router: Router | None
    crop: bool
    assess_cut: float | None

    @classmethod
    def load(cls, folder: Path, raw: dict) -> "FindingModels":
        findings = {}
        for modality, spec in raw["findings"].items():
            names = spec.get("ood") or []
            names = [names] if isinstance(names, str) else names
            oods = tuple(MahalanobisModel.load(folder / n) for n in names if (folder / n).exists())
            findings[modality] = FindingModel(
                modality, spec["finding"], LinearHead.load(folder / spec["head"]), float(spec["threshold"]),
                float(spec.get("uncertain_band", raw.get("uncertain_band", 0.1))), oods,
                tuple(spec.get("not_assessed", ())))
        router = None
        if raw.get("router"):
            router = Router(LinearHead.load(folder / raw["router"]["file"]), tuple(raw["router"]["classes"]))
        assess = raw.get("assess") or {}
        return cls(findings, router, raw.get("crop") == "head", assess.get("cut"))


@dataclass(frozen=True)
class Route:
    modality: str | None  # "CT" | "MR-DWI" | "MR-other" | None (refused before reading)
    refusal: str | None  # reason when refused
    warning: str | None  # a routing caveat that does not refuse
    router_says: str | None = None


# A declared modality is overruled (refused) only when the router is at least this sure; below it the
# slice is read as declared, with a warning.
REFUSE_CONFIDENCE = 0.9


def decide_route(header_modality: str | None, header_sequence: str | None, declared: str | None,
                 router_says: str | None, confidence: float = 1.0) -> Route:
    """The routing rule (see the module docstring); pure, so tests can walk every case.

    ``header_modality``: "CT"/"MR" from DICOM or None; ``header_sequence``: "DWI"/"other"/None;
    ``declared``: "CT"/"MR"/None; ``router_says``: "CT"/"MR-DWI"/"MR-other"/None; ``confidence``:
    the router's probability for what it says.
    """
    if header_modality is None and declared == "CT" and router_says not in (None, "CT") and confidence < REFUSE_CONFIDENCE:
        looks_like = MODALITY_WORDS.get(router_says or "", router_says or "")
        return Route("CT", None, f"declared CT; the image looks somewhat like {looks_like} "
                                 f"(router probability {confidence:.2f}), read as CT.", router_says)
    if header_modality == "CT":
        warn = None if router_says in (None, "CT") else f"the DICOM header says CT, the image looks like {router_says}."
        return Route("CT", None, warn, router_says)
    if header_modality == "MR":
        if header_sequence == "other":
            return Route("MR-other", "The DICOM header names an MRI sequence other than DWI (for example T1, T2 or "
                                     "FLAIR); only diffusion-weighted slices are read.", None, router_says)
        if header_sequence == "DWI":
            warn = None if router_says in (None, "MR-DWI") else f"the header says DWI, the image looks like {router_says}."
            return Route("MR-DWI", None, warn, router_says)
        if router_says == "MR-DWI":
            return Route("MR-DWI", None, "the header does not name the MRI sequence; the image looks like DWI.", router_says)
        return Route("MR-other", "This MRI does not look like a diffusion-weighted (DWI) slice and its header does not "
                                 "name the sequence; only DWI is read.", None, router_says)
    # PNG/JPEG: the declared modality, checked by the router
    if declared == "CT":
        if router_says in (None, "CT"):
            return Route("CT", None, None, router_says)
        return Route(None, f"Declared CT, but the image looks like {MODALITY_WORDS.get(router_says or "", router_says or "")}.",
                     None, router_says)
    if declared == "MR":
        if router_says == "MR-DWI":
            return Route("MR-DWI", None, None, router_says)
        if router_says == "MR-other":
            return Route("MR-other", "This looks like an MRI sequence other than DWI (for example T1, T2 or FLAIR); "
                                     "only diffusion-weighted slices are read.", None, router_says)
        return Route(None, "Declared MRI, but the image looks like a CT slice.", None, router_says)
    if router_says is None:
        return Route(None, "The modality is unknown: declare CT or MRI.", None, None)
    if router_says == "MR-other":
        return Route("MR-other", "This looks like an MRI sequence other than DWI (for example T1, T2 or FLAIR); only "
                                 "diffusion-weighted slices are read.", None, router_says)
    return Route(router_says, None, f"no modality was declared; the image looks like {MODALITY_WORDS[router_says]}.",
                 router_says)

