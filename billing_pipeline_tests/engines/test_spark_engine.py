"""The same asset chain on Spark (local mode) gives exactly the rows DuckDB gives: the whole Definitions on a
generated final month (the backtest's replays included), every output with its service (Stripe, DynamoDB and Cost
Explorer on local servers), checked against the generator's exact answers too; the next month, whose CUR stops
before its logs, through the real-time assets and the hourly refresh; and a month of the real public CUR
samples."""

import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from billing_pipeline.definitions import defs, warehouse_for
from billing_pipeline.engines.spark_engine import spark_session
from billing_pipeline.jobs import REFRESH_AFTER_COVERAGE, month_to_date_job
from billing_pipeline.publishing import read_pointer, read_snapshot
from billing_pipeline.resources.warehouse import SparkWarehouse
from billing_pipeline.sample_data import generate_month
from billing_pipeline.storage import locate
from billing_pipeline_tests.aws_support import TABLE, day, group, items, post_results
from billing_pipeline_tests.conftest import SAMPLES
from billing_pipeline_tests.engines.spark_support import TABLES, all_duckdb_rows, all_spark_rows, run_chain
from billing_pipeline_tests.evidence_support import deliver_at_end_of_day, make_unreadable
from billing_pipeline_tests.stripe_support import API_KEY, PRICE_LIST, Stripe

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]  # one Spark JVM per test run; minutes

JANUARY, FEBRUARY = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
REALTIME = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                                 "tenant_costs", "month_to_date", "nowcast_accuracy")

def checks(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
            for e in result.get_asset_check_evaluations()}


def test_whole_definitions_on_a_final_month_then_the_next_month_refreshed(
        tmp_path, monkeypatch, aws, localstripe, usage_table):
    """January (final) through every asset, the backtest's replay of day 14 included, then February, whose CUR
    stops on the 20th at 18:00 before its logs, through the real-time assets and month_to_date_job's refresh: every
    table and check on Spark exactly DuckDB's."""
    # one replay day on both engines: each replay re-runs the attribution as dozens of small Spark jobs (four were
    # most of this test's ten minutes); the other days run the same SQL on other cuts (test_realtime.py: all four)
    from billing_pipeline.assets import nowcast_accuracy as backtest

    monkeypatch.setattr(backtest, "REPLAY_DAYS", (14,))
    folder = tmp_path / "sample"
    sample = generate_month(folder, JANUARY, tenants=3, rows=1500, seed=5, final=True)
    generate_month(folder, FEBRUARY, tenants=3, rows=1500, seed=5, cur_through=dt.datetime(2026, 2, 20, 18))
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}.items():
        monkeypatch.setenv(name, value)
    deliver_at_end_of_day(folder)
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

    on_duckdb = run_chain(monkeypatch, "duckdb", tmp_path, "2026-01-01", selection=AssetSelection.all())
    run_chain(monkeypatch, "duckdb", tmp_path, "2026-02-01", selection=REALTIME)
    stripe = Stripe(localstripe)
    placed, written_back = sorted(i["id"] for i in stripe.items()), items(usage_table)
    # Spark aggregates the facts in slices of days (the DuckDB run above in one): the rows must not differ
    from billing_pipeline.assets import hourly_cost_facts as facts_module

    monkeypatch.setattr(facts_module, "SLICE_LINE_ITEMS", 500)
    on_spark = run_chain(monkeypatch, "spark", tmp_path, "2026-01-01", selection=AssetSelection.all())
    run_chain(monkeypatch, "spark", tmp_path, "2026-02-01", selection=REALTIME)

    for table in TABLES:
        assert all_spark_rows(tmp_path, table) == all_duckdb_rows(tmp_path, table), table
    outputs = ["invoices", "pricing_feedback", "statements", "usage_table_writeback", "cost_explorer_costs"]
    assert {t: len(all_spark_rows(tmp_path, t)) > 0 for t in outputs} == dict.fromkeys(outputs, True)
    assert checks(on_spark) == checks(on_duckdb)
    assert not checks(on_spark)[("cost_explorer_costs", "cost_explorer_matches_cur")][0]  # compared: CE is made up
    # January's replay of day 14 x 3 tenants and unattributed; February is not final: nothing to measure
    assert len(all_spark_rows(tmp_path, "nowcast_accuracy")) == 4
    # February: actual through the cut, estimated after it, priced by its own last 7 covered days
    february = [r for r in all_spark_rows(tmp_path, "month_to_date") if r[0] == FEBRUARY]
    assert {(r[-3], r[-2]) for r in february} == {(dt.datetime(2026, 2, 20, 18), dt.datetime(2026, 3, 1))}
    assert sum(r[5] for r in february) > 0  # estimated_cost
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
    january = frame.where(f"billing_period = DATE '{JANUARY}'").groupBy("accountant_id", "service").sum("cost")
    assert {(a, s): c for a, s, c in (tuple(r) for r in january.collect())} == sample.expected_costs
    # the schedule's finality check reads what Spark wrote (BILLING_ENGINE=spark is still set)
    assert [SparkWarehouse().month_is_final(m) for m in (JANUARY, FEBRUARY, dt.date(2025, 12, 1))] == [
        True, False, False]
    # a second run replaces the month's partitions instead of adding to them (every table is written by one of
    # the engine's replace_month*: the facts' slices and a query's rows here; the outputs' second run is the first
    # Spark run above, after DuckDB's)
    run_chain(monkeypatch, "spark", tmp_path, "2026-01-01",
              selection=AssetSelection.assets("hourly_cost_facts", "reconciliation_report"))
    for table in ("hourly_cost_facts", "reconciliation_report"):
        assert all_spark_rows(tmp_path, table) == all_duckdb_rows(tmp_path, table), table

    assert_the_refresh_after_coverage_is_duckdbs(monkeypatch, tmp_path, folder)


