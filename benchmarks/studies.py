"""Studies on the local stack (moto in this process, real handlers, real HTTP): upload -> result for
studies of 1 to 300 real head CT slices, inference time per study and per slice, AWS requests per
study, cost per 1,000 studies, the cold-start share, and N concurrent studies.

Inputs: the ct-ich studies (``../shared/data/ct-ich/studies/<study>/*.png``, slices in natural
filename order). A size the real studies do not reach (120, 300) is consecutive real studies'
slices one after another (one PNG series in upload order, as the site sends a folder): the per-slice
work is that of real slices; only the anatomy does not continue from one study to the next.

Requests are counted with botocore ``before-call`` event hooks on the clients the handler modules
hold (inference, API), on the local SQS poller's client (only receives that returned messages), and
on the local gateway's S3 client (the browser's presigned POSTs): exactly the calls each would make
in AWS, counted per study by running one study at a time. DynamoDB capacity units are estimated from
the item's size (moto does not compute them).

Sequence per study: POST /api/studies -> every file POSTed to its presigned form (6 at a time, as
the site does) -> GET /api/studies/{id} every ``POLL_S`` until DONE. Upload -> result is from the
first file POST to the poll that saw DONE (quantised to ``POLL_S``). The local SQS poller is one
serial "container" with the template's batch size 1, so concurrent studies queue behind each other
(in AWS the event source mapping scales out): concurrency figures here are a floor.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Settings, summary

STUDIES_DIR = ROOT.parent / "shared" / "data" / "ct-ich" / "studies"
POLL_S = 0.2
UPLOAD_THREADS = 6  # files of one study in flight at once (the site's bound)
STUDY_TIMEOUT_S = 600.0
INFERENCE_TIMEOUT_S = 30  # template.yaml InferenceTimeoutSeconds (maximum and default)
# Floors (issue 13).
FLOOR_UPLOAD_TO_RESULT_S = 5.0  # 40-slice study, median
FLOOR_MS_PER_SLICE = 10.0  # inference compute
FLOOR_SIZE = 40
# The site's polling back-off (web/js/poll.js): first GET at once, then 400 ms x 1.5^k, at most 4 s.
POLL_FIRST_MS, POLL_BACKOFF, POLL_MAX_MS = 400, 1.5, 4000
LOG_BYTES_PER_INVOCATION = 700  # START/END/REPORT lines + a JSON log line + EMF (estimate)
MULTIPART_PART_BYTES = 8 * 1024 * 1024
# The same concurrent run again with the upload links valid 840 s (deadline 900 s, SQS's longest delay):
# whether every file is read when the deadline cannot overtake the serial local poller.
LONG_UPLOAD_EXPIRES_S = 840
STACK_NAMES = ("display", "heatmap")  # strokelens.reader.reading.STACK_PREVIEWS: every slice's previews


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def study_folders() -> list[Path]:
    return sorted(p for p in STUDIES_DIR.iterdir() if p.is_dir() and any(p.glob("*.png")))


def slices_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"), key=lambda p: _natural(p.name))


def study_inputs(n: int, run: int) -> tuple[list[Path], str]:
    """``n`` real slices for run ``run``, and where they come from."""
    folders = study_folders()
    if not folders:
        raise FileNotFoundError(f"no ct-ich studies under {STUDIES_DIR}")
    whole = [f for f in folders if len(slices_of(f)) == n]
    if whole:  # a real study of exactly this size
        folder = whole[run % len(whole)]
        return slices_of(folder), f"ct-ich study {folder.name} (all {n} slices)"
    if n == 1:
        folder = folders[run % len(folders)]
        paths = slices_of(folder)
        return [paths[len(paths) // 2]], f"the middle slice of ct-ich study {folder.name}"
    pool: list[Path] = []
    used: list[str] = []
    i = run * 3  # each run starts at another study
    while len(pool) < n:
        folder = folders[i % len(folders)]
        pool += slices_of(folder)
        used.append(folder.name)
        i += 1
    if len(used) == 1:
        return pool[:n], f"the first {n} slices of ct-ich study {used[0]}"
    return pool[:n], f"ct-ich studies {used[0]}–{used[-1]} ({len(used)} studies) one after another"


def window_inputs(n: int, k: int) -> list[Path]:
    """The k-th window of ``n`` consecutive slices over all ct-ich studies in order (cycling)."""
    pool = [p for f in study_folders() for p in slices_of(f)]
    return [pool[(k * n + i) % len(pool)] for i in range(n)]


class RequestCounter:
    """AWS API calls by (who, service, operation), from botocore event hooks on the real clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    def _add(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self.counts[key] += 1

    def attach(self, who: str, client: Any, skip_empty_receives: bool = False) -> None:
        def before(event_name: str, **_: Any) -> None:
            _, service, operation = event_name.split(".", 2)
            if skip_empty_receives and operation == "ReceiveMessage":
                return
            self._add((who, service, operation))

        def after(event_name: str, parsed: Any = None, **_: Any) -> None:
            if (parsed or {}).get("Messages"):
                self._add((who, "sqs", "ReceiveMessage"))

        client.meta.events.register("before-call", before)
        if skip_empty_receives:
            client.meta.events.register("after-call.sqs.ReceiveMessage", after)

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)


