"""Fault injection for the local stack: kill the reader, throttle or break AWS calls, feed the
queue garbage, and check that every scan still ends DONE or FAILED.

What can be injected, all on the handler modules loaded by :func:`infra.lambda_context.load_handler`
(each keeps its clients and model, as a Lambda container does):

- **Hard crashes** of the inference function (:class:`Crash`): :class:`HardCrash`, a
  ``BaseException``, raised from inside the invocation as a Lambda timeout or out-of-memory kill
  would end it: no ``except Exception`` in the handler (nor Powertools' batch processor) sees it,
  so no claim is released and no batch response is returned. :class:`infra.worker.QueueWorker`
  treats it as a failed invocation: the whole batch is redelivered after the visibility timeout.
  Chosen by scan id, delivery number (``ApproximateReceiveCount``) and/or probability, at a
  phase of the record: ``before_claim``, ``read`` (claimed, reading the file) or
  ``after_write`` (result or failure recorded, message not yet deleted). ``error=TransientError`` makes it
  an ordinary exception instead (the handler releases the claim, SQS retries).
- **AWS faults** (:class:`AwsFault`) on the modules' own boto3 clients, answered at botocore's
  ``before-send`` event, so botocore's own retry logic sees a real HTTP answer: ``throttle``
  (DynamoDB 400 ``ProvisionedThroughputExceededException``, S3 503 ``SlowDown``: botocore
  retries), ``error`` (DynamoDB 400 ``AccessDeniedException``, S3 403 ``AccessDenied``: not
  retried) or ``lost`` (moto applies the request, then the response is lost as a read timeout:
  botocore retries a request that already took effect, as a reset connection makes it in AWS).
  moto answers at ``before-send`` too, and botocore *emits* the event to every handler before
  taking the first non-None answer, so a hook merely registered first would still let moto
  apply a "throttled" write. On each hooked client the harness therefore takes moto's place:
  one handler, registered first, that answers with the fault or hands the request to moto.
- **Malformed messages** straight into the scan queue and **duplicate notifications**
  (``infra/fault_stack.py``: :func:`malformed_bodies`, :func:`notification_body`).

:class:`infra.fault_stack.FaultyStack` is the local stack without HTTP (moto, both queue workers, short visibility
timeouts and claim leases so retries happen in seconds) that ``tests/integration/test_faults.py``
and ``python -m infra.chaos`` drive. ``make run`` takes faults from ``STROKELENS_FAULTS``
(see :func:`parse_spec`), e.g. ``STROKELENS_FAULTS="seed=1,crash=0.2@1,throttle=0.1" make run``.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from io import BytesIO
from types import ModuleType
from typing import Any, Callable, Iterable

PHASES = ("before_claim", "read", "after_write")
KINDS = ("throttle", "error", "lost")
SERVICES = ("dynamodb", "s3")


class HardCrash(BaseException):
    """The invocation died without a word: a Lambda timeout or out-of-memory kill.

    A ``BaseException`` so that no ``except Exception`` on the way out (the handler's own, or
    Powertools' batch processor's) turns it into a tidy per-record failure.
    """


class TransientError(Exception):
    """An ordinary unexpected error: the handler releases its claim and SQS retries."""


@dataclass
class Crash:
    """Kill the inference invocation at ``phase`` when scan, delivery and chance all match."""

    scan_ids: frozenset[str] | None = None  # None: any scan
    deliveries: frozenset[int] | None = None  # ApproximateReceiveCount values; None: any
    probability: float = 1.0
    phase: str = "read"
    error: type[BaseException] = HardCrash
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; expected one of {PHASES}")
        if self.scan_ids is not None:
            self.scan_ids = frozenset(self.scan_ids)
        if self.deliveries is not None:
            self.deliveries = frozenset(self.deliveries)

    def matches(self, scan_id: str | None, delivery: int, phase: str) -> bool:
        return (self.enabled and phase == self.phase
                and (self.scan_ids is None or scan_id in self.scan_ids)
                and (self.deliveries is None or delivery in self.deliveries))


@dataclass
class AwsFault:
    """Answer matching AWS calls of the handler modules with a throttle, an error or a lost response."""

    service: str  # "dynamodb" | "s3"
    kind: str = "throttle"
    probability: float = 1.0
    operations: frozenset[str] | None = None  # botocore operation names, e.g. {"UpdateItem"}; None: all
    functions: frozenset[str] | None = None  # "inference" / "dead_letter"; None: both
    when: Callable[[str, bytes], bool] | None = None  # (operation, request body) -> applies
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"unknown service {self.service!r}; expected one of {SERVICES}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.operations is not None:
            self.operations = frozenset(self.operations)
        if self.functions is not None:
            self.functions = frozenset(self.functions)

    def matches(self, function: str, service: str, operation: str, body: bytes) -> bool:
        return (self.enabled and service == self.service
                and (self.functions is None or function in self.functions)
                and (self.operations is None or operation in self.operations)
                and (self.when is None or self.when(operation, body)))


# ----------------------------------------------------------------------------- synthetic responses


class _RawBody(BytesIO):
    """What botocore reads an HTTP body from (``AWSResponse.raw``)."""

    def stream(self, **_: Any) -> Iterable[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


_ERRORS = {  # (service, kind) -> (HTTP status, error code, message)
    ("dynamodb", "throttle"): (400, "ProvisionedThroughputExceededException",
                               "The level of configured provisioned throughput for the table was exceeded."),
    ("dynamodb", "error"): (400, "AccessDeniedException", "Injected fault: access denied."),
    ("s3", "throttle"): (503, "SlowDown", "Please reduce your request rate."),
    ("s3", "error"): (403, "AccessDenied", "Injected fault: access denied."),
}


def error_response(service: str, kind: str, url: str) -> Any:
    """The HTTP answer AWS gives for a throttle/error, as botocore's ``AWSResponse``."""
    from botocore.awsrequest import AWSResponse

    status, code, message = _ERRORS[(service, kind)]
    request_id = uuid.uuid4().hex
    if service == "dynamodb":
        headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id,
                   "Content-Type": "application/x-amz-json-1.0"}
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    else:
        headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>{request_id}</RequestId></Error>").encode()
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, headers, _RawBody(body))


