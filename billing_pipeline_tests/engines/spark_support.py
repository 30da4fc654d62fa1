"""Running the asset chain on either engine and reading back every table's rows, comparable across engines."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster import AssetSelection, DagsterInstance, materialize

from billing_pipeline.definitions import defs, warehouse_for
from billing_pipeline.engines.spark_engine import spark_session, table_schemas
from billing_pipeline.resources.warehouse import warehouse_ddl

# Every asset but the backtest: nowcast_accuracy's four replays are minutes of small Spark jobs (two thirds of a
# whole-Definitions run on Spark); test_spark_engine.py's whole-Definitions run compares them with DuckDB's on the
# very month the cluster tests generate (January 2026, 3 tenants, 1,500 rows, seed 5, final).
BACKTEST = "nowcast_accuracy"
ALL_BUT_THE_BACKTEST = AssetSelection.all() - AssetSelection.assets(BACKTEST)
CHAIN = AssetSelection.assets("cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                              "tenant_costs", "reconciliation_report")

# every table of the warehouse, all columns but the time each run read Stripe back
TABLES = {table: [c for c, _ in columns if (table, c) != ("invoices", "updated_at")]
          for table, columns in table_schemas(warehouse_ddl()).items()}


def run_chain(monkeypatch, engine: str, tmp_path: Path, partition_key: str, selection=CHAIN):
    monkeypatch.setenv("BILLING_ENGINE", engine)
    monkeypatch.setenv("BILLING_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("BILLING_SPARK_WAREHOUSE", str(tmp_path / "spark-warehouse"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("BILLING_EXPORT_URI", str(tmp_path / f"exports-{engine}"))
    monkeypatch.setenv("BILLING_PUBLISH_URI", str(tmp_path / f"published-{engine}"))
    # the warehouse of `engine`, as definitions.py chooses it when they load with BILLING_ENGINE set
    resources = {**defs.resources, "warehouse": warehouse_for(engine)}
    result = materialize([*defs.assets, *defs.asset_checks], resources=resources, partition_key=partition_key,
                         instance=DagsterInstance.ephemeral(), selection=selection)
    assert result.success
    return result


def plain(row) -> tuple:
    return tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in row)


def all_duckdb_rows(tmp_path: Path, table: str):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return sorted((plain(r) for r in con.execute(f"SELECT {', '.join(TABLES[table])} FROM {table}").fetchall()),
                      key=repr)


def all_spark_rows(tmp_path: Path, table: str):
    folder = tmp_path / "spark-warehouse" / table
    if not folder.is_dir():
        return []
    frame = spark_session("local[2]").read.parquet(str(folder)).select(*TABLES[table])
    return sorted((plain(r) for r in frame.collect()), key=repr)
