"""The real-time tables on Spark (local mode) are exactly DuckDB's: month_to_date, its calibrations and the
backtest's replays (nowcast_accuracy, which stands cut copies in for hourly_cost_facts and usage_shares and re-runs
the attribution on them) on a generated final month, and the next month whose CUR stops before its logs, refreshed
by month_to_date_job (usage_shares re-read from the CUR's coverage on, from only the files that can hold those
hours, the earlier hours kept)."""

import datetime as dt
from decimal import Decimal

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from billing_pipeline.definitions import defs, warehouse_for
from billing_pipeline.jobs import REFRESH_AFTER_COVERAGE, month_to_date_job
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.engines.spark_support import all_duckdb_rows, all_spark_rows, run_chain
from billing_pipeline_tests.evidence_support import deliver_at_end_of_day, make_unreadable

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]

REALTIME = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                                 "tenant_costs", "month_to_date", "nowcast_accuracy")
TABLES = ("usage_shares", "month_to_date", "month_to_date_calibration", "nowcast_accuracy")


def test_month_to_date_and_backtest_on_spark_are_duckdbs(tmp_path, monkeypatch):
    folder = tmp_path / "sample"
    generate_month(folder, dt.date(2026, 1, 1), tenants=3, rows=1500, seed=5, final=True)
    sample = generate_month(folder, dt.date(2026, 2, 1), tenants=3, rows=1500, seed=5,
                            cur_through=dt.datetime(2026, 2, 20, 18))
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    deliver_at_end_of_day(folder)
    for engine in ("duckdb", "spark"):
        for month in ("2026-01-01", "2026-02-01"):
            run_chain(monkeypatch, engine, tmp_path, month, selection=REALTIME)
    # the refresh must not open a file that cannot hold hours from the coverage on (the 20th 00:00): every older
    # log file and manifest, January's too, made garbage
    since = dt.datetime(2026, 2, 20, tzinfo=dt.timezone.utc).timestamp()
    old = [p for p in folder.rglob("*") if p.is_file() and (p.suffix == ".gz" or p.name == "manifest.json")
           and p.stat().st_mtime < since]
    make_unreadable(old)
    files_read = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("BILLING_ENGINE", engine)
        # month_to_date_job's assets and config (but its republishing: this month has no statements here), on
        # the warehouse of `engine` (definitions.py binds one at load)
        refresh = materialize(defs.assets, resources={**defs.resources, "warehouse": warehouse_for(engine)},
                              selection=month_to_date_job.selection - AssetSelection.assets("published_billing"),
                              run_config=REFRESH_AFTER_COVERAGE, partition_key="2026-02-01",
                              instance=DagsterInstance.ephemeral())
        assert refresh.success
        metadata = refresh.asset_materializations_for_node("usage_shares")[0].metadata
        files_read[engine] = (metadata["read_from"].value, metadata["files_read"].value)
    # the same files opened: the logs of the 19th on (exported at the end of their day) and the inventory
    # snapshots of the 21st on (the 20th's was not delivered), a manifest and a data file each
    new_logs = [p for p in folder.rglob("*.gz") if "/2026/02/" in str(p) and p not in old]
    assert files_read["spark"] == files_read["duckdb"] == ("2026-02-20 00:00:00", len(new_logs) + 8 * 2)
    for table in TABLES:
        duckdb_rows = all_duckdb_rows(tmp_path, table)
        assert duckdb_rows, table
        assert all_spark_rows(tmp_path, table) == duckdb_rows, table
    # January's 4 replay days x 3 tenants and unattributed; February is not final: nothing to measure
    assert len(all_spark_rows(tmp_path, "nowcast_accuracy")) == 4 * 4
    # February: actual through the cut, estimated after it, priced by its own last 7 covered days
    february = [r for r in all_spark_rows(tmp_path, "month_to_date") if r[0] == dt.date(2026, 2, 1)]
    assert {(r[-3], r[-2]) for r in february} == {(dt.datetime(2026, 2, 20, 18), dt.datetime(2026, 3, 1))}
    assert sum(r[5] for r in february) > 0  # estimated_cost


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