def _flat(delta: Counter) -> dict[str, int]:
    return {f"{who}:{service}:{op}": n for (who, service, op), n in sorted(delta.items()) if n}


def _sum(delta: Counter, who: str | None = None, service: str | None = None, ops: tuple[str, ...] = ()) -> int:
    return sum(n for (w, s, o), n in delta.items()
               if (who is None or w == who) and (service is None or s == service) and (not ops or o in ops))


def _item_bytes(item: dict[str, Any]) -> int:
    from benchmarks.e2e import _item_bytes as size

    return size(item)


PENDING_FIELDS = ("owner_id", "scan_id", "kind", "status", "files_expected", "content_types", "created_at",
                  "updated_at", "expires_at", "modality_declared", "arrived", "attempts", "claim_token", "lease_until")


def polls_until(seconds: float) -> int:
    """GETs the site's back-off makes for a study that takes ``seconds`` from the last file to DONE."""
    polls, waited, delay = 1, 0.0, POLL_FIRST_MS / 1000
    while waited < seconds:
        waited += delay
        polls += 1
        delay = min(POLL_MAX_MS / 1000, delay * POLL_BACKOFF)
    return polls


class Harness:
    """One local stack with counting hooks, timed handlers and helpers to run studies over HTTP."""

    def __init__(self, stack: Any) -> None:
        import jwt
        import requests

        self.stack = stack
        username = stack.resources.clinicians[0]["username"]
        token = requests.post(f"{stack.url}/local/login", json={"username": username}, timeout=30).json()["id_token"]
        self.auth = {"Authorization": f"Bearer {token}"}
        self.owner = jwt.decode(token, options={"verify_signature": False})["sub"]
        self.requests = RequestCounter()
        api, inference = stack.api, stack.inference
        self.requests.attach("inference", inference.S3)
        self.requests.attach("inference", inference.SCANS.table.meta.client)
        self.requests.attach("api", api.S3)
        self.requests.attach("api", api.SCANS.table.meta.client)
        self.requests.attach("api", api.SQS)
        if getattr(api, "LIMITER", None) is not None:
            self.requests.attach("api", api.LIMITER.table.meta.client)
        self.requests.attach("esm", stack.worker.sqs, skip_empty_receives=True)
        self.requests.attach("client", stack.gateway.s3)  # the browser's presigned POSTs and GETs
        self.model_load_ms = float(inference.MODEL_LOAD_MS)
        self._lock = threading.Lock()
        # The inference "container": every invocation's duration; which one read a study.
        self.invocations: list[tuple[float, str | None]] = []
        self._reading: str | None = None
        self.reads: Counter = Counter()  # study id -> reads that produced a result ("done")
        self.read_calls: Counter = Counter()
        self.read_ms: dict[str, float] = {}
        self.invocation_ms: dict[str, float] = {}
        pipeline = inference.STUDIES
        read = pipeline.read

        def counted_read(owner_id: str, study_id: str, receive_count: int, context: Any = None) -> str:
            t0 = time.perf_counter()
            outcome = "error"
            try:
                outcome = read(owner_id, study_id, receive_count, context)
                return outcome
            finally:
                with self._lock:
                    self.read_calls[study_id] += 1
                    if outcome == "done":
                        self.reads[study_id] += 1
                        self.read_ms[study_id] = (time.perf_counter() - t0) * 1e3
                        self._reading = study_id

        pipeline.read = counted_read
        handler = stack.worker.handler

        def timed_handler(event: dict, context: Any) -> dict:
            self._reading = None
            t0 = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                ms = (time.perf_counter() - t0) * 1e3
                with self._lock:
                    self.invocations.append((ms, self._reading))
                    if self._reading:
                        self.invocation_ms[self._reading] = ms

        stack.worker.handler = timed_handler
        self.api_ms: list[tuple[str, float]] = []
        api_handler = stack.gateway.api_handler
        container = threading.Lock()

        def timed_api(event: dict, context: Any) -> dict:
            with container:  # one API container at a time (see benchmarks/e2e.py)
                t0 = time.perf_counter()
                try:
                    return api_handler(event, context)
                finally:
                    self.api_ms.append((event.get("routeKey", ""), (time.perf_counter() - t0) * 1e3))

        stack.gateway.api_handler = timed_api

    def create(self, paths: list[Path]) -> dict:
        import requests

        body = {"files": [{"filename": p.name, "content_type": "image/png", "size": p.stat().st_size} for p in paths],
                "modality": "CT"}
        response = requests.post(f"{self.stack.url}/api/studies", headers=self.auth, json=body, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/studies -> {response.status_code}: {response.text[:500]}")
        return response.json()

    @staticmethod
    def post_file(form: dict, path: Path) -> int:
        import requests

        return requests.post(form["url"], data=form["fields"], files={"file": (path.name, path.read_bytes())},
                             timeout=60).status_code

    def get(self, study_id: str) -> dict:
        import requests

        return requests.get(f"{self.stack.url}/api/studies/{study_id}", headers=self.auth, timeout=60).json()

    def wait(self, study_id: str, started: float) -> tuple[dict, int]:
        polls = 0
        while time.monotonic() - started < STUDY_TIMEOUT_S:
            view = self.get(study_id)
            polls += 1
            if view["status"] in ("DONE", "FAILED"):
                return view, polls
            time.sleep(POLL_S)
        raise RuntimeError(f"study {study_id} not final after {STUDY_TIMEOUT_S} s")

    def item(self, study_id: str) -> dict:
        import boto3

        table = boto3.resource("dynamodb").Table(self.stack.resources.table)
        return table.get_item(Key={"owner_id": self.owner, "scan_id": study_id}, ConsistentRead=True)["Item"]

    def queues(self) -> dict[str, dict[str, int]]:
        import boto3

        sqs = boto3.client("sqs")
        names = {"visible": "ApproximateNumberOfMessages", "in_flight": "ApproximateNumberOfMessagesNotVisible",
                 "delayed": "ApproximateNumberOfMessagesDelayed"}
        out = {}
        for queue, url in (("queue", self.stack.resources.queue_url), ("dead_letter_queue", self.stack.resources.dlq_url)):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            out[queue] = {k: int(attributes.get(v, 0)) for k, v in names.items()}
        return out


def _one_study(h: Harness, paths: list[Path]) -> dict[str, Any]:
    """One study alone on the stack: timings, requests by who/operation, the stored record."""
    before = h.requests.snapshot()
    invocations_before = len(h.invocations)
    t0 = time.monotonic()
    created = h.create(paths)
    t1 = time.monotonic()
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        codes = list(pool.map(lambda item: h.post_file(*item), zip(created["uploads"], paths)))
    t2 = time.monotonic()
    if set(codes) != {204}:
        raise RuntimeError(f"file uploads answered {Counter(codes)}")
    view, polls = h.wait(created["study_id"], t2)
    t3 = time.monotonic()
    # The invocation that read the study goes on after DONE is visible (it deletes the raw uploads:
    # seconds for 300 files): wait for it, so its duration and outcome are this study's.
    waited = time.monotonic()
    while created["study_id"] not in h.invocation_ms and time.monotonic() - waited < 120:
        time.sleep(0.05)
    mid = h.requests.snapshot()
    h.get(created["study_id"])  # one more GET of the DONE study: what a poll costs
    after = h.requests.snapshot()
    item = h.item(created["study_id"])
    timings = {k: float(v) for k, v in (item.get("timings_ms") or {}).items()}
    return {
        "study_id": created["study_id"], "status": view["status"], "polls": polls,
        "create_s": t1 - t0, "upload_s": t2 - t1, "last_file_to_result_s": t3 - t2,
        "upload_to_result_s": t3 - t1, "create_to_result_s": t3 - t0,
        "timings_ms": timings, "attempts": int(item.get("attempts", 0)), "files_read": int(item.get("files_read", 0)),
        "reads": h.reads[created["study_id"]], "read_ms": h.read_ms.get(created["study_id"]),
        "invocation_ms": h.invocation_ms.get(created["study_id"]),
        "arrival_ms": [ms for ms, read in h.invocations[invocations_before:] if read is None],
        "requests": mid - before, "poll_requests": after - mid,
        "item_bytes": _item_bytes(item), "pending_item_bytes": _item_bytes({k: item[k] for k in PENDING_FIELDS if k in item}),
        "upload_bytes": sum(p.stat().st_size for p in paths),
        "previews": sum(len(v) for v in (item.get("previews") or {}).values()),
        "stack_previews": sum(name in STACK_NAMES for v in (item.get("previews") or {}).values() for name in v),
    }


def _size_result(n: int, runs: list[dict[str, Any]], source: str, model_load_ms: float) -> dict[str, Any]:
    last = runs[-1]
    timings = {stage: summary([r["timings_ms"][stage] for r in runs if stage in r["timings_ms"]])
               for stage in runs[0]["timings_ms"]}
    compute = [sum(r["timings_ms"].get(s, 0.0) for s in ("headers", "slices", "key_previews")) for r in runs]
    requests = {k: v for k, v in _flat(last["requests"]).items()}
    invocation = [r["invocation_ms"] for r in runs if r["invocation_ms"]]
    inv_med = summary(invocation)["median"] if invocation else None
    return {
        "slices": n, "runs": len(runs), "source": source,
        "statuses": dict(Counter(r["status"] for r in runs)),
        "upload_to_result_s": summary([r["upload_to_result_s"] for r in runs]),
        "create_to_result_s": summary([r["create_to_result_s"] for r in runs]),
        "upload_s": summary([r["upload_s"] for r in runs]),
        "last_file_to_result_s": summary([r["last_file_to_result_s"] for r in runs]),
        "timings_ms": timings,
        "compute_ms": summary(compute),  # headers + slices + key previews: the model and PNG work
        "ms_per_slice": summary([r["timings_ms"].get("slices", 0.0) / n for r in runs]),
        "compute_ms_per_slice": summary([c / n for c in compute]),
        "read_invocation_ms": summary(invocation),
        "read_ms": summary([r["read_ms"] for r in runs if r["read_ms"]]),
        "arrival_invocations": n - 1,
        "arrival_invocation_ms": summary([ms for r in runs for ms in r["arrival_ms"]]),
        "attempts": [r["attempts"] for r in runs], "reads": [r["reads"] for r in runs],
        "files_read": [r["files_read"] for r in runs], "previews": last["previews"],
        "stack_previews": last["stack_previews"],
        "requests_per_study": requests, "requests_per_poll": _flat(last["poll_requests"]),
        "item_bytes": last["item_bytes"], "pending_item_bytes": last["pending_item_bytes"],
        "upload_bytes": last["upload_bytes"],
        "model_load_ms": round(model_load_ms, 1),
        "cold_share_model_load": round(model_load_ms / (model_load_ms + inv_med), 3) if inv_med else None,
    }


def _concurrent(h: Harness, studies: int, n: int) -> dict[str, Any]:
    """``studies`` studies of ``n`` slices at once: created together, their files POSTed interleaved
    (every study's first file, then every study's second, ...), all polled until final."""
    inputs = [window_inputs(n, k) for k in range(studies)]
    reads_before = Counter(h.reads)
    invocations_before = len(h.invocations)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(h.create, inputs))
    order = [(k, i) for i in range(n) for k in range(studies)]
    uploaded_at: dict[int, float] = {}
    lock = threading.Lock()

    def post(ki: tuple[int, int]) -> int:
        k, i = ki
        code = h.post_file(created[k]["uploads"][i], inputs[k][i])
        with lock:
            uploaded_at[k] = max(uploaded_at.get(k, 0.0), time.time())
        return code

    with ThreadPoolExecutor(16) as pool:
        codes = Counter(pool.map(post, order))
    uploads_done = time.monotonic() - started
    pending = {c["study_id"] for c in created}
    statuses: dict[str, str] = {}
    while pending and time.monotonic() - started < STUDY_TIMEOUT_S:
        with ThreadPoolExecutor(4) as pool:
            views = list(pool.map(h.get, sorted(pending)))
        for view in views:
            if view["status"] in ("DONE", "FAILED"):
                statuses[view["study_id"]] = view["status"]
                pending.discard(view["study_id"])
        if pending:
            time.sleep(POLL_S)
    all_final = time.monotonic() - started
    waited = time.monotonic()  # the last reading invocations go on after DONE (deleting the uploads)
    while time.monotonic() - waited < 120 and any(c["study_id"] not in h.invocation_ms for c in created
                                                 if statuses.get(c["study_id"]) == "DONE"):
        time.sleep(0.1)
    time.sleep(1.0)  # let the poller delete the last message
    items = [h.item(c["study_id"]) for c in created]
    status_of = [item.get("status", "MISSING") for item in items]
    attempts = [int(item.get("attempts", 0)) for item in items]

    def epoch(iso: str) -> float:
        from datetime import datetime, timezone

        return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()

    last_file_to_done = [epoch(item["updated_at"]) - uploaded_at[k] for k, item in enumerate(items)
                         if item.get("status") == "DONE"]
    reads = [h.reads[c["study_id"]] - reads_before[c["study_id"]] for c in created]
    per_slice = [float(item["timings_ms"]["slices"]) / n for item in items if item.get("timings_ms")]
    queues = h.queues()
    return {
        "studies": studies, "slices": n, "files": studies * n, "upload_codes": dict(codes),
        "uploads_done_s": round(uploads_done, 2), "all_final_s": round(all_final, 2),
        "files_per_s": round(studies * n / all_final, 1),
        "status_counts": dict(Counter(status_of)), "done": status_of.count("DONE"),
        "attempts_eq_1": sum(a == 1 for a in attempts), "read_twice": sum(r > 1 for r in reads),
        "reads_eq_1": sum(r == 1 for r in reads), "files_read_all": sum(int(item.get("files_read", 0)) == n for item in items),
        "distinct_study_ids": len({c["study_id"] for c in created}),
        "last_file_to_done_s": summary(last_file_to_done),
        "ms_per_slice": summary(per_slice),
        "inference_invocations": len(h.invocations) - invocations_before,
        "queues": queues,
        "deadline_messages_waiting": queues["queue"]["delayed"],
        "drained": all(q["visible"] == 0 and q["in_flight"] == 0 for q in queues.values())
                   and queues["dead_letter_queue"]["delayed"] == 0,
    }


