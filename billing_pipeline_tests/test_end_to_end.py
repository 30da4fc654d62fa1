"""The whole chain through the real Definitions on a generated month, against the generator's exact answers."""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline import sample_data_oracle as oracle
from billing_pipeline.definitions import defs
from billing_pipeline.sample_data import generate_month

JAN = dt.date(2026, 1, 1)
RESOURCE_TYPES = {"AWSLambda": "lambda", "AmazonDynamoDB": "dynamodb", "AmazonS3": "s3",
                  "AmazonBedrockAgentCore": "agentcore", "AmazonBedrock": "bedrock"}
TABLES = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
          "reconciliation_report"]


def point_at(monkeypatch, sample, warehouse: Path):
    monkeypatch.setenv("BILLING_CUR_URI", sample.cur_uri)
    monkeypatch.setenv("BILLING_LOGS_URI", sample.logs_uri)
    monkeypatch.setenv("BILLING_S3_INVENTORY_URI", sample.inventory_uri)
    monkeypatch.setenv("BILLING_USAGE_URI", sample.usage_uri)
    monkeypatch.setenv("BILLING_WAREHOUSE", str(warehouse))


def run_month(partition_key="2026-01-01", raise_on_error=True):
    return materialize(
        list(defs.assets), resources=defs.resources, partition_key=partition_key,
        instance=DagsterInstance.ephemeral(), raise_on_error=raise_on_error,
    )


def table_rows(warehouse: Path, table: str):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=4, rows=4000, seed=11)


@pytest.fixture
def warehouse(tmp_path, monkeypatch, sample):
    path = tmp_path / "warehouse.duckdb"
    point_at(monkeypatch, sample, path)
    result = run_month()
    assert result.success
    return path


def test_tenant_costs_equal_the_generators_exact_answers(warehouse, sample):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        monthly = dict(((a, s), c) for a, s, c in con.execute(
            "SELECT accountant_id, service, sum(cost) FROM tenant_costs GROUP BY ALL").fetchall())
        daily = dict(((a, s, d), c) for a, s, d, c in con.execute(
            "SELECT accountant_id, service, usage_date, sum(cost) FROM tenant_costs GROUP BY ALL").fetchall())
        (bill,) = con.execute("SELECT sum(unblended_cost) FROM cur_line_items").fetchone()
    assert monthly == sample.expected_costs
    assert daily == {k: v for k, v in sample.expected_daily_costs.items() if v != 0}
    assert sum(monthly.values()) == sample.in_scope_total + sample.account_level_to_tenants
    assert bill == sample.bill_total == sample.in_scope_total + sample.out_of_scope_total
    # this month's untagged Lambda tax reaches the tenants in proportion; the EC2 tax and credit do not
    assert sample.account_level_to_tenants > 0
    assert {k for k, v in monthly.items() if k[1] == "AWSLambda"} >= {(t, "AWSLambda") for t in sample.tenants[:1]}


def test_reconciliation_report_compares_estimates_with_actuals(warehouse, sample):
    actual = defaultdict(D)
    for (accountant, service), cost in sample.expected_costs.items():
        actual[(accountant, RESOURCE_TYPES.get(service, "other"))] += cost
    expected_rows = {}
    for key in set(actual) | set(sample.expected_estimates):
        estimated = sample.expected_estimates.get(key, D(0))
        variance, variance_pct, flagged = oracle.reconcile(estimated, actual[key])
        expected_rows[key] = (estimated, actual[key], variance, variance_pct, flagged, False)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = {(r[0], r[1]): tuple(r[2:]) for r in con.execute(
            """SELECT accountant_id, resource_type, estimated_cost, actual_cost, variance, variance_pct, flagged, is_final
               FROM reconciliation_report WHERE resource_type <> 'total'""").fetchall()}
    assert rows == expected_rows
    assert any(r[4] for r in rows.values()) and not all(r[4] for r in rows.values())


def test_rematerializing_gives_identical_rows(warehouse):
    before = {table: table_rows(warehouse, table) for table in TABLES}
    assert run_month().success
    assert {table: table_rows(warehouse, table) for table in TABLES} == before



def test_a_month_aggregated_in_slices_gives_the_same_facts_and_costs(warehouse, monkeypatch):
    """A month too large for one GROUP BY in the memory limit is aggregated a slice of days at a time: the facts,
    and everything after them, are the same rows (a fact never spans two slices)."""
    from billing_pipeline.assets import hourly_cost_facts as facts_module

    before = {table: table_rows(warehouse, table) for table in TABLES}
    monkeypatch.setattr(facts_module, "SLICE_LINE_ITEMS", 150)  # ~4000 line items: 27 slices of a day or two
    assert len(facts_module.month_slices(JAN, dt.date(2026, 2, 1), 4000)) == 27
    assert len(facts_module.month_slices(JAN, dt.date(2026, 2, 1), 10**9)) == 31
    result = run_month()
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "no_duplicate_facts")
    assert check.passed
    assert {table: table_rows(warehouse, table) for table in TABLES} == before


def test_month_slices_cover_every_instant_at_whole_days():
    from billing_pipeline.assets.hourly_cost_facts import month_slices

    assert month_slices(JAN, dt.date(2026, 2, 1), 10) == [
        {"slice_start": dt.datetime(1, 1, 1), "slice_end": dt.datetime(9999, 12, 31)}]
    slices = month_slices(JAN, dt.date(2026, 2, 1), 25_000_000)
    assert [(s["slice_start"], s["slice_end"]) for s in slices] == [
        (dt.datetime(1, 1, 1), dt.datetime(2026, 1, 11)), (dt.datetime(2026, 1, 11), dt.datetime(2026, 1, 21)),
        (dt.datetime(2026, 1, 21), dt.datetime(9999, 12, 31))]

def test_bad_delivery_fails_naming_the_file_and_keeps_the_last_good_month(warehouse, sample, tmp_path, monkeypatch):
    before = {table: table_rows(warehouse, table) for table in TABLES}
    broken = tmp_path / "broken-cur"
    os.system(f"cp -r '{sample.cur_uri}' '{broken}'")
    parquet = next(broken.rglob("*.snappy.parquet"))
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    monkeypatch.setenv("BILLING_CUR_URI", str(broken))
    result = run_month(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert parquet.name in str(failure.event_specific_data.error)
    assert {table: table_rows(warehouse, table) for table in TABLES} == before
