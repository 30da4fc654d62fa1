"""BillingWarehouse: the warehouse's tables created once per run, not at every step; the engine hands out only its
interface."""

from __future__ import annotations

import duckdb
from dagster import DagsterInstance, asset, materialize

from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.resources import warehouse as warehouse_module
from billing_pipeline.resources.warehouse import BillingWarehouse


def test_tables_are_created_once_per_run(tmp_path, monkeypatch):
    created = []
    ddl = warehouse_module.warehouse_ddl
    monkeypatch.setattr(warehouse_module, "warehouse_ddl", lambda: created.append(1) or ddl())

    @asset
    def first(warehouse: BillingWarehouse) -> None:
        with warehouse.connect() as con:
            con.execute("SELECT count(*) FROM tenant_costs").fetchall()

    @asset(deps=[first])
    def second(warehouse: BillingWarehouse) -> None:
        with warehouse.connect() as con:
            con.execute("SELECT count(*) FROM statements").fetchall()

    resources = {"warehouse": BillingWarehouse(database=str(tmp_path / "warehouse.duckdb"))}
    for runs in (1, 2):
        assert materialize([first, second], resources=resources, instance=DagsterInstance.ephemeral()).success
        assert len(created) == runs  # one per run, whatever its steps


def test_the_duckdb_engine_hands_out_only_its_interface():
    engine = DuckDBEngine(duckdb.connect())
    assert engine.execute("SELECT 42").fetchall() == [(42,)]
    assert not hasattr(engine, "sql") and not hasattr(engine, "fetch_arrow_table")
