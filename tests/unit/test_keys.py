"""Upload keys arrive URL-decoded from S3 events: only keys the API handed out are read, whole
strings in ASCII (a trailing newline or another script's digits is not a key we made)."""

from __future__ import annotations

import pytest

from strokelens.core.records import is_scan_id, new_scan_id, parse_upload_key, upload_key
from strokelens.core.studies import parse_study_key, study_upload_key

OWNER = "764c4ad9-2f05-425b-80ae-e8ab53033bb5"
SCAN = new_scan_id(now=1_790_000_000)


def test_the_keys_the_api_hands_out_parse_back() -> None:
    assert parse_upload_key(upload_key(OWNER, SCAN)) == (OWNER, SCAN)
    assert parse_study_key(study_upload_key(OWNER, SCAN, 12)) == (OWNER, SCAN, 12)
    assert parse_upload_key(study_upload_key(OWNER, SCAN, 0)) is None, "a study's key is not a scan's"
    assert parse_study_key(upload_key(OWNER, SCAN)) is None


@pytest.mark.parametrize("key", [
    f"uploads/{OWNER}/{SCAN}\n",
    f"uploads/{OWNER}\n/{SCAN}",
    f"uploads/{OWNER}/{SCAN.upper()}",
    f"uploads/{OWNER}/{SCAN[:-1]}",
    f"uploads/{OWNER}/{SCAN}/",
    f"uploads/../{SCAN}",
    f"previews/{OWNER}/{SCAN}",
    f"uploads/{'x' * 65}/{SCAN}",
    f"uploads/ow\u0131ner/{SCAN}",  # a dotless i: a letter, but not ASCII
])
def test_anything_else_is_not_a_scan_key(key) -> None:
    assert parse_upload_key(key) is None


@pytest.mark.parametrize("index", ["\u0661\u0662", "12\n", "12345", "-1", "", "1 "])
def test_a_study_index_is_ascii_digits_only(index) -> None:
    assert parse_study_key(f"uploads/{OWNER}/{SCAN}/{index}") is None


def test_scan_ids_are_24_lowercase_hex_digits_and_nothing_more() -> None:
    assert is_scan_id(SCAN) and len(SCAN) == 24
    assert not is_scan_id(SCAN + "\n") and not is_scan_id("") and not is_scan_id("\uff10" * 24)
