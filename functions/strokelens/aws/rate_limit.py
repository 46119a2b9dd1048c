"""Per-clinician creation limit: a DynamoDB counter per owner and clock hour (``RateLimitTable``).

One conditional ``ADD`` per request: atomic across concurrent API containers, no read first.
Counters expire through the table's TTL an hour after their window ends.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError


class CreationLimiter:
    def __init__(self, table: Any, limit_per_hour: int) -> None:
        self.table = table  # a boto3 DynamoDB Table resource
        self.limit = limit_per_hour

    def allow(self, owner_id: str, now: float | None = None) -> tuple[bool, int]:
        """(allowed, seconds until the window resets); counts the request when allowed."""
        t = time.time() if now is None else now
        window = int(t // 3600)
        retry_after = (window + 1) * 3600 - int(t)
        try:
            self.table.update_item(
                Key={"bucket_key": f"{owner_id}#{window}"},
                UpdateExpression="ADD #c :one SET expires_at = :exp",
                ConditionExpression="attribute_not_exists(#c) OR #c < :limit",
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues={":one": 1, ":limit": self.limit, ":exp": (window + 2) * 3600},
            )
            return True, retry_after
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False, retry_after
            raise
