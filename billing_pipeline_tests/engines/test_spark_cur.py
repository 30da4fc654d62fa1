"""CUR normalization inside Spark (readers/cur_spark.py): Spark reads the delivery's files itself and runs the
DuckDB reader's projection and cur_line_items.sql, transpiled. Every column of every row (tags included) equals
what the DuckDB path writes, on the real public samples, a generated month and a small delivery of every layout;
bad input fails naming the file, with the DuckDB path's message."""

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from billing_pipeline.assets.cur_line_items import load_delivery
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.engines.spark_engine import SparkEngine, spark_session, to_spark_sql
from billing_pipeline.readers.cur import CurFormatError, find_deliveries
from billing_pipeline.resources.warehouse import warehouse_ddl
from billing_pipeline.sample_data import generate_month
from billing_pipeline.storage import locate
from billing_pipeline_tests.conftest import SAMPLES
from billing_pipeline_tests.readers.cur_builders import (
    COST_CASES,
    athena_table,
    cur2_table,
    focus_columns,
    write_anonymized_delivery,
    key_of,
    legacy_row,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]  # one Spark JVM per test run; minutes

JAN = dt.date(2026, 1, 1)
MAP = pa.map_(pa.string(), pa.string())


@pytest.fixture(scope="module")
def spark():
    return spark_session("local[2]")


def plain(row: tuple) -> tuple:
    """A row comparable across engines: the tags MAP as its sorted items."""
    return tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in row)


def duckdb_load(root: Path, month: dt.date) -> tuple[list[str], list[tuple]]:
    """The month's cur_line_items as the DuckDB path writes them: (columns, sorted rows)."""
    location = locate(str(root))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(warehouse_ddl())
    load_delivery(DuckDBEngine(con), location, find_deliveries(location)[month], month)
    cursor = con.execute("SELECT * FROM cur_line_items")
    columns = [d[0] for d in cursor.description]
    return columns, sorted((plain(r) for r in cursor.fetchall()), key=repr)


def spark_load(spark, warehouse: Path, root: Path, month: dt.date, columns: list[str]) -> list[tuple]:
    """The same through the Spark path, read back from the Parquet dataset it wrote."""
    engine = SparkEngine(spark, str(warehouse), warehouse_ddl())
    location = locate(str(root))
    load_delivery(engine, location, find_deliveries(location)[month], month)
    fresh = spark.read.parquet(str(warehouse / "cur_line_items")).selectExpr(*columns)
    return sorted((plain(tuple(r)) for r in fresh.collect()), key=repr)


def assert_identical(spark, tmp_path: Path, root: Path, month: dt.date) -> list[dict]:
    columns, expected = duckdb_load(root, month)
    assert spark_load(spark, tmp_path / "spark-warehouse", root, month, columns) == expected
    assert expected
    return [dict(zip(columns, row)) for row in expected]


def failures(spark, tmp_path: Path, root: Path) -> tuple[str, str]:
    """The DuckDB path's and the Spark path's CurFormatError for a bad January delivery."""
    with pytest.raises(CurFormatError) as on_duckdb:
        duckdb_load(root, JAN)
    with pytest.raises(CurFormatError) as on_spark:
        spark_load(spark, tmp_path / "spark-warehouse", root, JAN, [])
    return str(on_duckdb.value), str(on_spark.value)


# -- the real public samples and a generated month ------------------------------------------------------------

@pytest.mark.skipif(not (SAMPLES / "workshop-cur").is_dir(), reason="../shared/samples is not beside the repo")
def test_workshop_month_parquet_athena_layout(spark, tmp_path):
    rows = assert_identical(spark, tmp_path, SAMPLES / "workshop-cur", dt.date(2018, 12, 1))
    assert len(rows) == 91_264
    assert round(sum(r["unblended_cost"] for r in rows), 4) == Decimal("408.3760")
    assert round(sum(r["unblended_cost"] for r in rows if r["cost_center"] is not None), 4) == Decimal("54.7481")
    assert {k for r in rows if r["tags"] for k, _ in r["tags"]} == {
        "cost_center", "department", "environment", "name", "workload"}


