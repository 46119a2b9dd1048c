"""Cost per 1,000 scans and idle cost per month, from measured durations and published prices.

Prices: AWS on-demand, us-east-1, free tiers ignored. Sources are the AWS pricing pages named
next to each constant, as read on the date given. Per-scan call counts follow the code
(api/app.py, inference/app.py and scan.py, aws/scans_table.py) and web/js/scans.js (polling with back-off).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

PRICES_AS_OF = "2024-11 (DynamoDB on-demand after the Nov 2024 price cut); others unchanged since 2023"
# name: (USD per unit, unit, source)
PRICES: dict[str, tuple[float, str, str]] = {
    "lambda_gb_s": (0.0000166667, "GB-second, x86", "AWS Lambda pricing"),
    "lambda_request": (0.20 / 1e6, "request", "AWS Lambda pricing"),
    "http_api_request": (1.00 / 1e6, "request (first 300 M/month)", "Amazon API Gateway pricing, HTTP APIs"),
    "s3_put": (0.005 / 1000, "PUT/POST/COPY/LIST request", "Amazon S3 pricing, S3 Standard"),
    "s3_get": (0.0004 / 1000, "GET request", "Amazon S3 pricing, S3 Standard"),
    "s3_storage_gb_month": (0.023, "GB-month (first 50 TB)", "Amazon S3 pricing, S3 Standard"),
    "dynamodb_wru": (0.625 / 1e6, "write request unit", "Amazon DynamoDB pricing, on-demand (Nov 2024)"),
    "dynamodb_rru": (0.125 / 1e6, "read request unit", "Amazon DynamoDB pricing, on-demand (Nov 2024)"),
    "dynamodb_storage_gb_month": (0.25, "GB-month", "Amazon DynamoDB pricing"),
    "sqs_request": (0.40 / 1e6, "request (standard queue, per 64 KB)", "Amazon SQS pricing"),
    "logs_ingest_gb": (0.50, "GB ingested", "Amazon CloudWatch pricing, Logs"),
}

INFERENCE_MEMORY_MB = 1024  # template.yaml InferenceFunction MemorySize
API_MEMORY_MB = 256  # template.yaml ApiFunction MemorySize
# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB. Durations measured on one
# full core here are scaled by 1769 / MemorySize (capped below at 1) to estimate Lambda's.
FULL_VCPU_MB = 1769
POLLS_PER_SCAN = 5  # GET /scans/{id}: web/js/scans.js polls from 400 ms with back-off; ~5 until DONE
AWS_IO_MS = 50.0  # assumed in-region S3 GET + 2 preview PUTs + 2 DynamoDB updates per scan (moto's are not AWS's)
LOG_BYTES_PER_SCAN = 6000  # JSON logs + EMF metrics of 1 inference + 6 API invocations (estimate)
UPLOAD_RETENTION_DAYS = 7  # template.yaml UploadRetentionDays default
RECORD_RETENTION_DAYS = 90  # template.yaml RecordRetentionDays default (DynamoDB TTL and previews)
SCENARIOS = {"steady (1% of invocations cold)": 0.01, "sporadic (every scan a cold start)": 1.0}


@dataclass(frozen=True)
class Inputs:
    inference_warm_ms: float  # handler compute per scan (decode -> previews), one full core
    inference_init_ms: float  # cold init: handler import + model load, one full core
    api_ms: float  # one API invocation
    upload_bytes: float
    preview_bytes: float  # all previews of one scan
    previews_per_scan: float
    item_bytes: float  # DynamoDB record once DONE


def _scale(memory_mb: int) -> float:
    return max(1.0, FULL_VCPU_MB / memory_mb)


def _gb_s(ms: float, memory_mb: int) -> float:
    return math.ceil(ms * _scale(memory_mb)) / 1000 * memory_mb / 1024  # billed per 1 ms


def per_scan_counts(x: Inputs) -> dict[str, float]:
    item_kb = math.ceil(x.item_bytes / 1024)
    return {
        "http_api_requests": 1 + POLLS_PER_SCAN,
        "api_invocations": 1 + POLLS_PER_SCAN,
        # low traffic: one scan per batch (batching up to 5 only saves requests) + the scan's deadline message
        "inference_invocations": 2,
        "s3_put": 1 + x.previews_per_scan,  # the upload POST + preview PUTs
        "s3_get": 1 + x.previews_per_scan,  # the inference read + the browser viewing each preview once
        # S3 -> SendMessage, poller ReceiveMessage, DeleteMessage (unbatched, worst case); the same for the deadline
        "sqs_requests": 6,
        "dynamodb_wru": 1 + item_kb + item_kb,  # put PENDING, claim (update), complete (update)
        # eventually consistent GetItem per poll; the deadline's strongly consistent GetItem
        "dynamodb_rru": POLLS_PER_SCAN * math.ceil(x.item_bytes / 4096) * 0.5 + math.ceil(x.item_bytes / 4096),
    }


def per_1000(x: Inputs, cold_fraction: float) -> dict[str, float]:
    c = per_scan_counts(x)
    p = {k: v[0] for k, v in PRICES.items()}
    inference_gb_s = _gb_s(x.inference_warm_ms + AWS_IO_MS, INFERENCE_MEMORY_MB) + \
        cold_fraction * _gb_s(x.inference_init_ms, INFERENCE_MEMORY_MB) + \
        _gb_s(AWS_IO_MS, INFERENCE_MEMORY_MB)  # INIT is billed (since Aug 2025); the deadline: one GetItem
    api_gb_s = c["api_invocations"] * _gb_s(x.api_ms, API_MEMORY_MB)
    lines = {
        "lambda_inference": inference_gb_s * p["lambda_gb_s"] + c["inference_invocations"] * p["lambda_request"],
        "lambda_api": api_gb_s * p["lambda_gb_s"] + c["api_invocations"] * p["lambda_request"],
        "api_gateway_http": c["http_api_requests"] * p["http_api_request"],
        "s3_requests": c["s3_put"] * p["s3_put"] + c["s3_get"] * p["s3_get"],
        "dynamodb_requests": c["dynamodb_wru"] * p["dynamodb_wru"] + c["dynamodb_rru"] * p["dynamodb_rru"],
        "sqs": c["sqs_requests"] * p["sqs_request"],
        "cloudwatch_logs": LOG_BYTES_PER_SCAN / 1e9 * p["logs_ingest_gb"],
    }
    out = {k: round(v * 1000, 5) for k, v in lines.items()}
    out["total"] = round(sum(lines.values()) * 1000, 4)
    return out


def idle_per_month(x: Inputs, scans_per_month: int = 1000) -> dict[str, float]:
    """Storage at steady state with ``scans_per_month`` and the template's retention; nothing runs."""
    p = {k: v[0] for k, v in PRICES.items()}
    uploads_gb = scans_per_month * x.upload_bytes * UPLOAD_RETENTION_DAYS / 30 / 1e9
    previews_gb = scans_per_month * x.preview_bytes * RECORD_RETENTION_DAYS / 30 / 1e9
    items_gb = scans_per_month * x.item_bytes * RECORD_RETENTION_DAYS / 30 / 1e9
    lines = {"s3_uploads": uploads_gb * p["s3_storage_gb_month"], "s3_previews": previews_gb * p["s3_storage_gb_month"],
             "dynamodb_items": items_gb * p["dynamodb_storage_gb_month"]}
    out = {k: round(v, 5) for k, v in lines.items()}
    out["total"] = round(sum(lines.values()), 4)
    return out


