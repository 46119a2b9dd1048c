"""Series handling: grouping by UIDs, ordering by position, duplicates once, the series to read."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from strokelens.reader.reading import read_study
from strokelens.reader.model.served import ServedModel
from strokelens.reader.model.aggregate import study_probability
from strokelens.reader.series import group_series, header_of, pick_series
from tests.conftest import CT_DATA
from tests.dicom_series import ct_series, sop_uid


def test_shuffled_files_are_ordered_by_position_not_name_or_instance_number():
    files = ct_series(6)
    order = list(range(6))
    random.Random(3).shuffle(order)
    upload = [files[i] for i in order]
    (series,) = group_series([header_of(i, data) for i, data in enumerate(upload)])
    assert [sop_uid(upload[h.index]) for h in series.slices] == [sop_uid(f) for f in files]


def test_two_series_duplicates_and_the_one_to_read():
    thick = ct_series(4, series_uid="1.2.3.4.1", thickness=5.0)
    thin = ct_series(8, series_uid="1.2.3.4.2", thickness=1.0)
    sagittal = ct_series(8, series_uid="1.2.3.4.3", axial=False)
    mr = ct_series(3, series_uid="1.2.3.4.4", modality="MR")
    upload = thick + thin + [thin[2]] + sagittal + mr  # one instance sent twice
    series = group_series([header_of(i, d) for i, d in enumerate(upload)])
    assert [len(s.slices) for s in series] == [4, 8, 8, 3]
    assert series[1].duplicates == 1
    selection = pick_series(series, ("CT",))
    assert selection.chosen is series[1], "the axial series with most slices"
    reasons = {s.number: s.reason for s in series}
    assert "not an axial series" == reasons[3] and "MR is not read" in reasons[4] and "series 2" in reasons[1]
    assert selection.mixed_modalities


def test_images_without_headers_keep_upload_order():
    headers = [header_of(i, b"\x89PNG\r\n\x1a\n" + bytes(200)) for i in range(3)]
    (series,) = group_series(headers)
    assert [h.index for h in series.slices] == [0, 1, 2] and series.modality is None


def test_a_study_with_a_missing_file_reads_the_rest_and_counts_it():
    files: list[bytes | None] = list(ct_series(5))
    files[2] = None
    files.append(b"%PDF not an image")
    reading = read_study(files, ServedModel(), with_previews=True)
    result = reading.result
    assert result.counts["missing"] == 1 and result.counts["files"] == 6
    assert result.counts["unreadable"] == 1 and result.unreadable == {"UNSUPPORTED_FORMAT": 1}
    assert len(result.stack) == 4 and result.counts["assessed"] + result.counts["not_assessable"] == 4
    assert len(result.series) == 1 and result.series[0]["read"]
    assert {p for p, _ in reading.previews} == set(range(4))
    for position in result.key_slices:  # the key slices carry every preview, the others display + heat map
        assert (position, "window_bone") in reading.previews and (position, "model_input") in reading.previews
    others = set(range(4)) - set(result.key_slices)
    assert all((p, "window_bone") not in reading.previews for p in others)


def test_a_dicom_series_of_real_head_ct_is_read_with_the_manifests_pooling():
    """Real ct-hemorrhage slices wrapped as a DICOM series (shuffled upload order): every slice is
    scored, the key slices are the highest scores, and the study probability is the manifest's
    pooling rule over the assessed slices (v1: their maximum)."""
    model = ServedModel()
    images = [np.asarray(Image.open(p).convert("L")) for label in ("hemorrhage", "normal")
              for p in sorted((CT_DATA / label).glob("*.png"))[:3]]
    files = ct_series(len(images), images=images)
    random.Random(1).shuffle(files)
    reading = read_study(files, model, "CT")
    result = reading.result
    scores = [s for s in result.scores if s is not None]
    assert len(scores) >= 4, result.counts  # real in-brain CT: most slices assessed
    assert result.counts["assessed"] == len(scores) and result.counts["unreadable"] == 0
    assert [result.scores[p] for p in result.key_slices] == sorted(scores, reverse=True)[:len(result.key_slices)]
    positive = result.finding_assessed if model.v2 is not None else model.manifest.positive_label
    if model.v2 is not None:
        agg = model.manifest.raw["aggregation"]
        assert positive == "hemorrhage" and result.aggregation == agg["rule"]
        expected = study_probability(agg["rule"], np.asarray(scores), agg["params"])
    else:
        expected = max(scores)
    assert abs(result.probabilities[positive] - expected) < 1e-5  # scores are rounded to 6 places


def test_a_deflated_dicom_bomb_is_not_inflated_whole_by_the_header_pass(monkeypatch):
    """The study's header pass reads each file under the decoder's budgets: a deflated data set is
    inflated in chunks under its cap, never by pydicom's one-call inflate. The file has no grouping
    facts, so it is not part of the DICOM series (reported as a skipped file) and the series is read."""
    import pydicom.filereader
    from pydicom.data import get_testdata_file

    from strokelens.reader.imaging import dicom
    from tests.unit.test_decode_limits import deflated_dicom_bomb

    whole: list[int] = []  # pydicom's one-call inflates (recorded: the header pass swallows errors)

    def one_call(data, *args, **kwargs):
        whole.append(len(data))
        raise MemoryError("pydicom inflated a whole deflated data set")

    monkeypatch.setattr(pydicom.filereader.zlib, "decompress", one_call)
    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 1 << 20)
    bomb = deflated_dicom_bomb(64 << 20)
    header = header_of(0, bomb)
    assert not header.is_dicom and header.readable  # no grouping facts
    genuine = header_of(1, open(get_testdata_file("image_dfl.dcm"), "rb").read())
    assert genuine.is_dicom and genuine.sop_uid and genuine.modality
    reading = read_study([bomb, *ct_series(3)], ServedModel(), "CT")
    counts = reading.result.counts
    assert counts["files"] == 4 and reading.result.stack == [1, 2, 3] and counts["skipped"] == 1
    assert whole == []
