"""The CUR reader on real samples and on small deliveries in every AWS layout (built by cur_builders.py)."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from billing_pipeline.readers.cur import discover, find_deliveries, stage_line_items
from billing_pipeline.readers.cur_types import CurNotReady
from billing_pipeline.readers.cur_columns import parquet_column_name
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import (
    COST_CASES,
    SAMPLES,
    UTC_MS,
    athena_table,
    cur2_table,
    focus_columns,
    write_anonymized_delivery,
    key_of,
    legacy_row,
    read_all,
    warehouse_columns,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

JAN, FEB = dt.date(2026, 1, 1), dt.date(2026, 2, 1)


def staged_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute("DESCRIBE staged").fetchall()]


# -- real samples ---------------------------------------------------------------------------------------------

WORKSHOP = SAMPLES / "workshop-cur"
WORKSHOP_FACTS = {  # month: (line items, unblended sum, sum of rows tagged cost_center)
    dt.date(2018, 10, 1): (119_307, Decimal("4064.4831"), Decimal("381.5122")),
    dt.date(2018, 11, 1): (124_340, Decimal("3505.3270"), Decimal("321.4076")),
    dt.date(2018, 12, 1): (91_264, Decimal("408.3760"), Decimal("54.7481")),
}


@pytest.mark.skipif(not WORKSHOP.is_dir(), reason="shared samples not present")
def test_workshop_cur_athena_layout_as_is():
    location = locate(str(WORKSHOP))
    deliveries = find_deliveries(location)
    assert sorted(deliveries) == sorted(WORKSHOP_FACTS)
    con = duckdb.connect()
    for month, (count, unblended, cost_center) in WORKSHOP_FACTS.items():
        delivery = deliveries[month]
        assert (delivery.layout, delivery.report, delivery.status, delivery.manifest) == (
            "athena_parquet", "workshop-cur", "READY", None)
        assert len(delivery.files) == 1 and f"month={month.month}/" in delivery.files[0]
        assert stage_line_items(con, location, delivery, "staged") == count
        assert staged_columns(con) == warehouse_columns()
        totals = con.execute(
            """SELECT round(sum(unblended_cost), 4), round(sum(unblended_cost) FILTER (cost_center IS NOT NULL), 4),
                      count(DISTINCT billing_period), min(billing_period), count(net_amortized_cost),
                      count(*) FILTER (resource_id = ''), count(DISTINCT source_file), any_value(delivery_id)
               FROM staged"""
        ).fetchall()[0]
        assert totals == (unblended, cost_center, 1, month, 0, 0, 1, delivery.delivery_id)
    # The tags keep user tags only, keys without the user_ prefix.
    keys = {k for (k,) in con.execute("SELECT DISTINCT unnest(map_keys(tags)) FROM staged").fetchall()}
    assert "cost_center" in keys and keys <= {"cost_center", "department", "environment", "name", "workload",
                                              "workload_type"}


@pytest.mark.skipif(not (SAMPLES / "anonymized-cur-export.csv").is_file(), reason="shared samples not present")
def test_anonymized_csv_export_as_legacy_gzip_delivery(tmp_path):
    root = tmp_path / "bucket"
    data = write_anonymized_delivery(root)

    deliveries, rows = read_all(root)
    month = dt.date(2023, 11, 1)
    delivery = deliveries[month]
    assert (delivery.layout, delivery.delivery_id, delivery.files) == ("legacy_csv", "7f1c0f5a-assembly", (str(data),))
    items = rows[month]
    assert len(items) == 1281
    assert sum(r["unblended_cost"] for r in items) == Decimal("1.6823086974")
    tax = [r for r in items if r["line_item_type"] == "Tax"]
    assert (len(tax), sum(r["unblended_cost"] for r in tax)) == (12, Decimal("0.08"))
    assert all(r["amortized_cost"] == r["unblended_cost"] for r in items)
    assert {(r["currency"], r["invoice_id"], r["tags"], r["net_amortized_cost"], r["billing_period"])
            for r in items} == {("USD", None, None, None, month)}
    assert min(r["usage_start"] for r in items) == dt.datetime(2023, 11, 1)
    assert max(r["usage_end"] for r in items) == dt.datetime(2023, 12, 1)
    assert {r["source_file"] for r in items} == {str(data)}


# -- legacy CUR with manifests --------------------------------------------------------------------------------

def test_create_new_version_reads_only_the_assembly_the_manifest_names(tmp_path):
    root = tmp_path / "bucket"
    period = root / "tenant-cur" / "20260101-20260201"
    old = write_csv(period / "aaaa-old" / "tenant-cur-1.csv.gz",
                    [legacy_row(**{"identity/LineItemId": "old", "lineItem/UnblendedCost": "5"})])
    new = [write_csv(period / "zzzz-new" / f"tenant-cur-{n}.csv.gz",
                     [legacy_row(**{"identity/LineItemId": f"new-{n}", "lineItem/UnblendedCost": "1.25"})])
           for n in (1, 2)]
    # Real buckets also hold a manifest inside every assembly folder: not the pointer to follow.
    write_legacy_manifest(period / "aaaa-old" / "tenant-cur-Manifest.json", "tenant-cur", [key_of(root, old)], "aaaa-old")
    write_legacy_manifest(period / "zzzz-new" / "tenant-cur-Manifest.json", "tenant-cur",
                          [key_of(root, p) for p in new], "zzzz-new")
    write_legacy_manifest(period / "tenant-cur-Manifest.json", "tenant-cur", [key_of(root, p) for p in new], "zzzz-new")

    deliveries, rows = read_all(root)
    assert list(deliveries) == [JAN]
    delivery = deliveries[JAN]
    assert delivery.files == tuple(str(p) for p in new)
    assert (delivery.delivery_id, delivery.manifest, delivery.layout, delivery.report) == (
        "zzzz-new", str(period / "tenant-cur-Manifest.json"), "legacy_csv", "tenant-cur")
    assert [r["line_item_id"] for r in rows[JAN]] == ["new-1", "new-2"]
    assert {r["delivery_id"] for r in rows[JAN]} == {"zzzz-new"}


def test_overwrite_report_files_in_the_period_folder(tmp_path):
    root = tmp_path / "bucket"
    period = root / "prefix" / "ow-cur" / "20260101-20260201"
    data = write_csv(period / "ow-cur-1.csv.gz", [legacy_row(), legacy_row(**{"identity/LineItemId": "li-2"})])
    write_legacy_manifest(period / "ow-cur-Manifest.json", "ow-cur", [key_of(root, data, prefix="cur")], "asm-7")
    deliveries, rows = read_all(root)
    assert deliveries[JAN].files == (str(data),) and deliveries[JAN].delivery_id == "asm-7"
    assert len(rows[JAN]) == 2


def test_legacy_csv_zip_and_plain_csv(tmp_path):
    root = tmp_path / "bucket"
    period = root / "z-cur" / "20260101-20260201" / "asm"
    zipped = write_csv(period / "z-cur-1.csv.zip", [legacy_row(**{"identity/LineItemId": "zip"})], compression="zip")
    plain = write_csv(period / "z-cur-2.csv", [legacy_row(**{"identity/LineItemId": "plain"})], compression=None)
    write_legacy_manifest(root / "z-cur" / "20260101-20260201" / "z-cur-Manifest.json", "z-cur",
                          [key_of(root, zipped), key_of(root, plain)], "asm")
    _, rows = read_all(root)
    assert [r["line_item_id"] for r in rows[JAN]] == ["plain", "zip"]


def test_legacy_parquet_with_manifest(tmp_path):
    root = tmp_path / "bucket"
    period = root / "pq-cur" / "20260101-20260201"
    data = write_parquet(period / "asm-1" / "pq-cur-1.snappy.parquet", {
        "identity_line_item_id": ["a"],
        "line_item_line_item_type": ["Usage"],
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 3, 4)], UTC_MS),
        "line_item_usage_end_date": pa.array([dt.datetime(2026, 1, 3, 5)], UTC_MS),
        "line_item_currency_code": ["USD"],
        "line_item_unblended_cost": pa.array([0.1], pa.float64()),
        "line_item_product_code": ["AmazonDynamoDB"],
    })
    write_legacy_manifest(period / "pq-cur-Manifest.json", "pq-cur", [key_of(root, data)], "asm-1",
                          content_type="Parquet")
    deliveries, rows = read_all(root)
    assert deliveries[JAN].layout == "legacy_parquet"
    (row,) = rows[JAN]
    assert (row["unblended_cost"], row["usage_start"], row["service"], row["tags"], row["billing_period"]) == (
        Decimal("0.1"), dt.datetime(2026, 1, 3, 4), "AmazonDynamoDB", None, JAN)


# -- Athena layout ---------------------------------------------------------------------------------------------

def test_athena_layout_prefers_the_top_level_manifest(tmp_path):
    root = tmp_path / "bucket"
    report = root / "cur" / "ath"
    named = write_parquet(report / "ath" / "year=2026" / "month=1" / "ath-00001.snappy.parquet", athena_table(["kept"]))
    write_parquet(report / "ath" / "year=2026" / "month=1" / "ath-00002.snappy.parquet", athena_table(["stale"]))
    write_parquet(report / "ath" / "year=2026" / "month=2" / "ath-00001.snappy.parquet", athena_table(["feb"]))
    # AWS writes the status beside the inner report folder: <prefix>/<report>/cost_and_usage_data_status/.
    write_parquet(report / "cost_and_usage_data_status" / "cost_and_usage_data_status.parquet",
                  {"status": ["UPDATING"]})
    write_legacy_manifest(report / "20260101-20260201" / "ath-Manifest.json", "ath",
                          [f"cur/ath/ath/year=2026/month=1/{named.name}"], "asm-jan", content_type="Parquet")

    found = discover(locate(str(root)))
    assert (found.deliveries[JAN].layout, found.deliveries[JAN].delivery_id, found.deliveries[JAN].status) == (
        "athena_parquet", "asm-jan", "UPDATING")
    # February has no manifest: while the status says UPDATING nothing says which of its files are the month's
    # (AWS may have removed some and not written the rest), so it is not read and its last load stays
    assert FEB not in found.deliveries and isinstance(found.problems[FEB], CurNotReady)
    assert str(found.problems[FEB]).startswith(f"{report / 'ath'}: cost_and_usage_data_status says UPDATING")
    # READY: its year=/month= folder is the delivery, fingerprinted.
    write_parquet(report / "cost_and_usage_data_status" / "cost_and_usage_data_status.parquet", {"status": ["READY"]})
    deliveries, rows = read_all(root)
    assert [r["line_item_id"] for r in rows[JAN]] == ["kept"]
    assert deliveries[FEB].manifest is None and len(deliveries[FEB].delivery_id) == 64
    assert [(r["line_item_id"], r["accountant_id"], r["tags"]) for r in rows[FEB]] == [
        ("feb", "acme", {"accountant_id": "acme"})]


def test_fingerprint_is_stable_and_follows_the_files(tmp_path):
    root = tmp_path / "bucket"
    data = write_parquet(root / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", athena_table(["a"]))
    first = find_deliveries(locate(str(root)))[JAN].delivery_id
    assert find_deliveries(locate(str(root)))[JAN].delivery_id == first
    write_parquet(data, athena_table(["a", "b"]))
    assert find_deliveries(locate(str(root)))[JAN].delivery_id != first


# -- Data Exports: CUR 2.0 and FOCUS --------------------------------------------------------------------------

def test_cur2_export_with_manifest_and_map_tags(tmp_path):
    root = tmp_path / "bucket"
    export = root / "exports" / "cur2-export"
    data = export / "data" / "BILLING_PERIOD=2026-01"
    listed = write_parquet(data / "cur2-export-00001.snappy.parquet", cur2_table(["a", "b"], [
        [("user_accountant_id", "acme"), ("user_application", "tax-demo"), ("aws_created_by", "root")],
        [("user_cost_center", "cc-9"), ("user_environment", "")],
    ]))
    write_parquet(data / "cur2-export-00002.snappy.parquet", cur2_table(["not-listed"], [[]]))
    manifest = write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-export-Manifest.json",
                                     "cur2-export", [f"s3://cur-bucket/{listed.relative_to(root).as_posix()}"])

    deliveries, rows = read_all(root)
    delivery = deliveries[JAN]
    assert (delivery.layout, delivery.report, delivery.manifest, delivery.files) == (
        "cur2", "cur2-export", str(manifest), (str(listed),))
    a, b = rows[JAN]
    assert (a["tags"], a["accountant_id"], a["application"], a["cost_center"]) == (
        {"accountant_id": "acme", "application": "tax-demo"}, "acme", "tax-demo", None)
    assert (b["tags"], b["cost_center"], b["environment"]) == ({"cost_center": "cc-9"}, "cc-9", None)
    assert (a["service"], a["unblended_cost"], a["amortized_cost"], a["net_amortized_cost"]) == (
        "AmazonS3", Decimal("0.25"), Decimal("0.25"), Decimal("0.2"))


def test_cur2_export_without_manifest_reads_the_partition(tmp_path):
    root = tmp_path / "cur2-only"
    write_parquet(root / "e" / "data" / "BILLING_PERIOD=2026-02" / "e-00001.snappy.parquet", cur2_table(["x"], [[]]))
    deliveries, rows = read_all(root)
    assert deliveries[FEB].layout == "cur2" and deliveries[FEB].manifest is None
    # billing_period comes from bill_billing_period_start_date when the file has it.
    assert [(r["line_item_id"], r["tags"], r["billing_period"]) for r in rows[FEB]] == [("x", {}, JAN)]


def test_focus_export_with_map_tags(tmp_path):
    root = tmp_path / "bucket"
    columns = focus_columns(2)
    columns["Tags"] = pa.array([[("user:CostCenter", "cc-1"), ("accountant_id", "acme"), ("aws:createdBy", "x")],
                                []], pa.map_(pa.string(), pa.string()))
    write_parquet(root / "focus-export" / "data" / "BILLING_PERIOD=2026-01" / "focus-export-00001.snappy.parquet",
                  columns)
    deliveries, rows = read_all(root)
    assert deliveries[JAN].layout == "focus"
    usage, tax = sorted(rows[JAN], key=lambda r: r["line_item_type"], reverse=True)
    assert (usage["line_item_type"], usage["service"], usage["usage_type"], usage["operation"]) == (
        "Usage", "AWSLambda", "USE1-Lambda-GB-Second", "Invoke")
    assert (usage["unblended_cost"], usage["amortized_cost"], usage["net_amortized_cost"]) == (
        Decimal("1.5"), Decimal("1.2"), None)
    assert (usage["tags"], usage["accountant_id"], usage["cost_center"], usage["usage_amount"]) == (
        {"cost_center": "cc-1", "accountant_id": "acme"}, "acme", "cc-1", Decimal("3"))
    assert (usage["payer_account_id"], usage["usage_account_id"], usage["currency"]) == (
        "111111111111", "222222222222", "USD")
    assert (tax["line_item_type"], tax["operation"], tax["resource_id"], tax["tags"]) == ("Tax", None, None, {})


def test_a_focus_1_2_export_names_the_usage_type_sku_meter(tmp_path):
    """AWS's FOCUS 1.2 with AWS columns dropped x_UsageType: "This is now the SkuMeter column" (AWS Data Exports,
    "Migrating from FOCUS 1.0 to FOCUS 1.2"). Without it every line's usage type was NULL: no driver rule matched,
    so every shared line went to `unattributed` whole, and no network line or Bedrock model was recognised."""
    root = tmp_path / "bucket"
    columns = focus_columns(2)
    columns["SkuMeter"] = columns.pop("x_UsageType")
    write_parquet(root / "focus12" / "data" / "BILLING_PERIOD=2026-01" / "focus12-00001.snappy.parquet", columns)
    _, rows = read_all(root)
    usage = next(r for r in rows[JAN] if r["line_item_type"] == "Usage")
    assert (usage["service"], usage["usage_type"], usage["operation"]) == (
        "AWSLambda", "USE1-Lambda-GB-Second", "Invoke")


SOURCE_PREFIXED_TAGS = [("resourceTags/user:accountant_id", "acme"), ("resourceTags/user:application", "tax-demo"),
                        ("resourceTags/aws:createdBy", "root"), ("costCategory/accountant_id", "team-x"),
                        ("accountTag/application", "other"), ("userAttribute/Department", "finance")]
# the resource's own tags under their keys; the other sources keep their prefix (never a resource tag key)
SOURCE_PREFIXED_READ = {"accountant_id": "acme", "application": "tax-demo",
                        "cost_category_accountant_id": "team-x", "account_tag_application": "other",
                        "user_attribute_department": "finance"}


def test_tag_maps_with_aws_source_prefixes_read_the_resources_tags(tmp_path):
    """AWS's tag map of all sources prefixes each key with its source (AWS Data Exports, CUR 2.0 "Tags column":
    `resourceTags/`, `userAttribute/`, `accountTag/`, `costCategory/`, `iamPrincipal/`), as FOCUS 1.2's Tags holds
    the cost categories too ("Migrating from FOCUS 1.0 to FOCUS 1.2": x_CostCategories is now in Tags). A resource
    tag `resourceTags/user:accountant_id` was read as `resource_tags_user_accountant_id`: no line had a tenant or
    an application, so the whole bill went out of scope."""
    root = tmp_path / "bucket"
    columns = focus_columns(1)
    columns["SkuMeter"] = columns.pop("x_UsageType")
    columns["Tags"] = pa.array([SOURCE_PREFIXED_TAGS], pa.map_(pa.string(), pa.string()))
    write_parquet(root / "focus12" / "data" / "BILLING_PERIOD=2026-01" / "focus12-00001.snappy.parquet", columns)
    _, rows = read_all(root)
    (usage,) = rows[JAN]
    assert (usage["tags"], usage["accountant_id"], usage["application"]) == (SOURCE_PREFIXED_READ, "acme", "tax-demo")


def test_a_cur2_export_with_the_tags_column_only(tmp_path):
    """CUR 2.0's `tags` column holds every tag source ("If you select this column, you need not select Resource
    tags and Cost category columns"): an export that selects it instead of `resource_tags` had no tags at all."""
    root = tmp_path / "bucket"
    table = cur2_table(["a"], [SOURCE_PREFIXED_TAGS]).rename_columns(
        ["tags" if name == "resource_tags" else name for name in cur2_table(["a"], [[]]).column_names])
    write_parquet(root / "cur2" / "data" / "BILLING_PERIOD=2026-01" / "cur2-00001.snappy.parquet", table)
    deliveries, rows = read_all(root)
    (item,) = rows[JAN]
    assert deliveries[JAN].layout == "cur2"
    assert (item["tags"], item["accountant_id"], item["application"]) == (SOURCE_PREFIXED_READ, "acme", "tax-demo")