def run(x: Inputs) -> dict[str, Any]:
    return {
        "prices_as_of": PRICES_AS_OF,
        "prices": {k: {"usd": v[0], "unit": v[1], "source": v[2]} for k, v in PRICES.items()},
        "assumptions": {"inference_memory_mb": INFERENCE_MEMORY_MB, "api_memory_mb": API_MEMORY_MB,
                        "cpu_scale_inference": round(_scale(INFERENCE_MEMORY_MB), 3),
                        "cpu_scale_api": round(_scale(API_MEMORY_MB), 3),
                        "polls_per_scan": POLLS_PER_SCAN, "aws_io_ms_per_scan": AWS_IO_MS,
                        "log_bytes_per_scan": LOG_BYTES_PER_SCAN, "upload_retention_days": UPLOAD_RETENTION_DAYS,
                        "record_retention_days": RECORD_RETENTION_DAYS, "free_tier": "ignored"},
        "inputs": asdict(x),
        "per_scan_counts": per_scan_counts(x),
        "per_1000_scans_usd": {name: per_1000(x, frac) for name, frac in SCENARIOS.items()},
        "idle_per_month_usd": {
            "nothing stored": 0.0,
            "1,000 scans/month retained (steady state)": idle_per_month(x, 1000),
        },
        "idle_note": ("With nothing stored, idle is $0 for storage; the only standing charges are SQS long-poll "
                      "requests of the Lambda event source mapping (about 0.6 M/month, about $0.26, inside the "
                      "1 M/month SQS free tier) and the static site's hosting, not modelled here."),
    }
