"""DynamoDB access for scan records; every write that changes state is conditional.

Idempotency rests on these conditions: a scan is claimed only from PENDING (or from a
PROCESSING claim whose lease ran out, i.e. a crashed attempt), and finished only by the
attempt that claimed it. A duplicate S3/SQS delivery therefore never re-runs or overwrites
a finished result.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from strokelens.core.records import Status, iso_now, is_scan_id, to_plain
from strokelens.core.schema import Notice, SliceResult


def to_dynamo(value: Any) -> Any:
    """Python floats -> Decimal (DynamoDB's number type), recursively."""
    if isinstance(value, float):
        return Decimal(repr(round(value, 8)))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return value


def _item(wire: dict[str, Any] | None) -> dict[str, Any] | None:
    """An item in DynamoDB's wire format (as in a ConditionalCheckFailedException) -> Python values."""
    if not wire:
        return None
    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in wire.items()}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ScansTable:
    def __init__(self, table: Any) -> None:
        self.table = table  # a boto3 DynamoDB Table resource

    def put_pending(self, item: dict[str, Any]) -> None:
        self.table.put_item(Item=to_dynamo(item), ConditionExpression="attribute_not_exists(scan_id)")

    def get(self, owner_id: str, scan_id: str, consistent: bool = False) -> dict[str, Any] | None:
        """The record; ``consistent`` where a stale copy could make us delete or fail what is still needed."""
        item = self.table.get_item(Key={"owner_id": owner_id, "scan_id": scan_id},
                                   ConsistentRead=consistent).get("Item")
        return to_plain(item) if item else None

    def list_for_owner(self, owner_id: str, limit: int, token: str | None,
                       studies: bool = False) -> tuple[list[dict], str | None]:
        """The owner's scans (or studies), newest first, and an opaque token for the next page (or None).

        Both live in one partition per owner and DynamoDB filters after ``Limit``, so this reads on
        (a few pages at most) until the page is full.
        """
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "owner_id = :o",
            "FilterExpression": "kind = :study" if studies else "attribute_not_exists(kind)",
            "ExpressionAttributeValues": {":o": owner_id, **({":study": "study"} if studies else {})},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_page_token(token) if token else None
        items: list[dict] = []
        for _ in range(5):
            if start:
                kwargs["ExclusiveStartKey"] = {"owner_id": owner_id, "scan_id": start}
            page = self.table.query(**kwargs)
            items += [to_plain(i) for i in page.get("Items", [])]
            last = page.get("LastEvaluatedKey")
            if len(items) >= limit:
                items = items[:limit]
                return items, encode_page_token(items[-1]["scan_id"])
            if not last:
                return items, None
            start = str(last["scan_id"])
        return items, encode_page_token(str(start))

    def claim(self, owner_id: str, scan_id: str, token: str, lease_seconds: int, max_attempts: int = 1_000_000,
              now: float | None = None) -> dict[str, Any] | None:
        """Move to PROCESSING for this attempt and return the record; None when it is done,
        failed, unknown, being processed by another attempt, or out of attempts.

        ``attempts`` counts claims and survives crashes, so a file that kills the reader (timeout,
        out of memory) is not read again once ``max_attempts`` claims were made.
        """
        t = time.time() if now is None else now
        try:
            response = self.table.update_item(
                Key={"owner_id": owner_id, "scan_id": scan_id},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                UpdateExpression="SET #s = :processing, claim_token = :token, lease_until = :lease, "
                "updated_at = :now, attempts = if_not_exists(attempts, :zero) + :one",
                ConditionExpression="attribute_exists(scan_id) AND (#s = :pending OR (#s = :processing AND lease_until < :t)) "
                "AND (attribute_not_exists(attempts) OR attempts < :max)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":processing": Status.PROCESSING.value, ":pending": Status.PENDING.value,
                    ":token": token, ":lease": int(t + lease_seconds), ":t": int(t),
                    ":now": iso_now(t), ":zero": 0, ":one": 1, ":max": max_attempts,
                },
            )
            return to_plain(response["Attributes"])
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            held = _item(exc.response.get("Item"))
            if held and held.get("status") == Status.PROCESSING.value and held.get("claim_token") == token:
                # Our own claim: an earlier try of this very request took effect but its answer was
                # lost (botocore retries timeouts and reset connections). Without this the attempt
                # would take itself for a duplicate and the message would be consumed, leaving the
                # scan PROCESSING with no delivery left to finish it.
                return to_plain(held)
            return None

    def arrive(self, owner_id: str, study_id: str, index: int) -> dict[str, Any] | None:
        """Record that a study's file arrived (a duplicate notification adds nothing) and return
        the study; None when the study is unknown or no longer waiting for files."""
        try:
            response = self.table.update_item(
                Key={"owner_id": owner_id, "scan_id": study_id},
                ReturnValues="ALL_NEW",
                UpdateExpression="ADD arrived :i SET updated_at = :now",
                ConditionExpression="attribute_exists(scan_id) AND kind = :study AND #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":i": {str(index)}, ":study": "study", ":pending": Status.PENDING.value,
                                           ":now": iso_now()},
            )
            return to_plain(response["Attributes"])
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise

    def complete_study(self, owner_id: str, study_id: str, token: str, fields: dict[str, Any]) -> bool:
        return self._finish(owner_id, study_id, token, Status.DONE, fields)

    def fail_unfinished(self, owner_id: str, scan_id: str, code: str, message: str, *, min_attempts: int = 0,
                        now: float | None = None) -> bool:
        """FAILED with ``code`` unless the scan is DONE/FAILED or a live attempt holds it; with
        ``min_attempts`` only once that many claims were made. True when this call ended it."""
        t = time.time() if now is None else now
        condition = "attribute_exists(scan_id) AND (#s = :pending OR (#s = :processing AND lease_until < :t))"
        values: dict[str, Any] = {":failed": Status.FAILED.value, ":pending": Status.PENDING.value,
                                  ":processing": Status.PROCESSING.value, ":t": int(t), ":now": iso_now(t),
                                  ":error": {"code": code, "message": message}}
        if min_attempts:
            condition += " AND attempts >= :min"
            values[":min"] = min_attempts
        return self._update_if(
            Key={"owner_id": owner_id, "scan_id": scan_id},
            UpdateExpression="SET #s = :failed, #e = :error, updated_at = :now REMOVE claim_token, lease_until",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=values,
        )

    def fail_unclaimed(self, owner_id: str, scan_id: str, code: str, message: str, now: float | None = None) -> bool:
        """FAILED with ``code`` only if the scan is PENDING and was never claimed (its file never
        came); a released claim waits for its retry. True when this call ended it."""
        return self._update_if(
            Key={"owner_id": owner_id, "scan_id": scan_id},
            UpdateExpression="SET #s = :failed, #e = :error, updated_at = :now",
            ConditionExpression="attribute_exists(scan_id) AND #s = :pending AND "
                                "(attribute_not_exists(attempts) OR attempts = :zero)",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":failed": Status.FAILED.value, ":pending": Status.PENDING.value, ":zero": 0,
                                       ":now": iso_now(time.time() if now is None else now),
                                       ":error": {"code": code, "message": message}},
        )

    def _update_if(self, **kwargs: Any) -> bool:
        """One conditional UpdateItem: True when written, False when its condition did not hold."""
        try:
            self.table.update_item(**kwargs)
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def _finish(self, owner_id: str, scan_id: str, token: str, status: Status, fields: dict[str, Any]) -> bool:
        names = {"#s": "status", **{f"#{k}": k for k in fields}}
        values = {":status": status.value, ":token": token, ":processing": Status.PROCESSING.value,
                  ":now": iso_now(), **{f":{k}": to_dynamo(v) for k, v in fields.items()}}
        # Status last: DynamoDB applies an update atomically, but moto (the local stack) sets the
        # attributes one by one in place, so a poll could see DONE before its result and previews.
        sets = ", ".join([f"#{k} = :{k}" for k in fields] + ["updated_at = :now", "#s = :status"])
        return self._update_if(
            Key={"owner_id": owner_id, "scan_id": scan_id},
            UpdateExpression=f"SET {sets} REMOVE claim_token, lease_until",
            ConditionExpression="#s = :processing AND claim_token = :token",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def complete(self, owner_id: str, scan_id: str, token: str, result: SliceResult,
                 timings_ms: dict[str, float], warnings: list[Notice], previews: dict[str, str] | None = None,
                 upload_etag: str | None = None) -> bool:
        fields: dict[str, Any] = {"result": result.to_dict(), "timings_ms": timings_ms,
                                  "warnings": [w.to_dict() for w in warnings]}
        if upload_etag:  # the exact object that was read; a later replacement is not this result's input
            fields["upload_etag"] = upload_etag
        if previews:
            fields["previews"] = previews  # S3 keys; the API hands out short-lived URLs
        return self._finish(owner_id, scan_id, token, Status.DONE, fields)

    def fail(self, owner_id: str, scan_id: str, token: str, code: str, message: str) -> bool:
        return self._finish(owner_id, scan_id, token, Status.FAILED, {"error": {"code": code, "message": message}})

    def release(self, owner_id: str, scan_id: str, token: str) -> None:
        """Give the claim back after an unexpected error so the SQS retry can take it."""
        self._update_if(
            Key={"owner_id": owner_id, "scan_id": scan_id},
            UpdateExpression="SET #s = :pending, updated_at = :now REMOVE claim_token, lease_until",
            ConditionExpression="#s = :processing AND claim_token = :token",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": Status.PENDING.value, ":processing": Status.PROCESSING.value,
                                       ":token": token, ":now": iso_now()},
        )


def encode_page_token(scan_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": scan_id}).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The scan id a page token continues after; ValueError for anything we did not issue."""
    try:
        padded = token + "=" * (-len(token) % 4)
        scan_id = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("invalid page token") from exc
    if not isinstance(scan_id, str) or not is_scan_id(scan_id):
        raise ValueError("invalid page token")
    return scan_id