@pytest.mark.skipif(not (SAMPLES / "anonymized-cur-export.csv").is_file(), reason="shared samples not present")
def test_anonymized_legacy_csv_export(spark, tmp_path):
    root = tmp_path / "bucket"
    data = write_anonymized_delivery(root)
    rows = assert_identical(spark, tmp_path, root, dt.date(2023, 11, 1))
    assert len(rows) == 1281
    assert sum(r["unblended_cost"] for r in rows) == Decimal("1.6823086974")
    assert {(r["source_file"], r["delivery_id"], r["tags"]) for r in rows} == {(str(data), "7f1c0f5a-assembly", None)}


def test_generated_month(spark, tmp_path):
    sample = generate_month(tmp_path / "sample", JAN, tenants=3, rows=1500, seed=5)
    rows = assert_identical(spark, tmp_path, Path(sample.cur_uri), JAN)
    assert len(rows) == sample.line_items
    assert sum(r["unblended_cost"] for r in rows) == sample.bill_total


# -- a small delivery of every layout ---------------------------------------------------------------------------

# Savings Plan fees whose net/gross ratio does not terminate: rounded half away from zero to 1e-10 on both engines
RATIO_CASES = [
    ("SavingsPlanRecurringFee", {"savingsPlan/TotalCommitmentToDate": "5.0", "savingsPlan/UsedCommitment": "3.4",
                                 "lineItem/NetUnblendedCost": "4.5"}, "7", "1.6", "1.0285714286"),
    ("SavingsPlanRecurringFee", {"savingsPlan/TotalCommitmentToDate": "3.0", "savingsPlan/UsedCommitment": "1",
                                 "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod": "3",
                                 "savingsPlan/NetAmortizedUpfrontCommitmentForBillingPeriod": "-1"}, "0", "2.0",
     "-0.6666666667"),
    ("SavingsPlanRecurringFee", {"savingsPlan/TotalCommitmentToDate": "123456.789", "savingsPlan/UsedCommitment": "0",
                                 "lineItem/NetUnblendedCost": "2"}, "7", "123456.789", "35273.3682857143"),
]


def legacy_csv(root: Path, rows: list[dict], name="m-1.csv.gz", compression="gzip") -> Path:
    data = write_csv(root / "m" / "20260101-20260201" / "asm" / name, rows, compression=compression)
    write_legacy_manifest(root / "m" / "20260101-20260201" / "m-Manifest.json", "m", [key_of(root, data)], "asm")
    return data


def cost_cases(root: Path) -> None:
    legacy_csv(root, [legacy_row(**{"identity/LineItemId": f"li-{i:02d}", "lineItem/LineItemType": kind,
                                    "lineItem/UnblendedCost": unblended, **extra})
                      for i, (kind, extra, unblended, _, _) in enumerate(COST_CASES + RATIO_CASES)])


def zip_and_plain_csv(root: Path) -> None:
    period = root / "z-cur" / "20260101-20260201" / "asm"
    zipped = write_csv(period / "z-cur-1.csv.zip", [legacy_row(**{"identity/LineItemId": "zip"})], compression="zip")
    # a name Spark would take for a glob pattern
    plain_csv = write_csv(period / "z-cur-2[1]{a}.csv", [legacy_row(**{"identity/LineItemId": "plain"})],
                          compression=None)
    write_legacy_manifest(root / "z-cur" / "20260101-20260201" / "z-cur-Manifest.json", "z-cur",
                          [key_of(root, zipped), key_of(root, plain_csv)], "asm")


