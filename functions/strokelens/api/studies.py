"""``/studies``: what a clinician uploads together (a series or a whole study), read as one.

POST refuses over-limit requests before any upload starts, records the study, hands out one
pinned presigned POST per file, and schedules a deadline message (SQS delay) so a study whose
files never all arrive is still read (what came) and ends DONE or FAILED. GET shows progress,
the study result, preview links for the key slices and, on request, for any slice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from strokelens.aws.uploads import presign_get, presign_upload
from strokelens.core.records import OptionError, is_scan_id, new_scan_id, upload_options
from strokelens.core.studies import (StudyRequestError, deadline_message, new_study, study_upload_key, study_view,
                                     validate_files)

router = APIGatewayHttpRouter()

# The deadline message waits past the upload links' expiry (SQS delays at most 15 minutes).
DEADLINE_GRACE_SECONDS = 60


@dataclass
class Deps:
    """What the routes need from the API function's container (bound once per container)."""

    config: Any
    s3: Any
    sqs: Any
    scans: Any
    caller: Callable[[], str]
    json_body: Callable[[], dict]
    check_rate: Callable[[str], None]
    request_error: type
    page: Callable[[], tuple[int, str | None]]
    preview_seconds: int


DEPS: Deps | None = None


def bind(deps: Deps) -> None:
    global DEPS
    DEPS = deps


def _deps() -> Deps:
    assert DEPS is not None, "the API function binds its dependencies at import"
    return DEPS


@router.post("/studies")
def create_study() -> Response:
    d = _deps()
    owner = d.caller()
    body = d.json_body()
    try:
        content_types_ = validate_files(body.get("files"), d.config.max_upload_bytes)
    except StudyRequestError as err:
        raise d.request_error(err.status, err.code, err.message) from None
    try:
        modality, reported = upload_options(body)
    except OptionError as err:
        raise d.request_error(400, err.code, str(err)) from None
    d.check_rate(owner)
    study_id = new_scan_id()
    d.scans.put_pending(new_study(owner, study_id, content_types=content_types_, modality=modality,
                                  retention_days=d.config.retention_days, text_reported=reported))
    uploads = []
    for index, content_type in enumerate(content_types_):
        form = presign_upload(d.s3, d.config.uploads_bucket, study_upload_key(owner, study_id, index), content_type,
                              d.config.max_upload_bytes, d.config.upload_expires)
        uploads.append({"url": form["url"], "fields": form["fields"]})
    if d.config.scan_queue_url:
        d.sqs.send_message(QueueUrl=d.config.scan_queue_url, MessageBody=deadline_message(owner, study_id),
                           DelaySeconds=min(900, d.config.upload_expires + DEADLINE_GRACE_SECONDS))
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=json.dumps({
        "study_id": study_id, "status": "PENDING", "uploads": uploads,
        "expires_in": d.config.upload_expires, "max_bytes": d.config.max_upload_bytes,
    }))


def _slice_links(d: Deps, owner: str, study_id: str, previews: dict, position: int) -> dict[str, str]:
    return {name: presign_get(d.s3, d.config.artifacts_bucket, key, d.preview_seconds)
            for name, key in (previews.get(str(position)) or {}).items()}


@router.get("/studies/<study_id>")
def get_study(study_id: str) -> dict:
    d = _deps()
    owner = d.caller()
    item = d.scans.get(owner, study_id) if is_scan_id(study_id) else None
    if item is None or item.get("kind") != "study":  # unknown and not-yours look the same on purpose
        raise d.request_error(404, "STUDY_NOT_FOUND", "No study with this id for your account.")
    view = study_view(item, d.config.upload_expires, d.config.max_receive_count)
    previews = view.pop("previews", None) or {}
    result = view.get("result") or {}
    if result:
        view["key_slice_previews"] = {str(p): _slice_links(d, owner, study_id, previews, p)
                                      for p in result.get("key_slices", [])}
        params = router.current_event.query_string_parameters or {}
        if "slice" in params:
            try:
                position = int(params["slice"])
            except ValueError:
                raise d.request_error(400, "INVALID_SLICE", "slice must be a stack position.") from None
            if not 0 <= position < len(result.get("stack", [])):
                raise d.request_error(400, "INVALID_SLICE", "slice must be a stack position.")
            view["slice_previews"] = {str(position): _slice_links(d, owner, study_id, previews, position)}
    if item.get("slices_key"):
        view["slices_url"] = presign_get(d.s3, d.config.artifacts_bucket, item["slices_key"], d.preview_seconds)
    return view


@router.get("/studies")
def list_studies() -> dict:
    d = _deps()
    owner = d.caller()
    limit, token = d.page()
    items, next_token = d.scans.list_for_owner(owner, limit, token, studies=True)
    studies = []
    for i in items:
        view = study_view(i, d.config.upload_expires, d.config.max_receive_count)
        view.pop("previews", None)
        result = view.get("result") or {}
        view["result"] = {k: result[k] for k in ("label", "probabilities", "counts", "model_version") if k in result} or None
        studies.append(view)
    return {"studies": studies, "next": next_token}