def test_a_focus_correction_giving_back_usage_is_a_refund(tmp_path):
    """FOCUS keeps a correction's ChargeCategory (Usage) and says `ChargeClass: Correction`: a negative one is a
    refund of a period already invoiced, as CUR writes it (as a negative Usage line it held the month's invoicing as
    implausible). A positive correction stays Usage."""
    root = tmp_path / "bucket"
    columns = {name: (v.to_pylist() if isinstance(v, pa.Array) else v) * 2 for name, v in focus_columns(1).items()}
    columns.update(BilledCost=[-2.0, 0.5], EffectiveCost=[-2.0, 0.5], ChargeClass=["Correction", "Correction"])
    columns = {name: (pa.array(v, UTC_MS) if name.startswith(("ChargePeriod", "BillingPeriod")) else v)
               for name, v in columns.items()}
    write_parquet(root / "f" / "data" / "BILLING_PERIOD=2026-01" / "f-00001.parquet", columns)
    _, rows = read_all(root)
    assert sorted((r["line_item_type"], r["unblended_cost"]) for r in rows[JAN]) == [
        ("Refund", Decimal("-2")), ("Usage", Decimal("0.5"))]


def test_a_focus_correction_of_commitment_covered_usage_is_a_refund(tmp_path):
    """Usage a Savings Plan covered is billed 0 (BilledCost) at its share of the commitment (EffectiveCost): its
    correction gives back effective cost only, BilledCost 0 and EffectiveCost -0.6. It stayed a Usage line with a
    negative amortized cost, which implausible_money holds the month's invoicing for."""
    root = tmp_path / "bucket"
    columns = {name: (v.to_pylist() if isinstance(v, pa.Array) else v) for name, v in focus_columns(1).items()}
    columns.update(BilledCost=[0.0], EffectiveCost=[-0.6], ChargeClass=["Correction"],
                   CommitmentDiscountStatus=["Used"], CommitmentDiscountCategory=["Spend"])
    columns = {name: (pa.array(v, UTC_MS) if name.startswith(("ChargePeriod", "BillingPeriod")) else v)
               for name, v in columns.items()}
    write_parquet(root / "f" / "data" / "BILLING_PERIOD=2026-01" / "f-00001.parquet", columns)
    _, rows = read_all(root)
    assert [(r["line_item_type"], r["unblended_cost"], r["amortized_cost"]) for r in rows[JAN]] == [
        ("Refund", Decimal("0"), Decimal("-0.6"))]


