"""Fault injection on the local stack (infra.faults): readers killed mid-scan, DynamoDB and S3
failing or throttling, duplicate and malformed messages. Whatever happens, every scan ends DONE
or FAILED, nothing is read twice, and both queues drain. Assertions read moto's real state:
the scan items in DynamoDB and the queues' message counts.

Retries take seconds here: the queues' visibility timeout is 3 s and the claim lease 1 s
(FaultyStack), where the template has 180 s and 60 s.
"""

from __future__ import annotations

import time

import pytest

from infra.chaos import phantom_dicom, phantom_png
from infra.fault_stack import FaultyStack, malformed_bodies
from infra.faults import HardCrash, TransientError

MAX_DELIVERIES = 3  # template.yaml's MaxReceiveCount default


@pytest.fixture
def stack():
    with FaultyStack(seed=7) as running:
        assert running.inference.CONFIG.max_receive_count == MAX_DELIVERIES
        assert running.inference.CONFIG.lease_seconds == 1
        yield running


def final(stack: FaultyStack, scan_ids, timeout: float = 40) -> dict[str, dict]:
    """Wait until both queues are empty; the scans' records then."""
    assert stack.wait_drained(timeout), f"queues not drained: {stack.depth(stack.resources.queue_url)}, " \
                                        f"DLQ {stack.depth(stack.resources.dlq_url)}"
    records = {scan_id: stack.record(scan_id) for scan_id in scan_ids}
    unfinished = {s: r and r["status"] for s, r in records.items() if not r or r["status"] not in ("DONE", "FAILED")}
    assert not unfinished, f"not DONE/FAILED after the queues drained: {unfinished}"
    return records


def code(record: dict) -> str | None:
    return (record.get("error") or {}).get("code")


def test_poison_upload_among_good_ones(stack):
    """One upload kills the reader on every delivery; the good ones around it are all read,
    once; the poison ends FAILED/READ_ABORTED through the dead-letter queue."""
    poison = stack.new_scan(None)
    stack.faults.crash(scan_ids={poison})  # HardCrash while reading, every delivery
    good = [stack.new_scan(phantom_png(i)) for i in range(4)]
    stack.upload(poison, phantom_png(99))
    good += [stack.new_scan(phantom_dicom(i), content_type="application/dicom") for i in range(4, 8)]

    records = final(stack, good + [poison])
    assert all(records[s]["status"] == "DONE" and records[s]["attempts"] == 1 for s in good), records
    assert {s: stack.faults.completions[s] for s in good} == {s: 1 for s in good}
    assert records[poison]["status"] == "FAILED" and code(records[poison]) == "READ_ABORTED"
    assert records[poison]["attempts"] == MAX_DELIVERIES and stack.faults.reads[poison] == MAX_DELIVERIES
    assert "claim_token" not in records[poison] and "lease_until" not in records[poison]
    assert stack.faults.injected["crash:read"] == MAX_DELIVERIES
    assert stack.worker.failed_invocations == MAX_DELIVERIES  # each crash failed the whole invocation
    assert stack.dead_letter_worker.invocations >= 1  # the poison's message went through the DLQ


def test_crash_on_the_last_delivery_still_ends_the_scan(stack):
    """Earlier deliveries fail (softly, or die before claiming); the last one dies too."""
    last = {MAX_DELIVERIES}
    earlier = set(range(1, MAX_DELIVERIES))
    soft_then_hard = stack.new_scan(None)
    soft_only = stack.new_scan(None)
    unclaimed_then_hard = stack.new_scan(None)
    never_claimed = stack.new_scan(None)
    done_then_crash = stack.new_scan(None)
    rules = stack.faults
    rules.crash(scan_ids={soft_then_hard, soft_only, done_then_crash}, deliveries=earlier, error=TransientError)
    rules.crash(scan_ids={soft_then_hard}, deliveries=last)
    rules.crash(scan_ids={soft_only}, deliveries=last, error=TransientError)
    rules.crash(scan_ids={unclaimed_then_hard}, deliveries=earlier, phase="before_claim")
    rules.crash(scan_ids={unclaimed_then_hard}, deliveries=last)
    rules.crash(scan_ids={never_claimed}, phase="before_claim")
    rules.crash(scan_ids={done_then_crash}, deliveries=last, phase="after_write")
    scans = [soft_then_hard, soft_only, unclaimed_then_hard, never_claimed, done_then_crash]
    for i, scan_id in enumerate(scans):
        stack.upload(scan_id, phantom_png(i))

    records = final(stack, scans)
    # Killed on its last claim: the dead-letter consumer ends it.
    assert (records[soft_then_hard]["status"], code(records[soft_then_hard])) == ("FAILED", "READ_ABORTED")
    assert records[soft_then_hard]["attempts"] == MAX_DELIVERIES
    # An ordinary error on the last delivery: the handler itself records it.
    assert (records[soft_only]["status"], code(records[soft_only])) == ("FAILED", "INTERNAL_ERROR")
    # Died before claiming twice, then died reading: reading was attempted once.
    assert (records[unclaimed_then_hard]["status"], code(records[unclaimed_then_hard])) == ("FAILED", "READ_ABORTED")
    assert records[unclaimed_then_hard]["attempts"] == 1
    # Never got as far as a claim: the service never started reading it.
    assert (records[never_claimed]["status"], code(records[never_claimed])) == ("FAILED", "NOT_PROCESSED")
    assert records[never_claimed].get("attempts", 0) == 0
    # Result written, then the invocation died before SQS heard of it: the DLQ consumer keeps DONE.
    assert records[done_then_crash]["status"] == "DONE" and stack.faults.completions[done_then_crash] == 1
    assert stack.faults.read_twice() == {}


