"""The whole Definitions (but the backtest: ALL_BUT_THE_BACKTEST) on a real Spark cluster through Spark Connect: a
standalone master and two workers, each its own JVM on loopback (spark_cluster.py), the Connect server the
cluster's driver (BILLING_SPARK_REMOTE=sc://...), executors in their own JVMs with their own Python workers, the
warehouse a folder they all see: every table's rows and every check's outcome identical to DuckDB's on the same
generated month. (The classic driver on a standalone cluster: test_benchmark_smoke.py's scaling run, whose core
chain is compared with DuckDB's row by row.)"""

import datetime as dt
import os
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs, warehouse_for
from billing_pipeline.engines.spark_engine import spark_session, table_schemas
from billing_pipeline.resources.warehouse import warehouse_ddl
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.engines.spark_cluster import StandaloneCluster, spark_test_settings
from billing_pipeline_tests.engines.spark_support import ALL_BUT_THE_BACKTEST, BACKTEST

# the cluster's JVMs (master, workers, Spark Connect server) are processes of their own: one test worker runs the
# cluster tests one after another while the other runs the in-process Spark tests (xdist_group "spark")
pytestmark = [pytest.mark.xdist_group("spark-cluster"), pytest.mark.slow]

MONTH = "2026-01-01"
# every table of the warehouse but the backtest's (see ALL_BUT_THE_BACKTEST)
TABLES = {table: [c for c, _ in columns] for table, columns in table_schemas(warehouse_ddl()).items()
          if table != BACKTEST}


def stop_spark() -> None:
    """Stop this process's classic Spark session, if any: getOrCreate() would hand an earlier test's local[2]
    session to a run meant for the cluster, and a running driver holds the workers' cores."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkSession._instantiatedSession is not None:
        SparkSession._instantiatedSession.stop()
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    # A Spark Connect session marks the whole process as Connect (pyspark sets this variable and never unsets
    # it): later classic sessions of this test worker would then ask for a Connect URL.
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and two 1-core workers on 127.0.0.1 (logs under the fixture's tmp folder)."""
    stop_spark()
    with StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2, cores=1, memory="1g") as cluster:
        yield cluster
    stop_spark()


def plain(row) -> tuple:
    return tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in row)


def pipeline_env(monkeypatch, folder: Path, sample) -> None:
    for name, value in {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
                        "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
                        "BILLING_WAREHOUSE": str(folder / "warehouse.duckdb"),
                        "BILLING_SPARK_WAREHOUSE": str(folder / "spark-warehouse"),
                        "BILLING_EXPORT_URI": str(folder / "exports"),
                        "BILLING_PUBLISH_URI": str(folder / "published")}.items():
        monkeypatch.setenv(name, value)


def run_definitions(engine: str):
    # the warehouse of `engine`, as definitions.py chooses it when they load with BILLING_ENGINE set
    resources = {**defs.resources, "warehouse": warehouse_for(engine)}
    result = materialize([*defs.assets, *defs.asset_checks], resources=resources, partition_key=MONTH,
                         instance=DagsterInstance.ephemeral(), selection=ALL_BUT_THE_BACKTEST)
    assert result.success
    return result


def checks(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
            for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def on_duckdb(tmp_path_factory):
    """A generated final month run on DuckDB, the reference: (sample, rows of every table, check outcomes)."""
    folder = tmp_path_factory.mktemp("cluster-month")
    sample = generate_month(folder / "sample", dt.date(2026, 1, 1), tenants=3, rows=1500, seed=5, final=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        pipeline_env(monkeypatch, folder, sample)
        monkeypatch.setenv("BILLING_ENGINE", "duckdb")
        result = run_definitions("duckdb")
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        rows = {table: sorted((plain(r) for r in con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()),
                              key=repr) for table, columns in TABLES.items()}
    return sample, rows, checks(result)


def spark_rows(session, folder: Path) -> dict[str, list]:
    """Every table the Spark run wrote, read back through the run's own session."""
    rows = {}
    for table, columns in TABLES.items():
        path = folder / "spark-warehouse" / table
        frame = session.read.parquet(str(path)).select(*columns) if path.is_dir() else None
        rows[table] = sorted((plain(r) for r in frame.collect()), key=repr) if frame is not None else []
    return rows


def assert_same_as_duckdb(on_duckdb, session, folder: Path, result) -> None:
    _, expected, expected_checks = on_duckdb
    written = spark_rows(session, folder)
    for table in TABLES:
        assert written[table] == expected[table], table
    assert sum(map(len, written.values())) > 0 and expected["tenant_costs"]
    assert checks(result) == expected_checks


def test_whole_definitions_through_spark_connect(spark_cluster, on_duckdb, tmp_path, monkeypatch):
    stop_spark()
    pipeline_env(monkeypatch, tmp_path, on_duckdb[0])
    monkeypatch.setenv("BILLING_ENGINE", "spark")
    monkeypatch.delenv("BILLING_SPARK_MASTER", raising=False)
    with spark_cluster.connect_server(spark_test_settings()) as remote:
        monkeypatch.setenv("BILLING_SPARK_REMOTE", remote)
        session = None
        try:
            result = run_definitions("spark")
            session = spark_session(remote=remote)
            assert type(session).__module__.startswith("pyspark.sql.connect")  # a Spark Connect client
            # the Connect server is the cluster's driver: its application holds both workers' cores
            state = spark_cluster.state()
            assert [a["cores"] for a in state["activeapps"]] == [2]
            assert_same_as_duckdb(on_duckdb, session, tmp_path, result)
        finally:
            if session is not None:
                session.stop()
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)  # see stop_spark
