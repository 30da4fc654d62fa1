import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import build_schedule_context

from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import DuckDBWarehouse, SparkWarehouse
from billing_pipeline.schedules import daily_billing_refresh, months_to_refresh
from billing_pipeline_tests.readers.cur_builders import legacy_row, write_csv, write_legacy_manifest


def cur_of(root, *months: dt.date) -> BillingConfig:
    """A CUR bucket holding a delivery of each month (one line item each), as the schedule's billing_config."""
    root.mkdir(parents=True, exist_ok=True)
    for month in months:
        after = (month + dt.timedelta(days=32)).replace(day=1)
        folder = f"cur/rep/{month:%Y%m%d}-{after:%Y%m%d}"
        key = f"{folder}/a1/rep-1.csv.gz"
        write_csv(root / key, [legacy_row(**{
            "bill/BillingPeriodStartDate": f"{month}T00:00:00Z", "bill/BillingPeriodEndDate": f"{after}T00:00:00Z",
            "lineItem/UsageStartDate": f"{month}T00:00:00Z", "lineItem/UsageEndDate": f"{month}T01:00:00Z"})])
        write_legacy_manifest(root / folder / "rep-Manifest.json", "rep", [key], "a1",
                              start=f"{month:%Y%m%d}", end=f"{after:%Y%m%d}")
    return BillingConfig(cur_uri=str(root))


JAN, FEB = dt.date(2026, 1, 1), dt.date(2026, 2, 1)


def test_previous_month_is_refreshed_until_final():
    today = dt.date(2026, 2, 3)
    assert months_to_refresh(today, previous_is_final=False) == [dt.date(2026, 1, 1), dt.date(2026, 2, 1)]
    assert months_to_refresh(today, previous_is_final=True) == [dt.date(2026, 2, 1)]


def test_schedule_requests_current_and_unfinished_previous_month(tmp_path):
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "missing.duckdb")),
                   "billing_config": cur_of(tmp_path / "bucket", JAN, FEB)},
    )
    requests = daily_billing_refresh(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-01-01", "2026-01-01@2026-02-03"), ("2026-02-01", "2026-02-01@2026-02-03")]


def test_a_month_the_cur_bucket_holds_nothing_of_yet_is_left_to_the_sensor(tmp_path):
    """On the 1st AWS has not delivered the new month: its run could only fail ("No CUR delivery"), every
    morning until the first delivery; the sensor runs it when that lands."""
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 1, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "missing.duckdb")),
                   "billing_config": cur_of(tmp_path / "bucket", JAN)},
    )
    assert [r.partition_key for r in daily_billing_refresh(context)] == ["2026-01-01"]
    # nothing delivered at all: a skip that says why
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 1, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "missing.duckdb")),
                   "billing_config": cur_of(tmp_path / "empty")},
    )
    assert "no CUR delivery of it yet" in daily_billing_refresh(context).skip_message


def test_schedule_skips_a_previous_month_that_is_final(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb"))
    with warehouse.connect() as con:
        con.execute(
            """INSERT INTO cur_line_items (billing_period, usage_start, usage_end, line_item_type, currency,
                   unblended_cost, amortized_cost, invoice_id, source_file, delivery_id)
               VALUES (DATE '2026-01-01', TIMESTAMP '2026-01-05', TIMESTAMP '2026-01-05 01:00', 'Usage', 'USD',
                       1, 1, '123456789', 'x.parquet', 'assembly-1')"""
        )
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": warehouse, "billing_config": cur_of(tmp_path / "bucket", JAN, FEB)},
    )
    assert [r.partition_key for r in daily_billing_refresh(context)] == ["2026-02-01"]


def spark_layout(root, months: dict[str, list]) -> None:
    """cur_line_items as the Spark engine writes it: one folder per billing_period partition, Spark's part files,
    checksums and _SUCCESS marker beside them."""
    table = root / "cur_line_items"
    for month, invoice_ids in months.items():
        folder = table / f"billing_period={month}"
        folder.mkdir(parents=True)
        for part, ids in enumerate(invoice_ids):
            name = f"part-{part:05d}-3f2a.c000.snappy.parquet"
            pq.write_table(pa.table({"line_item_type": ["Usage"] * len(ids), "invoice_id": pa.array(ids, pa.string())}),
                           folder / name)
            (folder / f".{name}.crc").write_bytes(b"crc")
    if months:
        (table / "_SUCCESS").write_bytes(b"")


@pytest.mark.parametrize("months, refreshed", [
    ({}, ["2026-01-01", "2026-02-01"]),                                          # nothing written yet
    ({"2026-01-01": [[None, None], [None]]}, ["2026-01-01", "2026-02-01"]),      # January provisional
    ({"2025-12-01": [["111"]], "2026-01-01": [[None]]}, ["2026-01-01", "2026-02-01"]),  # only December final
    ({"2026-01-01": [[None], [None, "123456789"]]}, ["2026-02-01"]),             # January final
])
def test_schedule_reads_the_spark_warehouse(tmp_path, monkeypatch, months, refreshed):
    # a DuckDB warehouse that says January is final is not the one BILLING_ENGINE=spark reads
    with DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb")).connect() as con:
        con.execute(
            """INSERT INTO cur_line_items (billing_period, usage_start, usage_end, line_item_type, currency,
                   unblended_cost, amortized_cost, invoice_id, source_file, delivery_id)
               VALUES (DATE '2026-01-01', TIMESTAMP '2026-01-05', TIMESTAMP '2026-01-05 01:00', 'Usage', 'USD',
                       1, 1, '123456789', 'x.parquet', 'assembly-1')"""
        )
    spark_layout(tmp_path / "spark-warehouse", months)
    monkeypatch.setenv("BILLING_ENGINE", "spark")
    monkeypatch.setenv("BILLING_SPARK_WAREHOUSE", str(tmp_path / "spark-warehouse"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": SparkWarehouse(), "billing_config": cur_of(tmp_path / "bucket", JAN, FEB)},
    )
    assert [r.partition_key for r in daily_billing_refresh(context)] == refreshed


def test_an_unreadable_spark_partition_is_not_final(tmp_path):
    folder = tmp_path / "cur_line_items" / "billing_period=2026-01-01"
    folder.mkdir(parents=True)
    (folder / "part-00000.snappy.parquet").write_bytes(b"being rewritten")
    assert SparkWarehouse(spark_warehouse=str(tmp_path)).month_is_final(dt.date(2026, 1, 1)) is False


def test_a_cur_bucket_that_cannot_be_read_as_a_whole_still_runs_the_months(tmp_path):
    """A problem of no particular month (a stray data file in no known layout, the bucket not listable) made the
    schedule's tick fail: neither month ran, no run failed to alert, and a failed tick is not retried. The months
    are run as before the look, and fail naming the problem."""
    billing_config = cur_of(tmp_path / "bucket", JAN, FEB)
    (tmp_path / "bucket" / "stray.csv.gz").write_bytes(b"not a report")
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "missing.duckdb")),
                   "billing_config": billing_config},
    )
    assert [r.partition_key for r in daily_billing_refresh(context)] == ["2026-01-01", "2026-02-01"]
