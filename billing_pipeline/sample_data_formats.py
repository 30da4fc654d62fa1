"""Writers for the sample data in AWS's own layouts (legacy CUR Parquet, CloudWatch Logs export, S3 Inventory).

Everything written here is deterministic: gzip headers carry no time or file name, JSON keys keep their order.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# (parquet column, CSV category, CSV name, arrow type, manifest type). Parquet names follow AWS's rule
# (camelCase -> snake_case, `ARN` -> `a_r_n`, `user:` -> `user_`).
S, F, T = pa.string(), pa.float64(), pa.timestamp("ms", tz="UTC")
CUR_COLUMNS: list[tuple[str, str, str, pa.DataType, str]] = [
    ("identity_line_item_id", "identity", "LineItemId", S, "String"),
    ("identity_time_interval", "identity", "TimeInterval", S, "Interval"),
    ("bill_invoice_id", "bill", "InvoiceId", S, "String"),
    ("bill_billing_entity", "bill", "BillingEntity", S, "String"),
    ("bill_bill_type", "bill", "BillType", S, "String"),
    ("bill_payer_account_id", "bill", "PayerAccountId", S, "String"),
    ("bill_billing_period_start_date", "bill", "BillingPeriodStartDate", T, "DateTime"),
    ("bill_billing_period_end_date", "bill", "BillingPeriodEndDate", T, "DateTime"),
    ("line_item_usage_account_id", "lineItem", "UsageAccountId", S, "String"),
    ("line_item_line_item_type", "lineItem", "LineItemType", S, "String"),
    ("line_item_usage_start_date", "lineItem", "UsageStartDate", T, "DateTime"),
    ("line_item_usage_end_date", "lineItem", "UsageEndDate", T, "DateTime"),
    ("line_item_product_code", "lineItem", "ProductCode", S, "String"),
    ("line_item_usage_type", "lineItem", "UsageType", S, "String"),
    ("line_item_operation", "lineItem", "Operation", S, "String"),
    ("line_item_availability_zone", "lineItem", "AvailabilityZone", S, "String"),
    ("line_item_resource_id", "lineItem", "ResourceId", S, "String"),
    ("line_item_usage_amount", "lineItem", "UsageAmount", F, "OptionalBigDecimal"),
    ("line_item_normalization_factor", "lineItem", "NormalizationFactor", F, "OptionalBigDecimal"),
    ("line_item_normalized_usage_amount", "lineItem", "NormalizedUsageAmount", F, "OptionalBigDecimal"),
    ("line_item_currency_code", "lineItem", "CurrencyCode", S, "String"),
    ("line_item_unblended_rate", "lineItem", "UnblendedRate", S, "OptionalBigDecimal"),
    ("line_item_unblended_cost", "lineItem", "UnblendedCost", F, "OptionalBigDecimal"),
    ("line_item_blended_rate", "lineItem", "BlendedRate", S, "OptionalBigDecimal"),
    ("line_item_blended_cost", "lineItem", "BlendedCost", F, "OptionalBigDecimal"),
    ("line_item_line_item_description", "lineItem", "LineItemDescription", S, "String"),
    ("line_item_tax_type", "lineItem", "TaxType", S, "String"),
    ("line_item_legal_entity", "lineItem", "LegalEntity", S, "String"),
    ("product_product_name", "product", "ProductName", S, "String"),
    ("product_product_family", "product", "productFamily", S, "String"),
    ("product_instance_type", "product", "instanceType", S, "String"),
    ("product_location", "product", "location", S, "String"),
    ("product_region", "product", "region", S, "String"),
    ("product_servicecode", "product", "servicecode", S, "String"),
    ("product_sku", "product", "sku", S, "String"),
    ("product_usagetype", "product", "usagetype", S, "String"),
    ("product_operation", "product", "operation", S, "String"),
    ("pricing_public_on_demand_cost", "pricing", "publicOnDemandCost", F, "OptionalBigDecimal"),
    ("pricing_public_on_demand_rate", "pricing", "publicOnDemandRate", S, "OptionalBigDecimal"),
    ("pricing_term", "pricing", "term", S, "String"),
    ("pricing_unit", "pricing", "unit", S, "String"),
    ("reservation_amortized_upfront_cost_for_usage", "reservation", "AmortizedUpfrontCostForUsage", F,
     "OptionalBigDecimal"),
    ("reservation_amortized_upfront_fee_for_billing_period", "reservation", "AmortizedUpfrontFeeForBillingPeriod",
     F, "OptionalBigDecimal"),
    ("reservation_effective_cost", "reservation", "EffectiveCost", F, "OptionalBigDecimal"),
    ("reservation_recurring_fee_for_usage", "reservation", "RecurringFeeForUsage", F, "OptionalBigDecimal"),
    ("reservation_reservation_a_r_n", "reservation", "ReservationARN", S, "String"),
    ("reservation_unused_amortized_upfront_fee_for_billing_period", "reservation",
     "UnusedAmortizedUpfrontFeeForBillingPeriod", F, "OptionalBigDecimal"),
    ("reservation_unused_recurring_fee", "reservation", "UnusedRecurringFee", F, "OptionalBigDecimal"),
    ("savings_plan_savings_plan_a_r_n", "savingsPlan", "SavingsPlanARN", S, "String"),
    ("savings_plan_savings_plan_rate", "savingsPlan", "SavingsPlanRate", F, "OptionalBigDecimal"),
    ("savings_plan_savings_plan_effective_cost", "savingsPlan", "SavingsPlanEffectiveCost", F,
     "OptionalBigDecimal"),
    ("savings_plan_used_commitment", "savingsPlan", "UsedCommitment", F, "OptionalBigDecimal"),
    ("savings_plan_total_commitment_to_date", "savingsPlan", "TotalCommitmentToDate", F, "OptionalBigDecimal"),
    ("savings_plan_recurring_commitment_for_billing_period", "savingsPlan",
     "RecurringCommitmentForBillingPeriod", F, "OptionalBigDecimal"),
    ("savings_plan_amortized_upfront_commitment_for_billing_period", "savingsPlan",
     "AmortizedUpfrontCommitmentForBillingPeriod", F, "OptionalBigDecimal"),
    ("savings_plan_start_time", "savingsPlan", "StartTime", S, "String"),
    ("savings_plan_end_time", "savingsPlan", "EndTime", S, "String"),
    ("savings_plan_offering_type", "savingsPlan", "OfferingType", S, "String"),
    ("savings_plan_payment_option", "savingsPlan", "PaymentOption", S, "String"),
    ("savings_plan_purchase_term", "savingsPlan", "PurchaseTerm", S, "String"),
    ("savings_plan_region", "savingsPlan", "Region", S, "String"),
    ("resource_tags_aws_created_by", "resourceTags", "aws:createdBy", S, "String"),
    ("resource_tags_user_accountant_id", "resourceTags", "user:accountant_id", S, "String"),
    ("resource_tags_user_application", "resourceTags", "user:application", S, "String"),
    ("resource_tags_user_cost_center", "resourceTags", "user:cost_center", S, "String"),
    ("resource_tags_user_environment", "resourceTags", "user:environment", S, "String"),
]
CUR_SCHEMA = pa.schema([pa.field(name, typ) for name, _c, _n, typ, _m in CUR_COLUMNS])


def aws_stamp(t: dt.datetime) -> str:
    """`20260101T000000.000Z`, the manifest's billingPeriod format."""
    return t.strftime("%Y%m%dT%H%M%S.000Z")


