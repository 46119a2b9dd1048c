"""Dead-letter consumer: whatever SQS gave up on ends as FAILED, so no scan stays PENDING/PROCESSING.

A message reaches the dead-letter queue after ``MAX_RECEIVE_COUNT`` deliveries that never
finished: the reader was killed (timeout, out of memory) or a dependency kept failing. Per
notification: parse the key -> mark the scan FAILED with a code saying what happened (unless it
is already DONE/FAILED, or a live attempt holds it) -> delete its raw uploads (they may carry
identifiers; a failed delete is left to the bucket's lifecycle rule) -> the message is consumed.
No image is read here, so this function ships without the ML stack.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from strokelens.aws.scans_table import ScansTable
from strokelens.aws.uploads import delete_uploads
from strokelens.core.errors import MESSAGES
from strokelens.core.records import parse_upload_key
from strokelens.core.studies import parse_study_key, study_upload_key
from strokelens.core.settings import Settings

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # only AWS SDK calls: patching every library X-Ray knows adds ~25 ms to a cold start
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

CONFIG = Settings.from_env()
SCANS = ScansTable(boto3.resource("dynamodb").Table(CONFIG.scans_table))
S3 = boto3.client("s3")


def dead_letter_code(record: dict | None) -> str:
    """READ_ABORTED when reading was attempted (and died), NOT_PROCESSED when it never started."""
    return "READ_ABORTED" if record and int(record.get("attempts", 0)) > 0 else "NOT_PROCESSED"


def end_scan(key: str) -> str:
    """Mark the scan (or study) behind one dead-lettered upload key FAILED; returns what happened."""
    parsed = parse_upload_key(key)
    study = parse_study_key(key)
    if parsed is None and study is None:
        return "ignored"
    owner_id, scan_id = parsed if parsed is not None else (study[0], study[1])  # type: ignore[index]
    return end_record(owner_id, scan_id, key)


def upload_keys(owner_id: str, scan_id: str, key: str, record: dict) -> list[str]:
    """The raw uploads behind a record: a study's arrived files and the dead-lettered one (its own
    arrival may be what never got recorded), or the scan's own upload."""
    if "files_expected" in record:
        arrived = [study_upload_key(owner_id, scan_id, int(i)) for i in record.get("arrived") or ()]
        return sorted(set(arrived) | ({key} if parse_study_key(key) else set()))
    return [key]


def _delete(keys: list[str], scan_id: str) -> None:
    """Best effort: the scan is final either way and the lifecycle rule deletes leftovers."""
    failed = delete_uploads(S3, CONFIG.uploads_bucket, keys)
    if failed:
        logger.warning("Raw uploads not deleted", extra={"scan_id": scan_id, "codes": failed})


def end_record(owner_id: str, scan_id: str, key: str) -> str:
    record = SCANS.get(owner_id, scan_id)
    if record is None:
        return "unknown"
    code = dead_letter_code(record)
    if SCANS.fail_unfinished(owner_id, scan_id, code, MESSAGES[code]):
        logger.warning("Dead-lettered scan marked FAILED", extra={"scan_id": scan_id, "code": code})
        metrics.add_metric(name="ScanDeadLettered", unit=MetricUnit.Count, value=1)
        _delete(upload_keys(owner_id, scan_id, key, record), scan_id)
        return f"failed:{code}"
    if record.get("status") == "FAILED":  # ended earlier (maybe by this consumer, before a crash): no file is needed
        _delete(upload_keys(owner_id, scan_id, key, record), scan_id)
    return "already-final"


def record_handler(record: SQSRecord) -> None:
    try:
        body = json.loads(record.body)
        keys = [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]
        deadline = body.get("study_deadline")
        if isinstance(deadline, dict):  # a study's deadline message that could not be handled
            keys.append(study_upload_key(str(deadline["owner_id"]), str(deadline["study_id"]), 0))
        if isinstance(body.get("scan_deadline"), dict):
            # A single scan's deadline that could not be handled: its file may have come (this consumer
            # cannot look), so the scan is left to its own messages; the API shows it FAILED if not.
            logger.warning("Dead-lettered scan deadline consumed", extra={"message_id": record.message_id})
            return
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        logger.warning("Malformed dead-letter message consumed", extra={"message_id": record.message_id})
        metrics.add_metric(name="MalformedMessage", unit=MetricUnit.Count, value=1)
        return
    for key in keys:
        end_scan(key)  # a DynamoDB error raises: the record stays in the DLQ for the next try


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
