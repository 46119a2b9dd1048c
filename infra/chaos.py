"""``make chaos``: hundreds of scans through the local stack while faults hit it at random.

    python -m infra.chaos --scans 300 --seed 1

Scans are small synthetic CT phantoms (128 px PNG and DICOM), a few bad files (each with the
error code it must end in) and a few *poison* uploads whose reading always dies hard. Meanwhile
(:mod:`infra.faults`): good scans' invocations are killed on their first delivery with some
probability (before the claim, while reading, or after the result was written), DynamoDB and S3
calls are throttled (botocore retries), some DynamoDB responses are lost after the write took
effect, malformed messages are dropped into the scan queue, and notifications are delivered
again (at once, and after the run settled). Crashes never hit a good scan's later deliveries,
so "every good scan DONE" stays possible by design; poison scans crash on every delivery.

The run waits (bounded) until both queues are drained, then reads the table and prints one
line, e.g. ``300 scans: 291 DONE, 9 FAILED (READ_ABORTED 5, CORRUPT_FILE 4), 0 stuck, 0 lost,
0 read twice``. It exits non-zero if a scan is stuck (not DONE/FAILED), lost (a good scan not
DONE, or a record missing), read twice (more than one recorded reading), or a bad file did not
end with its code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from infra.fault_stack import FaultyStack, malformed_bodies
from infra.faults import PHASES
from phantoms import ct_to_display, make_ct_slice, write_dicom

LESIONS = ("normal", "hemorrhage", "ischemic")


def phantom_png(seed: int, size: int = 128) -> bytes:
    """A synthetic head CT slice as an 8-bit brain-windowed PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    phantom = make_ct_slice(rng, size, LESIONS[seed % 3])
    buf = io.BytesIO()
    Image.fromarray(ct_to_display(phantom.hu)).save(buf, format="PNG")
    return buf.getvalue()


def phantom_dicom(seed: int, size: int = 128) -> bytes:
    """A synthetic head CT slice as a Part-10 DICOM file (HU through the rescale)."""
    rng = np.random.default_rng(seed)
    phantom = make_ct_slice(rng, size, LESIONS[seed % 3])
    with tempfile.TemporaryDirectory() as folder:
        return write_dicom(phantom, Path(folder) / "slice.dcm").read_bytes()


def bad_files(seed: int = 0) -> list[tuple[str, bytes, str]]:
    """(content type, bytes, the code the scan must end with)."""
    png = phantom_png(seed)
    return [
        ("image/png", png[: len(png) // 2], "CORRUPT_FILE"),
        ("image/png", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "UNSUPPORTED_FORMAT"),
        ("image/png", b"", "EMPTY_FILE"),
    ]


@dataclass
class Planned:
    kind: str  # "png" | "dicom" | "bad" | "poison"
    content_type: str
    data: bytes
    expect: str  # "DONE", an error code, or "FAILED" (poison: any failure code)


@dataclass
class Report:
    scans: int
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    stuck: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    read_twice: dict[str, int] = field(default_factory=dict)
    wrong: dict[str, str] = field(default_factory=dict)  # bad file/poison scan id -> what it ended as
    drained: bool = True
    seconds: float = 0.0
    faults: str = ""
    messages: str = ""

    @property
    def ok(self) -> bool:
        return not (self.stuck or self.lost or self.read_twice or self.wrong) and self.drained

    def line(self) -> str:
        failed = self.statuses.get("FAILED", 0)
        codes = ", ".join(f"{code} {n}" for code, n in sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0])))
        return (f"{self.scans} scans: {self.statuses.get('DONE', 0)} DONE, {failed} FAILED"
                + (f" ({codes})" if codes else "")
                + f", {len(self.stuck)} stuck, {len(self.lost)} lost, {len(self.read_twice)} read twice")


def plan(n: int, rng: random.Random, *, poison_share: float, bad_share: float, dicom_share: float,
         size: int) -> list[Planned]:
    scans, bad = [], bad_files()
    for i in range(n):
        r = rng.random()
        if r < poison_share:
            scans.append(Planned("poison", "image/png", phantom_png(10_000 + i, size), "FAILED"))
        elif r < poison_share + bad_share:
            content_type, data, code = bad[i % len(bad)]
            scans.append(Planned("bad", content_type, data, code))
        elif r < poison_share + bad_share + dicom_share:
            scans.append(Planned("dicom", "application/dicom", phantom_dicom(i, size), "DONE"))
        else:
            scans.append(Planned("png", "image/png", phantom_png(i, size), "DONE"))
    return scans


