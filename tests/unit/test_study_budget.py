"""A study's read has a time budget: ``read_study`` asks ``time_left`` before each slice and each
key slice's previews and ends STUDY_TOO_LONG once it is spent; the inference pipeline derives it
from the Lambda context's remaining time less ``STUDY_WRITE_MARGIN_MS``, so a study too long for
one invocation ends FAILED on its first attempt (uploads deleted) instead of timing out until
READ_ABORTED. Real moto S3/DynamoDB/SQS; the Lambda context is faked."""

from __future__ import annotations

from itertools import count

import boto3
import pytest

from infra.lambda_context import FakeContext
from strokelens.core.errors import MESSAGES, ScanError
from strokelens.core.studies import study_upload_key
from strokelens.reader import reading
from strokelens.reader.model.served import ServedModel
from tests.conftest import sqs_s3_event
from tests.unit.test_api_handler import OWNER
from tests.unit.test_studies import CT, create, get

SLICES = 4


def _files() -> list[bytes]:
    """Real head CT slices (PNG), so that some are assessed and there are key slices to preview."""
    return [p.read_bytes() for p in CT[:SLICES]]


@pytest.fixture(scope="module")
def model():
    return ServedModel()


@pytest.fixture
def slices_read(monkeypatch):
    """How many times ``read_study`` called ``read_scan`` (slices and key slice previews alike)."""
    calls: list[int] = []
    real = reading.read_scan

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reading, "read_scan", counted)
    return calls


def _budget(checks: int):
    """A budget with time left for the first ``checks`` checks, spent from then on."""
    asked = count()
    return lambda: 1.0 if next(asked) < checks else 0.0


def test_a_spent_budget_reads_no_slice(model, slices_read):
    with pytest.raises(ScanError) as err:
        reading.read_study(_files(), model, "CT", with_previews=True, time_left=lambda: -0.5)
    assert err.value.code == "STUDY_TOO_LONG" and err.value.message == MESSAGES["STUDY_TOO_LONG"]
    assert slices_read == [], "nothing is started once the time is spent"


@pytest.mark.parametrize("k", [1, SLICES - 1])
def test_a_budget_spent_after_k_slices_stops_before_the_next(model, slices_read, k):
    with pytest.raises(ScanError) as err:
        reading.read_study(_files(), model, "CT", time_left=_budget(SLICES + k))  # every header, then k slices
    assert err.value.code == "STUDY_TOO_LONG" and f"{k} of {SLICES} slices read" in (err.value.detail or "")
    assert len(slices_read) == k


def test_the_header_pass_is_within_the_budget_too(model, slices_read):
    with pytest.raises(ScanError) as err:
        reading.read_study(_files(), model, "CT", time_left=_budget(2))
    assert err.value.code == "STUDY_TOO_LONG" and f"2 of {SLICES} headers read" in (err.value.detail or "")
    assert slices_read == []


def test_the_key_slice_previews_are_within_the_budget_too(model, slices_read):
    with pytest.raises(ScanError) as err:  # time for every header, slice and the first key slice's previews only
        reading.read_study(_files(), model, "CT", with_previews=True, time_left=_budget(2 * SLICES + 1))
    assert err.value.code == "STUDY_TOO_LONG" and "1 of 3 key previews" in (err.value.detail or "")
    assert len(slices_read) == SLICES + 1


def test_without_a_budget_or_within_it_the_reading_is_unchanged(model):
    files = _files()
    unbounded = reading.read_study(files, model, "CT", with_previews=True)
    bounded = reading.read_study(files, model, "CT", with_previews=True, time_left=lambda: 60.0)
    assert bounded.result.to_dict() == unbounded.result.to_dict()
    assert [s.to_dict() for s in bounded.slices] == [s.to_dict() for s in unbounded.slices]
    assert set(bounded.previews) == set(unbounded.previews) and unbounded.result.key_slices


class Countdown:
    """A Lambda context whose remaining time falls below the pipeline's margin after ``checks`` asks."""

    def __init__(self, checks: int, margin_ms: int) -> None:
        self.asked, self.checks, self.margin_ms = 0, checks, margin_ms

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        return self.margin_ms + (5_000 if self.asked <= self.checks else -1)


def _study_with_last_file_pending(api_app, inference_app, resources, lambda_context):
    """A PNG study with every file uploaded and all but the last one's notification handled."""
    files = [p.read_bytes() for p in CT]
    _, body = create(api_app, lambda_context, [{"filename": p.name, "content_type": "image/png"} for p in CT])
    study_id = body["study_id"]
    s3 = boto3.client("s3")
    for i, data in enumerate(files):
        s3.put_object(Bucket=resources.uploads_bucket, Key=study_upload_key(OWNER, study_id, i), Body=data)
    for i in range(len(files) - 1):
        assert inference_app.process_object(study_upload_key(OWNER, study_id, i), len(files[i]), 1) == "waiting"
    return study_id, len(files) - 1


