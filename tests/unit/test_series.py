"""Series handling: grouping by UIDs, ordering by position, duplicates once, the series to read."""

from __future__ import annotations

import random

from strokelens.reader.reading import read_study
from strokelens.reader.model.served import ServedModel
from strokelens.reader.series import group_series, header_of, pick_series
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


def test_the_study_score_is_its_most_suspicious_assessed_slice():
    model = ServedModel()
    positive = model.manifest.positive_label
    reading = read_study(list(ct_series(4)), model)
    scores = [s for s in reading.result.scores if s is not None]
    if scores:
        assert reading.result.probabilities[positive] == max(scores)
        assert reading.result.scores[reading.result.key_slices[0]] == max(scores)
    else:  # every slice judged out of distribution: no claim at all
        assert reading.result.label is None and reading.result.probabilities == {}
