"""S3 side of scans: presigned POSTs that pin what may be sent, bounded reads, previews."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from strokelens.core.errors import ScanError


def presign_upload(s3: Any, bucket: str, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict:
    """A presigned POST for exactly ``key``, this content type and at most max_bytes bytes.

    Empty files are let through on purpose: the scan then fails with EMPTY_FILE, a reason the
    clinician sees, instead of waiting for an upload that S3 refused.

    boto3 adds the ``bucket`` and ``key`` conditions itself; S3 enforces all of them.
    """
    return s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 0, max_bytes]],
        ExpiresIn=expires_in,
    )


def read_upload(s3: Any, bucket: str, key: str, max_bytes: int, etag: str | None = None) -> tuple[bytes, str]:
    """The object's bytes (never more than ``max_bytes`` + 1 read, to detect overflow) and its ETag.

    With ``etag`` (from the S3 notification) only that version of the object is read: a file
    replaced through a still-valid upload form is a different input, not this event's.
    """
    extra = {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'} if etag else {}
    try:
        obj = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}", **extra)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise ScanError("UPLOAD_MISSING", key) from exc
        if code == "InvalidRange":  # a Range request on an empty object
            raise ScanError("EMPTY_FILE") from exc
        if code in ("PreconditionFailed", "412"):  # replaced after this event was sent
            raise ScanError("UPLOAD_REPLACED", key) from exc
        raise
    data = obj["Body"].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ScanError("TOO_LARGE", f"more than {max_bytes} bytes")
    return data, str(obj.get("ETag", "")).strip('"')


def upload_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether the raw upload is in the bucket (its notification may still be queued)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def delete_upload(s3: Any, bucket: str, key: str) -> None:
    """Delete a raw upload once its scan is final: the file may carry identifiers, and nothing
    needs it again (previews and the result are stored separately, without metadata)."""
    s3.delete_object(Bucket=bucket, Key=key)


def delete_uploads(s3: Any, bucket: str, keys: list[str]) -> list[str]:
    """Delete many raw uploads, 1,000 per DeleteObjects call; returns the error codes of what was
    not deleted (per-key failures come back in the response, not as an exception)."""
    codes: set[str] = set()
    for start in range(0, len(keys), 1000):
        try:
            errors = s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True}).get("Errors", [])
        except (ClientError, BotoCoreError):
            errors = [{"Code": "RequestFailed"}]
        codes |= {e.get("Code", "") for e in errors}
    return sorted(codes)


def preview_key(owner_id: str, scan_id: str, name: str) -> str:
    return f"previews/{owner_id}/{scan_id}/{name}.png"


def write_preview(s3: Any, bucket: str, owner_id: str, scan_id: str, name: str, png: bytes) -> str:
    key = preview_key(owner_id, scan_id, name)
    s3.put_object(Bucket=bucket, Key=key, Body=png, ContentType="image/png")
    return key


def write_json(s3: Any, bucket: str, owner_id: str, scan_id: str, name: str, body: Any) -> str:
    """A JSON document next to a scan's previews (a study's per-slice results: too big for DynamoDB)."""
    key = f"previews/{owner_id}/{scan_id}/{name}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body, separators=(",", ":")).encode(),
                  ContentType="application/json")
    return key


def write_previews(s3: Any, bucket: str, owner_id: str, scan_id: str, pngs: dict[str, bytes],
                   workers: int = 8) -> dict[str, str]:
    """Many previews at once (a study's stack): S3 PUTs in parallel; name -> key."""
    if len(pngs) <= 1:
        return {name: write_preview(s3, bucket, owner_id, scan_id, name, png) for name, png in pngs.items()}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        keys = pool.map(lambda item: write_preview(s3, bucket, owner_id, scan_id, *item), pngs.items())
        return dict(zip(pngs, keys))


def presign_get(s3: Any, bucket: str, key: str, expires_in: int) -> str:
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)