def concurrent_run(studies: int, n: int, upload_expires: int) -> dict[str, Any]:
    """:func:`_concurrent` on a fresh local stack whose upload links last ``upload_expires`` s."""
    from infra.run_local import LocalStack
    from strokelens.api.studies import DEADLINE_GRACE_SECONDS

    with LocalStack(port=0, parameters={"CreateLimitPerHour": max(120, studies + 5),
                                        "UploadUrlExpiresSeconds": upload_expires}) as stack:
        out = _concurrent(Harness(stack), studies, n)
    out["deadline_s"] = min(900, upload_expires + DEADLINE_GRACE_SECONDS)
    return out


def run(settings: Settings) -> dict[str, Any]:
    import os

    from infra.run_local import LocalStack

    os.environ["MODEL_DIR"] = str(settings.model_dir)
    if settings.quick:
        plan, concurrent = {10: 1}, (3, 10)
    else:
        plan, concurrent = {1: 3, 40: 3, 120: 3, 300: 2}, (50, 40)
    total = sum(plan.values()) + concurrent[0] + 5
    floor_paths, floor_source = study_inputs(FLOOR_SIZE if not settings.quick else 10, 0)
    quiet = quiet_breakdown(settings.model_dir, floor_paths, 1 if settings.quick else 3)
    quiet["source"] = floor_source
    with LocalStack(port=0, parameters={"CreateLimitPerHour": max(120, total)}) as stack:
        from strokelens.api.studies import DEADLINE_GRACE_SECONDS

        deadline_s = min(900, stack.api.CONFIG.upload_expires + DEADLINE_GRACE_SECONDS)
        h = Harness(stack)
        sizes: dict[str, Any] = {}
        for n, repeats in plan.items():
            runs = []
            for run_index in range(repeats):
                paths, _ = study_inputs(n, run_index)
                runs.append(_one_study(h, paths))
            sizes[str(n)] = _size_result(n, runs, "; ".join(sorted({study_inputs(n, i)[1] for i in range(repeats)})),
                                         h.model_load_ms)
        busy = _concurrent(h, *concurrent)
    long_deadline = None if settings.quick else concurrent_run(*concurrent, upload_expires=LONG_UPLOAD_EXPIRES_S)
    api = {"create_ms": summary([ms for route, ms in h.api_ms if route.startswith("POST")]),
           "get_ms": summary([ms for route, ms in h.api_ms if route.startswith("GET")])}
    return {"poll_interval_s": POLL_S, "upload_threads": UPLOAD_THREADS, "sizes": sizes, "concurrent": busy,
            "concurrent_long_deadline": long_deadline, "deadline_s": deadline_s,
            "quiet": quiet, "deadline_note": f"{deadline_s} s after the study was created, then dropped as already final",
            "api_handler": api, "model_load_ms": round(h.model_load_ms, 1),
            "inference_timeout_s": INFERENCE_TIMEOUT_S,
            "cost": cost(sizes, api)}


