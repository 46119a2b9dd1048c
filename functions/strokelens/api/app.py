"""API function (HTTP API, JWT-authorised): scans, model card and metric charts.

Every route is scoped to the caller's JWT ``sub``; another clinician's scan id answers 404.
Bad requests answer 4xx with ``{"error": {"code", "message"}}``, never a 500.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from strokelens.api import studies
from strokelens.aws.rate_limit import CreationLimiter
from strokelens.aws.scans_table import ScansTable, decode_page_token
from strokelens.aws.uploads import presign_get, presign_upload
from strokelens.core.catalogue import Catalogue
from strokelens.core.clinical import ClinicalValidationError, RiskModel
from strokelens.core.contract import site_contract
from strokelens.core.settings import Settings
from strokelens.core.records import (UPLOAD_GRACE_SECONDS, OptionError, is_scan_id, new_pending, new_scan_id,
                                     public_view, resolve_content_type, scan_deadline_message, upload_key,
                                     upload_options)
from strokelens.core.studies import KIND as STUDY_KIND


class RequestError(Exception):
    """A client mistake: answered with its status and a JSON error."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # only AWS SDK calls: patching every library X-Ray knows adds ~25 ms to a cold start
metrics = Metrics()
app = APIGatewayHttpResolver()

CONFIG = Settings.from_env()
CATALOGUE = Catalogue(CONFIG.model_dir)
LIMITER = (CreationLimiter(boto3.resource("dynamodb").Table(CONFIG.rate_table), CONFIG.create_limit_per_hour)
           if CONFIG.rate_table else None)
# SigV4 for presigned URLs: SigV2 is deprecated and refused in newer regions.
S3 = boto3.client("s3", config=BotoConfig(signature_version="s3v4"))
SCANS = ScansTable(boto3.resource("dynamodb").Table(CONFIG.scans_table))
SQS = boto3.client("sqs")  # deadline messages of scans and studies

MAX_PAGE = 50
PREVIEW_URL_SECONDS = 300


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, headers=headers,
                    body=json.dumps({"error": {"code": code, "message": message}}))


@app.exception_handler(RequestError)
def _request_error(exc: RequestError) -> Response:
    return _error(exc.status, exc.code, exc.message, exc.headers)


@app.exception_handler(NotFoundError)
def _not_found(_: NotFoundError) -> Response:
    return _error(404, "NOT_FOUND", "No such resource.")


def caller() -> str:
    """The authenticated clinician (JWT ``sub``); the HTTP API authorizer has verified it."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    sub = claims.get("sub")
    if not sub:
        raise RequestError(401, "UNAUTHORIZED", "Sign in to use this service.")
    return sub


def json_body() -> dict[str, Any]:
    try:
        body = json.loads(app.current_event.decoded_body or "")
    except (ValueError, TypeError, RecursionError):  # deeply nested JSON exhausts the parser's stack
        raise RequestError(400, "INVALID_JSON", "The request body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise RequestError(400, "INVALID_JSON", "The request body must be a JSON object.")
    return body


def check_rate(owner: str) -> None:
    """429 once the clinician has started the hour's allowance of scans and studies."""
    if LIMITER is None:
        return
    allowed, retry_after = LIMITER.allow(owner)
    if not allowed:
        metrics.add_metric(name="ScanRateLimited", unit=MetricUnit.Count, value=1)
        raise RequestError(429, "RATE_LIMITED", f"At most {LIMITER.limit} scans or studies per hour can be started "
                           "per clinician. Please try again later.", {"Retry-After": str(retry_after)})


@app.post("/scans")
@tracer.capture_method
def create_scan() -> Response:
    owner = caller()
    body = json_body()
    filename = body.get("filename")
    if not isinstance(filename, str) or not 1 <= len(filename) <= 255:
        raise RequestError(400, "INVALID_FILENAME", "filename must be a string of 1 to 255 characters.")
    declared = body.get("content_type")
    if declared is not None and not isinstance(declared, str):
        raise RequestError(400, "UNSUPPORTED_CONTENT_TYPE", "content_type must be a string.")
    content_type = resolve_content_type(filename, declared)
    if content_type is None:
        raise RequestError(415, "UNSUPPORTED_CONTENT_TYPE", "Upload a PNG, JPEG, TIFF or DICOM file.")
    try:
        modality, reported = upload_options(body)
    except OptionError as err:
        raise RequestError(400, err.code, str(err)) from None

    check_rate(owner)
    scan_id = new_scan_id()
    SCANS.put_pending(new_pending(owner, scan_id, content_type=content_type, modality=modality,
                                  retention_days=CONFIG.retention_days, text_reported=reported))
    upload = presign_upload(S3, CONFIG.uploads_bucket, upload_key(owner, scan_id), content_type,
                            CONFIG.max_upload_bytes, CONFIG.upload_expires)
    if CONFIG.scan_queue_url:  # the record ends FAILED if the file never comes (not only the view)
        SQS.send_message(QueueUrl=CONFIG.scan_queue_url, MessageBody=scan_deadline_message(owner, scan_id),
                         DelaySeconds=min(900, CONFIG.upload_expires + UPLOAD_GRACE_SECONDS))
    metrics.add_metric(name="ScanCreated", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=json.dumps({
        "scan_id": scan_id,
        "status": "PENDING",
        "upload": {"url": upload["url"], "fields": upload["fields"]},
        "expires_in": CONFIG.upload_expires,
        "max_bytes": CONFIG.max_upload_bytes,
    }))


