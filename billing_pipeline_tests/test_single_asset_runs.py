"""One asset of one month on its own, as DESIGN's contract runs it
(`dagster asset materialize -m billing_pipeline.definitions --select <asset> --partition 2026-01-01`): it reads the
month's stored upstream tables, and fails naming the table to materialize first when the month has none of it
(it wrote an empty month, its checks passed and the run was green: tenant_costs of a month whose hourly_cost_facts
never ran charged nobody anything)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.month_support import failure_message, point_at, run

REPO = Path(__file__).resolve().parents[1]
JAN = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("single") / "sample", JAN, tenants=2, rows=300, seed=5)


def rows(warehouse: Path, table: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE billing_period = ?", [JAN]).fetchone()[0]


def materialize_cli(asset: str) -> subprocess.CompletedProcess:
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run([str(dagster), "asset", "materialize", "-m", "billing_pipeline.definitions",
                           "--select", asset, "--partition", "2026-01-01"],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=600)


def test_a_downstream_asset_alone_fails_naming_the_upstream_table_the_month_lacks(sample, tmp_path, monkeypatch):
    warehouse = point_at(monkeypatch, sample, tmp_path)

    # nothing of January yet: hourly_cost_facts has no line items to sum
    result = run({"hourly_cost_facts"})
    assert not result.success
    assert ("hourly_cost_facts of 2026-01: cur_line_items holds nothing of 2026-01 (never materialized for the "
            "month): materialize it first (dagster asset materialize -m billing_pipeline.definitions --select "
            "cur_line_items --partition 2026-01-01); nothing written") in failure_message(result)
    assert rows(warehouse, "hourly_cost_facts") == 0

    # the line items and the usage shares, not the facts: tenant_costs alone, from the command line
    assert run({"cur_line_items", "usage_shares"}).success
    done = materialize_cli("tenant_costs")
    assert done.returncode != 0
    assert ("tenant_costs of 2026-01: hourly_cost_facts holds nothing of 2026-01 (never materialized for the "
            "month): materialize it first (dagster asset materialize -m billing_pipeline.definitions --select "
            "hourly_cost_facts --partition 2026-01-01); nothing written") in done.stdout + done.stderr
    assert rows(warehouse, "tenant_costs") == 0

    # the facts but not tenant_costs: reconciliation_report alone would report every tenant's actual cost as 0
    assert run({"hourly_cost_facts", "estimated_usage"}).success
    result = run({"reconciliation_report"})
    assert not result.success
    assert ("reconciliation_report of 2026-01: tenant_costs holds nothing of 2026-01 (never materialized for the "
            "month)") in failure_message(result)
    assert rows(warehouse, "reconciliation_report") == 0

    # upstream stored: each asset alone reads it, to the cent of the generator's answer
    done = materialize_cli("tenant_costs")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = run({"statements"})  # the report not yet: no empty statements (nor exports) for the month
    assert not result.success
    assert ("statements of 2026-01: reconciliation_report holds nothing of 2026-01 (never materialized for the "
            "month)") in failure_message(result)
    assert rows(warehouse, "statements") == 0
    assert run({"reconciliation_report"}).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        costs = dict(((a, s), c) for a, s, c in con.execute(
            "SELECT accountant_id, service, sum(cost) FROM tenant_costs WHERE billing_period = ? GROUP BY ALL",
            [JAN]).fetchall())
        actual = con.execute("SELECT sum(actual_cost) FROM reconciliation_report WHERE billing_period = ? "
                             "AND resource_type <> 'total'", [JAN]).fetchone()[0]
    assert costs == {key: value for key, value in sample.expected_costs.items() if value != 0}
    assert actual == sum(sample.expected_actuals.values(), Decimal(0))
