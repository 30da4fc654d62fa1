"""The same asset chain on Spark (local mode) gives exactly the rows DuckDB gives: a generated month, checked
against the generator's exact answers too, and a month of the real public CUR samples."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.engines.spark_engine import spark_session
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.conftest import SAMPLES

pytestmark = pytest.mark.xdist_group("spark")  # one Spark JVM per test run

CHAIN = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                              "tenant_costs", "reconciliation_report")
COMPARED = {
    "hourly_cost_facts": "usage_hour, service, usage_type, resource_id, accountant_id, line_item_type, unblended_cost, amortized_cost",
    "usage_shares": "usage_hour, service, driver, scope, accountant_id, quantity, total_quantity",
    "tenant_costs": "usage_date, accountant_id, service, usage_type, line_item_type, allocation, driver, driver_quantity, cost",
    "reconciliation_report": "accountant_id, resource_type, estimated_cost, actual_cost, variance, variance_pct, flagged, is_final",
}


def run_chain(monkeypatch, engine: str, tmp_path: Path, partition_key: str, selection=CHAIN):
    monkeypatch.setenv("BILLING_ENGINE", engine)
    monkeypatch.setenv("BILLING_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("BILLING_SPARK_WAREHOUSE", str(tmp_path / "spark-warehouse"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    result = materialize(list(defs.assets), resources=defs.resources, partition_key=partition_key,
                         instance=DagsterInstance.ephemeral(), selection=selection)
    assert result.success


def duckdb_rows(tmp_path: Path, table: str):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.execute(f"SELECT {COMPARED[table]} FROM {table}").fetchall(), key=repr)


def spark_rows(tmp_path: Path, table: str):
    frame = spark_session("local[2]").read.parquet(str(tmp_path / "spark-warehouse" / table))
    return sorted((tuple(r) for r in frame.selectExpr(*COMPARED[table].split(", ")).collect()), key=repr)


def test_generated_month_is_identical_on_spark_and_duckdb(tmp_path, monkeypatch):
    sample = generate_month(tmp_path / "sample", dt.date(2026, 1, 1), tenants=3, rows=1500, seed=5)
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    run_chain(monkeypatch, "duckdb", tmp_path, "2026-01-01")
    run_chain(monkeypatch, "spark", tmp_path, "2026-01-01")
    for table in COMPARED:
        assert spark_rows(tmp_path, table) == duckdb_rows(tmp_path, table), table
    frame = spark_session("local[2]").read.parquet(str(tmp_path / "spark-warehouse" / "tenant_costs"))
    spark_costs = {(a, s): c for a, s, c in (tuple(r) for r in frame.groupBy("accountant_id", "service").sum("cost").collect())}
    assert spark_costs == sample.expected_costs
    # a second run replaces the month's partition instead of adding to it
    run_chain(monkeypatch, "spark", tmp_path, "2026-01-01")
    assert spark_rows(tmp_path, "tenant_costs") == duckdb_rows(tmp_path, "tenant_costs")


@pytest.mark.skipif(not (SAMPLES / "workshop-cur").is_dir(), reason="../shared/samples is not beside the repo")
def test_real_sample_month_is_identical_on_spark_and_duckdb(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_CUR_URI", str(SAMPLES / "workshop-cur"))
    selection = AssetSelection.assets("cur_line_items", "hourly_cost_facts")
    run_chain(monkeypatch, "duckdb", tmp_path, "2018-12-01", selection)
    run_chain(monkeypatch, "spark", tmp_path, "2018-12-01", selection)
    assert spark_rows(tmp_path, "hourly_cost_facts") == duckdb_rows(tmp_path, "hourly_cost_facts")
    frame = spark_session("local[2]").read.parquet(str(tmp_path / "spark-warehouse" / "cur_line_items"))
    (rows, unblended), = [tuple(r) for r in frame.selectExpr("count(*)", "sum(unblended_cost)").collect()]
    assert (rows, round(unblended, 4)) == (91_264, Decimal("408.3760"))
