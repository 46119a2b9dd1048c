"""The inference function's single-scan path: one uploaded file, one claim, one read, one write.

Per notification: claim the scan (conditional write; a duplicate, or a scan out of attempts,
stops here: see :meth:`ScanPipeline._not_claimed`) -> size checks from the notification (empty,
over ``max_upload_bytes``: refused unread) -> read the upload (bounded, and only the object the
notification announced: its ETag) -> ``read_scan`` (decode/preprocess/model, previews) -> previews
to S3 -> DONE with the result, or FAILED with a code for bad input (final: the same bytes would
fail the same way) -> the raw upload deleted once the scan is final. An unexpected error releases
the claim and re-raises, so SQS retries only that record; on the last allowed delivery the scan
is marked FAILED/INTERNAL_ERROR and the message goes on to the DLQ. A read that dies without a
word (timeout, out of memory) is ended READ_ABORTED by the next delivery that finds its attempts
spent. A scan whose file never came is ended by its deadline message (:meth:`ScanPipeline.deadline`).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable

from strokelens.aws.scans_table import ScansTable
from strokelens.aws.uploads import delete_upload, read_upload, upload_exists, write_preview
from strokelens.core.errors import MESSAGES, ScanError
from strokelens.core.records import UPLOAD_GRACE_SECONDS, epoch_of, scan_deadline_message, upload_key
from strokelens.core.settings import Settings
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import Reading, read_scan

# (metric name, unit as Powertools' ``MetricUnit`` value, e.g. "Count", value) -> added to the
# invocation's metrics; the handler module binds it to its Powertools ``Metrics``.
AddMetric = Callable[[str, str, float], None]
# The reader: (file bytes, model, declared modality, with_previews=...) -> Reading; ScanError for bad input.
ReadScan = Callable[..., Reading]


class ScanPipeline:
    """Bound once per container to the handler's settings, clients, model, logger and metrics."""

    def __init__(self, config: Settings, s3: Any, scans: ScansTable, model: ServedModel, logger: Any,
                 count_failure: Callable[[str], None], add_metric: AddMetric,
                 requeue: Callable[[str, int], None] | None = None, read_scan: ReadScan = read_scan) -> None:
        self.config, self.s3, self.scans, self.model, self.logger = config, s3, scans, model, logger
        self.count_failure = count_failure  # (error code) -> the ScanFailed metric
        self.add_metric = add_metric
        self.requeue = requeue  # (message body, delay seconds) -> sent to the scan queue
        self.read_scan = read_scan  # an attribute, so fault injection (infra/faults.py) can wrap it

    def read(self, owner_id: str, scan_id: str, key: str, size: int | None, receive_count: int,
             etag: str | None = None) -> str:
        """Claim -> size checks -> read the upload -> ``read_scan`` -> previews -> DONE, or FAILED with a
        code -> upload deleted; returns what happened ("done", "duplicate", "failed:CODE").

        ``size`` and ``etag`` are the notification's; an unexpected error releases the claim (or, on
        the last delivery, ends the scan FAILED/INTERNAL_ERROR) and is raised again.
        """
        token = secrets.token_hex(8)
        record = self.scans.claim(owner_id, scan_id, token, self.config.lease_seconds,
                                  max_attempts=self.config.max_receive_count)
        if record is None:
            return self._not_claimed(owner_id, scan_id, key, etag)
        self.logger.append_keys(scan_id=scan_id)
        try:
            if size == 0:
                raise ScanError("EMPTY_FILE")
            if size is not None and size > self.config.max_upload_bytes:
                raise ScanError("TOO_LARGE", f"{size} bytes")
            t0 = time.perf_counter()
            data, read_etag = read_upload(self.s3, self.config.uploads_bucket, key, self.config.max_upload_bytes, etag)
            read_ms = (time.perf_counter() - t0) * 1e3
            reading = self.read_scan(data, self.model, record.get("modality_declared"), with_previews=True,
                                     text_reported=bool(record.get("text_reported")))
            t0 = time.perf_counter()
            previews = {name: write_preview(self.s3, self.config.artifacts_bucket, owner_id, scan_id, name, png)
                        for name, png in reading.previews.items()}
            timings = {"read": round(read_ms, 3), **reading.timings_ms,
                       "write_previews": round((time.perf_counter() - t0) * 1e3, 3)}
            stored = self.scans.complete(owner_id, scan_id, token, reading.result, timings, reading.warnings,
                                         previews, read_etag)
        except ScanError as err:  # bad input is final: the same bytes would fail the same way
            self.logger.info("Scan refused", extra={"code": err.code, "detail": err.detail})
            self.count_failure(err.code)
            if self.scans.fail(owner_id, scan_id, token, err.code, err.message):
                delete_upload(self.s3, self.config.uploads_bucket, key)
            return f"failed:{err.code}"
        except Exception:
            self._give_up_or_release(owner_id, scan_id, key, token, receive_count)
            raise  # the batch processor reports this record as failed; SQS retries, then the DLQ consumer ends it
        if stored:  # only once the result is stored: a retry still has the file
            delete_upload(self.s3, self.config.uploads_bucket, key)
        self.add_metric("InferenceTime", "Milliseconds", timings.get("cnn", 0.0))
        self.add_metric("ScanDone", "Count", 1)
        self.logger.info("Scan read", extra={"label": reading.result.label, "timings_ms": timings})
        return "done"

    def _give_up_or_release(self, owner_id: str, scan_id: str, key: str, token: str, receive_count: int) -> None:
        """After an unexpected error: on the last delivery record a failure a clinician can read,
        otherwise hand the claim back so the SQS retry can take it."""
        if receive_count >= self.config.max_receive_count:
            self.count_failure("INTERNAL_ERROR")
            if self.scans.fail(owner_id, scan_id, token, "INTERNAL_ERROR", MESSAGES["INTERNAL_ERROR"]):
                delete_upload(self.s3, self.config.uploads_bucket, key)
        else:
            self.scans.release(owner_id, scan_id, token)

    def _not_claimed(self, owner_id: str, scan_id: str, key: str, record_etag: str | None) -> str:
        """Why a scan could not be claimed: out of attempts (ended here as READ_ABORTED: earlier
        attempts died without a word, e.g. a timeout or out-of-memory kill), or a duplicate event."""
        if self.scans.fail_unfinished(owner_id, scan_id, "READ_ABORTED", MESSAGES["READ_ABORTED"],
                                      min_attempts=self.config.max_receive_count):
            self.logger.warning("Scan out of attempts: marked FAILED", extra={"scan_id": scan_id})
            self.count_failure("READ_ABORTED")
            delete_upload(self.s3, self.config.uploads_bucket, key)
            return "failed:READ_ABORTED"
        self.logger.info("Scan already finished or in progress; duplicate event skipped", extra={"scan_id": scan_id})
        self.add_metric("DuplicateEvent", "Count", 1)
        record = self.scans.get(owner_id, scan_id) or {}
        if record.get("status") in ("DONE", "FAILED"):
            # A final scan's file is never read again: an upload arriving now (a re-used upload form,
            # or a late duplicate) is deleted unread, and the result stays with the file that was read.
            if record_etag and record.get("upload_etag") and record["upload_etag"] != record_etag.strip('"'):
                self.logger.warning("Upload replaced after its scan was read; deleted unread", extra={"scan_id": scan_id})
                self.add_metric("UploadReplaced", "Count", 1)
            delete_upload(self.s3, self.config.uploads_bucket, key)
        return "duplicate"

    def deadline(self, owner_id: str, scan_id: str, now: float | None = None) -> str:
        """A scan whose file never came ends FAILED/UPLOAD_NOT_RECEIVED in the table, as the API already
        shows it. Order: the record (consistent) must be PENDING and never claimed, else its own messages
        finish it -> before the upload link's life + grace is over (SQS delays 900 s at most) the deadline
        is sent again for the rest -> a file in the bucket whose notification is still queued (a
        backed-up queue, an outage) is left to that notification: read, never called missing -> FAILED.

        Returns "not-waiting", "deferred", "arrived" or "failed:UPLOAD_NOT_RECEIVED".
        """
        record = self.scans.get(owner_id, scan_id, consistent=True)
        if record is None or record.get("status") != "PENDING" or int(record.get("attempts") or 0):
            return "not-waiting"
        left = (epoch_of(record["created_at"]) + self.config.upload_expires + UPLOAD_GRACE_SECONDS
                - (time.time() if now is None else now))
        if left > 0 and self.requeue is not None:
            self.requeue(scan_deadline_message(owner_id, scan_id), min(900, int(left) + 1))
            return "deferred"
        if upload_exists(self.s3, self.config.uploads_bucket, upload_key(owner_id, scan_id)):
            return "arrived"
        if self.scans.fail_unclaimed(owner_id, scan_id, "UPLOAD_NOT_RECEIVED", MESSAGES["UPLOAD_NOT_RECEIVED"]):
            self.logger.info("Upload never arrived: scan marked FAILED", extra={"scan_id": scan_id})
            self.count_failure("UPLOAD_NOT_RECEIVED")
            return "failed:UPLOAD_NOT_RECEIVED"
        return "not-waiting"
