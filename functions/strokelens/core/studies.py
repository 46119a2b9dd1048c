"""Study records: what a clinician uploads together. No AWS here.

A study is a record in the scans table (same keys, ``kind = "study"``) whose files arrive as
``uploads/<owner>/<study_id>/<index>``. It moves PENDING (files arriving) -> PROCESSING (read once,
by the invocation that saw the last file arrive, or by the deadline message when some never
came) -> DONE | FAILED. Filenames are never stored: the upload index stands for the file.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from strokelens.core.records import OWNER_RE, UPLOAD_PREFIX, Status, is_scan_id, iso_now, public_view, \
    resolve_content_type

MAX_FILES = 500
MAX_STUDY_BYTES = 250 * 1024 * 1024
KIND = "study"
_INDEX_RE = re.compile(r"[0-9]{1,4}")  # fullmatch; "\d" would take any script's digits


class StudyRequestError(ValueError):
    """A refused study request: HTTP status, stable code, and a sentence naming the problem."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def study_upload_key(owner_id: str, study_id: str, index: int) -> str:
    return f"{UPLOAD_PREFIX}{owner_id}/{study_id}/{index:04d}"


def parse_study_key(key: str) -> tuple[str, str, int] | None:
    """(owner_id, study_id, index) of a study upload key, or None for any key we did not hand out."""
    if not key.startswith(UPLOAD_PREFIX):
        return None
    parts = key[len(UPLOAD_PREFIX):].split("/")
    if len(parts) != 3 or not OWNER_RE.fullmatch(parts[0]) or not is_scan_id(parts[1]) or not _INDEX_RE.fullmatch(parts[2]):
        return None
    return parts[0], parts[1], int(parts[2])


def validate_files(files: Any, max_file_bytes: int) -> list[str]:
    """Content types of the files a study announces, in upload order; refuses before any upload starts."""
    if not isinstance(files, list) or not files:
        raise StudyRequestError(400, "INVALID_FILES", "files must be a non-empty list of {filename, content_type}.")
    if len(files) > MAX_FILES:
        raise StudyRequestError(413, "TOO_MANY_FILES", f"A study holds at most {MAX_FILES} files; this one has {len(files)}.")
    types, total = [], 0
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) \
                or not 1 <= len(entry["filename"]) <= 255:
            raise StudyRequestError(400, "INVALID_FILES", f"files[{i}] needs a filename of 1 to 255 characters.")
        declared = entry.get("content_type")
        if declared is not None and not isinstance(declared, str):
            raise StudyRequestError(400, "UNSUPPORTED_CONTENT_TYPE", f"files[{i}].content_type must be a string.")
        content_type = resolve_content_type(entry["filename"], declared)
        if content_type is None:
            raise StudyRequestError(415, "UNSUPPORTED_CONTENT_TYPE",
                                    f"files[{i}] is not a PNG, JPEG, TIFF or DICOM file.")
        size = entry.get("size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise StudyRequestError(400, "INVALID_FILES", f"files[{i}].size must be a whole number of bytes.")
            if size > max_file_bytes:
                raise StudyRequestError(413, "FILE_TOO_LARGE",
                                        f"files[{i}] is {size} bytes; each file may be at most {max_file_bytes} bytes.")
            total += size
        types.append(content_type)
    if total > MAX_STUDY_BYTES:
        raise StudyRequestError(413, "STUDY_TOO_LARGE",
                                f"The files add up to {total} bytes; a study may be at most {MAX_STUDY_BYTES} bytes.")
    return types


def new_study(owner_id: str, study_id: str, *, content_types: list[str], modality: str | None,
              retention_days: int, now: float | None = None, text_reported: bool = False) -> dict[str, Any]:
    """The study item written when its uploads are handed out (``text_reported``: any of its files, as
    :func:`strokelens.core.records.upload_options`; every slice's previews then keep only the head)."""
    t = time.time() if now is None else now
    item: dict[str, Any] = {
        "owner_id": owner_id, "scan_id": study_id, "kind": KIND, "status": Status.PENDING.value,
        "files_expected": len(content_types), "content_types": content_types,
        "created_at": iso_now(t), "updated_at": iso_now(t), "expires_at": int(t + retention_days * 86400),
    }
    if modality:
        item["modality_declared"] = modality
    if text_reported:
        item["text_reported"] = True
    return item


def deadline_message(owner_id: str, study_id: str) -> str:
    """The scan-queue message that reads a study whose files did not all arrive in time."""
    return json.dumps({"study_deadline": {"owner_id": owner_id, "study_id": study_id}})


STUDY_FIELDS = ("files_expected", "files_received", "files_read", "series", "slices_key")


def study_view(item: dict[str, Any], upload_expires: int | None = None, max_attempts: int | None = None,
               now: float | None = None) -> dict[str, Any]:
    """What the owner sees of a study: the scan view (status rules included) plus progress."""
    view = public_view(item, upload_expires, max_attempts, now)
    view["study_id"] = view.pop("scan_id")
    received = len(item.get("arrived") or ())
    view["progress"] = {"files_expected": int(item.get("files_expected", 0)), "files_received": received,
                        "files_read": int(item.get("files_read", 0))}
    if item.get("status") == Status.PENDING and received and int(item.get("attempts") or 0) == 0 \
            and view.get("status") == Status.FAILED.value:  # some files came: the deadline will read them
        view["status"] = Status.PENDING.value
        view.pop("error", None)
    return view