# -- cost ----------------------------------------------------------------------------------------

def _counts(s: dict[str, Any], api: dict[str, Any]) -> dict[str, float]:
    """Billable requests of one study of ``s['slices']`` slices, from the counted calls (plus what
    happens after the run: the deadline message's delivery, and the clinician viewing the result)."""
    from collections import Counter as C

    req = C()
    for key, v in s["requests_per_study"].items():
        who, service, op = key.split(":")
        req[(who, service, op)] = v
    n = s["slices"]
    polls = polls_until(s["last_file_to_result_s"]["median"])
    get_poll = C()
    for key, v in s["requests_per_poll"].items():
        who, service, op = key.split(":")
        get_poll[(who, service, op)] = v
    item_kb, pending_kb = math.ceil(s["item_bytes"] / 1024), math.ceil(s["pending_item_bytes"] / 1024)
    dynamo_writes_inference = _sum(req, "inference", "dynamodb", ("UpdateItem", "PutItem"))
    # The last write (complete) is the whole item; the others (arrivals, claim) a PENDING item at most.
    wru = (dynamo_writes_inference - 1) * pending_kb + item_kb
    wru += _sum(req, "api", "dynamodb", ("PutItem", "UpdateItem")) * 1  # create (small item) + rate counter
    rru_inference = _sum(req, "inference", "dynamodb", ("GetItem",)) * 0.5 * math.ceil(s["pending_item_bytes"] / 4096)
    rru_polls = polls * _sum(get_poll, "api", "dynamodb", ("GetItem",)) * 0.5 * math.ceil(s["item_bytes"] / 4096)
    viewer_gets = s["previews"]  # the clinician looks at every preview once (scrolls the whole stack)
    return {
        "http_api_requests": 1 + polls,
        "api_invocations": 1 + polls,
        "inference_invocations": n + 1,  # one per file notification (BatchSize 1) + the deadline message
        "s3_put": _sum(req, "client", "s3", ("PutObject",)) + _sum(req, "inference", "s3", ("PutObject",)),
        "s3_get": _sum(req, "inference", "s3", ("GetObject",)) + viewer_gets,
        "s3_delete_free": _sum(req, None, "s3", ("DeleteObject", "DeleteObjects")),
        "sqs_requests": n + _sum(req, "esm", "sqs") + _sum(req, "api", "sqs") + 2,  # + S3's sends; deadline receive+delete
        "dynamodb_wru": wru,
        "dynamodb_rru": rru_inference + rru_polls + 0.5,  # + the deadline message's read
        "log_bytes": (n + 2 + polls) * LOG_BYTES_PER_INVOCATION,
        "polls": polls,
    }