def test_focus_csv_with_json_tags(tmp_path):
    root = tmp_path / "bucket"
    row = {"BilledCost": "2.5", "EffectiveCost": "2.0", "BillingCurrency": "USD", "ChargeCategory": "Usage",
           "ChargePeriodStart": "2026-01-07T00:00:00Z", "ChargePeriodEnd": "2026-01-07T01:00:00Z",
           "ServiceName": "Amazon DynamoDB", "Tags": '{"user:application": "tax-demo", "Environment": "prod"}'}
    write_csv(root / "f" / "data" / "BILLING_PERIOD=2026-01" / "f-00001.csv.gz", [row])
    deliveries, rows = read_all(root)
    (item,) = rows[JAN]
    assert deliveries[JAN].layout == "focus"
    assert (item["service"], item["amortized_cost"], item["application"], item["environment"]) == (
        "Amazon DynamoDB", Decimal("2.0"), "tax-demo", "prod")


# -- normalization ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, name", [
    ("lineItem/UnblendedCost", "line_item_unblended_cost"),
    ("resourceTags/user:CostCenter", "resource_tags_user_cost_center"),
    ("resourceTags/user:accountant_id", "resource_tags_user_accountant_id"),
    ("reservation/ReservationARN", "reservation_reservation_a_r_n"),
    ("savingsPlan/SavingsPlanEffectiveCost", "savings_plan_savings_plan_effective_cost"),
    ("product/servicecode", "product_servicecode"),
    ("line_item_unblended_cost", "line_item_unblended_cost"),
])
def test_parquet_column_name_rule(header, name):
    assert parquet_column_name(header) == name