def _last_arrival(inference_app, study_id, last, context):
    return inference_app.STUDIES.arrived(OWNER, study_id, last, study_upload_key(OWNER, study_id, last), 1,
                                         context=context)


def _keys(bucket, study_id):
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listed.get("Contents", []) if study_id in o["Key"]]


@pytest.mark.parametrize("context", ["little-left", "spent-mid-study"])
def test_a_study_out_of_time_fails_at_once_with_its_uploads_deleted(api_app, inference_app, resources,
                                                                    lambda_context, context):
    from strokelens.inference.study import STUDY_WRITE_MARGIN_MS

    study_id, last = _study_with_last_file_pending(api_app, inference_app, resources, lambda_context)
    ctx = FakeContext(timeout_ms=STUDY_WRITE_MARGIN_MS - 1_000) if context == "little-left" \
        else Countdown(2, STUDY_WRITE_MARGIN_MS)
    assert _last_arrival(inference_app, study_id, last, ctx) == "failed:STUDY_TOO_LONG"
    item = boto3.resource("dynamodb").Table(resources.table).get_item(
        Key={"owner_id": OWNER, "scan_id": study_id})["Item"]
    assert item["status"] == "FAILED" and int(item["attempts"]) == 1, "final on the first attempt"
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "FAILED"
    assert view["error"] == {"code": "STUDY_TOO_LONG", "message": MESSAGES["STUDY_TOO_LONG"]}
    assert "single series" in view["error"]["message"] and "fewer slices" in view["error"]["message"]
    assert _keys(resources.uploads_bucket, study_id) == [], "raw uploads deleted, as for any final failure"
    assert _keys(resources.artifacts_bucket, study_id) == [], "nothing partial is stored"
    assert inference_app.STUDIES.deadline(OWNER, study_id, 1, context=lambda_context) == "already-final"


def test_a_study_within_the_invocations_time_is_read(api_app, inference_app, resources, lambda_context):
    """The budget is asked (a context that never runs short) and the study is read as before."""
    from strokelens.inference.study import STUDY_WRITE_MARGIN_MS

    study_id, last = _study_with_last_file_pending(api_app, inference_app, resources, lambda_context)
    assert _last_arrival(inference_app, study_id, last, Countdown(10**6, STUDY_WRITE_MARGIN_MS)) == "done"
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "DONE" and view["progress"]["files_read"] == len(CT)
    assert _keys(resources.uploads_bucket, study_id) == []


def test_the_handler_passes_its_invocations_time_to_the_study(api_app, inference_app, resources, lambda_context):
    """Through ``record_handler``: the record starts (more than RECORD_BUDGET_MS left), then the study's
    own budget (the invocation's time less the write margin) is spent after one slice."""
    from strokelens.inference.study import STUDY_WRITE_MARGIN_MS

    study_id, last = _study_with_last_file_pending(api_app, inference_app, resources, lambda_context)
    key = study_upload_key(OWNER, study_id, last)
    event = sqs_s3_event(resources.uploads_bucket, key, len(CT[last].read_bytes()))
    (record,) = event["Records"]

    class Shrinking:
        """Enough time to start the record; below the study's write margin once it reads slices."""

        def __init__(self) -> None:
            self.asked = 0

        def get_remaining_time_in_millis(self) -> int:
            self.asked += 1
            return 20_000 if self.asked <= 2 else STUDY_WRITE_MARGIN_MS - 1

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    inference_app.record_handler(SQSRecord(record), Shrinking())
    _, view = get(api_app, lambda_context, study_id)
    assert view["status"] == "FAILED" and view["error"]["code"] == "STUDY_TOO_LONG"


def test_the_download_is_within_the_budget_too(api_app, inference_app, resources, lambda_context, monkeypatch):
    """Time spent while the files come down from S3: the study ends before any slice is read."""
    from strokelens.inference import study as study_module
    from strokelens.inference.study import STUDY_WRITE_MARGIN_MS

    study_id, last = _study_with_last_file_pending(api_app, inference_app, resources, lambda_context)
    reads: list[int] = []
    monkeypatch.setattr(study_module, "read_study", lambda *a, **k: reads.append(1))
    assert _last_arrival(inference_app, study_id, last, Countdown(1, STUDY_WRITE_MARGIN_MS)) == "failed:STUDY_TOO_LONG"
    assert reads == [] and _keys(resources.uploads_bucket, study_id) == []
