"""The real-time tables on Spark (local mode) are exactly DuckDB's: month_to_date, its calibrations and the
backtest's replays (nowcast_accuracy, which stands cut copies in for hourly_cost_facts and usage_shares and re-runs
the attribution on them) on two generated final months."""

import datetime as dt

import pytest
from dagster import AssetSelection

from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.engines.test_spark_engine import all_duckdb_rows, all_spark_rows, run_chain

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

REALTIME = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                                 "tenant_costs", "month_to_date", "nowcast_accuracy")


def test_month_to_date_and_backtest_on_spark_are_duckdbs(tmp_path, monkeypatch):
    folder = tmp_path / "sample"
    for month in (dt.date(2025, 12, 1), dt.date(2026, 1, 1)):
        sample = generate_month(folder, month, tenants=3, rows=1500, seed=5, final=True)
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    for engine in ("duckdb", "spark"):
        for month in ("2025-12-01", "2026-01-01"):
            run_chain(monkeypatch, engine, tmp_path, month, selection=REALTIME)
    for table in ("month_to_date", "month_to_date_calibration", "nowcast_accuracy"):
        duckdb_rows = all_duckdb_rows(tmp_path, table)
        assert duckdb_rows, table
        assert all_spark_rows(tmp_path, table) == duckdb_rows, table
    # 2 months x 4 replay days x 3 tenants and unattributed
    assert len(all_spark_rows(tmp_path, "nowcast_accuracy")) == 2 * 4 * 4
