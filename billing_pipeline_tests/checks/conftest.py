"""One generated month materialized once (assets and checks) for the check tests; each test breaks a copy."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dagster import AssetSelection, DagsterInstance, build_op_context, materialize

from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import DuckDBWarehouse

JAN = dt.date(2026, 1, 1)
CHAIN = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
         "reconciliation_report", "pricing_feedback", "statements"]


@dataclass
class Month:
    warehouse: Path
    instance: DagsterInstance
    result: object


@pytest.fixture(scope="session")
def checked_month(tmp_path_factory):
    """January 2026 of the generator through the real assets and checks (the checks all ran and passed, except
    the two warnings the sample is made to trip)."""
    from billing_pipeline.definitions import defs
    from billing_pipeline.sample_data import generate_month

    root = tmp_path_factory.mktemp("checked-month")
    sample = generate_month(root / "sample", JAN, tenants=3, rows=1500, seed=5)
    env = {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
           "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
           "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"), "BILLING_EXPORT_URI": str(root / "exports")}
    instance = DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as mp:
        for variable, value in env.items():
            mp.setenv(variable, value)
        result = materialize([*defs.assets, *defs.asset_checks], selection=AssetSelection.assets(*CHAIN),
                             resources=defs.resources, partition_key="2026-01-01", instance=instance)
    assert result.success
    yield Month(root / "warehouse.duckdb", instance, result)
    instance.dispose()


@pytest.fixture
def broken(checked_month, tmp_path):
    """A copy of the month's warehouse to break with SQL, and a way to run a real check on it."""

    class Broken:
        path = tmp_path / "warehouse.duckdb"

        def sql(self, statement: str, params=None):
            with duckdb.connect(str(self.path)) as con:
                return con.execute(statement, params or []).fetchall()

        @staticmethod
        def text(result, key: str) -> str:
            """A check result's metadata entry as text (a markdown table, a list of names)."""
            return str(result.metadata[key].value)

        def check(self, check_def):
            """Run the @asset_check on this warehouse for 2026-01, with the instance that materialized the month."""
            context = build_op_context(partition_key="2026-01-01", instance=checked_month.instance)
            available = {"warehouse": DuckDBWarehouse(database=str(self.path)), "billing_config": BillingConfig()}
            return check_def(context, **{key: available[key] for key in check_def.required_resource_keys if key in available})

    shutil.copy(checked_month.warehouse, Broken.path)
    return Broken()