def run(scans: int = 300, seed: int = 0, *, crash: float = 0.1, throttle_dynamodb: float = 0.05,
        throttle_s3: float = 0.03, lost_dynamodb: float = 0.01, duplicates: float = 0.1, malformed: int = 20,
        poison_share: float = 0.03, bad_share: float = 0.03, dicom_share: float = 0.25, size: int = 128,
        timeout: float | None = None, log: Callable[[str], None] = print) -> Report:
    """One randomised run; see the module docstring."""
    rng = random.Random(seed)
    started = time.monotonic()
    planned = plan(scans, rng, poison_share=poison_share, bad_share=bad_share, dicom_share=dicom_share, size=size)
    timeout = timeout if timeout is not None else 60 + 1.0 * scans
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with FaultyStack(seed=seed, quiet=True) as stack:
        ids = [stack.new_scan(None, content_type=p.content_type) for p in planned]
        by_id = dict(zip(ids, planned))
        poison = frozenset(i for i, p in by_id.items() if p.kind == "poison")
        faults = stack.faults
        faults.crash(scan_ids=poison)  # every delivery, while reading: out of claims -> READ_ABORTED
        others = frozenset(ids) - poison
        for phase in PHASES:  # good scans (and bad files) die on their first delivery only
            faults.crash(scan_ids=others, deliveries={1}, phase=phase, probability=crash / len(PHASES))
        for service, probability in (("dynamodb", throttle_dynamodb), ("s3", throttle_s3)):
            if probability:
                faults.throttle(service, probability)
        if lost_dynamodb:
            faults.aws_fault("dynamodb", "lost", probability=lost_dynamodb)

        order = list(ids)
        rng.shuffle(order)
        garbage = list(malformed_bodies(stack.key(order[0])).values())
        sent_malformed = sent_duplicates = 0
        for scan_id in order:
            p = by_id[scan_id]
            stack.upload(scan_id, p.data, p.content_type)
            if rng.random() < duplicates:
                stack.notify(scan_id, copies=rng.randint(1, 3))
                sent_duplicates += 1
            if sent_malformed < malformed and rng.random() < malformed / scans:
                sent_malformed += stack.send_raw([garbage[sent_malformed % len(garbage)]])
        sent_malformed += stack.send_raw(garbage[i % len(garbage)] for i in range(sent_malformed, malformed))
        drained = stack.wait_drained(max(1.0, timeout - (time.monotonic() - started)))
        # Late duplicates: at-least-once delivery may repeat a notification long after the reading.
        for scan_id in rng.sample(ids, k=max(1, int(len(ids) * duplicates / 2))):
            stack.notify(scan_id)
            sent_duplicates += 1
        drained = stack.wait_drained(max(1.0, timeout - (time.monotonic() - started))) and drained

        report = Report(scans=scans, drained=drained)
        records = stack.records()
        for scan_id, p in by_id.items():
            record = records.get(scan_id)
            status = record.get("status") if record else None
            if record is not None:
                report.statuses[status] += 1
            if status == "FAILED":
                report.codes[record["error"]["code"]] += 1
            if record is None or (p.expect == "DONE" and status != "DONE"):
                report.lost.append(scan_id)
            if status not in ("DONE", "FAILED"):
                report.stuck.append(scan_id)
            elif p.expect != "DONE" and not (status == "FAILED" and p.expect in ("FAILED", record["error"]["code"])):
                report.wrong[scan_id] = f"{status} {record.get('error', {}).get('code', '')}".strip()
        report.read_twice = faults.read_twice()
        report.seconds = time.monotonic() - started
        report.faults = faults.summary()
        report.messages = (f"{sent_duplicates} duplicate notifications, {sent_malformed} malformed messages; "
                           f"{stack.worker.invocations} inference invocations ({stack.worker.failed_invocations} died), "
                           f"{stack.dead_letter_worker.invocations} dead-letter invocations")
    for scan_id in report.stuck:
        log(f"stuck: {scan_id} {records.get(scan_id, {}).get('status')}")
    for scan_id, what in report.wrong.items():
        log(f"unexpected: {by_id[scan_id].kind} scan {scan_id} ended {what}, expected {by_id[scan_id].expect}")
    if not report.drained:
        log(f"queues not drained after {timeout:.0f} s")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Randomised fault injection on the local stack.")
    parser.add_argument("--scans", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash", type=float, default=0.1, help="chance a good scan's first delivery dies")
    parser.add_argument("--throttle-dynamodb", type=float, default=0.05)
    parser.add_argument("--throttle-s3", type=float, default=0.03)
    parser.add_argument("--lost-dynamodb", type=float, default=0.01, help="DynamoDB responses lost after the write")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of scans notified again")
    parser.add_argument("--malformed", type=int, default=20, help="malformed messages sent")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the queues to drain")
    args = parser.parse_args(argv)
    # The handlers' own output (metrics, logged tracebacks of injected crashes) would bury the summary.
    logging.getLogger("aws_lambda_powertools").setLevel(logging.CRITICAL)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        report = run(args.scans, args.seed, crash=args.crash, throttle_dynamodb=args.throttle_dynamodb,
                     throttle_s3=args.throttle_s3, lost_dynamodb=args.lost_dynamodb, duplicates=args.duplicates,
                     malformed=args.malformed, timeout=args.timeout, log=lambda m: print(m, file=sys.stderr))
    print(f"seed {args.seed}, {report.seconds:.1f} s; injected: {report.faults}; {report.messages}", file=sys.stderr)
    print(report.line(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
