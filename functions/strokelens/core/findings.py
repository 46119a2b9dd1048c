"""What the model reads on each modality, in words: one place for the reader (stroke type, the "not
assessed" sentence), the contract (``GET /contract``, so the site hard-codes no finding) and the cards.

Model v2's manifest has a ``findings`` block: per routed modality ("CT", "MR-DWI") the finding read
("hemorrhage", "ischemic") and the findings NOT assessed on it. A v1 manifest has none: it reads its
``labels`` on its ``modalities`` (CT haemorrhage vs normal).

Standard library only: the API function imports it through the contract.
"""

from __future__ import annotations

from typing import Any

FINDING_NAMES = {"hemorrhage": "intracranial haemorrhage", "ischemic": "acute ischaemic lesion"}
# The stroke type a positive finding stands for, and the stroke named in the "not assessed" sentence.
STROKE_TYPES = {"hemorrhage": "haemorrhagic", "ischemic": "ischaemic"}
STROKE_WORDS = {"hemorrhage": "haemorrhage", "ischemic": "ischaemic stroke"}
MODALITY_WORDS = {"CT": "non-contrast head CT", "MR-DWI": "diffusion-weighted MRI (DWI)", "MR-other": "MRI"}
NO_FINDING = "no finding"
NOT_ASSESSED = "not assessed"
# How a study's slice scores become its output (``manifest.aggregation.rule``), for people.
AGGREGATION_WORDS = {
    "max": "the highest score among the assessed slices",
    "topk": "the mean of the highest scores among the assessed slices",
    "noisy_or": "a noisy-OR of the assessed slices' scores",
    "attention": "learned attention pooling over the assessed slices' scores, calibrated on training studies",
}


def stroke_type(finding: str | None, label: str | None) -> str:
    """The stroke type shown: follows the assessed finding and its label."""
    if finding is None or label is None:
        return NOT_ASSESSED
    return STROKE_TYPES[finding] if label == finding else NO_FINDING


def not_assessed_sentence(modality: str, not_assessed: list[str] | tuple[str, ...]) -> str:
    """E.g. "Ischaemic stroke (acute ischaemic lesion) is not assessed on non-contrast head CT by this model."."""
    names = " or ".join(FINDING_NAMES.get(f, f) for f in not_assessed)
    kind = STROKE_WORDS["ischemic"] if "ischemic" in not_assessed else STROKE_WORDS["hemorrhage"]
    return (f"{kind[0].upper() + kind[1:]} ({names}) is not assessed on {MODALITY_WORDS.get(modality, modality)} "
            "by this model.")


def modality_findings(raw_manifest: dict[str, Any], labels: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One entry per modality the model reads: what is assessed on it and what is not.

    v2: from the manifest's ``findings`` block. v1 (no block): its positive label on each of its
    modalities, nothing said about other findings (v1 predates them).
    """
    block = raw_manifest.get("findings")
    if not block:
        positive = raw_manifest.get("positive_label") or (labels[0] if labels else None)
        return [{"modality": m, "modality_name": MODALITY_WORDS.get(m, m), "finding": positive,
                 "finding_name": FINDING_NAMES.get(positive or "", positive), "stroke_type": STROKE_TYPES.get(positive or ""),
                 "not_assessed": [], "not_assessed_sentence": None}
                for m in raw_manifest.get("modalities", ("CT",))]
    out = []
    for modality, spec in block.items():
        finding, missing = spec["finding"], list(spec.get("not_assessed", ()))
        out.append({"modality": modality, "modality_name": MODALITY_WORDS.get(modality, modality), "finding": finding,
                    "finding_name": FINDING_NAMES.get(finding, finding), "stroke_type": STROKE_TYPES.get(finding),
                    "threshold": spec.get("threshold"), "not_assessed": missing,
                    "not_assessed_sentence": not_assessed_sentence(modality, missing) if missing else None})
    return out


def finding_labels(raw_manifest: dict[str, Any], labels: tuple[str, ...]) -> list[str]:
    """Every class a probability may be keyed by, in display order: each modality's finding, then "normal"."""
    block = raw_manifest.get("findings")
    if not block:
        return list(labels)
    names = list(dict.fromkeys(spec["finding"] for spec in block.values()))
    return names + [name for name in labels if name not in names]