def tag_columns_times_and_quotes(root: Path) -> None:
    legacy_csv(root, [
        legacy_row(**{"resourceTags/user:CostCenter": "cc-1", "resourceTags/user:accountant_id": "acme",
                      "resourceTags/aws:createdBy": "root", "lineItem/NetUnblendedCost": "0.9",
                      "lineItem/UsageStartDate": "2026-01-01T05:30:00+05:30", "lineItem/UsageEndDate":
                      "2026-01-01T01:00:00.000Z", "lineItem/UnblendedCost": "1.0E-7",
                      "lineItem/LineItemDescription": 'says "hi", twice, \\ back'}),
        legacy_row(**{"identity/LineItemId": "li-2", "resourceTags/user:CostCenter": "", "lineItem/ResourceId": "",
                      "lineItem/UsageAmount": " 2.50 ", "lineItem/UsageStartDate": "2026-01-02 03:04:05",
                      "lineItem/UsageEndDate": "2026-01-02", "lineItem/UnblendedCost": "0.123456789049"}),
    ])


def athena_parquet(root: Path) -> None:
    write_parquet(root / "r" / "r" / "year=2026" / "month=1" / "r-00001.snappy.parquet", athena_table(["a", "b"], 0.1))


def athena_parquet_binary_text(root: Path) -> None:
    """Text as Parquet BINARY without the UTF8 annotation: decoded, 'café-ü' as it is."""
    columns = athena_table(["a", "b"], 0.1)
    columns["resource_tags_user_accountant_id"] = pa.array(["café-ü".encode(), None], pa.binary())
    columns["line_item_currency_code"] = pa.array([b"USD", b"EUR"], pa.binary())
    write_parquet(root / "r" / "r" / "year=2026" / "month=1" / "r-00001.snappy.parquet", columns)


def legacy_parquet_naive_times(root: Path) -> None:
    period = root / "pq-cur" / "20260101-20260201"
    data = write_parquet(period / "asm-1" / "pq-cur-1.snappy.parquet", {
        "identity_line_item_id": ["a", "b"],
        "line_item_line_item_type": ["Usage", "Tax"],
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 3, 4), dt.datetime(2026, 1, 4)],
                                               pa.timestamp("us")),
        "line_item_usage_end_date": pa.array([dt.date(2026, 1, 3), dt.date(2026, 1, 5)], pa.date32()),
        "line_item_currency_code": ["USD", "USD"],
        "line_item_unblended_cost": pa.array([Decimal("0.1234567890123"), Decimal(-2)], pa.decimal128(20, 13)),
        "line_item_usage_amount": pa.array([3, None], pa.int64()),
        "line_item_product_code": ["AmazonDynamoDB", None],
    })
    write_legacy_manifest(period / "pq-cur-Manifest.json", "pq-cur", [key_of(root, data)], "asm-1",
                          content_type="Parquet")


def cur2_map_tags(root: Path) -> None:
    export = root / "exports" / "cur2-export"
    data = write_parquet(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-export-00001.snappy.parquet",
                         cur2_table(["a", "b", "c"], [
                             [("user_accountant_id", "acme"), ("user_application", "tax-demo"),
                              ("aws_created_by", "x")],
                             # two keys normalizing to cost_center: the first wins
                             [("user_cost_center", "cc-9"), ("user:CostCenter", "cc-0"), ("user_environment", "")],
                             [],
                         ]))
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-export-Manifest.json",
                          "cur2-export", [f"s3://cur-bucket/{data.relative_to(root).as_posix()}"])


def marketplace_lines(table: pa.Table) -> pa.Table:
    """Line b a Marketplace model's tokens, c another's whose product map lacks a name: the product name comes from
    CUR 2.0's `product` map (it has no product_product_name column)."""
    products = [[("product_name", "Amazon S3")], [("product_name", "Claude 3 Haiku (Amazon Bedrock Edition)")], []]
    entity = pa.array(["AWS", "AWS Marketplace", "AWS Marketplace"])
    usage = pa.array(["TimedStorage-ByteHrs", "USE1-MP:USE1_InputTokenCount-Units",
                      "USE1-MP:USE1_OutputTokenCount-Units"])
    table = table.set_column(table.schema.get_field_index("product"), "product", pa.array(products, MAP))
    table = table.set_column(table.schema.get_field_index("line_item_usage_type"), "line_item_usage_type", usage)
    return table.append_column("bill_billing_entity", entity)


