"""Scan records: ids, upload keys, states and what the API shows of them. No AWS here.

A scan moves PENDING -> PROCESSING -> DONE | FAILED. Items are keyed by the owner's identity
(the JWT ``sub``) and a time-ordered scan id, so "my scans, newest first" is one query and
another clinician's id simply does not exist for the caller.

Filenames are never stored: they often carry patient names.
"""

from __future__ import annotations

import calendar
import json
import re
import secrets
import time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from strokelens.core.errors import MESSAGES


class Status(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    DONE = "DONE"
    FAILED = "FAILED"


UPLOAD_PREFIX = "uploads/"
# Whole strings only (fullmatch: "$" would let a trailing newline through).
SCAN_ID_RE = re.compile(r"[0-9a-f]{24}")
OWNER_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
MODALITIES = ("CT", "MR")

# Declared content type -> the formats the bytes may turn out to be (bytes are sniffed anyway).
CONTENT_TYPES: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/tiff": "tiff",
    "application/dicom": "dicom",
}
EXTENSION_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                   ".tif": "image/tiff", ".tiff": "image/tiff", ".dcm": "application/dicom",
                   ".dicom": "application/dicom"}


def new_scan_id(now: float | None = None) -> str:
    """24 hex digits: 12 of milliseconds since the epoch (sorts by time), 12 random."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{secrets.token_hex(6)}"


def is_scan_id(value: str) -> bool:
    return bool(SCAN_ID_RE.fullmatch(value or ""))


def upload_key(owner_id: str, scan_id: str) -> str:
    return f"{UPLOAD_PREFIX}{owner_id}/{scan_id}"


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """(owner_id, scan_id) of an upload key, or None for any key we did not hand out."""
    if not key.startswith(UPLOAD_PREFIX):
        return None
    parts = key[len(UPLOAD_PREFIX):].split("/")
    if len(parts) != 2 or not OWNER_RE.fullmatch(parts[0]) or not is_scan_id(parts[1]):
        return None
    return parts[0], parts[1]


def resolve_content_type(filename: str, declared: str | None) -> str | None:
    """The upload's content type: the declared one if we accept it, else one from the extension.

    Browsers send an empty or generic type for ``.dcm`` files, so the extension decides then.
    """
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in CONTENT_TYPES:
        return declared
    if declared in ("", "application/octet-stream"):
        dot = filename.rfind(".")
        return EXTENSION_TYPES.get(filename[dot:].lower()) if dot >= 0 else None
    return None


def iso_now(now: float | None = None) -> str:
    t = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def epoch_of(iso: str) -> float:
    """Seconds since the epoch of an :func:`iso_now` timestamp (to the second)."""
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))


class OptionError(ValueError):
    """A create request's option refused: a stable code and a sentence (both routes answer 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def upload_options(body: dict[str, Any]) -> tuple[str | None, bool]:
    """What ``POST /scans`` and ``POST /studies`` declare besides their files: the modality (None, "" or
    "auto": detect it) and ``burned_in_text`` (true when the uploader's page found what looks like text
    burned into the image: the server then keeps only the head in its previews; absent is false).
    Raises :class:`OptionError` for a modality not in ``MODALITIES`` or a flag that is not a boolean."""
    modality = body.get("modality")
    if modality in ("", "auto"):
        modality = None
    if modality is not None and modality not in MODALITIES:
        raise OptionError("INVALID_MODALITY", f"modality must be one of {', '.join(MODALITIES)} or omitted.")
    reported = body.get("burned_in_text", False)
    if not isinstance(reported, bool):
        raise OptionError("INVALID_BURNED_IN_TEXT", "burned_in_text must be true or false.")
    return modality, reported


def new_pending(owner_id: str, scan_id: str, *, content_type: str, modality: str | None,
                retention_days: int, now: float | None = None, text_reported: bool = False) -> dict[str, Any]:
    """The item written when an upload is handed out (``text_reported``: see :func:`upload_options`)."""
    t = time.time() if now is None else now
    item: dict[str, Any] = {
        "owner_id": owner_id,
        "scan_id": scan_id,
        "status": Status.PENDING.value,
        "content_type": content_type,
        "created_at": iso_now(t),
        "updated_at": iso_now(t),
        "expires_at": int(t + retention_days * 86400),
    }
    if modality:
        item["modality_declared"] = modality
    if text_reported:
        item["text_reported"] = True
    return item


def to_plain(value: Any) -> Any:
    """DynamoDB values (Decimal, sets) -> JSON-friendly Python values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    return value


PUBLIC_FIELDS = ("scan_id", "status", "created_at", "updated_at", "modality_declared",
                 "content_type", "result", "error", "timings_ms", "warnings", "previews")


# After the upload link expires, a scan whose file never arrived is shown as failed, and its delayed
# deadline message (sent by POST /scans) records it so.
UPLOAD_GRACE_SECONDS = 120


def scan_deadline_message(owner_id: str, scan_id: str) -> str:
    """The scan-queue message, delayed past the upload link's life, that ends a scan whose file never came."""
    return json.dumps({"scan_deadline": {"owner_id": owner_id, "scan_id": scan_id}})


def public_view(item: dict[str, Any], upload_expires: int | None = None, max_attempts: int | None = None,
                now: float | None = None) -> dict[str, Any]:
    """What the owner sees of a record (no owner id, no internal claim fields).

    Never shows a dead attempt as live work:
    - a PENDING scan that was never claimed and whose upload link has expired reads as
      FAILED/UPLOAD_NOT_RECEIVED, so a refused upload never looks "in progress";
    - a PROCESSING scan whose lease ran out reads as PENDING (a retry will claim it) or, with
      ``max_attempts`` claims spent, as FAILED/READ_ABORTED (what the queue's consumers will record).
    """
    t = time.time() if now is None else now
    view = {k: to_plain(item[k]) for k in PUBLIC_FIELDS if k in item}
    status, attempts = item.get("status"), int(item.get("attempts") or 0)
    if upload_expires is not None and status == Status.PENDING and not attempts:
        created = epoch_of(item["created_at"])
        if t > created + upload_expires + UPLOAD_GRACE_SECONDS:
            view["status"] = Status.FAILED.value
            view["error"] = {"code": "UPLOAD_NOT_RECEIVED", "message": MESSAGES["UPLOAD_NOT_RECEIVED"]}
    if status == Status.PROCESSING and int(item.get("lease_until") or 0) < t:
        if max_attempts is not None and attempts >= max_attempts:
            view["status"] = Status.FAILED.value
            view["error"] = {"code": "READ_ABORTED", "message": MESSAGES["READ_ABORTED"]}
        else:
            view["status"] = Status.PENDING.value
    return view
