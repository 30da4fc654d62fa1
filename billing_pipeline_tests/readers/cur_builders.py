"""Writers for small CUR deliveries in every AWS layout, built in tmp_path from Python dicts.

No tests here: the CUR reader tests (readers/test_cur*.py, engines/test_spark_cur.py) import these helpers; the
`s3` fixture is in readers/conftest.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing_pipeline.readers.cur import find_deliveries, stage_line_items
from billing_pipeline.storage import locate

SAMPLES = Path(__file__).parents[2] / ".." / "shared" / "samples"
BUCKET = "cur-bucket"


def legacy_row(**columns: str) -> dict[str, str]:
    """A legacy CSV line item (`category/Name` headers) with sensible defaults; '' for missing strings."""
    row = {
        "identity/LineItemId": "li-1",
        "bill/InvoiceId": "",
        "bill/PayerAccountId": "111111111111",
        "bill/BillingPeriodStartDate": "2026-01-01T00:00:00Z",
        "bill/BillingPeriodEndDate": "2026-02-01T00:00:00Z",
        "lineItem/UsageAccountId": "222222222222",
        "lineItem/LineItemType": "Usage",
        "lineItem/UsageStartDate": "2026-01-01T00:00:00Z",
        "lineItem/UsageEndDate": "2026-01-01T01:00:00Z",
        "lineItem/ProductCode": "AWSLambda",
        "lineItem/UsageType": "USE1-Lambda-GB-Second",
        "lineItem/Operation": "Invoke",
        "lineItem/ResourceId": "arn:aws:lambda:us-east-1:222222222222:function:tax",
        "lineItem/UsageAmount": "10.5",
        "lineItem/CurrencyCode": "USD",
        "lineItem/UnblendedCost": "0.0000166667",
        "lineItem/LineItemDescription": "Lambda GB-seconds",
    }
    row.update(columns)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], compression: str | None = "gzip") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = list(dict.fromkeys(name for row in rows for name in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    if compression == "gzip":
        path.write_bytes(gzip.compress(data))
    elif compression == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(path.name[: -len(".zip")], data)
    else:
        path.write_bytes(data)
    return path


def write_parquet(path: Path, columns: dict[str, list] | pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = columns if isinstance(columns, pa.Table) else pa.table(columns)
    pq.write_table(table, path)
    return path


def key_of(root: Path, path: Path, prefix: str = "cur") -> str:
    """The bucket-relative key AWS would write in a manifest for a file delivered at `path` below `root`."""
    return f"{prefix}/{path.relative_to(root).as_posix()}"


def write_legacy_manifest(path: Path, report: str, keys: list[str], assembly_id: str | None,
                          start: str = "20260101", end: str = "20260201", content_type: str = "text/csv") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "reportId": "0123456789abcdef",
        "reportName": report,
        "account": "111111111111",
        "columns": [{"category": "lineItem", "name": "UnblendedCost", "type": "BigDecimal"}],
        "charset": "UTF-8",
        "compression": "Parquet" if content_type == "Parquet" else "GZIP",
        "contentType": content_type,
        "billingPeriod": {"start": f"{start}T000000.000Z", "end": f"{end}T000000.000Z"},
        "bucket": BUCKET,
        "reportKeys": keys,
    }
    if assembly_id:
        manifest["assemblyId"] = assembly_id
    path.write_text(json.dumps(manifest))
    return path


def write_anonymized_delivery(root: Path) -> Path:
    """The real anonymized CSV sample (November 2023) as a one-file legacy gzip delivery under `root`; its file."""
    period = root / "anon-cur" / "20231101-20231201"
    data = period / "7f1c0f5a-assembly" / "anon-cur-1.csv.gz"
    data.parent.mkdir(parents=True)
    data.write_bytes(gzip.compress((SAMPLES / "anonymized-cur-export.csv").read_bytes()))
    write_legacy_manifest(period / "anon-cur-Manifest.json", "anon-cur", [key_of(root, data)], "7f1c0f5a-assembly",
                          start="20231101", end="20231201")
    return data


def write_export_manifest(path: Path, export: str, data_files: list[str], period: str = "2026-01") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:111111111111:export/{export}-abc",
        "exportName": export,
        "executionId": "exec-1",
        "billingPeriod": period,
        "bucket": BUCKET,
        "dataFiles": data_files,
    }
    path.write_text(json.dumps(manifest))
    return path


def read_all(root: Path, con: duckdb.DuckDBPyConnection | None = None):
    """find_deliveries + stage_line_items for every month: ({month: delivery}, {month: rows as dicts})."""
    location = locate(str(root))
    con = con or duckdb.connect()
    deliveries = find_deliveries(location)
    rows = {}
    for month, delivery in deliveries.items():
        count = stage_line_items(con, location, delivery, "staged")
        cursor = con.execute("SELECT * FROM staged ORDER BY line_item_id, usage_start")
        names = [d[0] for d in cursor.description]
        rows[month] = [dict(zip(names, values)) for values in cursor.fetchall()]
        assert count == len(rows[month])
    return deliveries, rows


def warehouse_columns() -> list[tuple[str, str]]:
    """(name, type) of cur_line_items as warehouse.sql creates it."""
    con = duckdb.connect()
    sql = (Path(__file__).parents[2] / "billing_pipeline" / "warehouse.sql").read_text()
    con.execute(sql).fetchall()
    return [(r[0], r[1]) for r in con.execute("DESCRIBE cur_line_items").fetchall()]


UTC_MS = pa.timestamp("ms", tz="UTC")


def athena_table(ids: list[str], cost: float = 1.0) -> dict:
    n = len(ids)
    return {
        "identity_line_item_id": ids,
        "bill_billing_period_start_date": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "line_item_usage_end_date": pa.array([dt.datetime(2026, 1, 1, 1)] * n, UTC_MS),
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": [cost] * n,
        "resource_tags_user_accountant_id": ["acme"] * n,
    }


def cur2_table(ids: list[str], tags: list[list[tuple[str, str]]]) -> pa.Table:
    n = len(ids)
    map_type = pa.map_(pa.string(), pa.string())
    return pa.table({
        "bill_billing_period_start_date": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "bill_payer_account_id": ["111111111111"] * n,
        "identity_line_item_id": ids,
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 2, 3)] * n, UTC_MS),
        "line_item_usage_end_date": pa.array([dt.datetime(2026, 1, 2, 4)] * n, UTC_MS),
        "line_item_product_code": ["AmazonS3"] * n,
        "line_item_usage_type": ["TimedStorage-ByteHrs"] * n,
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": [0.25] * n,
        "line_item_net_unblended_cost": [0.2] * n,
        "product": pa.array([[("product_name", "Amazon S3"), ("region", "us-east-1")]] * n, map_type),
        "resource_tags": pa.array(tags, map_type),
    })


def focus_columns(n: int) -> dict:
    return {
        "BilledCost": [1.5, 0.3][:n],
        "EffectiveCost": [1.2, 0.3][:n],
        "BillingAccountId": ["111111111111"] * n,
        "BillingCurrency": ["USD"] * n,
        "BillingPeriodStart": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "ChargeCategory": ["Usage", "Tax"][:n],
        "ChargeDescription": ["Lambda", "Tax"][:n],
        "ChargePeriodStart": pa.array([dt.datetime(2026, 1, 5)] * n, UTC_MS),
        "ChargePeriodEnd": pa.array([dt.datetime(2026, 1, 5, 1)] * n, UTC_MS),
        "ConsumedQuantity": [3.0, None][:n],
        "ResourceId": ["arn:aws:lambda:us-east-1:2:function:f", None][:n],
        "ServiceName": ["AWS Lambda", "AWS Lambda"][:n],
        "SubAccountId": ["222222222222"] * n,
        "x_Operation": ["Invoke", ""][:n],
        "x_ServiceCode": ["AWSLambda", "AWSLambda"][:n],
        "x_UsageType": ["USE1-Lambda-GB-Second", ""][:n],
    }


# Each line item type with its hand-computed amortized and net amortized cost (CUR query library rules).
COST_CASES = [
    # type, extra columns, unblended, amortized, net amortized
    ("Usage", {"lineItem/NetUnblendedCost": "1.2"}, "1.5", "1.5", "1.2"),
    ("SavingsPlanCoveredUsage", {"savingsPlan/SavingsPlanEffectiveCost": "1.4",
                                 "savingsPlan/NetSavingsPlanEffectiveCost": "1.3"}, "2.0", "1.4", "1.3"),
    ("SavingsPlanRecurringFee", {"savingsPlan/TotalCommitmentToDate": "5.0", "savingsPlan/UsedCommitment": "3.4",
                                 "lineItem/NetUnblendedCost": "4.5"}, "5.0", "1.6", "1.44"),
    ("SavingsPlanNegation", {"lineItem/NetUnblendedCost": "-1.8"}, "-2.0", "0", "0"),
    ("SavingsPlanUpfrontFee", {"lineItem/NetUnblendedCost": "90"}, "100", "0", "0"),
    ("DiscountedUsage", {"reservation/EffectiveCost": "0.7", "reservation/NetEffectiveCost": "0.65"}, "0", "0.7",
     "0.65"),
    ("RIFee", {"reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": "1.25",
               "reservation/UnusedRecurringFee": "0.5",
               "reservation/NetUnusedAmortizedUpfrontFeeForBillingPeriod": "1.1",
               "reservation/NetUnusedRecurringFee": "0.45"}, "10", "1.75", "1.55"),
    # a legacy CSV leaves a component that does not apply empty: the other still counts (was 0 for the whole fee)
    ("RIFee", {"reservation/UnusedRecurringFee": "0.5", "reservation/NetUnusedRecurringFee": "0.45"}, "10", "0.5",
     "0.45"),
    ("SavingsPlanRecurringFee", {"savingsPlan/TotalCommitmentToDate": "5.0", "lineItem/NetUnblendedCost": "4.5"},
     "5.0", "5.0", "4.5"),
    ("Fee", {"reservation/ReservationARN": "arn:aws:ec2:us-east-1:1:reserved-instances/r-1",
             "lineItem/NetUnblendedCost": "300"}, "300", "0", "0"),
    ("Fee", {"lineItem/NetUnblendedCost": "29", "lineItem/ProductCode": "AWSSupportBusiness"}, "29", "29", "29"),
    ("Tax", {"lineItem/NetUnblendedCost": "3.3"}, "3.3", "3.3", "3.3"),
    ("Credit", {"lineItem/NetUnblendedCost": "-5"}, "-5", "-5", "-5"),
    ("Refund", {"lineItem/NetUnblendedCost": "-1"}, "-1", "-1", "-1"),
    ("EdpDiscount", {"lineItem/NetUnblendedCost": "-0.5"}, "-0.5", "-0.5", "-0.5"),
    ("BundledDiscount", {"lineItem/NetUnblendedCost": "-0.2"}, "-0.2", "-0.2", "-0.2"),
]


def upload(client, local_root: Path) -> None:
    for path in sorted(p for p in local_root.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, path.relative_to(local_root).as_posix())
