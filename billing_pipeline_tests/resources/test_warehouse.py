"""The warehouse resources: chosen by BILLING_ENGINE where the definitions load, the tables created once per run,
not at every step; the engine hands out only its interface."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, asset, materialize

from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.resources import warehouse as warehouse_module
from billing_pipeline.resources.warehouse import BillingWarehouse, DuckDBWarehouse


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

    resources = {"warehouse": DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb"))}
    for runs in (1, 2):
        assert materialize([first, second], resources=resources, instance=DagsterInstance.ephemeral()).success
        assert len(created) == runs  # one per run, whatever its steps


def test_the_duckdb_engine_hands_out_only_its_interface():
    engine = DuckDBEngine(duckdb.connect())
    assert engine.execute("SELECT 42").fetchall() == [(42,)]
    assert not hasattr(engine, "sql") and not hasattr(engine, "fetch_arrow_table")


def test_definitions_choose_the_warehouse_of_billing_engine():
    from billing_pipeline.definitions import warehouse_for
    from billing_pipeline.resources.warehouse import SparkWarehouse

    assert type(warehouse_for("duckdb")) is DuckDBWarehouse
    assert type(warehouse_for(" Spark ")) is SparkWarehouse
    # not an engine: the default's warehouse, whose run then fails naming the value (below)
    assert type(warehouse_for("sprak")) is DuckDBWarehouse


def test_definitions_validate_says_which_engine_runs(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "BILLING_ENGINE": "spark", "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "billing_pipeline.definitions"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The warehouse: SparkWarehouse (BILLING_ENGINE='spark')" in done.stdout + done.stderr


@pytest.mark.parametrize("engine, message", [
    ("sprak", "BILLING_ENGINE='sprak' (set): not one of them (did you mean 'spark'?); expected one of duckdb, spark"),
    # set after the definitions chose DuckDB's warehouse: said, not silently ignored
    ("spark", "BILLING_ENGINE='spark' (set): the definitions chose the duckdb warehouse when they loaded; load them "
              "again with it set (restart dagster dev)"),
])
def test_a_run_names_a_wrong_engine_before_any_step(tmp_path, monkeypatch, engine, message):
    monkeypatch.setenv("BILLING_ENGINE", engine)

    @asset
    def reads(warehouse: BillingWarehouse) -> None:
        with warehouse.connect() as con:
            con.execute("SELECT 1").fetchall()

    result = materialize([reads], resources={"warehouse": DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))},
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success and result.get_step_success_events() == []
    assert message in str(next(e for e in result.all_events if e.is_failure).event_specific_data.error)
    assert not (tmp_path / "w.duckdb").exists()
