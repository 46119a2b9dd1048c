"""Inference function: SQS batch of S3 ObjectCreated notifications -> scan readings in DynamoDB.

Per record: parse the message -> a scan's file goes to the single-scan pipeline
(:mod:`strokelens.inference.scan`: claim, bounded read, decode/preprocess/model, DONE or FAILED
with a code, the claim released for an SQS retry after an unexpected error), a study's file to
the study pipeline (:mod:`strokelens.inference.study`), a deadline message to the one it names;
anything else is dropped. Both pipelines are built once per container from this module's config,
clients, model, logger and metrics.
"""

from __future__ import annotations

import json
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
from strokelens.core.records import OWNER_RE, is_scan_id, parse_upload_key
from strokelens.core.studies import parse_study_key
from strokelens.inference.scan import ScanPipeline
from strokelens.inference.study import StudyPipeline
from strokelens.core.settings import Settings
from strokelens.reader.model.served import ServedModel


logger = Logger()
tracer = Tracer(patch_modules=["botocore"])  # only AWS SDK calls: patching every library X-Ray knows adds ~25 ms to a cold start
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


def _add_metric(name: str, unit: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)


SCAN_PIPELINE = ScanPipeline(CONFIG, S3, SCANS, MODEL, logger, _count_failure, _add_metric,
                             _requeue if CONFIG.scan_queue_url else None)


@tracer.capture_method
def process_object(key: str, size: int | None, receive_count: int, etag: str | None = None,
                   lambda_context: LambdaContext | None = None) -> str:
    """Process one uploaded object; returns what happened (for logs and tests): a scan's file goes
    to ``SCAN_PIPELINE``, a study's file to ``STUDIES``, any other key is ignored."""
    parsed = parse_upload_key(key)
    if parsed is None:
        study = parse_study_key(key)
        if study is not None:  # one file of a study: the study is read when its last file is here
            return STUDIES.arrived(*study, key, receive_count, context=lambda_context)
        logger.warning("Ignoring an object key that was not handed out by the API", extra={"key": key})
        return "ignored"
    return SCAN_PIPELINE.read(*parsed, key, size, receive_count, etag)


def scan_deadline(owner_id: str, scan_id: str, now: float | None = None) -> str:
    """A scan deadline message: see :meth:`ScanPipeline.deadline`."""
    return SCAN_PIPELINE.deadline(owner_id, scan_id, now)


def _deadline_ids(deadline: dict, id_field: str) -> tuple[str, str]:
    """(owner id, scan or study id) of a deadline message; ValueError for one the API never sent."""
    owner_id, scan_id = str(deadline["owner_id"]), str(deadline[id_field])
    if not (OWNER_RE.fullmatch(owner_id) and is_scan_id(scan_id)):
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
