"""The local stack without HTTP, for fault injection: moto, both queue workers, short visibility
timeouts and claim leases so retries happen in seconds; plus the messages a hostile or broken
producer could put on the scan queue. Driven by ``tests/integration/test_faults.py`` and
``python -m infra.chaos``; the faults themselves are in ``infra/faults.py``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from infra.faults import Faults

def notification_body(bucket: str, key: str, size: int, etag: str | None = None) -> str:
    """An S3 ObjectCreated notification as S3 sends it to SQS (for duplicate deliveries)."""
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size}
    if etag:
        obj["eTag"] = etag
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj},
    }]})


def malformed_bodies(scan_key: str | None = None) -> dict[str, str]:
    """Queue messages that are no S3 notification we can use; each must be consumed, never retried.

    With ``scan_key`` (a real scan's upload key) also notifications for that key whose fields
    are garbage: they must not touch the scan (no claim, no attempt spent).
    """
    depth = 100_000  # json.loads gives up (RecursionError) long before; SQS takes up to 256 KiB
    bodies = {
        "not_json": "this is not JSON {",
        "binaryish": "\u0001\u0002PNG\u0003 definitely not a notification",
        "json_list": "[1, 2, 3]",
        "json_string": '"Records"',
        "no_records": json.dumps({"Message": "hello", "Type": "Notification"}),
        "records_null": json.dumps({"Records": None}),
        "records_string": json.dumps({"Records": "uploads/x"}),
        "record_not_object": json.dumps({"Records": [1, "two", None]}),
        "record_garbage_keys": json.dumps({"Records": [{"foo": {"bar": 1}, "s4": {}}]}),
        "object_without_key": json.dumps({"Records": [{"s3": {"object": {"size": 10}}}]}),
        "key_not_a_string": json.dumps({"Records": [{"s3": {"object": {"key": 12345, "size": 10}}}]}),
        "foreign_key": json.dumps({"Records": [{"s3": {"object": {"key": "../../etc/passwd", "size": 10}}}]}),
        "unknown_scan": json.dumps({"Records": [{"s3": {"object": {
            "key": "uploads/0c9f7e1a-0000-4aaa-9bbb-000000000000/0123456789ab0123456789ab", "size": 10}}}]}),
        "huge_nested": "[" * depth + "]" * depth,
        "huge_nested_object": '{"Records": ' + '{"a": ' * 20_000 + "1" + "}" * 20_000 + "}",
    }
    if scan_key:
        bodies["scan_size_not_a_number"] = json.dumps({"Records": [{"s3": {"object": {"key": scan_key, "size": "big"}}}]})
        bodies["scan_size_object"] = json.dumps({"Records": [{"s3": {"object": {"key": scan_key, "size": {"n": 1}}}}]})
        bodies["scan_etag_not_a_string"] = json.dumps({"Records": [{"s3": {"object": {
            "key": scan_key, "size": 10, "eTag": ["x"]}}}]})
    return bodies


# ----------------------------------------------------------------------------- the stack


@dataclass
class FaultyStack:
    """moto + the template's queues, table and buckets + both handlers on their queue workers,
    with retries in seconds: queue visibility timeout ``visibility_timeout`` and claim lease
    ``lease_seconds`` (a crashed attempt's lease must run out before SQS redelivers, as in the
    template: lease 60 s, visibility 180 s; the lease check has whole-second resolution, hence
    visibility >= lease + 2).
    """

    visibility_timeout: int = 3
    lease_seconds: int = 1
    seed: int = 0
    poll_interval: float = 0.05
    parameters: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False  # handlers log errors only and publish no metrics (long chaos runs)
    owner_id: str = "0c9f7e1a-1111-4aaa-9bbb-00000000c4a0"

    def __enter__(self) -> "FaultyStack":
        import boto3
        from moto import mock_aws

        from infra.lambda_context import load_handler
        from infra.local_stack import provision
        from infra.template import REGION, Stack
        from infra.worker import QueueWorker
        from strokelens.aws.scans_table import ScansTable

        if self.visibility_timeout < self.lease_seconds + 2:
            raise ValueError("visibility_timeout must be at least lease_seconds + 2")
        self._saved_env = dict(os.environ)
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
            os.environ[key] = value
        self._mock = mock_aws()
        self._mock.start()
        try:
            self.resources = provision(Stack.load(**self.parameters), with_cognito=False)
            os.environ.update(self.resources.environment())
            os.environ["CLAIM_LEASE_SECONDS"] = str(self.lease_seconds)
            if self.quiet:
                os.environ.update({"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"})
            stack = self.resources.stack
            self.inference, inference_handler = load_handler(stack, "InferenceFunction")
            self.dead_letter, dead_letter_handler = load_handler(stack, "DeadLetterFunction")
            self.sqs = boto3.client("sqs", region_name=REGION)
            self.s3 = boto3.client("s3", region_name=REGION)
            self.uploaded: dict[str, tuple[int, str]] = {}
            self.table = boto3.resource("dynamodb", region_name=REGION).Table(self.resources.table)
            self.scans = ScansTable(self.table)
            for url in (self.resources.queue_url, self.resources.dlq_url):
                self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(self.visibility_timeout)})
                self.sqs.purge_queue(QueueUrl=url)  # S3's test event: counts start from nothing
            self.faults = Faults(self.seed).install(inference=self.inference, dead_letter=self.dead_letter)
            self.worker = QueueWorker(stack, self.resources.queue_url, inference_handler,
                                      poll_interval=self.poll_interval).start()
            self.dead_letter_worker = QueueWorker(stack, self.resources.dlq_url, dead_letter_handler,
                                                  poll_interval=self.poll_interval, function="DeadLetterFunction",
                                                  queue="ScanDeadLetterQueue").start()
        except BaseException:
            self._mock.stop()
            self._restore_env()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in (getattr(self, "worker", None), getattr(self, "dead_letter_worker", None)):
            if worker is not None:
                worker.stop()
        if getattr(self, "faults", None) is not None:
            self.faults.uninstall()
        self._mock.stop()
        self._restore_env()

    def _restore_env(self) -> None:
        os.environ.clear()
        os.environ.update(self._saved_env)

    # -- scans -----------------------------------------------------------------------------------
    def new_scan(self, data: bytes | None, *, content_type: str = "image/png", modality: str | None = "CT") -> str:
        """A PENDING record (as the API writes it) and, unless ``data`` is None, its upload
        (S3 then notifies the scan queue)."""
        from strokelens.core.records import new_pending, new_scan_id

        scan_id = new_scan_id()
        self.scans.put_pending(new_pending(self.owner_id, scan_id, content_type=content_type, modality=modality,
                                           retention_days=1))
        if data is not None:
            self.upload(scan_id, data, content_type)
        return scan_id

    def upload(self, scan_id: str, data: bytes, content_type: str = "image/png") -> None:
        """Put the scan's file where the presigned POST would; S3 notifies the scan queue."""
        put = self.s3.put_object(Bucket=self.resources.uploads_bucket, Key=self.key(scan_id), Body=data,
                                 ContentType=content_type)
        # Kept for duplicate notifications: the inference function deletes an upload once its scan is final.
        self.uploaded[scan_id] = (len(data), put["ETag"].strip('"'))

    def key(self, scan_id: str) -> str:
        from strokelens.core.records import upload_key

        return upload_key(self.owner_id, scan_id)

    def notify(self, scan_id: str, copies: int = 1) -> None:
        """Send the scan's S3 notification again (at-least-once delivery: duplicates)."""
        size, etag = self.uploaded[scan_id]
        body = notification_body(self.resources.uploads_bucket, self.key(scan_id), size, etag)
        for _ in range(copies):
            self.sqs.send_message(QueueUrl=self.resources.queue_url, MessageBody=body)

    def send_raw(self, bodies: Iterable[str]) -> int:
        n = 0
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.resources.queue_url, MessageBody=body)
            n += 1
        return n

    def record(self, scan_id: str) -> dict[str, Any] | None:
        return self.scans.get(self.owner_id, scan_id)

    def records(self) -> dict[str, dict[str, Any]]:
        items, kwargs = [], {"ConsistentRead": True}
        while True:
            page = self.table.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        from strokelens.core.records import to_plain

        return {item["scan_id"]: to_plain(item) for item in items}

    # -- queues ----------------------------------------------------------------------------------
    def depth(self, url: str) -> tuple[int, int]:
        """(ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible) of a queue."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drained(self) -> bool:
        return all(self.depth(url) == (0, 0) for url in (self.resources.queue_url, self.resources.dlq_url))

    def wait_drained(self, timeout: float, settle: float = 0.3) -> bool:
        """Wait until both queues are empty (nothing visible, nothing in flight) twice in a row."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.drained():
                time.sleep(settle)
                if self.drained():
                    return True
            time.sleep(0.1)
        return False

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()