def _price(c: dict[str, float], api: dict[str, Any]) -> dict[str, float]:
    from benchmarks.cost import API_MEMORY_MB, INFERENCE_MEMORY_MB, PRICES, _gb_s

    p = {k: v[0] for k, v in PRICES.items()}
    arrival_ms = c.get("arrival_ms", 5.0)
    inference_gb_s = _gb_s(c["inference_ms"], INFERENCE_MEMORY_MB) + c["arrival_invocations"] * _gb_s(arrival_ms, INFERENCE_MEMORY_MB)
    api_gb_s = c["api_invocations"] * _gb_s(api["get_ms"]["median"], API_MEMORY_MB)
    lines = {
        "lambda_inference": inference_gb_s * p["lambda_gb_s"] + c["inference_invocations"] * p["lambda_request"],
        "lambda_api": api_gb_s * p["lambda_gb_s"] + c["api_invocations"] * p["lambda_request"],
        "api_gateway_http": c["http_api_requests"] * p["http_api_request"],
        "s3_put": c["s3_put"] * p["s3_put"],
        "s3_get": c["s3_get"] * p["s3_get"],
        "dynamodb": c["dynamodb_wru"] * p["dynamodb_wru"] + c["dynamodb_rru"] * p["dynamodb_rru"],
        "sqs": c["sqs_requests"] * p["sqs_request"],
        "cloudwatch_logs": c["log_bytes"] / 1e9 * p["logs_ingest_gb"],
    }
    out = {k: round(v * 1000, 4) for k, v in lines.items()}
    out["total"] = round(sum(lines.values()) * 1000, 4)
    return out