def test_schema_drift_tags_and_net_columns_come_and_go(tmp_path):
    root = tmp_path / "bucket"
    jan_rows = [legacy_row(**{"resourceTags/user:CostCenter": "cc-1", "resourceTags/user:accountant_id": "acme",
                              "resourceTags/user:Application": "tax-demo", "resourceTags/aws:createdBy": "root",
                              "lineItem/NetUnblendedCost": "0.9", "lineItem/UnblendedCost": "1"}),
                legacy_row(**{"identity/LineItemId": "li-2", "resourceTags/user:CostCenter": "",
                              "lineItem/NetUnblendedCost": "0.45", "lineItem/UnblendedCost": "0.5"})]
    feb_rows = [legacy_row(**{"bill/BillingPeriodStartDate": "2026-02-01T00:00:00Z",
                              "lineItem/UsageStartDate": "2026-02-01T00:00:00Z",
                              "lineItem/UsageEndDate": "2026-02-01T01:00:00Z"})]
    for rows, (start, end) in ((jan_rows, ("20260101", "20260201")), (feb_rows, ("20260201", "20260301"))):
        period = root / "drift" / f"{start}-{end}"
        data = write_csv(period / "asm" / "drift-1.csv.gz", rows)
        write_legacy_manifest(period / "drift-Manifest.json", "drift", [key_of(root, data)], f"asm-{start}",
                              start=start, end=end)
    _, rows = read_all(root)
    first, second = rows[JAN]
    assert first["tags"] == {"cost_center": "cc-1", "accountant_id": "acme", "application": "tax-demo"}
    assert (first["cost_center"], first["accountant_id"], first["application"], first["environment"]) == (
        "cc-1", "acme", "tax-demo", None)
    assert (second["tags"], second["cost_center"]) == ({}, None)  # '' is no tag
    assert [r["net_amortized_cost"] for r in rows[JAN]] == [Decimal("0.9"), Decimal("0.45")]
    (feb,) = rows[FEB]
    assert (feb["tags"], feb["net_amortized_cost"], feb["billing_period"], feb["amortized_cost"]) == (
        None, None, FEB, Decimal("0.0000166667"))


