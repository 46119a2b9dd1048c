"""The SQS event source mapping, locally: poll the scan queue, invoke the real inference handler
with the real SQS event shape, delete what succeeded, leave failures for SQS to redeliver.

Batch size and window come from the function's SQS event in ``template.yaml``; retries and
the dead-letter queue are SQS's own (moto applies the queue's redrive policy).
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Any, Callable

import boto3

from infra.lambda_context import FakeContext
from infra.template import REGION, Stack


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """An SQS -> Lambda event, as the event source mapping builds it."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    } for m in messages]}


class QueueWorker:
    def __init__(self, stack: Stack, queue_url: str, handler: Callable[[dict, Any], dict],
                 poll_interval: float = 0.2, function: str = "InferenceFunction", queue: str = "ScanQueue") -> None:
        (event,) = stack.function_events(function, "SQS")
        self.batch_size = int(event.get("BatchSize", 10))
        self.function = function
        self.queue_arn = stack.arn(queue)
        self.queue_url = queue_url
        self.handler = handler
        self.stack = stack
        self.poll_interval = poll_interval
        self.sqs = boto3.client("sqs", region_name=REGION)
        self._stop = threading.Event()
        self.invocations = 0
        self.failed_invocations = 0  # the handler raised (or was killed): the whole batch comes back
        self.failed_records = 0  # records the handler reported in batchItemFailures
        self.errors: deque[str] = deque(maxlen=100)  # why the latest failed invocations failed
        self.thread = threading.Thread(target=self._run, name=f"sqs-esm-{queue}", daemon=True)

    def start(self) -> "QueueWorker":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)

    def poll_once(self) -> int:
        """Receive one batch and invoke the handler; returns how many messages it carried."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        self.invocations += 1
        try:
            response = self.handler(sqs_event(messages, self.queue_arn), FakeContext.for_function(self.stack, self.function))
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - an error, or the runtime killed it (timeout, out of
            # memory: infra.faults.HardCrash): a failed invocation returns nothing, so the whole batch is redelivered
            self.failed_invocations += 1
            self.errors.append(f"{type(exc).__name__}: {exc}")
            failed = {m["MessageId"] for m in messages}
        else:
            self.failed_records += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once() == 0:
                    self._stop.wait(self.poll_interval)
            except Exception:  # keep polling, as the managed poller does
                self._stop.wait(1.0)