def assert_the_refresh_after_coverage_is_duckdbs(monkeypatch, tmp_path, folder) -> None:
    """month_to_date_job on February: usage_shares re-read from the CUR's coverage on, from only the files that
    can hold those hours (every older log file and manifest, January's too, made garbage), the earlier hours
    kept; the same files opened and the same rows on both engines."""
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
    for table in ("usage_shares", "month_to_date", "month_to_date_calibration"):
        duckdb_rows = all_duckdb_rows(tmp_path, table)
        assert duckdb_rows, table
        assert all_spark_rows(tmp_path, table) == duckdb_rows, table

    # the logs after coverage expire: the refresh finds none of their evidence and keeps it as read, on both
    # engines (usage_shares_kept.sql)
    shares = all_duckdb_rows(tmp_path, "usage_shares")
    for path in new_logs:
        path.unlink()
    kept = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("BILLING_ENGINE", engine)
        refresh = materialize(defs.assets, resources={**defs.resources, "warehouse": warehouse_for(engine)},
                              selection=AssetSelection.assets("usage_shares"), run_config=REFRESH_AFTER_COVERAGE,
                              partition_key="2026-02-01", instance=DagsterInstance.ephemeral())
        metadata = refresh.asset_materializations_for_node("usage_shares")[0].metadata
        kept[engine] = {k: v.value for k, v in metadata.items() if k.startswith("kept_vanished_evidence/")}
    assert kept["spark"] == kept["duckdb"] and kept["duckdb"]["kept_vanished_evidence/hours"] > 0
    assert all_spark_rows(tmp_path, "usage_shares") == all_duckdb_rows(tmp_path, "usage_shares") == shares


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


def test_the_spark_tests_run_on_one_worker(request):
    """Under pytest-xdist (`-n 2`, `--dist loadgroup` from pyproject.toml) the tests marked xdist_group("spark")
    go to one worker, one after another: xdist marks such a test's node id with its group. A pytest or xdist
    release that silently drops the grouping (pytest 9.2 did: pytest-dev/pytest-xdist#1386) fails here instead of
    letting the JVM tests crowd each other out of the 2 cores."""
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not under pytest-xdist: every test runs in this one process anyway")
    assert request.config.getvalue("loadgroup") is True
    assert request.node.nodeid.endswith("@spark")
