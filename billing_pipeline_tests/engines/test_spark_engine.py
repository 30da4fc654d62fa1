"""The same asset chain on Spark (local mode) gives exactly the rows DuckDB gives: the whole Definitions (but the
backtest, which test_spark_nowcast.py compares on the same month) on a generated final month, every output with
its service (Stripe, DynamoDB and Cost Explorer on local servers), checked against the generator's exact answers
too, and a month of the real public CUR samples."""

import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest
from dagster import AssetSelection

from billing_pipeline.engines.spark_engine import spark_session
from billing_pipeline.publishing import read_pointer, read_snapshot
from billing_pipeline.resources.warehouse import SparkWarehouse
from billing_pipeline.sample_data import generate_month
from billing_pipeline.storage import locate
from billing_pipeline_tests.aws_support import TABLE, day, group, items, post_results
from billing_pipeline_tests.conftest import SAMPLES
from billing_pipeline_tests.engines.spark_support import (
    ALL_BUT_THE_BACKTEST,
    TABLES,
    all_duckdb_rows,
    all_spark_rows,
    run_chain,
)
from billing_pipeline_tests.stripe_support import API_KEY, PRICE_LIST, Stripe

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]  # one Spark JVM per test run; minutes

def checks(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
            for e in result.get_asset_check_evaluations()}


def test_whole_definitions_on_a_generated_final_month(
        tmp_path, monkeypatch, aws, localstripe, usage_table):
    sample = generate_month(tmp_path / "sample", dt.date(2026, 1, 1), tenants=3, rows=1500, seed=5, final=True)
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    # every output on: Stripe (a fresh localstripe), the usage table and Cost Explorer (moto)
    httpx.delete(localstripe + "/_config/data", timeout=10).raise_for_status()
    (tmp_path / "price_list.json").write_text(json.dumps(PRICE_LIST))
    monkeypatch.setenv("BILLING_PRICE_LIST", str(tmp_path / "price_list.json"))
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe)
    monkeypatch.setenv("BILLING_WRITEBACK_TABLE", TABLE)
    monkeypatch.setenv("BILLING_COST_EXPLORER", "1")
    first = sample.tenants[0]
    post_results(aws, {"ResultsByTime": [day("2026-01-05", [group(first, "1.00", "AmortizedCost"),  # the default metric
                                                             group("", "0.10", "AmortizedCost")])],
                       "DimensionValueAttributes": []})

    on_duckdb = run_chain(monkeypatch, "duckdb", tmp_path, "2026-01-01", selection=ALL_BUT_THE_BACKTEST)
    stripe = Stripe(localstripe)
    placed, written_back = sorted(i["id"] for i in stripe.items()), items(usage_table)
    # Spark aggregates the facts in slices of days (the DuckDB run above in one): the rows must not differ
    from billing_pipeline.assets import hourly_cost_facts as facts_module

    monkeypatch.setattr(facts_module, "SLICE_LINE_ITEMS", 500)
    on_spark = run_chain(monkeypatch, "spark", tmp_path, "2026-01-01", selection=ALL_BUT_THE_BACKTEST)

    for table in TABLES:
        assert all_spark_rows(tmp_path, table) == all_duckdb_rows(tmp_path, table), table
    outputs = ["invoices", "pricing_feedback", "statements", "usage_table_writeback", "cost_explorer_costs"]
    assert {t: len(all_spark_rows(tmp_path, t)) > 0 for t in outputs} == dict.fromkeys(outputs, True)
    assert checks(on_spark) == checks(on_duckdb)
    assert not checks(on_spark)[("cost_explorer_costs", "cost_explorer_matches_cur")][0]  # compared: CE is made up
    # the Spark run found DuckDB's charges in Stripe and its items in the usage table: nothing added or changed
    assert sorted(i["id"] for i in stripe.items()) == placed and len(placed) > 0
    assert items(usage_table) == written_back
    exported = sorted(p.relative_to(tmp_path / "exports-duckdb") for p in (tmp_path / "exports-duckdb").rglob("*.*"))
    assert [p.name for p in exported] == [f"{t}-2026-01.{x}" for t in ("pricing_feedback", "reconciliation_report",
                                                                       "statements") for x in ("csv", "parquet")]
    for path in exported:
        if path.suffix == ".csv":
            assert (tmp_path / "exports-spark" / path).read_bytes() == (tmp_path / "exports-duckdb" / path).read_bytes()

    # both engines publish the same snapshot for the API
    snapshots = {}
    for engine in ("duckdb", "spark"):
        location = locate(str(tmp_path / f"published-{engine}"))
        pointer = read_pointer(location, "2026-01")
        snapshots[engine] = ({k: pointer.document[k] for k in ("delivery_id", "is_final", "rows")},
                             {name: table.to_pylist() for name, table in read_snapshot(location, pointer).items()})
    assert snapshots["spark"] == snapshots["duckdb"]
    assert snapshots["duckdb"][0]["is_final"] is True and snapshots["duckdb"][1]["statements"]

    frame = spark_session("local[2]").read.parquet(str(tmp_path / "spark-warehouse" / "tenant_costs"))
    spark_costs = {(a, s): c for a, s, c in (tuple(r) for r in frame.groupBy("accountant_id", "service").sum("cost").collect())}
    assert spark_costs == sample.expected_costs
    # the schedule's finality check reads what Spark wrote (BILLING_ENGINE=spark is still set)
    assert (SparkWarehouse().month_is_final(dt.date(2026, 1, 1)), SparkWarehouse().month_is_final(
        dt.date(2025, 12, 1))) == (True, False)
    # a second run replaces the month's partitions instead of adding to them (the chain: every table is written by
    # the engine's one replace_month; the outputs' second run is the first Spark run above, after DuckDB's)
    run_chain(monkeypatch, "spark", tmp_path, "2026-01-01")
    for table in TABLES:
        assert all_spark_rows(tmp_path, table) == all_duckdb_rows(tmp_path, table), table


