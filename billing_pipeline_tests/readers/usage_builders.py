"""Helpers for the usage reader tests (no tests here): write small CloudWatch Logs exports, read evidence back."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

from billing_pipeline.readers.usage_logs import UsageEvidence, read_usage_evidence
from billing_pipeline.storage import locate

JANUARY = dt.date(2026, 1, 1)
TAB = "\t"


def write_export(root: Path, stream: str, lines: list[str], task: str = "task-0001") -> Path:
    """One CloudWatch Logs export file: <root>/<task id>/<log stream>/000000.gz, one event per line."""
    path = root / task / stream / "000000.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def report(at: str, request_id: str, billed_ms: int, memory_mb: int, init_ms: str | None = None) -> str:
    """A Lambda text-format REPORT line as exported: '<timestamp> REPORT RequestId: ...'."""
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {billed_ms - 0.42:.2f} ms",
        f"Billed Duration: {billed_ms} ms",
        f"Memory Size: {memory_mb} MB",
        "Max Memory Used: 56 MB",
    ]
    if init_ms:
        fields.append(f"Init Duration: {init_ms} ms")
    return f"{at} {TAB.join(fields)}{TAB}"


def text_app_line(at: str, request_id: str, message: str, level: str = "INFO") -> str:
    """A Lambda text-format application line: '<timestamp> [LEVEL]\\t<timestamp>\\t<requestId>\\t<message>'."""
    return f"{at} [{level}]{TAB}{at}{TAB}{request_id}{TAB}{message}"


ROLE = "arn:aws:sts::123456789012:assumed-role/app/x"  # an S3 access log's Requester for a role's session


def s3_access_line(time: str, operation: str, key: str, status: str = "200", error: str = "-",
                   requester: str = ROLE, bucket: str = "tax-demo-docs", request_key: str | None = None) -> str:
    """An S3 server access log record (S3 User Guide, "Amazon S3 server access log format"): `time` as the log
    writes it ('05/Jan/2026:15:00:01 +0000'); `requester` '-' for an unauthenticated request; `request_key` the
    key as the Request-URI holds it, when it is not written as the Key field (`key`) is."""
    method = operation.split(".")[1]
    return (
        f"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be {bucket} [{time}] 192.0.2.3 {requester} "
        f'3E57427F3EXAMPLE {operation} {key} "{method} /{request_key or key} HTTP/1.1" {status} {error} 113 - 7 - '
        '"-" "aws-sdk" - '
        f"hostid= {'-' if requester == '-' else 'SigV4'} ECDHE-RSA-AES128-GCM-SHA256 "
        f"{'-' if requester == '-' else 'AuthHeader'} {bucket}.s3.us-east-1.amazonaws.com TLSv1.2 - -"
    )


def write_access_log(root: Path, lines: list[str], name: str = "2026-01-05-15-00-00-ABCDEF") -> Path:
    """One S3 server access log object (as S3 delivers them: plain text, one record a line)."""
    path = root / "s3-access" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_january(logs: Path | None = None, inventory: Path | None = None) -> UsageEvidence:
    return read_usage_evidence(
        locate(str(logs)) if logs else None, locate(str(inventory)) if inventory else None, JANUARY
    )


def quantities(evidence: UsageEvidence, log_bytes: bool = False) -> dict[tuple, Decimal]:
    """{(usage_hour 'YYYY-MM-DD HH', service, driver, scope, accountant_id): quantity}; without CloudWatch Logs'
    `log_bytes` (every timestamped line has some) unless asked for (tested on their own in test_usage_logs)."""
    return {
        (r["usage_hour"].strftime("%Y-%m-%d %H"), r["service"], r["driver"], r["scope"], r["accountant_id"]): r[
            "quantity"
        ]
        for r in evidence.usage.to_pylist()
        if log_bytes or r["driver"] != "log_bytes"
    }


def of_service(evidence: UsageEvidence, service: str) -> dict[tuple, Decimal]:
    return {k: v for k, v in quantities(evidence, log_bytes=True).items() if k[1] == service}


GIB = 2**30
JANUARY_HOURS = 31 * 24  # 744


def write_snapshot(dest: Path, taken: str, rows: list[tuple], bucket="tax-demo-docs",
                   config="daily", prefix="inventory") -> Path:
    """One inventory delivery: <dest>/<bucket>/<config>/<taken>/manifest.json + data/<taken>.csv.gz, where the
    manifest's data keys carry the destination prefix (as S3 writes them); rows are (key, size[, StorageClass[,
    IntelligentTieringAccessTier]])."""
    data_name = f"{taken}.csv.gz"
    out = io.StringIO()
    with_class = any(len(row) >= 3 for row in rows)
    with_tier = any(len(row) == 4 for row in rows)
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows(
        [bucket, row[0], row[1], "2026-01-01T00:00:00.000Z", *([row[2]] if with_class else []),
         *([row[3] if len(row) == 4 else ""] if with_tier else [])] for row in rows
    )
    data = dest / bucket / config / "data" / data_name
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(gzip.compress(out.getvalue().encode()))
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::tax-demo-inventory",
        "version": "2016-11-30",
        "creationTimestamp": "1767229200000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate" + (", StorageClass" if with_class else "")
                      + (", IntelligentTieringAccessTier" if with_tier else ""),
        "files": [{"key": f"{prefix}/{bucket}/{config}/data/{data_name}", "size": data.stat().st_size,
                   "MD5checksum": "0"}],
    }
    path = dest / bucket / config / taken / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(manifest))
    return path