def iso_ms(t: dt.datetime) -> str:
    """`2026-01-01T00:00:12.345Z`."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_cur(
    cur_dir: Path, table: pa.Table, month_start: dt.datetime, month_end: dt.datetime, *, bucket: str,
    prefix: str, report: str, account: str, assembly_id: str, report_id: str, max_rows_per_file: int = 500_000,
) -> list[str]:
    """Write the Athena-Parquet delivery, its status table and the month manifest; return the report keys."""
    base = cur_dir / prefix / report
    part = f"{report}/year={month_start.year}/month={month_start.month}"
    keys = []
    n_files = max(1, -(-table.num_rows // max_rows_per_file))
    for i in range(n_files):
        name = f"{report}-{i + 1:05d}.snappy.parquet"
        path = base / part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        chunk = table.slice(i * max_rows_per_file, max_rows_per_file)
        pq.write_table(chunk, path, compression="snappy")
        keys.append(f"{prefix}/{report}/{part}/{name}")
    status = pa.table({"status": pa.array(["READY"], pa.string())},
                      schema=pa.schema([pa.field("status", pa.string(), nullable=False)]))
    status_path = base / "cost_and_usage_data_status" / "cost_and_usage_data_status.parquet"
    status_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(status, status_path, compression="snappy")
    manifest = {
        "assemblyId": assembly_id,
        "account": account,
        "columns": [{"category": c, "name": n, "type": m} for _p, c, n, _t, m in CUR_COLUMNS],
        "charset": "UTF-8",
        "compression": "Parquet",
        "contentType": "application/x-parquet",
        "reportId": report_id,
        "reportName": report,
        "billingPeriod": {"start": aws_stamp(month_start), "end": aws_stamp(month_end)},
        "bucket": bucket,
        "reportKeys": keys,
        "additionalArtifactKeys": [],
    }
    period = f"{month_start:%Y%m%d}-{month_end:%Y%m%d}"
    write_file(base / period / f"{report}-Manifest.json", json.dumps(manifest, indent=2).encode())
    return keys


def write_inventory_snapshot(
    inventory_dir: Path, *, source_bucket: str, destination_bucket: str, config_id: str, taken_at: dt.datetime,
    rows: list[tuple[str, int, dt.datetime]], data_name: str,
) -> None:
    """One S3 Inventory delivery: `<bucket>/<config>/data/<uuid>.csv.gz` and `<bucket>/<config>/<stamp>/manifest.json`."""
    lines = [
        f'"{source_bucket}","{key}","{size}","{iso_ms(modified)}"\n' for key, size, modified in rows
    ]
    data = gzip_bytes("".join(lines).encode())
    data_key = f"{source_bucket}/{config_id}/data/{data_name}.csv.gz"
    write_file(inventory_dir / data_key, data)
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(taken_at.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": data_key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()}],
    }
    body = json.dumps(manifest, indent=2).encode()
    folder = inventory_dir / source_bucket / config_id / taken_at.strftime("%Y-%m-%dT%H-%MZ")
    write_file(folder / "manifest.json", body)
    write_file(folder / "manifest.checksum", (hashlib.md5(body).hexdigest() + "\n").encode())


def write_log_stream(logs_dir: Path, export_prefix: str, task_id: str, stream: str,
                     lines: list[tuple[dt.datetime, str]]) -> None:
    """A CloudWatch Logs export object: `<prefix>/<task id>/<log stream>/000000.gz`.

    `lines` are (event time, message); each is written as `<ISO-8601 UTC timestamp> <message>`, in time order.
    A message starting with NUL is written raw, without the timestamp (the sample's corrupted lines).
    """
    out = []
    for t, msg in sorted(lines, key=lambda x: x[0]):
        out.append(msg[1:] + "\n" if msg.startswith("\0") else f"{iso_ms(t)} {msg}\n")
    body = "".join(out)
    write_file(logs_dir / export_prefix / task_id / stream / "000000.gz", gzip_bytes(body.encode()))
