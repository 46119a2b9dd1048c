"""Inference function: SQS batch of S3 ObjectCreated notifications -> scan readings in DynamoDB.

Per record: parse the key -> claim the scan (conditional write; duplicates stop here) ->
read the object (bounded) -> decode/preprocess/model -> DONE, or FAILED with a code for bad
input. An unexpected error releases the claim and fails only that record, so SQS retries it;
on the last allowed attempt the scan is marked FAILED and the message goes on to the DLQ.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from strokelens.aws.scans_table import ScansTable
from strokelens.aws.uploads import delete_upload, read_upload, upload_exists, write_preview
from strokelens.core.errors import MESSAGES, ScanError
from strokelens.core.records import (OWNER_RE, UPLOAD_GRACE_SECONDS, epoch_of, is_scan_id, parse_upload_key,
                                     scan_deadline_message, upload_key)
from strokelens.core.studies import parse_study_key
from strokelens.inference.study import StudyPipeline
from strokelens.core.settings import Settings
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import read_scan


logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

# Once per container: config, clients, model.
CONFIG = Settings.from_env()
S3 = boto3.client("s3")
SCANS = ScansTable(boto3.resource("dynamodb").Table(CONFIG.scans_table))
_t0 = time.perf_counter()
MODEL = ServedModel(CONFIG.model_dir)
MODEL_LOAD_MS = (time.perf_counter() - _t0) * 1e3
_cold = True
SQS = boto3.client("sqs")  # a study's deadline, sent again while its files are still arriving


def _requeue(body: str, delay: int) -> None:
    SQS.send_message(QueueUrl=CONFIG.scan_queue_url, MessageBody=body, DelaySeconds=delay)


STUDIES = StudyPipeline(CONFIG, S3, SCANS, MODEL, logger, lambda code: _count_failure(code),
                        _requeue if CONFIG.scan_queue_url else None)


def _count_failure(code: str) -> None:
    with single_metric(name="ScanFailed", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="code", value=code)


def _give_up_or_release(owner_id: str, scan_id: str, key: str, token: str, receive_count: int) -> None:
    """After an unexpected error: on the last delivery record a failure a clinician can read,
    otherwise hand the claim back so the SQS retry can take it."""
    if receive_count >= CONFIG.max_receive_count:
        _count_failure("INTERNAL_ERROR")
        if SCANS.fail(owner_id, scan_id, token, "INTERNAL_ERROR", MESSAGES["INTERNAL_ERROR"]):
            delete_upload(S3, CONFIG.uploads_bucket, key)
    else:
        SCANS.release(owner_id, scan_id, token)


def _not_claimed(owner_id: str, scan_id: str, key: str, record_etag: str | None) -> str:
    """Why a scan could not be claimed: out of attempts (ended here as READ_ABORTED: earlier
    attempts died without a word, e.g. a timeout or out-of-memory kill), or a duplicate event."""
    if SCANS.fail_unfinished(owner_id, scan_id, "READ_ABORTED", MESSAGES["READ_ABORTED"],
                             min_attempts=CONFIG.max_receive_count):
        logger.warning("Scan out of attempts: marked FAILED", extra={"scan_id": scan_id})
        _count_failure("READ_ABORTED")
        delete_upload(S3, CONFIG.uploads_bucket, key)
        return "failed:READ_ABORTED"
    logger.info("Scan already finished or in progress; duplicate event skipped", extra={"scan_id": scan_id})
    metrics.add_metric(name="DuplicateEvent", unit=MetricUnit.Count, value=1)
    record = SCANS.get(owner_id, scan_id) or {}
    if record.get("status") in ("DONE", "FAILED"):
        # A final scan's file is never read again: an upload arriving now (a re-used upload form,
        # or a late duplicate) is deleted unread, and the result stays with the file that was read.
        if record_etag and record.get("upload_etag") and record["upload_etag"] != record_etag.strip('"'):
            logger.warning("Upload replaced after its scan was read; deleted unread", extra={"scan_id": scan_id})
            metrics.add_metric(name="UploadReplaced", unit=MetricUnit.Count, value=1)
        delete_upload(S3, CONFIG.uploads_bucket, key)
    return "duplicate"


@tracer.capture_method
def process_object(key: str, size: int | None, receive_count: int, etag: str | None = None,
                   lambda_context: LambdaContext | None = None) -> str:
    """Process one uploaded object; returns what happened (for logs and tests)."""
    parsed = parse_upload_key(key)
    if parsed is None:
        study = parse_study_key(key)
        if study is not None:  # one file of a study: the study is read when its last file is here
            return STUDIES.arrived(*study, key, receive_count, context=lambda_context)
        logger.warning("Ignoring an object key that was not handed out by the API", extra={"key": key})
        return "ignored"
    owner_id, scan_id = parsed
    token = secrets.token_hex(8)
    record = SCANS.claim(owner_id, scan_id, token, CONFIG.lease_seconds, max_attempts=CONFIG.max_receive_count)
    if record is None:
        return _not_claimed(owner_id, scan_id, key, etag)
    logger.append_keys(scan_id=scan_id)
    try:
        if size == 0:
            raise ScanError("EMPTY_FILE")
        if size is not None and size > CONFIG.max_upload_bytes:
            raise ScanError("TOO_LARGE", f"{size} bytes")
        t0 = time.perf_counter()
        data, read_etag = read_upload(S3, CONFIG.uploads_bucket, key, CONFIG.max_upload_bytes, etag)
        read_ms = (time.perf_counter() - t0) * 1e3
        reading = read_scan(data, MODEL, record.get("modality_declared"), with_previews=True)
        t0 = time.perf_counter()
        previews = {name: write_preview(S3, CONFIG.artifacts_bucket, owner_id, scan_id, name, png)
                    for name, png in reading.previews.items()}
        timings = {"read": round(read_ms, 3), **reading.timings_ms,
                   "write_previews": round((time.perf_counter() - t0) * 1e3, 3)}
        stored = SCANS.complete(owner_id, scan_id, token, reading.result, timings, reading.warnings, previews, read_etag)
    except ScanError as err:  # bad input is final: the same bytes would fail the same way
        logger.info("Scan refused", extra={"code": err.code, "detail": err.detail})
        _count_failure(err.code)
        if SCANS.fail(owner_id, scan_id, token, err.code, err.message):
            delete_upload(S3, CONFIG.uploads_bucket, key)
        return f"failed:{err.code}"
    except Exception:
        _give_up_or_release(owner_id, scan_id, key, token, receive_count)
        raise  # the batch processor reports this record as failed; SQS retries, then the DLQ consumer ends it
    if stored:  # only once the result is stored: a retry still has the file
        delete_upload(S3, CONFIG.uploads_bucket, key)
    metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=timings.get("cnn", 0.0))
    metrics.add_metric(name="ScanDone", unit=MetricUnit.Count, value=1)
    logger.info("Scan read", extra={"label": reading.result.label, "timings_ms": timings})
    return "done"


def scan_deadline(owner_id: str, scan_id: str, now: float | None = None) -> str:
    """A scan whose file never came ends FAILED/UPLOAD_NOT_RECEIVED in the table, as the API already
    shows it. Order: the record (consistent) must be PENDING and never claimed, else its own messages
    finish it -> before the upload link's life + grace is over (SQS delays 900 s at most) the deadline
    is sent again for the rest -> a file in the bucket whose notification is still queued (a
    backed-up queue, an outage) is left to that notification: read, never called missing -> FAILED."""
    record = SCANS.get(owner_id, scan_id, consistent=True)
    if record is None or record.get("status") != "PENDING" or int(record.get("attempts") or 0):
        return "not-waiting"
    left = epoch_of(record["created_at"]) + CONFIG.upload_expires + UPLOAD_GRACE_SECONDS - (time.time() if now is None else now)
    if left > 0 and CONFIG.scan_queue_url:
        _requeue(scan_deadline_message(owner_id, scan_id), min(900, int(left) + 1))
        return "deferred"
    if upload_exists(S3, CONFIG.uploads_bucket, upload_key(owner_id, scan_id)):
        return "arrived"
    if SCANS.fail_unclaimed(owner_id, scan_id, "UPLOAD_NOT_RECEIVED", MESSAGES["UPLOAD_NOT_RECEIVED"]):
        logger.info("Upload never arrived: scan marked FAILED", extra={"scan_id": scan_id})
        _count_failure("UPLOAD_NOT_RECEIVED")
        return "failed:UPLOAD_NOT_RECEIVED"
    return "not-waiting"


def _deadline_ids(deadline: dict, id_field: str) -> tuple[str, str]:
    """(owner id, scan or study id) of a deadline message; ValueError for one the API never sent."""
    owner_id, scan_id = str(deadline["owner_id"]), str(deadline[id_field])
    if not (OWNER_RE.match(owner_id) and is_scan_id(scan_id)):
        raise ValueError("not a deadline we sent")
    return owner_id, scan_id


class NotStarted(Exception):
    """Too little of the invocation is left to read another file: SQS redelivers the record."""


def _notified_object(obj: dict) -> tuple[str, int | None, str | None]:
    """(key, size, eTag) of one notification's object; TypeError for fields S3 never sends, so a
    garbled message is dropped before it can claim (and spend an attempt of) a real scan."""
    key, size, etag = obj["key"], obj.get("size"), obj.get("eTag")
    if not isinstance(key, str) or not (size is None or type(size) is int) or not (etag is None or isinstance(etag, str)):
        raise TypeError("not an S3 notification's object fields")
    return unquote_plus(key), size, etag


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    try:
        body = json.loads(record.body)
        if isinstance(body.get("study_deadline"), dict):  # delayed by the API: read what came
            deadline = body["study_deadline"]
            owner_id, study_id = _deadline_ids(deadline, "study_id")
        elif isinstance(body.get("scan_deadline"), dict):  # delayed by the API past the upload link's life
            scan_deadline(*_deadline_ids(body["scan_deadline"], "scan_id"))
            return
        else:
            deadline = None
        objects = [r["s3"]["object"] for r in body.get("Records", [])] if body.get("Event") != "s3:TestEvent" else []
        keys = [_notified_object(o) for o in objects]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        # Never a scan notification, and never will be: retrying would only feed the DLQ.
        logger.warning("Dropping a malformed queue message", extra={"message_id": record.message_id})
        metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
        return
    receive_count = int(record.attributes.approximate_receive_count or 1)
    if deadline is not None:
        STUDIES.deadline(owner_id, study_id, receive_count, context=lambda_context)
        return
    for key, size, etag in keys:  # S3 URL-encodes keys in notifications (spaces as '+')
        if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < CONFIG.record_budget_ms:
            raise NotStarted(f"{lambda_context.get_remaining_time_in_millis()} ms left")
        process_object(key, size, receive_count, etag, lambda_context)


@logger.inject_lambda_context(clear_state=True)  # no scan id leaks into the next invocation's logs
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    global _cold
    if _cold:
        metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=MODEL_LOAD_MS)
        _cold = False
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