def cost(sizes: dict[str, Any], api: dict[str, Any]) -> dict[str, Any]:
    """USD per 1,000 studies of each size (warm; cold starts are in benchmarks/cost.py's model), what
    dominates, and what two other designs would cost with the same measurements."""
    out: dict[str, Any] = {}
    for key, s in sizes.items():
        n = s["slices"]
        c = _counts(s, api)
        # n - 1 arrival invocations (one DynamoDB update each) and the deadline message's (one read);
        # the invocation that saw the last file reads the study (measured apart).
        c["arrival_invocations"] = n
        c["arrival_ms"] = (s["arrival_invocation_ms"].get("median") or 5.0)
        c["inference_ms"] = s["read_invocation_ms"]["median"]
        base = _price(c, api)
        stack_previews = s["stack_previews"]  # display + heat map per slice (no heat map where not assessable)
        packed = dict(c, s3_put=c["s3_put"] - stack_previews + 1, s3_get=c["s3_get"] - stack_previews + 1)
        files = max(1, math.ceil(s["upload_bytes"] / MULTIPART_PART_BYTES))
        one_upload = dict(packed,
                          # one archive: multipart create + parts + complete (or one POST when small) ...
                          s3_put=packed["s3_put"] - n + (1 if files == 1 else files + 2),
                          s3_get=packed["s3_get"] - n + 1,
                          # ... one notification, one invocation, no arrival writes.
                          inference_invocations=2, arrival_invocations=1,
                          sqs_requests=c["sqs_requests"] - 3 * (n - 1),
                          dynamodb_wru=c["dynamodb_wru"] - (n - 1) * math.ceil(s["pending_item_bytes"] / 1024),
                          log_bytes=(3 + c["polls"]) * LOG_BYTES_PER_INVOCATION)
        priced = {"as built": base, "packed previews (one object per study's stack)": _price(packed, api),
                  "packed previews + one upload per study": _price(one_upload, api)}
        lines = sorted(((k, v) for k, v in base.items() if k != "total"), key=lambda kv: -kv[1])
        out[key] = {"slices": n, "counts": {k: round(v, 2) for k, v in c.items()}, "per_1000_studies_usd": priced,
                    "dominant": [{"line": k, "usd": v, "share": round(v / base["total"], 3)} for k, v in lines[:3]],
                    "counts_packed": {k: round(packed[k], 2) for k in ("s3_put", "s3_get")},
                    "counts_one_upload": {k: round(one_upload[k], 2) for k in
                                          ("s3_put", "s3_get", "inference_invocations", "sqs_requests", "dynamodb_wru")}}
    return out


def cold_share(studies: dict[str, Any], cold: dict[str, Any]) -> None:
    """Adds, per size, a whole cold start's share (interpreter start + handler import, model load
    included: the cold-start section's medians) of the invocation that reads the study."""
    handler = cold["handler"]
    init_ms = (handler["interpreter_start_s"]["median"] + handler["import_s"]["median"]) * 1e3
    studies["cold_init_ms"] = round(init_ms, 1)
    for s in studies["sizes"].values():
        read = s["read_invocation_ms"].get("median")
        s["cold_share_init"] = round(init_ms / (init_ms + read), 3) if read else None


def quiet_breakdown(model_dir: Path, paths: list[Path], repeats: int) -> dict[str, Any]:
    """Per slice, by stage, with nothing else running (no local stack, no HTTP threads): the work
    ``read_study`` does for each slice of the stack (decode -> model -> heat map -> the two stack
    previews), and ``read_study`` of the whole study without and with previews."""
    from collections import defaultdict

    from strokelens.reader.model.served import ServedModel
    from strokelens.reader.reading import STACK_PREVIEWS, read_scan, read_study

    model = ServedModel(model_dir, num_threads=1)
    files = [p.read_bytes() for p in paths]
    read_study(files[:2], model, "CT", with_previews=True)  # warm-up
    stages: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for data in files:
            t0 = time.perf_counter()
            reading = read_scan(data, model, "CT", with_previews=True, preview_names=STACK_PREVIEWS)
            total = (time.perf_counter() - t0) * 1e3
            for stage, ms in reading.timings_ms.items():
                stages[stage].append(ms)
            stages["total"].append(total)
            stages["without_previews"].append(total - reading.timings_ms.get("previews", 0.0))
    whole: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for previews in (False, True):
            t0 = time.perf_counter()
            study = read_study(files, model, "CT", with_previews=previews)
            ms = (time.perf_counter() - t0) * 1e3
            whole["with_previews" if previews else "no_previews"].append(ms)
            if previews:
                for stage, value in study.timings_ms.items():
                    whole[f"stage_{stage}"].append(value)
    return {"slices": len(files), "repeats": repeats,
            "per_slice_ms": {stage: summary(v) for stage, v in stages.items()},
            "study_ms": {k: summary(v) for k, v in whole.items()},
            "study_ms_per_slice": {k: round(summary(v)["median"] / len(files), 3) for k, v in whole.items()
                                   if not k.startswith("stage_")}}