def test_dynamodb_write_failures_end_in_a_terminal_state(stack):
    """Recording a result always fails; a DynamoDB outage after the claim that also hits the
    dead-letter consumer until it recovers; a result write failing once."""
    result_never_written = stack.new_scan(None)
    outage = stack.new_scan(None)
    fails_once = stack.new_scan(None)

    def recording_result_of(scan_id):
        return lambda operation, body: scan_id.encode() in body and b"#result" in body

    def any_write_but_the_claim_of(scan_id):  # ScansTable.claim is the only write with if_not_exists(attempts...)
        return lambda operation, body: scan_id.encode() in body and b"if_not_exists(attempts" not in body

    first_time = []

    def once(operation, body):
        if fails_once.encode() in body and b"#result" in body and not first_time:
            first_time.append(body)
            return True
        return False

    rules = stack.faults
    rules.aws_fault("dynamodb", "error", operations={"UpdateItem"}, when=recording_result_of(result_never_written))
    down = [rules.aws_fault("dynamodb", "error", operations={"UpdateItem"}, functions={"inference"},
                            when=any_write_but_the_claim_of(outage)),
            rules.aws_fault("dynamodb", "error", operations={"UpdateItem"}, functions={"dead_letter"},
                            when=lambda operation, body: outage.encode() in body)]
    rules.aws_fault("dynamodb", "error", operations={"UpdateItem"}, when=once)
    for i, scan_id in enumerate((result_never_written, outage, fails_once)):
        stack.upload(scan_id, phantom_png(i))

    # The outage scan's message reaches the DLQ; its consumer cannot write either, so the message
    # stays there (retried) and the scan is not final yet.
    dlq = stack.dead_letter_worker  # a batch whose records all failed raises (Powertools): a failed invocation
    assert stack.wait_until(lambda: dlq.failed_records + dlq.failed_invocations >= 1, 30)
    assert sum(stack.depth(stack.resources.dlq_url)) >= 1
    assert stack.record(outage)["status"] == "PROCESSING"
    for rule in down:  # DynamoDB recovers
        rule.enabled = False

    records = final(stack, [result_never_written, outage, fails_once])
    assert (records[result_never_written]["status"], code(records[result_never_written])) == ("FAILED", "INTERNAL_ERROR")
    assert stack.faults.complete_calls[result_never_written] == MAX_DELIVERIES
    assert stack.faults.completions[result_never_written] == 0
    assert (records[outage]["status"], code(records[outage])) == ("FAILED", "READ_ABORTED")
    assert records[fails_once]["status"] == "DONE" and records[fails_once]["attempts"] == 2
    assert stack.faults.completions[fails_once] == 1


def test_duplicate_deliveries_are_read_once(stack):
    """At-least-once delivery: copies of a notification, a redelivery after a crash that came
    after the result was written, and copies long after the reading."""
    scans = [stack.new_scan(None) for _ in range(4)]
    crashed_after_write = scans[0]
    stack.faults.crash(scan_ids={crashed_after_write}, deliveries={1}, phase="after_write")
    for i, scan_id in enumerate(scans):
        stack.upload(scan_id, phantom_png(i))
        stack.notify(scan_id, copies=3)
    first = final(stack, scans)
    for scan_id in scans:
        stack.notify(scan_id, copies=2)
    again = final(stack, scans)

    assert all(first[s]["status"] == "DONE" for s in scans)
    assert again == first, "late duplicates changed a finished record"
    assert {s: (stack.faults.reads[s], stack.faults.completions[s], first[s]["attempts"]) for s in scans} \
        == {s: (1, 1, 1) for s in scans}
    assert stack.faults.injected["crash:after_write"] == 1
    # 4 uploads + 12 copies + 1 redelivery after the crash + 8 late copies, each consumed.
    assert stack.worker.invocations == 4 + 12 + 1 + 8