def test_empty_strings_are_null_and_times_are_utc(tmp_path):
    root = tmp_path / "bucket"
    row = legacy_row(**{"lineItem/ResourceId": "", "lineItem/Operation": "", "bill/InvoiceId": "",
                        "lineItem/UsageAmount": "", "lineItem/UsageStartDate": "2026-01-01T05:30:00+05:30",
                        "lineItem/UsageEndDate": "2026-01-01T01:00:00.000Z", "lineItem/UnblendedCost": "1.0E-7"})
    data = write_csv(root / "e" / "20260101-20260201" / "asm" / "e-1.csv.gz", [row])
    write_legacy_manifest(root / "e" / "20260101-20260201" / "e-Manifest.json", "e", [key_of(root, data)], "asm")
    _, rows = read_all(root)
    (item,) = rows[JAN]
    assert (item["resource_id"], item["operation"], item["invoice_id"], item["usage_amount"]) == (None, None, None, None)
    assert (item["usage_start"], item["usage_end"]) == (dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, 1))
    assert item["unblended_cost"] == Decimal("0.0000001")


def test_cost_metrics_per_line_item_type(tmp_path):
    root = tmp_path / "bucket"
    rows = [legacy_row(**{"identity/LineItemId": f"li-{i:02d}", "lineItem/LineItemType": kind,
                          "lineItem/UnblendedCost": unblended, **extra})
            for i, (kind, extra, unblended, _, _) in enumerate(COST_CASES)]
    data = write_csv(root / "m" / "20260101-20260201" / "asm" / "m-1.csv.gz", rows)
    write_legacy_manifest(root / "m" / "20260101-20260201" / "m-Manifest.json", "m", [key_of(root, data)], "asm")
    _, staged = read_all(root)
    got = [(r["line_item_type"], r["unblended_cost"], r["amortized_cost"], r["net_amortized_cost"])
           for r in staged[JAN]]
    assert got == [(kind, Decimal(u), Decimal(a), Decimal(n)) for kind, _, u, a, n in COST_CASES]
    # Credits, refunds and tax are kept: the unblended total is the invoice total.
    assert sum(r["unblended_cost"] for r in staged[JAN]) == sum(Decimal(c[2]) for c in COST_CASES)