def _sp(s: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not s or not s.get("n"):
        return "–"
    f = f"{{:.{digits}f}}"
    if s["n"] == 1:
        return f.format(s["median"] * scale)
    return f"{f.format(s['median'] * scale)} ({f.format(s['p5'] * scale)}–{f.format(s['p95'] * scale)})"


def _req(s: dict[str, Any], who: str | None, service: str, ops: tuple[str, ...] = ()) -> int:
    total = 0
    for key, v in s["requests_per_study"].items():
        w, sv, op = key.split(":")
        if (who is None or w == who) and sv == service and (not ops or op in ops):
            total += v
    return total


def render(st: dict[str, Any]) -> list[str]:
    sizes = st["sizes"]
    cols = list(sizes)
    out = ([f"_{st['note']}_", ""] if st.get("note") else []) + [f"Studies of real ct-ich head CT slices (PNG) through the HTTP API of the local stack: POST /api/studies, "
           f"every file POSTed to its presigned form ({st['upload_threads']} at a time), GET /api/studies/{{id}} every "
           f"{st['poll_interval_s']} s until DONE; one study at a time, medians over the runs (p5–p95 where more than one). "
           "Inference timings are the study's own `timings_ms` (its DynamoDB item); `read` and `write_previews` are "
           "moto S3 calls in this process. Inputs: " + "; ".join(f"{k} slices: {s['source']}" for k, s in sizes.items()) + ".", "",
           "| per study | " + " | ".join(f"{k} slice{'s' if k != '1' else ''}" for k in cols) + " |", "|---" * (len(cols) + 1) + "|"]

    def row(label: str, fn: Any) -> None:
        out.append(f"| {label} | " + " | ".join(fn(sizes[k]) for k in cols) + " |")

    row("runs / DONE / attempts = 1 / read once", lambda s: f"{s['runs']} / {s['statuses'].get('DONE', 0)} / "
        f"{sum(a == 1 for a in s['attempts'])} / {sum(r == 1 for r in s['reads'])}")
    row("**upload → result** (s)", lambda s: _sp(s["upload_to_result_s"]))
    row("of which uploading the files (s)", lambda s: _sp(s["upload_s"]))
    row("last file → result (s)", lambda s: _sp(s["last_file_to_result_s"]))
    for stage in ("read", "headers", "slices", "key_previews", "write_previews"):
        row(f"`{stage}` (ms)", lambda s, stage=stage: _sp(s["timings_ms"].get(stage), digits=1))
    row("**inference per slice**: `slices` / n (ms)", lambda s: _sp(s["ms_per_slice"], digits=1))
    row("compute per slice: (headers + slices + key_previews) / n (ms)", lambda s: _sp(s["compute_ms_per_slice"], digits=1))
    row("invocation that reads the study (ms)", lambda s: _sp(s["read_invocation_ms"], digits=0))
    row("each other file's invocation (arrival) (ms)", lambda s: _sp(s["arrival_invocation_ms"], digits=1))
    row("model load / cold init share of the reading invocation",
        lambda s: f"{s['cold_share_model_load']:.1%} / " + (f"{s['cold_share_init']:.0%}" if s.get("cold_share_init") is not None else "–"))
    row("S3 PUT: browser uploads + inference (previews + slices JSON)",
        lambda s: f"{_req(s, 'client', 's3', ('PutObject',))} + {_req(s, 'inference', 's3', ('PutObject',))}")
    row("S3 GET / DELETE (inference)", lambda s: f"{_req(s, 'inference', 's3', ('GetObject',))} / "
        f"{_req(s, 'inference', 's3', ('DeleteObject', 'DeleteObjects'))}")
    row("DynamoDB: inference updates / API put + updates + gets",
        lambda s: f"{_req(s, 'inference', 'dynamodb')} / {_req(s, 'api', 'dynamodb', ('PutItem',))} + "
        f"{_req(s, 'api', 'dynamodb', ('UpdateItem',))} + {_req(s, 'api', 'dynamodb', ('GetItem',))}")
    row("SQS: poller receives + deletes / API sends (deadline)",
        lambda s: f"{_req(s, 'esm', 'sqs', ('ReceiveMessage',))} + {_req(s, 'esm', 'sqs', ('DeleteMessageBatch', 'DeleteMessage'))}"
        f" / {_req(s, 'api', 'sqs')}")
    row("previews stored / DynamoDB item (bytes, DONE)", lambda s: f"{s['previews']} / {s['item_bytes']:,}")
    q = st["quiet"]
    ps = q["per_slice_ms"]
    stages = [k for k in ps if k not in ("total", "without_previews")]
    out += ["", f"The same per-slice work with nothing else running (no local stack, no HTTP threads; {q['source']}, "
            f"{q['repeats']} pass{'es' if q['repeats'] > 1 else ''}, 1 thread), ms per slice, median (p5–p95):", "",
            "| " + " | ".join(stages) + " | **decode → probabilities + heat map** | with the 2 stack previews |",
            "|---" * (len(stages) + 2) + "|",
            "| " + " | ".join(_sp(ps[k]) for k in stages) + f" | **{_sp(ps['without_previews'])}** | {_sp(ps['total'])} |", "",
            f"`read_study` of the whole {q['slices']}-slice study, quiet: {_sp(q['study_ms']['no_previews'], digits=0)} ms without "
            f"previews, {_sp(q['study_ms']['with_previews'], digits=0)} ms with them "
            f"({q['study_ms_per_slice']['no_previews']:.1f} and {q['study_ms_per_slice']['with_previews']:.1f} ms per slice; "
            "with previews it also renders every window of the 3 key slices)."]
    runs = [("template defaults", st["concurrent"])]
    if st.get("concurrent_long_deadline"):
        runs.append(("upload links 840 s", st["concurrent_long_deadline"]))
    c = st["concurrent"]
    out += ["", f"**{c['studies']} concurrent {c['slices']}-slice studies** ({c['files']} files; consecutive windows of "
            f"{c['slices']} real slices): all created, then every file POSTed interleaved across the studies by 16 threads, "
            "all polled until final. The local poller is one serial container (template BatchSize 1), so the files' "
            "notifications queue behind each other here. Each study's deadline message (delayed "
            f"{st.get('deadline_s', 360)} s from creation: the upload links' expiry + 60 s) reads whatever has arrived "
            "by then; the second run gives the links 840 s (deadline 900 s, SQS's longest delay) on a fresh stack.", "",
            "| metric | " + " | ".join(name for name, _ in runs) + " |", "|---" * (len(runs) + 1) + "|"]

    def crow(label: str, fn: Any) -> None:
        out.append(f"| {label} | " + " | ".join(fn(r) for _, r in runs) + " |")

    crow("deadline after creation", lambda r: f"{r.get('deadline_s', st.get('deadline_s', 360))} s")
    crow("uploads finished / all final after", lambda r: f"{r['uploads_done_s']} s / {r['all_final_s']} s ({r['files_per_s']} files/s)")
    crow("DONE / attempts = 1 / read once / read twice", lambda r: f"{r['done']} / {r['attempts_eq_1']} / {r['reads_eq_1']} / "
         f"{r['read_twice']} (statuses {r['status_counts']})")
    crow(f"**studies read with all {c['slices']} files**", lambda r: f"**{r['files_read_all']}** of {r['studies']}")
    crow("study's last file uploaded → DONE written (s)", lambda r: _sp(r["last_file_to_done_s"]))
    crow("inference per slice under this load (ms)", lambda r: _sp(r["ms_per_slice"], digits=1))
    crow("inference invocations until all final", lambda r: str(r["inference_invocations"]))
    crow("queue: visible / in flight / delayed", lambda r: f"{r['queues']['queue']['visible']} / "
         f"{r['queues']['queue']['in_flight']} / {r['queues']['queue']['delayed']}")
    crow("dead-letter queue: visible / in flight", lambda r: f"{r['queues']['dead_letter_queue']['visible']} / "
         f"{r['queues']['dead_letter_queue']['in_flight']}")
    cost = st["cost"]
    designs = list(next(iter(cost.values()))["per_1000_studies_usd"])
    out += ["", "**Cost per 1,000 studies** (USD, warm, us-east-1 on-demand prices of the cost model above; counted "
            "requests, the site's polling back-off from the measured last file → result time, the clinician viewing "
            "every stored preview once; the reading invocation's measured duration scaled to 1024 MB):", "",
            "| design | " + " | ".join(f"{k} slice{'s' if k != '1' else ''}" for k in cost) + " |", "|---" * (len(cost) + 1) + "|"]
    for d in designs:
        out.append(f"| {d} | " + " | ".join(f"{cost[k]['per_1000_studies_usd'][d]['total']:.3f}" for k in cost) + " |")
    lines = [k for k in next(iter(cost.values()))["per_1000_studies_usd"]["as built"] if k != "total"]
    for line in lines:
        out.append(f"| … as built: {line} | " + " | ".join(f"{cost[k]['per_1000_studies_usd']['as built'][line]:.4f}" for k in cost) + " |")
    out += ["", "What dominates (as built): " + "; ".join(
        f"{k} slices: " + ", ".join(f"{d['line']} {d['share']:.0%}" for d in v["dominant"]) for k, v in cost.items()) + ".",
        "Requests per study (as built → packed previews → + one upload): " + "; ".join(
        f"{k} slices: S3 PUT {v['counts']['s3_put']:g} → {v['counts_packed']['s3_put']:g} → {v['counts_one_upload']['s3_put']:g}, "
        f"inference invocations {v['counts']['inference_invocations']:g} → {v['counts_one_upload']['inference_invocations']:g}, "
        f"SQS {v['counts']['sqs_requests']:g} → {v['counts_one_upload']['sqs_requests']:g}, "
        f"DynamoDB WRU {v['counts']['dynamodb_wru']:g} → {v['counts_one_upload']['dynamodb_wru']:g}" for k, v in cost.items()) + ".",
        "Packed previews: every slice's display and heat map in one object per study (an index of byte ranges; the "
        "viewer reads slices with Range GETs) instead of 2 PNG objects per slice; the key slices' full previews stay "
        "separate. One upload: the site packs the study into one object (a single POST, or a multipart upload of 8 MB "
        "parts when larger), so one notification, one invocation and no per-file arrival writes. S3 DELETEs are free."]
    return out