def test_an_expired_lease_is_reclaimed_by_the_next_delivery(stack):
    crashed = stack.new_scan(None)
    stack.faults.crash(scan_ids={crashed}, deliveries={1})  # dies holding its claim
    stack.upload(crashed, phantom_png(1))

    # A record left PROCESSING by an attempt that died long ago (lease ran out), and one whose
    # lease is still live (a running attempt: the notification must not start another).
    abandoned, running = stack.new_scan(None), stack.new_scan(None)
    now = int(time.time())
    for scan_id, lease_until in ((abandoned, now - 30), (running, now + 3600)):
        stack.table.update_item(
            Key={"owner_id": stack.owner_id, "scan_id": scan_id},
            UpdateExpression="SET #s = :p, claim_token = :t, lease_until = :l, attempts = :one",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": "PROCESSING", ":t": "dead-attempt", ":l": lease_until, ":one": 1})
        stack.upload(scan_id, phantom_png(2))

    records = final(stack, [crashed, abandoned])
    assert records[crashed]["status"] == "DONE" and records[crashed]["attempts"] == 2
    assert stack.faults.reads[crashed] == 2 and stack.faults.completions[crashed] == 1
    assert records[abandoned]["status"] == "DONE" and records[abandoned]["attempts"] == 2
    held = stack.record(running)
    assert (held["status"], held["claim_token"], held["attempts"]) == ("PROCESSING", "dead-attempt", 1)
    assert stack.faults.reads[running] == 0


def test_random_throttles_are_absorbed_by_botocore_retries(stack):
    """20 % of DynamoDB and S3 calls throttled: botocore's retries absorb them, so no scan
    needs an SQS retry."""
    for service in ("dynamodb", "s3"):
        stack.faults.throttle(service, 0.2)
    scans = [stack.new_scan(phantom_png(i)) for i in range(8)]

    records = final(stack, scans)
    assert all(r["status"] == "DONE" and r["attempts"] == 1 for r in records.values()), records
    throttled = {k: n for k, n in stack.faults.injected.items() if k.startswith("throttle:")}
    assert any(k.startswith("throttle:dynamodb:") for k in throttled), throttled
    assert any(k.startswith("throttle:s3:") for k in throttled), throttled
    assert stack.worker.failed_records == stack.worker.failed_invocations == 0


def test_lost_dynamodb_responses_do_not_strand_a_scan(stack):
    """Every first try of a DynamoDB write takes effect but its answer is lost (a read timeout);
    botocore retries a write that already happened. A claim must still know it is its own."""
    seen = set()

    def first_try(operation, body):
        fresh = body not in seen
        seen.add(body)
        return fresh

    stack.faults.aws_fault("dynamodb", "lost", operations={"UpdateItem"}, when=first_try)
    scans = [stack.new_scan(phantom_png(i)) for i in range(3)]
    bad = stack.new_scan(b"%PDF-1.7 not an image")

    records = final(stack, scans + [bad])
    assert all(records[s]["status"] == "DONE" and records[s]["attempts"] == 1 for s in scans), records
    assert (records[bad]["status"], code(records[bad])) == ("FAILED", "UNSUPPORTED_FORMAT")
    assert stack.faults.injected["lost:dynamodb:UpdateItem"] >= 2 * 4
    assert stack.faults.read_twice() == {}


def test_malformed_messages_are_dropped_without_blocking_good_ones(stack):
    target = stack.new_scan(None)
    bodies = malformed_bodies(scan_key=stack.key(target))
    assert stack.send_raw(bodies.values()) == len(bodies)
    stack.upload(target, phantom_png(0))
    scans = [target] + [stack.new_scan(phantom_png(i)) for i in range(1, 4)]

    records = final(stack, scans)
    # Dropped: nothing retried, nothing dead-lettered, and the garbled notifications naming a
    # real scan did not claim it (no attempt spent).
    assert all(r["status"] == "DONE" and r["attempts"] == 1 for r in records.values()), records
    assert stack.worker.failed_records == stack.worker.failed_invocations == 0
    assert stack.worker.invocations == len(bodies) + len(scans)
    assert stack.dead_letter_worker.invocations == 0


def test_chaos_run_small():
    """`make chaos` in miniature: 40 scans, random faults of every kind."""
    from infra.chaos import run

    lines: list[str] = []
    report = run(40, seed=3, crash=0.2, throttle_dynamodb=0.1, throttle_s3=0.05, lost_dynamodb=0.05,
                 poison_share=0.08, bad_share=0.08, timeout=90, log=lines.append)
    assert report.ok, (report.line(), lines)
    assert report.line().startswith("40 scans: ") and report.line().endswith(", 0 stuck, 0 lost, 0 read twice")
    assert sum(report.statuses.values()) == 40 and report.statuses["DONE"] + report.statuses["FAILED"] == 40


def test_faults_from_the_environment():
    """`STROKELENS_FAULTS=... make run` installs the same rules."""
    from infra.faults import install_from_env, parse_spec

    faults = parse_spec("seed=3, crash=0.5@1|2, throttle=0.1, throttle_s3=0.2, lost_dynamodb=0.01")
    assert faults.seed == 3
    (crash,) = faults.crashes
    assert (crash.probability, crash.deliveries, crash.phase, crash.error) == (0.5, {1, 2}, "read", HardCrash)
    assert [(r.service, r.kind, r.probability) for r in faults.aws] == [
        ("dynamodb", "throttle", 0.1), ("s3", "throttle", 0.1), ("s3", "throttle", 0.2), ("dynamodb", "lost", 0.01)]
    assert install_from_env(env={}) is None
    with pytest.raises(ValueError):
        parse_spec("explode=1")