@app.get("/scans/<scan_id>")
@tracer.capture_method
def get_scan(scan_id: str) -> dict:
    owner = caller()
    item = SCANS.get(owner, scan_id) if is_scan_id(scan_id) else None
    if item is None or item.get("kind") == STUDY_KIND:  # unknown, not yours, a study: all look the same
        raise RequestError(404, "SCAN_NOT_FOUND", "No scan with this id for your account.")
    view = public_view(item, CONFIG.upload_expires, CONFIG.max_receive_count)
    if "previews" in view:  # short-lived links, handed only to the owner
        view["previews"] = {name: presign_get(S3, CONFIG.artifacts_bucket, key, PREVIEW_URL_SECONDS)
                            for name, key in view["previews"].items()}
    return view


def page() -> tuple[int, str | None]:
    """``limit`` and ``next`` of a list request, validated."""
    params = app.current_event.query_string_parameters or {}
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        raise RequestError(400, "INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_PAGE}.") from None
    if not 1 <= limit <= MAX_PAGE:
        raise RequestError(400, "INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_PAGE}.")
    token = params.get("next")
    if token:
        try:
            decode_page_token(token)
        except ValueError:
            raise RequestError(400, "INVALID_PAGE_TOKEN", "The page token is not valid.") from None
    return limit, token


@app.get("/scans")
@tracer.capture_method
def list_scans() -> dict:
    owner = caller()
    limit, token = page()
    items, next_token = SCANS.list_for_owner(owner, limit, token)
    views = (public_view(i, CONFIG.upload_expires, CONFIG.max_receive_count) for i in items)
    scans = [{k: v for k, v in view.items() if k != "previews"} for view in views]
    return {"scans": scans, "next": next_token}


@cache
def _model_card() -> dict:
    return CATALOGUE.load_card()


@cache
def _charts() -> list[dict]:
    return CATALOGUE.load_charts()


@cache
def _risk_model() -> RiskModel:
    return RiskModel.load(CONFIG.clinical_model_dir)


@cache
def _contract() -> dict:
    return site_contract(CATALOGUE.load_manifest(verify=False), max_upload_bytes=CONFIG.max_upload_bytes,
                         upload_expires=CONFIG.upload_expires)


@app.exception_handler(ClinicalValidationError)
def _invalid_field(exc: ClinicalValidationError) -> Response:
    return Response(status_code=400, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({"error": {"code": "INVALID_FIELD", "field": exc.field, "message": exc.message}}))


@app.post("/risk")
@tracer.capture_method
def clinical_risk() -> dict:
    """Patient-level stroke risk from clinical fields: a separate reading, not fused with the scan."""
    caller()
    result = _risk_model().predict_payload(json_body())
    metrics.add_metric(name="RiskComputed", unit=MetricUnit.Count, value=1)
    return result


@app.get("/contract")
def get_contract() -> dict:
    """What the site needs to know of the server: accepted files, limits, windows, findings, risk form."""
    caller()
    return _contract()


@app.get("/model")
def get_model() -> dict:
    caller()
    return _model_card()


@app.get("/metrics")
def get_metrics() -> dict:
    caller()
    return {"model_version": _model_card().get("version"), "charts": _charts()}


studies.bind(studies.Deps(config=CONFIG, s3=S3, sqs=SQS, scans=SCANS, caller=caller, json_body=json_body,
                          check_rate=check_rate, request_error=RequestError, page=page,
                          preview_seconds=PREVIEW_URL_SECONDS))
app.include_router(studies.router)

# On every answer, errors included: results and short-lived links are never kept by a browser or
# proxy cache, and a JSON body is never sniffed as another type.
RESPONSE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    response = app.resolve(event, context)
    response["headers"] = {**RESPONSE_HEADERS, **(response.get("headers") or {})}
    return response