def cur2_product_map_parquet(root: Path) -> None:
    export = root / "exports" / "cur2-export"
    data = write_parquet(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-export-00001.snappy.parquet",
                         marketplace_lines(cur2_table(["a", "b", "c"], [[], [], []])))
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-export-Manifest.json",
                          "cur2-export", [f"s3://cur-bucket/{data.relative_to(root).as_posix()}"])


def cur2_product_map_csv(root: Path) -> None:
    """The same lines as a CSV export writes them: the maps as JSON text, times as ISO text."""
    table = marketplace_lines(cur2_table(["a", "b", "c"], [[], [], []]))
    def text(name, value):
        if isinstance(value, list):
            return json.dumps(dict(value)) if value else ""
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, dt.datetime) else str(value)
    rows = [{name: text(name, value) for name, value in row.items()} for row in table.to_pylist()]
    export = root / "exports" / "cur2-export"
    data = write_csv(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-export-00001.csv.gz", rows)
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-export-Manifest.json",
                          "cur2-export", [f"s3://cur-bucket/{data.relative_to(root).as_posix()}"])


def focus_parquet(root: Path) -> None:
    columns = focus_columns(2)
    columns["Tags"] = pa.array([[("user:CostCenter", "cc-1"), ("accountant_id", "acme"), ("aws:createdBy", "x")], []],
                               MAP)
    write_parquet(root / "focus-export" / "data" / "BILLING_PERIOD=2026-01" / "focus-export-00001.snappy.parquet",
                  columns)


def focus_csv_json_tags(root: Path) -> None:
    row = {"BilledCost": "2.5", "EffectiveCost": "2.0", "BillingCurrency": "USD", "ChargeCategory": "Usage",
           "ChargePeriodStart": "2026-01-07T00:00:00Z", "ChargePeriodEnd": "2026-01-07T01:00:00Z",
           "ServiceName": "Amazon DynamoDB", "Tags": '{"user:application": "tax-demo", "Environment": "prod"}'}
    write_csv(root / "f" / "data" / "BILLING_PERIOD=2026-01" / "f-00001.csv.gz", [row, {**row, "Tags": ""}])


LAYOUTS = [cost_cases, zip_and_plain_csv, tag_columns_times_and_quotes, athena_parquet, athena_parquet_binary_text,
           legacy_parquet_naive_times, cur2_map_tags, cur2_product_map_parquet, cur2_product_map_csv, focus_parquet,
           focus_csv_json_tags]


@pytest.mark.parametrize("write", LAYOUTS, ids=[w.__name__ for w in LAYOUTS])
def test_every_layout_is_identical(spark, tmp_path, write):
    write(tmp_path / "bucket")
    rows = assert_identical(spark, tmp_path, tmp_path / "bucket", JAN)
    if write is cost_cases:
        got = [(r["line_item_type"], r["unblended_cost"], r["amortized_cost"], r["net_amortized_cost"])
               for r in sorted(rows, key=lambda r: r["line_item_id"])]
        assert got == [(kind, Decimal(u), Decimal(a), Decimal(n)) for kind, _, u, a, n in COST_CASES + RATIO_CASES]
    if write is cur2_map_tags:
        by_id = sorted(rows, key=lambda r: r["line_item_id"])
        assert [(r["line_item_id"], r["tags"], r["cost_center"]) for r in by_id] == [
            ("a", (("accountant_id", "acme"), ("application", "tax-demo")), None),
            ("b", (("cost_center", "cc-9"),), "cc-9"),
            ("c", (), None)]
    if write in (cur2_product_map_parquet, cur2_product_map_csv):
        assert [(r["service"], r["usage_type"]) for r in sorted(rows, key=lambda r: r["line_item_id"])] == [
            ("AmazonS3", "TimedStorage-ByteHrs"),
            ("AmazonBedrock", "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))"),
            ("AmazonBedrock", "USE1-MP:USE1_OutputTokenCount-Units")]
    if write is athena_parquet_binary_text:
        assert sorted((r["currency"], r["accountant_id"]) for r in rows) == [("EUR", None), ("USD", "café-ü")]


