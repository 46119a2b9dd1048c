"""Throughput and end to end on the local stack (moto in this process, real handlers, real HTTP).

N scans of real CT PNGs are all in flight at once: created and uploaded (presigned POST) as fast
as a pool of threads can, none waiting for its result, while one loop polls every uploaded,
unfinished scan (4 GETs at a time, then ``POLL_S`` of sleep). Latency is from the start of the
upload POST to the poll that saw DONE (quantised to one polling round, which is longer while
hundreds are pending), and also server-side: from the upload's end to the record's DONE write
(``updated_at``). Afterwards every record is read back from DynamoDB with boto3 (the same
in-process moto): all must be DONE with ``attempts == 1``.

The local SQS poller invokes the inference handler one batch at a time (one "container"), and API
calls are serialised here the same way (one API container; infra/gateway.py alone would run them
concurrently in one process, which races on the resolver's current event); in AWS both scale out,
so throughput here is a floor.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, png_inputs, summary

POLL_S = 0.2
QUIET_GETS = 20
SCAN_TIMEOUT_S = 600.0


def _submit(url: str, auth: dict[str, str], path: Path) -> dict[str, Any]:
    """Create one scan and POST its file; returns when S3 has it (polling is done elsewhere)."""
    import requests

    data = path.read_bytes()
    t0 = time.monotonic()
    response = requests.post(f"{url}/api/scans", headers=auth, timeout=60,
                             json={"filename": path.name, "content_type": "image/png", "modality": "CT"})
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/scans -> {response.status_code}: {response.text[:500]}")
    scan = response.json()
    t1 = time.monotonic()
    upload = scan["upload"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("scan", data)}, timeout=60)
    t2 = time.monotonic()
    return {"scan_id": scan["scan_id"], "status": "PENDING" if posted.status_code == 204 else f"UPLOAD_{posted.status_code}",
            "polls": 0, "bytes": len(data), "create_ms": (t1 - t0) * 1e3, "upload_ms": (t2 - t1) * 1e3, "get_ms": [],
            "t_start": t0, "t_created": t1, "t_uploaded": t2, "uploaded_epoch": time.time()}


def _epoch(iso: str) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _all_at_once(url: str, auth: dict[str, str], inputs: list[Path], workers: int) -> tuple[list[dict], float]:
    """Every scan created and uploaded as fast as ``workers`` threads can (none waits for a result),
    while one loop polls every uploaded, unfinished scan (4 GETs at a time), then sleeps ``POLL_S``."""
    import queue

    import requests

    uploaded: queue.Queue = queue.Queue()
    results: list[dict] = []
    started = time.monotonic()

    def get(r: dict) -> dict:
        g0 = time.monotonic()
        body = requests.get(f"{url}/api/scans/{r['scan_id']}", headers=auth, timeout=60).json()
        r["get_ms"].append((time.monotonic() - g0) * 1e3)
        r["polls"] += 1
        return body

    with ThreadPoolExecutor(workers) as uploads, ThreadPoolExecutor(4) as polls:
        for path in inputs:
            uploads.submit(lambda p=path: uploaded.put(_submit(url, auth, p)))
        pending: list[dict] = []
        while len(results) < len(inputs) and time.monotonic() - started < SCAN_TIMEOUT_S:
            while not uploaded.empty():
                r = uploaded.get()
                (pending if r["status"] == "PENDING" else results).append(r)
            still = []
            for r, body in zip(pending, polls.map(get, pending)):
                if body["status"] in ("DONE", "FAILED"):
                    r["status"], r["t_end"] = body["status"], time.monotonic()
                    r["upload_to_result_s"] = r["t_end"] - r["t_created"]
                    r["create_to_result_s"] = r["t_end"] - r["t_start"]
                    results.append(r)
                else:
                    still.append(r)
            pending = still
            time.sleep(POLL_S)
    return results + pending, started


def _item_bytes(item: dict[str, Any]) -> int:
    """Approximate DynamoDB item size: attribute names + JSON of the values."""
    return sum(len(k) + len(json.dumps(v, default=lambda d: str(d) if isinstance(d, Decimal) else repr(d)))
               for k, v in item.items())


def run(settings: Settings) -> dict[str, Any]:
    import boto3
    import jwt
    import requests

    from infra.run_local import LocalStack

    os.environ["MODEL_DIR"] = str(settings.model_dir)
    files = png_inputs(200)
    inputs = [files[i % len(files)] for i in range(settings.scans)]
    with LocalStack(port=0, parameters={"CreateLimitPerHour": max(120, settings.scans + 10)}) as stack:
        username = stack.resources.clinicians[0]["username"]
        token = requests.post(f"{stack.url}/local/login", json={"username": username}, timeout=30).json()["id_token"]
        auth = {"Authorization": f"Bearer {token}"}
        owner = jwt.decode(token, options={"verify_signature": False})["sub"]
        api_ms: list[float] = []
        api_handler = stack.gateway.api_handler
        container = threading.Lock()

        def timed_api(event: dict, context: Any) -> dict:
            # One invocation at a time, as in one Lambda container: the handler's powertools resolver keeps
            # the current event on a module-level object, so concurrent calls in one process would race.
            with container:
                t0 = time.perf_counter()
                try:
                    return api_handler(event, context)
                finally:
                    api_ms.append((time.perf_counter() - t0) * 1e3)  # the API Lambda's own duration

        stack.gateway.api_handler = timed_api
        results, started = _all_at_once(stack.url, auth, inputs, settings.workers)
        wall = time.monotonic() - started
        busy_api_ms = list(api_ms)
        api_ms.clear()
        for r in results[:QUIET_GETS]:  # the same calls with nothing else running
            requests.get(f"{stack.url}/api/scans/{r['scan_id']}", headers=auth, timeout=60)
        invocations = stack.worker.invocations
        table = boto3.resource("dynamodb").Table(stack.resources.table)
        s3 = boto3.client("s3")
        items = [table.get_item(Key={"owner_id": owner, "scan_id": r["scan_id"]}, ConsistentRead=True).get("Item")
                 for r in results]
        preview_bytes = []
        for item in items:
            if item and item.get("previews"):
                preview_bytes.append(sum(s3.head_object(Bucket=stack.resources.artifacts_bucket, Key=key)["ContentLength"]
                                         for key in item["previews"].values()))
        n_previews = [len(item.get("previews") or {}) for item in items if item]
        sqs = boto3.client("sqs")
        left = {name: int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessages"]) for name, url in (("queue", stack.resources.queue_url),
                                                              ("dead_letter_queue", stack.resources.dlq_url))}
    statuses = [item["status"] if item else "MISSING" for item in items]
    attempts = [int(item.get("attempts", 0)) if item else 0 for item in items]
    stage_ms: dict[str, list[float]] = {}
    for item in items:
        for stage, ms in ((item or {}).get("timings_ms") or {}).items():
            stage_ms.setdefault(stage, []).append(float(ms))
    last_done = max(r.get("t_end", 0.0) for r in results) - started
    server_s = [_epoch(item["updated_at"]) - r["uploaded_epoch"] for r, item in zip(results, items)
                if item and item.get("status") == "DONE"]
    return {
        "scans": settings.scans, "workers": settings.workers, "poll_interval_s": POLL_S,
        "wall_s": round(wall, 2), "all_done_s": round(last_done, 2),
        "throughput_scans_per_s": round(settings.scans / last_done, 2),
        "upload_to_result_s": summary([r["upload_to_result_s"] for r in results if "upload_to_result_s" in r]),
        "upload_to_done_server_s": summary(server_s),
        "create_to_result_s": summary([r["create_to_result_s"] for r in results if "create_to_result_s" in r]),
        "create_ms": summary([r["create_ms"] for r in results if "create_ms" in r]),
        "upload_ms": summary([r["upload_ms"] for r in results if "upload_ms" in r]),
        "get_ms": summary([ms for r in results for ms in r.get("get_ms", [])]),
        "api_handler_ms_concurrent": summary(busy_api_ms),
        "api_handler_ms_quiet_get": summary(api_ms),
        "polls_per_scan": summary([r["polls"] for r in results]),
        "done": statuses.count("DONE"), "not_done": len(statuses) - statuses.count("DONE"),
        "status_counts": {s: statuses.count(s) for s in sorted(set(statuses))},
        "attempts_eq_1": sum(a == 1 for a in attempts), "processed_twice": sum(a > 1 for a in attempts),
        "distinct_scan_ids": len({r["scan_id"] for r in results}),
        "handler_invocations": invocations, "messages_left": left,
        "handler_stage_ms": {stage: summary(values) for stage, values in stage_ms.items()},
        "upload_bytes_mean": round(sum(r.get("bytes", 0) for r in results) / len(results)),
        "preview_bytes_mean": round(sum(preview_bytes) / max(1, len(preview_bytes))),
        "previews_per_scan": round(sum(n_previews) / max(1, len(n_previews)), 2),
        "item_bytes_mean": round(sum(_item_bytes(item) for item in items if item) / max(1, len(items))),
    }
