"""The inference function's study path: files arrive one notification at a time; the study is
read once, as a whole, by the invocation that saw its last file arrive (or by its deadline
message when some never came). One claim, one read, one aggregated write.

Per arrival: record the index (duplicates add nothing) -> not all there: done -> all there:
claim the study -> read every arrived file (bounded, 250 MB in all) -> ``read_study`` (series,
slices, aggregate; bounded by the invocation's remaining time less ``STUDY_WRITE_MARGIN_MS``, past
which it ends FAILED/STUDY_TOO_LONG rather than time out) -> previews and per-slice JSON to S3 ->
DONE, or FAILED with a code -> raw uploads deleted once the study is final. A read that dies
without a word (timeout, out of memory) keeps its claim until the lease runs out; a message
meeting that live lease is sent on rather than spent, so every study still ends DONE or FAILED
(READ_ABORTED once attempts are spent).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Protocol

from strokelens.aws.scans_table import ScansTable
from strokelens.aws.uploads import delete_upload, delete_uploads, read_upload, write_json, write_previews
from strokelens.core.errors import MESSAGES, ScanError
from strokelens.core.schema import Notice
from strokelens.core.settings import Settings
from strokelens.core.records import epoch_of
from strokelens.core.studies import MAX_STUDY_BYTES, deadline_message, study_upload_key
from strokelens.reader.model.served import ServedModel
from strokelens.reader.reading import StudyReading, read_study, within_budget
from strokelens.reader.timing import Timer


# A deadline finding files still arriving waits this much longer, up to this age of the study.
DEADLINE_QUIET_SECONDS = 120
DEADLINE_MAX_SECONDS = 3600

# What a study's read leaves of the invocation (the Lambda timeout is 30 s at most): after the
# last slice, writing the previews (2 PNGs per slice, up to 1,000 S3 PUTs, 8 at a time), the
# per-slice JSON and the record, and the slice in progress when time runs out (the budget is
# checked between slices; a slice typically takes ~10 ms, the decoder's own limit is 8 s).
# Without it the invocation would time out, be retried and end READ_ABORTED minutes later; with it
# the study ends FAILED/STUDY_TOO_LONG on its first attempt, with its uploads deleted.
STUDY_WRITE_MARGIN_MS = 10_000


class RemainingTime(Protocol):
    """The one thing the pipeline asks of the Lambda context."""

    def get_remaining_time_in_millis(self) -> int: ...


def _time_left(context: RemainingTime | None) -> Callable[[], float] | None:
    """Seconds the study's read may still take: the invocation's remaining time less the margin."""
    if context is None:
        return None
    return lambda: (context.get_remaining_time_in_millis() - STUDY_WRITE_MARGIN_MS) / 1000


class LeaseHeld(Exception):
    """A live read holds the study and no queue is configured to send the work on: SQS redelivers it."""


class StudyPipeline:
    """Bound once per container to the handler's settings, clients, model and logger."""

    def __init__(self, config: Settings, s3: Any, scans: ScansTable, model: ServedModel, logger: Any,
                 count_failure: Any, requeue: Callable[[str, int], None] | None = None) -> None:
        self.config, self.s3, self.scans, self.model, self.logger = config, s3, scans, model, logger
        self.count_failure = count_failure
        self.requeue = requeue  # (message body, delay seconds) -> sent to the scan queue

    def _keys(self, owner_id: str, study_id: str, record: dict) -> list[str]:
        return [study_upload_key(owner_id, study_id, int(i)) for i in record.get("arrived") or ()]

    def _delete_uploads(self, owner_id: str, study_id: str, record: dict) -> None:
        failed = delete_uploads(self.s3, self.config.uploads_bucket, self._keys(owner_id, study_id, record))
        if failed:  # the study is final either way; the bucket's lifecycle rule deletes leftovers
            self.logger.warning("Raw uploads not deleted", extra={"scan_id": study_id, "codes": failed})

    def arrived(self, owner_id: str, study_id: str, index: int, key: str, receive_count: int,
                context: RemainingTime | None = None) -> str:
        """``context``: the invocation's Lambda context, which bounds the read (see :meth:`read`)."""
        study = self.scans.arrive(owner_id, study_id, index)
        if study is None:
            existing = self.scans.get(owner_id, study_id, consistent=True) or {}  # it may delete a late file
            if existing.get("status") in ("DONE", "FAILED"):  # a file after the study was read: never read
                delete_upload(self.s3, self.config.uploads_bucket, key)
                return "late"
            if existing.get("status") == "PROCESSING":
                if str(index) not in {str(i) for i in existing.get("arrived") or ()}:
                    delete_upload(self.s3, self.config.uploads_bucket, key)  # late: the read has its files
                # Maybe the redelivery of the arrival whose read died (timeout, out of memory): the
                # deadline may already be spent, so this message must not be: read() claims once
                # that lease has run out, and sends the work on while it has not.
                return self.read(owner_id, study_id, receive_count, context)
            return "not-waiting"
        if len(study.get("arrived") or ()) < int(study["files_expected"]):
            return "waiting"
        return self.read(owner_id, study_id, receive_count, context)

    def deadline(self, owner_id: str, study_id: str, receive_count: int, now: float | None = None,
                 context: RemainingTime | None = None) -> str:
        """Read what came, unless files are still arriving: a backed-up queue can deliver the last
        notifications after the deadline, so while the last arrival is recent (and the study is
        younger than ``DEADLINE_MAX_SECONDS``) the deadline is sent again, ``DEADLINE_QUIET_SECONDS`` on."""
        record = self.scans.get(owner_id, study_id)
        if record is None or record.get("status") in ("DONE", "FAILED"):
            return "already-final"
        t = time.time() if now is None else now
        arrived = len(record.get("arrived") or ())
        if record.get("status") == "PENDING" and 0 < arrived < int(record["files_expected"]) and self.requeue \
                and t - epoch_of(record["updated_at"]) < DEADLINE_QUIET_SECONDS \
                and t - epoch_of(record["created_at"]) < DEADLINE_MAX_SECONDS:
            self.requeue(deadline_message(owner_id, study_id), DEADLINE_QUIET_SECONDS)
            return "deferred"
        return self.read(owner_id, study_id, receive_count, context)

    def read(self, owner_id: str, study_id: str, receive_count: int, context: RemainingTime | None = None) -> str:
        """Claim -> download -> ``read_study`` -> store -> DONE, or FAILED with a code -> uploads deleted.

        With ``context`` the read may use the invocation's remaining time less ``STUDY_WRITE_MARGIN_MS``
        (asked afresh before each slice); past it the study ends FAILED/STUDY_TOO_LONG on this first
        attempt, like any ``ScanError``: the same study would take as long again. Without a context
        (tests, tools) the read is unbounded.
        """
        token = secrets.token_hex(8)
        record = self.scans.claim(owner_id, study_id, token, self.config.lease_seconds,
                                  max_attempts=self.config.max_receive_count)
        if record is None:
            return self._not_claimed(owner_id, study_id)
        self.logger.append_keys(scan_id=study_id)
        try:
            timer, time_left = Timer(), _time_left(context)
            with timer("read"):
                files = self._download(owner_id, study_id, record, time_left)
            reading = read_study(files, self.model, record.get("modality_declared"), with_previews=True,
                                 time_left=time_left, text_reported=bool(record.get("text_reported")))
            with timer("write_previews"):
                fields = self._store(owner_id, study_id, reading, files)
            fields["timings_ms"] = {**timer.rounded(), **reading.timings_ms}
            stored = self.scans.complete_study(owner_id, study_id, token, fields)
        except ScanError as err:
            self.logger.info("Study refused", extra={"code": err.code, "detail": err.detail})
            self.count_failure(err.code)
            if self.scans.fail(owner_id, study_id, token, err.code, err.message):
                self._delete_uploads(owner_id, study_id, record)
            return f"failed:{err.code}"
        except Exception:
            if receive_count >= self.config.max_receive_count:
                self.count_failure("INTERNAL_ERROR")
                if self.scans.fail(owner_id, study_id, token, "INTERNAL_ERROR", MESSAGES["INTERNAL_ERROR"]):
                    self._delete_uploads(owner_id, study_id, record)
            else:
                self.scans.release(owner_id, study_id, token)
            raise
        if stored:
            self._delete_uploads(owner_id, study_id, record)
        self.logger.info("Study read", extra={"label": reading.result.label, "counts": reading.result.counts})
        return "done"

    def _not_claimed(self, owner_id: str, study_id: str) -> str:
        """Why a study could not be claimed: out of attempts (ended here as READ_ABORTED), final or
        gone, or held by a live attempt. That attempt can still die without a word after the other
        messages were spent, so the work is sent on (as a deadline) for when its lease runs out:
        some message outlives every study that is not yet DONE or FAILED."""
        if self.scans.fail_unfinished(owner_id, study_id, "READ_ABORTED", MESSAGES["READ_ABORTED"],
                                      min_attempts=self.config.max_receive_count):
            self.count_failure("READ_ABORTED")
            self._delete_uploads(owner_id, study_id, self.scans.get(owner_id, study_id) or {})
            return "failed:READ_ABORTED"
        record = self.scans.get(owner_id, study_id)
        if record is None or record.get("status") in ("DONE", "FAILED"):
            return "already-final"
        # One second past the lease (PENDING: released just now, so at once); SQS delays 15 min at most.
        delay = min(900, max(1, int(record.get("lease_until") or 0) + 1 - int(time.time())))
        if self.requeue is None:
            raise LeaseHeld(f"study {study_id} is held for {delay} s more")  # SQS redelivers it
        self.requeue(deadline_message(owner_id, study_id), delay)
        self.logger.info("Study held by a live read; sent on", extra={"scan_id": study_id, "delay_s": delay})
        return "requeued"

    def _download(self, owner_id: str, study_id: str, record: dict,
                  time_left: Callable[[], float] | None = None) -> list[bytes | None]:
        """Every arrived file in upload order (None for those that never came), 250 MB at most, within
        the study's time budget (asked before each file, as the reading asks before each slice)."""
        files: list[bytes | None] = [None] * int(record["files_expected"])
        total = 0
        for i in sorted(int(i) for i in record.get("arrived") or ()):
            within_budget(time_left, f"{i} of {len(files)} files downloaded")
            try:
                data, _ = read_upload(self.s3, self.config.uploads_bucket, study_upload_key(owner_id, study_id, i),
                                      self.config.max_upload_bytes)
            except ScanError as err:
                if err.code in ("UPLOAD_MISSING", "EMPTY_FILE", "TOO_LARGE"):
                    continue  # this file is counted as missing/unreadable; the rest are read
                raise
            total += len(data)
            if total > MAX_STUDY_BYTES:
                raise ScanError("TOO_LARGE", f"study over {MAX_STUDY_BYTES} bytes")
            files[i] = data
        if not any(f is not None for f in files):
            raise ScanError("UPLOAD_NOT_RECEIVED")
        return files

    def _store(self, owner_id: str, study_id: str, reading: StudyReading, files: list) -> dict[str, Any]:
        """Previews (every slice's display and heat map, key slices' windows) and per-slice JSON to
        S3; returns the record's fields (the aggregate only: the item stays small)."""
        names = {f"{position:04d}/{name}": png for (position, name), png in reading.previews.items()}
        keys = write_previews(self.s3, self.config.artifacts_bucket, owner_id, study_id, names)
        previews: dict[str, dict[str, str]] = {}
        for combined, key in keys.items():
            position, name = combined.split("/", 1)
            previews.setdefault(str(int(position)), {})[name] = key
        slices_key = write_json(self.s3, self.config.artifacts_bucket, owner_id, study_id, "slices",
                                [s.to_dict() for s in reading.slices])
        result = reading.result
        notices: list[Notice] = []
        if result.counts["missing"]:
            notices.append(Notice.of("FILES_MISSING", f"{result.counts['missing']} of {len(files)} files missing."))
        if any(not s["read"] for s in result.series):
            notices.append(Notice.of("SERIES_SKIPPED"))
        if result.mixed_modalities:
            notices.append(Notice.of("MIXED_MODALITIES"))
        codes = {w.code for s in reading.slices for w in s.warnings}
        if "IDENTIFIERS_REMOVED_ON_SERVER" in codes:
            notices.append(Notice.of("IDENTIFIERS_REMOVED_ON_SERVER"))
        # burned-in text: the first flagged slice's wording, which names where the suspicion came from
        burned = next((w for s in reading.slices for w in s.warnings if w.code == "BURNED_IN_TEXT"), None)
        if burned is not None:
            notices.append(burned)
        if self.model.manifest.synthetic:
            notices.append(Notice.of("SYNTHETIC_MODEL"))
        return {"result": result.to_dict(), "warnings": [n.to_dict() for n in notices], "previews": previews,
                "slices_key": slices_key, "files_read": sum(1 for f in files if f is not None)}