def staged_costs(tmp_path, cases):
    """(type, unblended, amortized, net amortized) of legacy CSV line items (type, unblended, extra columns)."""
    root = tmp_path / "bucket"
    rows = [legacy_row(**{"identity/LineItemId": f"li-{i:02d}", "lineItem/LineItemType": kind,
                          "lineItem/UnblendedCost": unblended, **extra})
            for i, (kind, unblended, extra) in enumerate(cases)]
    data = write_csv(root / "m" / "20260101-20260201" / "asm" / "m-1.csv.gz", rows)
    write_legacy_manifest(root / "m" / "20260101-20260201" / "m-Manifest.json", "m", [key_of(root, data)], "asm")
    _, staged = read_all(root)
    return [(r["line_item_type"], r["unblended_cost"], r["amortized_cost"], r["net_amortized_cost"])
            for r in staged[JAN]]


def test_savings_plan_fee_without_its_commitment_to_date_is_never_negative(tmp_path):
    """A Savings Plan fee whose savings_plan_total_commitment_to_date is empty (a CUR 2.0 export whose column
    selection left it out) has no known unused commitment: it counts 0, as in the CUR query library (NULL - used
    is NULL), never 0 - used (a negative fee: unused commitment is total - used, at least 0)."""
    got = staged_costs(tmp_path, [
        ("SavingsPlanRecurringFee", "5.0", {"savingsPlan/UsedCommitment": "3.4", "lineItem/NetUnblendedCost": "4.5"}),
    ])
    assert got == [("SavingsPlanRecurringFee", Decimal("5"), Decimal("0"), Decimal("0"))]


