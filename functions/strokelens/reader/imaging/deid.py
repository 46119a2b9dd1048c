"""Server-side de-identification of DICOM datasets, with the browser's rules (``core/deid_rules.json``).

The site strips identifiers before upload (``web/js/deid.js``); the server does not trust that.
Order for one dataset: find what is still identifying (:func:`identifying`) -> if anything,
apply the rules in place (:func:`deidentify`): listed elements at any depth (X remove, Z empty,
D dummy, U UID replaced by a salted hash), any other person name, date or time (by value type),
then private, overlay and curve groups -> mark the
dataset ``PatientIdentityRemoved = YES`` with the method. Pixel data, rescale, windows, modality,
geometry and the transfer syntax are never touched, so the reading is unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.datadict import tag_for_keyword

from strokelens.core.contract import deid_rules

RULES: dict[str, Any] = deid_rules()
ACTIONS: dict[int, tuple[str, str]] = {  # tag -> (category, action)
    int(tag_for_keyword(keyword) or 0): (category, action)
    for category, elements in RULES["categories"].items() for keyword, action in elements.items()
    if tag_for_keyword(keyword) is not None
}
# Any other person name, date or time, whatever its tag (the lists cannot name every one): VR -> rule.
TYPE_ACTIONS: dict[str, tuple[str, str]] = {vr: (rule[0], rule[1]) for vr, rule in RULES.get("value_types", {}).items()}
DUMMY = RULES["dummy"]
UID_ROOT = RULES["uid_root"]
BROWSER_METHOD = RULES["mark"]["DeidentificationMethod"] + " (browser)"
SERVER_METHOD = RULES["mark"]["DeidentificationMethod"] + " (server)"


def _group_category(tag: int) -> str | None:
    group = tag >> 16
    if group % 2 == 1:
        return "private"
    if 0x6000 <= group <= 0x60FF:
        return "overlays"
    if 0x5000 <= group <= 0x50FF:
        return "curves"
    return None


def _rule(element: Any) -> tuple[str, str] | None:
    """(category, action) for an element: its tag's rule, else, when it holds a value, its value
    type's (an empty unlisted name or date identifies no one), else None."""
    rule = ACTIONS.get(element.tag)
    if rule is not None:
        return rule
    return TYPE_ACTIONS.get(element.VR) if not _empty(element.value) else None


def _empty(value: Any) -> bool:
    return value in (None, "", b"") or (hasattr(value, "__len__") and len(value) == 0)


def _still_identifying(action: str, value: Any) -> bool:
    if action == "X":
        return True
    if _empty(value):
        return False
    if action == "D":
        return str(value) != DUMMY
    if action == "U":
        return not str(value).startswith(UID_ROOT)
    return True  # Z: any non-empty value


@dataclass(frozen=True)
class Identity:
    """What a dataset held before the server looked: who removed identifiers, and counts per category."""

    removed_by: str  # "browser" (marked by the site, nothing left), "server", or "none" (nothing to remove)
    counts: dict[str, int]


def identifying(ds: Dataset) -> dict[str, int]:
    """Counts per category of identifying elements still present (sequences included)."""
    counts: dict[str, int] = {}

    def visit(dataset: Dataset, element: Any) -> None:
        category = _group_category(element.tag)
        rule = None if category else _rule(element)
        if rule is not None and _still_identifying(rule[1], element.value):
            category = rule[0]
        if category:
            counts[category] = counts.get(category, 0) + 1

    ds.walk(visit)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta \
            and not str(meta.MediaStorageSOPInstanceUID).startswith(UID_ROOT):
        counts["uids"] = counts.get("uids", 0) + 1
    return counts


def replace_uid(uid: str, salt: str) -> str:
    """The same UID and salt always give the same ``2.25.<decimal>`` UID (series grouping survives)."""
    return UID_ROOT + str(int(hashlib.sha256(f"{salt}:{uid}".encode()).hexdigest()[:30], 16))


def deidentify(ds: Dataset, salt: str) -> dict[str, int]:
    """Apply the rules in place; returns counts per category of what was removed or replaced."""
    counts = identifying(ds)

    def visit(dataset: Dataset, element: Any) -> None:
        tag = element.tag
        if _group_category(tag):
            del dataset[tag]
            return
        rule = _rule(element)
        if rule is None or not _still_identifying(rule[1], element.value):
            return
        action = rule[1]
        if action == "X":
            del dataset[tag]
        elif action == "Z":
            element.value = None if element.VR == "SQ" else ""
        elif action == "D":
            element.value = DUMMY
        elif action == "U":
            element.value = replace_uid(str(element.value), salt)

    ds.walk(visit)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or replace_uid(str(meta.MediaStorageSOPInstanceUID), salt)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = SERVER_METHOD
    return counts


def check_and_deidentify(ds: Dataset, salt: str) -> Identity:
    """De-identify ``ds`` if anything identifying is left; say who removed identifiers."""
    counts = identifying(ds)
    if counts:
        return Identity("server", deidentify(ds, salt))
    marked = str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and \
        str(ds.get("DeidentificationMethod", "")).startswith(RULES["mark"]["DeidentificationMethod"])
    return Identity("browser" if marked else "none", {})
