"""The real-time pieces on Spark (local mode) against DuckDB's, where a whole run would not reach them: the
refresh's write that keeps the earlier hours, and the nowcast's per-model and direct unit costs. (month_to_date,
its calibrations, the backtest's replays and month_to_date_job's refresh on generated months:
test_spark_engine.py's whole-Definitions test.)"""

import datetime as dt
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]


def test_replace_hours_from_keeps_the_earlier_hours_on_both_engines(tmp_path):
    """usage_shares' refresh write, hand-computed: the month holds hours 00:00 and 01:00 (two tenants); the new
    evidence has 01:00 (changed) and 02:00 from `since` = 01:00, plus a 00:00 line of a file read for its new lines
    (ignored). 00:00 is kept, 01:00 and 02:00 replaced, with their shares."""
    import duckdb
    import pyarrow as pa

    from billing_pipeline.assets.common import stage_sql
    from billing_pipeline.engines.duckdb_engine import DuckDBEngine
    from billing_pipeline.engines.spark_engine import SparkEngine, spark_session
    from billing_pipeline.readers.usage_logs import USAGE_SCHEMA
    from billing_pipeline.resources.warehouse import replace_month_with_rows, warehouse_ddl

    jan, feb = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
    h0, h1, h2 = (dt.datetime(2026, 1, 1, h) for h in (0, 1, 2))
    D = Decimal

    def shares_rows(rows):
        names = ["billing_period", "usage_hour", "service", "driver", "scope", "accountant_id", "quantity",
                 "total_quantity", "share"]
        return pa.Table.from_pylist([dict(zip(names, r)) for r in rows], schema=pa.schema([
            ("billing_period", pa.date32()), ("usage_hour", pa.timestamp("us")), *[(n, pa.string()) for n in names[2:6]],
            ("quantity", pa.decimal128(38, 10)), ("total_quantity", pa.decimal128(38, 10)), ("share", pa.float64())]))

    old = shares_rows([(jan, h, "AWSLambda", "requests", "", t, D(q), D(4), q / 4)
                       for h in (h0, h1) for t, q in (("acct-0001", 1), ("acct-0002", 3))])
    evidence = pa.Table.from_pylist([
        {"usage_hour": h0, "service": "AWSLambda", "driver": "requests", "scope": "", "accountant_id": "acct-0001",
         "quantity": D(9)},
        {"usage_hour": h1, "service": "AWSLambda", "driver": "requests", "scope": "", "accountant_id": "acct-0001",
         "quantity": D(1)},
        {"usage_hour": h2, "service": "AWSLambda", "driver": "requests", "scope": "", "accountant_id": "acct-0002",
         "quantity": D(5)}], schema=USAGE_SCHEMA)
    expected = sorted([
        (jan, h0, "AWSLambda", "requests", "", "acct-0001", D("1.0000000000"), D("4.0000000000"), 0.25),
        (jan, h0, "AWSLambda", "requests", "", "acct-0002", D("3.0000000000"), D("4.0000000000"), 0.75),
        (jan, h1, "AWSLambda", "requests", "", "acct-0001", D("1.0000000000"), D("1.0000000000"), 1.0),
        (jan, h2, "AWSLambda", "requests", "", "acct-0002", D("5.0000000000"), D("5.0000000000"), 1.0)])
    columns = "billing_period, usage_hour, service, driver, scope, accountant_id, quantity, total_quantity, share"
    engines = {"duckdb": DuckDBEngine(duckdb.connect(str(tmp_path / "w.duckdb"))),
               "spark": SparkEngine(spark_session("local[2]"), str(tmp_path / "spark-warehouse"), warehouse_ddl())}
    engines["duckdb"].execute("SET TimeZone = 'UTC'")
    engines["duckdb"].execute(warehouse_ddl())
    for name, engine in engines.items():
        replace_month_with_rows(engine, "usage_shares", jan, old)
        engine.register("usage_evidence", evidence)
        try:
            rows = engine.replace_hours_from("usage_shares", jan, h1, stage_sql("usage_shares"),
                                      {"billing_period": jan, "next_period": feb})
        finally:
            engine.unregister("usage_evidence")
        assert rows == 4, name
        assert sorted(engine.execute(f"SELECT {columns} FROM usage_shares").fetchall()) == expected, name


def test_per_model_and_direct_unit_costs_on_spark_are_duckdbs(tmp_path, warehouse_con):
    """The hand-built June of nowcast_support.py (two Bedrock models, a shared function and a tenant's
    tagged worker with REPORT evidence of its own), its nowcast computed on Spark from the same three relations:
    the same rows and calibrations, to the digit."""
    from billing_pipeline.engines.spark_engine import SparkEngine, spark_session
    from billing_pipeline.nowcast import FACT_COLUMNS, compute, warehouse_inputs
    from billing_pipeline.resources.warehouse import warehouse_ddl
    from billing_pipeline_tests.nowcast_support import JULY, JUNE, PRICING, build_june

    build_june(warehouse_con)
    now = dt.datetime(2026, 11, 27, 15, 30)
    with warehouse_inputs(warehouse_con, "unblended"):
        expected = compute(warehouse_con, JUNE, JULY, PRICING, now=now)
    spark = SparkEngine(spark_session("local[2]"), str(tmp_path / "spark-warehouse"), warehouse_ddl())
    inputs = {"nowcast_facts": f"SELECT {FACT_COLUMNS.replace('$metric', repr('unblended'))} FROM hourly_cost_facts",
              "nowcast_evidence": "SELECT * FROM usage_shares", "nowcast_attributed": "SELECT * FROM tenant_costs"}
    for name, sql in inputs.items():
        spark.register(name, warehouse_con.sql(sql).to_arrow_table())
    try:
        on_spark = compute(spark, JUNE, JULY, PRICING, now=now)
    finally:
        for name in inputs:
            spark.unregister(name)
    assert any(c.kind == "direct_unit_cost" for c in expected.calibrations)
    assert on_spark.rows == expected.rows
    assert on_spark.calibrations == expected.calibrations


def test_a_replayed_delivery_on_spark_is_duckdbs(tmp_path):
    """The backtest's cut delivery (replayed_cost_facts.sql: the facts ended by the cut, the month's tax so far)
    shadowing hourly_cost_facts on Spark: test_nowcast_accuracy.py's hand-computed rows, to the digit."""
    from billing_pipeline.engines.spark_engine import SparkEngine, spark_session
    from billing_pipeline.resources.warehouse import warehouse_ddl
    from billing_pipeline_tests.assets.test_nowcast_accuracy import CUT_FACTS, EXPECTED, replayed

    engine = SparkEngine(spark_session("local[2]"), str(tmp_path / "spark-warehouse"), warehouse_ddl())
    assert replayed(CUT_FACTS, engine) == EXPECTED
    # unshadowed: the stored month again, its month-long tax whole
    taxes = engine.execute("SELECT usage_account_id, service, unblended_cost FROM hourly_cost_facts "
                           "WHERE line_item_type = 'Tax' AND billing_period = DATE '2026-01-01'").fetchall()
    assert sorted(taxes) == [("A", "AWSLambda", Decimal("1.0000000002")), ("A", "AmazonS3", Decimal("0.7")),
                             ("B", "AWSLambda", Decimal("-0.5"))]
