"""The real-time tables on Spark (local mode) are exactly DuckDB's: month_to_date, its calibrations and the
backtest's replays (nowcast_accuracy, which stands cut copies in for hourly_cost_facts and usage_shares and re-runs
the attribution on them) on two generated final months, and a third month whose CUR stops before its logs, refreshed
by month_to_date_job (usage_shares re-read from the CUR's coverage on, the earlier hours kept)."""

import datetime as dt

import pytest
from dagster import AssetSelection, DagsterInstance

from billing_pipeline.definitions import defs
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.engines.test_spark_engine import all_duckdb_rows, all_spark_rows, run_chain

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

REALTIME = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                                 "tenant_costs", "month_to_date", "nowcast_accuracy")
TABLES = ("usage_shares", "month_to_date", "month_to_date_calibration", "nowcast_accuracy")


def test_month_to_date_and_backtest_on_spark_are_duckdbs(tmp_path, monkeypatch):
    folder = tmp_path / "sample"
    for month in (dt.date(2025, 12, 1), dt.date(2026, 1, 1)):
        generate_month(folder, month, tenants=3, rows=1500, seed=5, final=True)
    sample = generate_month(folder, dt.date(2026, 2, 1), tenants=3, rows=1500, seed=5,
                            cur_through=dt.datetime(2026, 2, 20, 18))
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    refresh = defs.resolve_job_def("month_to_date_job")
    for engine in ("duckdb", "spark"):
        for month in ("2025-12-01", "2026-01-01", "2026-02-01"):
            run_chain(monkeypatch, engine, tmp_path, month, selection=REALTIME)
        assert refresh.execute_in_process(partition_key="2026-02-01", instance=DagsterInstance.ephemeral()).success
    for table in TABLES:
        duckdb_rows = all_duckdb_rows(tmp_path, table)
        assert duckdb_rows, table
        assert all_spark_rows(tmp_path, table) == duckdb_rows, table
    # 2 final months x 4 replay days x 3 tenants and unattributed; February is not final: nothing to measure
    assert len(all_spark_rows(tmp_path, "nowcast_accuracy")) == 2 * 4 * 4
    # February: actual through the cut, estimated after it, priced by its own last 7 covered days
    february = [r for r in all_spark_rows(tmp_path, "month_to_date") if r[0] == dt.date(2026, 2, 1)]
    assert {(r[-3], r[-2]) for r in february} == {(dt.datetime(2026, 2, 20, 18), dt.datetime(2026, 3, 1))}
    assert sum(r[5] for r in february) > 0  # estimated_cost