# -- bad input --------------------------------------------------------------------------------------------------

def test_a_cost_that_is_no_number_fails_naming_the_file_and_keeps_the_month(spark, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    legacy_csv(good, [legacy_row()])
    data = legacy_csv(bad, [legacy_row(), legacy_row(**{"lineItem/UnblendedCost": "twelve dollars"})])
    columns, before = duckdb_load(good, JAN)
    warehouse = tmp_path / "spark-warehouse"
    assert spark_load(spark, warehouse, good, JAN, columns) == before
    on_duckdb, on_spark = failures(spark, tmp_path, bad)
    assert on_spark == on_duckdb == f'{data}: column lineItem/UnblendedCost: "twelve dollars" is not a number'
    # the failed delivery replaced nothing
    fresh = spark.read.parquet(str(warehouse / "cur_line_items")).selectExpr(*columns)
    assert sorted((plain(tuple(r)) for r in fresh.collect()), key=repr) == before
    left = [v.name for v in spark.catalog.listTables() if v.name.startswith(("cur_file_", "cur_part_", "delivery_"))]
    assert left == []


@pytest.mark.parametrize("row, message", [
    ({"lineItem/UsageStartDate": "yesterday"}, 'column lineItem/UsageStartDate: "yesterday" is not a timestamp'),
    ({"lineItem/UsageAmount": "1,5"}, 'column lineItem/UsageAmount: "1,5" is not a number'),
])
def test_a_bad_value_fails_with_the_duckdb_message(spark, tmp_path, row, message):
    data = legacy_csv(tmp_path / "bucket", [legacy_row(**row)])
    assert failures(spark, tmp_path, tmp_path / "bucket") == (f"{data}: {message}",) * 2


def test_a_missing_required_value_fails_naming_the_file(spark, tmp_path):
    data = legacy_csv(tmp_path / "bucket", [legacy_row(**{"lineItem/CurrencyCode": ""})])
    on_duckdb, on_spark = failures(spark, tmp_path, tmp_path / "bucket")
    assert on_spark == on_duckdb == f"{data}: NOT NULL constraint failed: cur_line_items.currency"


def test_a_ragged_csv_row_fails_naming_the_file(spark, tmp_path):
    data = legacy_csv(tmp_path / "bucket", [legacy_row()])
    text = gzip.decompress(data.read_bytes()).decode() + "only,three,columns\n"
    data.write_bytes(gzip.compress(text.encode()))
    on_duckdb, on_spark = failures(spark, tmp_path, tmp_path / "bucket")
    assert on_duckdb == f"{data}: CSV parse error: Expected 17 columns, got 3: only,three,columns"
    # Spark's words, its root cause
    assert on_spark.startswith(f"{data}: ") and "Malformed CSV record: only,three,columns" in on_spark


def test_a_delivery_of_headers_only_or_of_another_month_is_refused_on_both_engines(spark, tmp_path):
    """Both refusals come from one scan of the delivery's rows before the commit: a header-only delivery (no line
    items would empty the month) and line items whose bill/BillingPeriodStartDate is another month's."""
    empty = legacy_csv(tmp_path / "empty", [legacy_row()])
    header = gzip.decompress(empty.read_bytes()).split(b"\n", 1)[0]
    empty.write_bytes(gzip.compress(header + b"\n"))
    manifest = tmp_path / "empty" / "m" / "20260101-20260201" / "m-Manifest.json"
    on_duckdb, on_spark = failures(spark, tmp_path / "a", tmp_path / "empty")
    assert on_duckdb == on_spark == (
        f"{manifest}: the delivery asm for 2026-01 holds no line items (1 file(s), headers only): nothing loaded, "
        "the month keeps its last load; it loads once AWS delivers its line items")

    legacy_csv(tmp_path / "foreign", [legacy_row(), legacy_row(**{
        "identity/LineItemId": "li-feb", "bill/BillingPeriodStartDate": "2026-02-01T00:00:00Z"})])
    manifest = tmp_path / "foreign" / "m" / "20260101-20260201" / "m-Manifest.json"
    on_duckdb, on_spark = failures(spark, tmp_path / "b", tmp_path / "foreign")
    assert on_duckdb == on_spark == (
        f"{manifest}: 1 line items of the delivery for 2026-01 belong to another billing period")


def test_a_gzip_cut_off_midway_fails_naming_the_file(spark, tmp_path):
    data = legacy_csv(tmp_path / "bucket", [legacy_row(**{"identity/LineItemId": f"li-{i}",
                                                          "lineItem/LineItemDescription": f"row {i} " * 20})
                                            for i in range(3000)])
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    on_duckdb, on_spark = failures(spark, tmp_path, tmp_path / "bucket")
    assert (on_duckdb, on_spark) == (f"{data}: Truncated compressed stream",
                                     f"{data}: java.io.EOFException: Unexpected end of input stream")


def test_binary_text_that_is_not_utf8_fails_naming_the_file_and_column(spark, tmp_path):
    columns = athena_table(["a"])
    columns["resource_tags_user_accountant_id"] = pa.array([b"ac\xffme"], pa.binary())
    data = write_parquet(tmp_path / "bucket" / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", columns)
    assert failures(spark, tmp_path, tmp_path / "bucket") == (
        f"{data}: column resource_tags_user_accountant_id: not valid UTF-8 text",) * 2


def test_tags_that_are_no_json_object_fail_naming_the_file(spark, tmp_path):
    row = {"BilledCost": "2.5", "BillingCurrency": "USD", "ChargeCategory": "Usage",
           "ChargePeriodStart": "2026-01-07T00:00:00Z", "ChargePeriodEnd": "2026-01-07T01:00:00Z", "Tags": "{oops"}
    data = write_csv(tmp_path / "bucket" / "f" / "data" / "BILLING_PERIOD=2026-01" / "f-00001.csv.gz", [row])
    assert failures(spark, tmp_path, tmp_path / "bucket") == (
        f'{data}: column Tags: "{{oops" is not a JSON object of tags',) * 2


# -- the transpiler's fixes ----------------------------------------------------------------------------------------

def test_duckdb_functions_sqlglot_keeps_are_written_as_spark_spells_them():
    assert to_spark_sql(r"SELECT regexp_replace(k, '([A-Z])', '_\1$', 'g'), error('bad ' || k) FROM t") == (
        r"SELECT REGEXP_REPLACE(k, '([A-Z])', '_$1\\$'), RAISE_ERROR('bad ' || k) FROM t")
    # try(decode(blob)), which sqlglot drops the TRY of: NULL where the bytes are not UTF-8, as in DuckDB
    assert to_spark_sql("SELECT try(decode(b)) FROM t") == (
        "SELECT CASE WHEN IS_VALID_UTF8(CAST(b AS STRING)) THEN DECODE(b, 'utf-8') END FROM t")
    # nested, as in cur_columns.tag_key_sql
    assert to_spark_sql(r"SELECT regexp_replace(regexp_replace(k, '(a)', '\1\1', 'g'), '(b)', '<\1>', 'g')") == (
        r"SELECT REGEXP_REPLACE(REGEXP_REPLACE(k, '(a)', '$1$1'), '(b)', '<$1>')")