@pytest.mark.skipif(not (SAMPLES / "workshop-cur").is_dir(), reason="../shared/samples is not beside the repo")
def test_real_sample_month_is_identical_on_spark_and_duckdb(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_CUR_URI", str(SAMPLES / "workshop-cur"))
    selection = AssetSelection.assets("cur_line_items", "hourly_cost_facts")
    run_chain(monkeypatch, "duckdb", tmp_path, "2018-12-01", selection)
    run_chain(monkeypatch, "spark", tmp_path, "2018-12-01", selection)
    # cur_line_items row by row: test_spark_cur.py
    assert all_spark_rows(tmp_path, "hourly_cost_facts") == all_duckdb_rows(tmp_path, "hourly_cost_facts")
    frame = spark_session("local[2]").read.parquet(str(tmp_path / "spark-warehouse" / "cur_line_items"))
    (rows, unblended), = [tuple(r) for r in frame.selectExpr("count(*)", "sum(unblended_cost)").collect()]
    assert (rows, round(unblended, 4)) == (91_264, Decimal("408.3760"))


def test_ctes_read_more_than_once_are_computed_once_with_duckdbs_rows(tmp_path):
    """The Spark engine computes each CTE a query reads more than once a single time (shared_ctes: DuckDB's way);
    the rows are DuckDB's: a CTE with column names, named parameters, braces in the SQL's own literals, a WITH on
    each side of a union. The source table is scanned by the shared queries only: once, not once per read."""
    import duckdb
    import pyarrow as pa

    from billing_pipeline.engines.duckdb_engine import DuckDBEngine
    from billing_pipeline.engines.spark_engine import SparkEngine
    from billing_pipeline.resources.warehouse import warehouse_ddl

    sql = """WITH levels(level, max_span) AS (VALUES ('hour', 1), ('day', 24)),
             facts AS (SELECT * FROM cte_facts WHERE n >= $low),
             hourly AS (SELECT f.n, l.level FROM facts f JOIN levels l ON f.n <= l.max_span),
             daily AS (SELECT n, 'day' AS level FROM facts WHERE n > 20)
             SELECT level, count(*) AS n, '{x}' AS brace, regexp_extract('aaa', 'a{2}', 0) AS re
             FROM hourly JOIN levels USING (level) GROUP BY level
             UNION ALL SELECT level, sum(n), '{y}', '' FROM daily GROUP BY level
             UNION ALL SELECT 'nested', count(*), '', '' FROM (
                 WITH a AS (SELECT n FROM cte_facts WHERE n < $low) SELECT * FROM a JOIN a b USING (n))
             ORDER BY ALL"""
    table = pa.table({"n": pa.array(range(1, 31), pa.int64())})
    on_duckdb = DuckDBEngine(duckdb.connect())
    on_spark = SparkEngine(spark_session("local[2]"), str(tmp_path / "spark-warehouse"), warehouse_ddl())
    for engine in (on_duckdb, on_spark):
        engine.register("cte_facts", table)
    try:
        rows = on_spark.execute(sql, {"low": 3}).fetchall()
        assert rows == on_duckdb.execute(sql, {"low": 3}).fetchall() == [
            ("day", 24 - 2, "{x}", "aa"), ("day", sum(range(21, 31)), "{y}", ""), ("nested", 2, "", "")]
        plan = on_spark._frame(sql, {"low": 3})._jdf.queryExecution().executedPlan().toString()
        assert "cte_facts" not in plan and "LocalTableScan" not in plan  # read from the shared queries' results
    finally:
        on_spark.unregister("cte_facts")
