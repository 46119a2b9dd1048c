"""One place for configuration: limits, and the settings both Lambda handlers read from the environment.

Read once per container (module level in each handler). Domain code takes values as arguments
and never reads the environment itself; the command-line predictor uses :func:`model_dir`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The largest accepted upload. template.yaml's UploadMaxBytes default equals it (a test checks);
# the decoder re-checks it, and the site reads it from GET /contract.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGED_MODEL_DIR = PACKAGE_DIR / "artifacts"


def model_dir(env: Mapping[str, str] | None = None) -> Path:
    """``MODEL_DIR`` if set, else the image model packaged with the code."""
    env = os.environ if env is None else env
    return Path(env.get("MODEL_DIR") or PACKAGED_MODEL_DIR)


def clinical_model_dir(env: Mapping[str, str] | None = None) -> Path:
    """``CLINICAL_MODEL_DIR`` if set, else the clinical model packaged with the code."""
    env = os.environ if env is None else env
    return Path(env.get("CLINICAL_MODEL_DIR") or PACKAGED_MODEL_DIR / "clinical")


@dataclass(frozen=True)
class Settings:
    """What a handler needs from its environment (template.yaml sets each variable)."""

    scans_table: str
    uploads_bucket: str
    artifacts_bucket: str
    model_dir: Path
    clinical_model_dir: Path
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    upload_expires: int = 300  # seconds a presigned upload form is valid
    retention_days: int = 90  # DynamoDB TTL of scan records
    max_receive_count: int = 3  # deliveries before SQS moves a message to the DLQ
    # A crashed attempt's claim must expire before SQS redelivers (visibility = 6 x timeout).
    lease_seconds: int = 60
    # A record is started only with this much of the invocation left (the decoder's own budget
    # plus writing the result), so a slow file never makes the next one time out half-read.
    record_budget_ms: int = 15_000
    scan_queue_url: str = ""  # studies' deadline messages go here
    rate_table: str = ""  # per-clinician creation counters (empty: no limit)
    create_limit_per_hour: int = 120

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            scans_table=env["SCANS_TABLE"],
            uploads_bucket=env.get("UPLOADS_BUCKET", ""),
            artifacts_bucket=env.get("ARTIFACTS_BUCKET", ""),
            model_dir=model_dir(env),
            clinical_model_dir=clinical_model_dir(env),
            max_upload_bytes=int(env.get("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)),
            upload_expires=int(env.get("UPLOAD_URL_EXPIRES", 300)),
            retention_days=int(env.get("RECORD_RETENTION_DAYS", 90)),
            max_receive_count=int(env.get("MAX_RECEIVE_COUNT", 3)),
            lease_seconds=int(env.get("CLAIM_LEASE_SECONDS", 60)),
            record_budget_ms=int(env.get("RECORD_BUDGET_MS", 15_000)),
            scan_queue_url=env.get("SCAN_QUEUE_URL", ""),
            rate_table=env.get("RATE_TABLE", ""),
            create_limit_per_hour=int(env.get("CREATE_LIMIT_PER_HOUR", 120)),
        )