def test_staged_table_matches_warehouse_for_every_layout(tmp_path):
    root = tmp_path / "bucket"
    write_parquet(root / "e" / "data" / "BILLING_PERIOD=2026-01" / "e-1.parquet", cur2_table(["x"], [[]]))
    location = locate(str(root))
    con = duckdb.connect()
    stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    assert staged_columns(con) == warehouse_columns()
    # Re-staging replaces, never appends.
    assert stage_line_items(con, location, find_deliveries(location)[JAN], "staged") == 1


def test_location_below_the_report_and_copied_manifest_keys(tmp_path):
    """The URI may point inside the bucket (a report folder); manifest keys are mapped by their tail."""
    root = tmp_path / "bucket"
    period = root / "deep" / "prefix" / "r" / "20260101-20260201"
    data = write_csv(period / "asm" / "r-1.csv.gz", [legacy_row()])
    write_legacy_manifest(period / "r-Manifest.json", "r", [f"other/prefix/r/20260101-20260201/asm/{data.name}"], "asm")
    deliveries, rows = read_all(root / "deep" / "prefix" / "r")
    assert deliveries[JAN].files == (str(data),) and len(rows[JAN]) == 1


def test_copy_of_workshop_sample_in_a_bucket_folder(tmp_path):
    if not WORKSHOP.is_dir():
        pytest.skip("shared samples not present")
    target = tmp_path / "bucket" / "cur" / "workshop" / "workshop"
    shutil.copytree(WORKSHOP / "year=2018" / "month=12", target / "year=2018" / "month=12")
    deliveries = find_deliveries(locate(str(tmp_path / "bucket")))
    assert list(deliveries) == [dt.date(2018, 12, 1)] and deliveries[dt.date(2018, 12, 1)].report == "workshop"