def _moto_answer(event_name: str, request: Any) -> Any:
    """Let moto apply the request (its ``before-send`` handler), returning its response."""
    from moto.core.models import botocore_stubber

    return botocore_stubber(event_name, request)


# ----------------------------------------------------------------------------- the harness


class Faults:
    """Fault rules, installed on loaded handler modules; counts what it injected and what it saw."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.crashes: list[Crash] = []
        self.aws: list[AwsFault] = []
        self.injected: Counter[str] = Counter()  # "crash:read", "throttle:s3:GetObject", ...
        self.reads: Counter[str] = Counter()  # scan id -> read_scan calls (readings started)
        self.complete_calls: Counter[str] = Counter()  # scan id -> ScansTable.complete calls
        self.completions: Counter[str] = Counter()  # scan id -> complete calls that recorded a result
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._undo: list[Callable[[], None]] = []

    # -- rules ---------------------------------------------------------------------------------
    def crash(self, **kwargs: Any) -> Crash:
        rule = Crash(**kwargs)
        self.crashes.append(rule)
        return rule

    def aws_fault(self, service: str, kind: str = "throttle", **kwargs: Any) -> AwsFault:
        rule = AwsFault(service, kind, **kwargs)
        self.aws.append(rule)
        return rule

    def throttle(self, service: str, probability: float, **kwargs: Any) -> AwsFault:
        """Throttle a share of the calls; botocore retries them (``legacy`` retry mode: S3 5
        attempts, DynamoDB 10)."""
        return self.aws_fault(service, "throttle", probability=probability, **kwargs)

    def clear(self) -> None:
        self.crashes.clear()
        self.aws.clear()

    def read_twice(self) -> dict[str, int]:
        """Scans with more than one recorded reading (must be empty)."""
        return {scan_id: n for scan_id, n in self.completions.items() if n > 1}

    # -- installing ------------------------------------------------------------------------------
    def install(self, *, inference: ModuleType | None = None, dead_letter: ModuleType | None = None) -> "Faults":
        """Wrap the inference module's ``process_object``, its single-scan pipeline's reader
        (``SCAN_PIPELINE.read_scan``) and ``SCANS.complete``, and hook every boto3 client the modules
        hold (``S3``, ``SCANS.table``)."""
        if inference is not None:
            self._wrap_inference(inference)
        for function, module in (("inference", inference), ("dead_letter", dead_letter)):
            if module is None:
                continue
            for client in _clients(module):
                self._stand_in_for_moto(client, function)
        return self

    def _stand_in_for_moto(self, client: Any, function: str) -> None:
        from moto.core.models import botocore_stubber

        if getattr(client, "_strokelens_faults", None) is not None:  # two stand-ins would both call moto
            raise RuntimeError("faults are already installed on this client; uninstall them first")
        events, unique_id = client.meta.events, f"strokelens-faults-{id(self)}-{function}"
        events.unregister("before-send", botocore_stubber)
        events.register_first("before-send", self._before_send_for(function), unique_id=unique_id)
        client._strokelens_faults = self

        def undo() -> None:
            events.unregister("before-send", unique_id=unique_id)
            events.register("before-send", botocore_stubber)
            client._strokelens_faults = None

        self._undo.append(undo)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap_inference(self, module: ModuleType) -> None:
        from strokelens.core.records import parse_upload_key

        pipeline = module.SCAN_PIPELINE  # calls its reader through this attribute
        original_process, original_read = module.process_object, pipeline.read_scan
        scans = module.SCANS
        original_complete = scans.complete

        def process_object(key: str, size: int | None, receive_count: int, etag: str | None = None,
                           lambda_context: Any = None) -> str:
            parsed = parse_upload_key(key) if isinstance(key, str) else None
            scan_id = parsed[1] if parsed else None
            self._local.attempt = (scan_id, receive_count)
            try:
                self._maybe_crash("before_claim", scan_id, receive_count)
                outcome = original_process(key, size, receive_count, etag, lambda_context)
                if outcome not in ("duplicate", "ignored"):  # a result or failure was written
                    self._maybe_crash("after_write", scan_id, receive_count)
                return outcome
            finally:
                self._local.attempt = None

        def read_scan(*args: Any, **kwargs: Any) -> Any:
            scan_id, delivery = getattr(self._local, "attempt", None) or (None, 0)
            if scan_id:
                with self._lock:
                    self.reads[scan_id] += 1
            self._maybe_crash("read", scan_id, delivery)
            return original_read(*args, **kwargs)

        def complete(owner_id: str, scan_id: str, *args: Any, **kwargs: Any) -> bool:
            with self._lock:
                self.complete_calls[scan_id] += 1
            recorded = original_complete(owner_id, scan_id, *args, **kwargs)
            if recorded:
                with self._lock:
                    self.completions[scan_id] += 1
            return recorded

        module.process_object, pipeline.read_scan, scans.complete = process_object, read_scan, complete

        def undo() -> None:
            module.process_object, pipeline.read_scan = original_process, original_read
            del scans.complete  # the instance attribute; the class's method shows again

        self._undo.append(undo)

    # -- deciding --------------------------------------------------------------------------------
    def _maybe_crash(self, phase: str, scan_id: str | None, delivery: int) -> None:
        for index, rule in enumerate(self.crashes):
            if not rule.matches(scan_id, delivery, phase):
                continue
            # The same scan and delivery always get the same answer, whatever order they run in.
            if rule.probability < 1 and random.Random(f"{self.seed}/{index}/{scan_id}/{delivery}").random() >= rule.probability:
                continue
            with self._lock:
                self.injected[f"crash:{phase}"] += 1
            raise rule.error(f"injected {rule.error.__name__} at {phase} of scan {scan_id}, delivery {delivery}")

    def _chance(self, probability: float) -> bool:
        if probability >= 1:
            return True
        with self._lock:
            return self._rng.random() < probability

    def _before_send_for(self, function: str) -> Callable[..., Any]:
        def before_send(request: Any, event_name: str, **_: Any) -> Any:
            _, service, operation = (event_name.split(".", 2) + ["", ""])[:3]
            body = request.body if isinstance(request.body, bytes) else (
                request.body.encode() if isinstance(request.body, str) else b"")
            for rule in self.aws:
                if rule.matches(function, service, operation, body) and self._chance(rule.probability):
                    with self._lock:
                        self.injected[f"{rule.kind}:{service}:{operation}"] += 1
                    if rule.kind == "lost":
                        from botocore.exceptions import ReadTimeoutError

                        _moto_answer(event_name, request)  # it happened...
                        raise ReadTimeoutError(endpoint_url=request.url)  # ...but nobody heard back
                    return error_response(service, rule.kind, request.url)  # moto never sees it
            return _moto_answer(event_name, request)

        return before_send

    def summary(self) -> str:
        crashes = sum(n for k, n in self.injected.items() if k.startswith("crash:"))
        by = Counter()
        for key, n in self.injected.items():
            kind, *rest = key.split(":")
            if kind != "crash":
                by[f"{kind} {rest[0]}"] += n
        return f"{crashes} crashes" + "".join(f", {n} {k}" for k, n in sorted(by.items()))


def _clients(module: ModuleType) -> list[Any]:
    """The boto3 clients a handler module holds: ``S3`` and the one behind ``SCANS.table``."""
    clients = []
    for name in ("S3", "SCANS"):
        value = getattr(module, name, None)
        if value is None:
            continue
        client = value.table.meta.client if hasattr(value, "table") else value
        if hasattr(client, "meta") and hasattr(client.meta, "events"):
            clients.append(client)
    return clients


# ----------------------------------------------------------------------------- STROKELENS_FAULTS


def parse_spec(spec: str) -> Faults:
    """Faults from a ``STROKELENS_FAULTS`` value: comma-separated ``key=value`` items.

    - ``seed=N``: the random generator's seed (default 0);
    - ``crash=P`` or ``crash=P@D|D``: hard-crash the inference function while reading with
      probability P, on every delivery or only on deliveries D (``1``, ``1|2``...);
    - ``throttle=P``, ``throttle_dynamodb=P``, ``throttle_s3=P``: throttle that share of AWS calls;
    - ``lost_dynamodb=P``: DynamoDB requests applied but their responses lost (botocore retries).
    """
    items = dict(part.strip().split("=", 1) for part in spec.split(",") if part.strip())
    faults = Faults(seed=int(items.pop("seed", 0)))
    for key, value in items.items():
        if key == "crash":
            probability, _, deliveries = value.partition("@")
            faults.crash(probability=float(probability),
                         deliveries=frozenset(int(d) for d in deliveries.split("|")) if deliveries else None)
        elif key == "throttle":
            for service in SERVICES:
                faults.throttle(service, float(value))
        elif key in ("throttle_dynamodb", "throttle_s3"):
            faults.throttle(key.split("_", 1)[1], float(value))
        elif key == "lost_dynamodb":
            faults.aws_fault("dynamodb", "lost", probability=float(value))
        else:
            raise ValueError(f"unknown STROKELENS_FAULTS item {key!r}")
    return faults


def install_from_env(*, inference: ModuleType | None = None, dead_letter: ModuleType | None = None,
                     env: dict[str, str] | None = None) -> Faults | None:
    """Install the faults ``STROKELENS_FAULTS`` asks for (``make run``); None when it is unset."""
    spec = (os.environ if env is None else env).get("STROKELENS_FAULTS", "").strip()
    if not spec:
        return None
    return parse_spec(spec).install(inference=inference, dead_letter=dead_letter)


# ----------------------------------------------------------------------------- messages
