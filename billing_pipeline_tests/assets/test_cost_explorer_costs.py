"""Cost Explorer cross-check over HTTP against the local server: canned GetCostAndUsage pages (moto's
/moto-api/static/ce/cost-and-usage-results queue), the table, and the check passing and failing."""

import datetime as dt
import json
from decimal import Decimal as D

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.assets.cost_explorer_costs import cost_explorer_costs, cost_explorer_rows, query_window
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl
from billing_pipeline_tests.aws_support import day, group, post_results

JAN = dt.date(2026, 1, 1)

# CUR-derived: acc-1 direct 1.2345678901 (Jan 1) and 2.0000000004 (Jan 2); acc-2 direct 0.5 (Jan 1);
# untagged application cost (shared + unattributed) 0.3 + 0.1 on Jan 1
TENANT_COSTS = [
    ("acc-1", 1, "direct", "1.2345678901"), ("acc-1", 2, "direct", "2.0000000004"),
    ("acc-2", 1, "direct", "0.5000000000"),
    ("acc-1", 1, "shared_hour", "0.2000000000"), ("acc-2", 1, "shared_hour", "0.1000000000"),
    ("unattributed", 1, "unattributed", "0.1000000000"),
]


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        for accountant, d, allocation, cost in TENANT_COSTS:
            con.execute(
                "INSERT INTO tenant_costs VALUES (?, ?, ?, 'AWSLambda', 'lambda', 'u', 'Usage', ?, NULL, NULL, 'USD', "
                "'unblended', ?, NULL)", [JAN, dt.date(2026, 1, d), accountant, allocation, D(cost)])
    return path


def run(path, enabled="1", metric="unblended"):  # the fixtures post UnblendedCost
    return materialize(
        [cost_explorer_costs],
        resources={"billing_config": BillingConfig(cost_metric=metric), "aws": AwsClients(),
                   "outputs_config": OutputsConfig(cost_explorer=enabled),
                   "warehouse": DuckDBWarehouse(database=str(path))},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
    )


def table_rows(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("""SELECT usage_date, accountant_id, metric, amount, currency, estimated
                              FROM cost_explorer_costs ORDER BY ALL""").fetchall()


def check_of(result):
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_two_pages_within_half_a_cent_pass(aws, warehouse):
    # page 1 (with NextPageToken): Jan 1; page 2: Jan 2. Amounts as CE returns them: rounded strings.
    post_results(aws,
                 {"ResultsByTime": [day("2026-01-01", [group("acc-1", "1.23"), group("acc-2", "0.5"),
                                                       group("", "0.4000000001")])],
                  "NextPageToken": "page-2", "DimensionValueAttributes": []},
                 {"ResultsByTime": [day("2026-01-02", [group("acc-1", "2.00")], estimated=False)],
                  "DimensionValueAttributes": []})
    result = run(warehouse)
    assert result.success
    assert table_rows(warehouse) == [
        (dt.date(2026, 1, 1), "", "UnblendedCost", D("0.4000000001"), "USD", True),
        (dt.date(2026, 1, 1), "acc-1", "UnblendedCost", D("1.2300000000"), "USD", True),
        (dt.date(2026, 1, 1), "acc-2", "UnblendedCost", D("0.5000000000"), "USD", True),
        (dt.date(2026, 1, 2), "acc-1", "UnblendedCost", D("2.0000000000"), "USD", False),
    ]
    check = check_of(result)
    assert check.check_name == "cost_explorer_matches_cur" and check.passed
    assert check.metadata["mismatches"].value == 0
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["pages"].value == 2 and metadata["dagster/row_count"].value == 4

    # a re-run replaces the month (the local server answers the same requests the same way)
    assert run(warehouse).success
    assert len(table_rows(warehouse)) == 4


def test_differences_over_half_a_cent_fail_and_are_listed(aws, warehouse):
    # acc-1 Jan 2 is 0.0099999996 off; acc-2 is missing on Jan 1 (CUR has 0.50); an unknown tenant appears
    post_results(aws, {"ResultsByTime": [
        day("2026-01-01", [group("acc-1", "1.23"), group("", "0.40"), group("acc-9", "0.01")]),
        day("2026-01-02", [group("acc-1", "2.01")]),
    ]})
    result = run(warehouse)
    assert result.success  # the check fails, the run does not
    check = check_of(result)
    assert not check.passed
    assert check.metadata["mismatches"].value == 3
    assert check.metadata["mismatched_accountants"].value == "acc-1, acc-2, acc-9"
    listed = check.metadata["mismatched"].value
    assert "0.0099999996" in listed and "acc-9" in listed and "-0.5" in listed


def test_metric_follows_billing_cost_metric_and_requests_are_paginated():
    class FakeCostExplorer:
        def __init__(self):
            self.requests = []

        def get_cost_and_usage(self, **request):
            self.requests.append(json.loads(json.dumps(request)))
            if "NextPageToken" not in request:
                return {"ResultsByTime": [day("2026-01-31", [group("acc-1", "0.333333333333", "AmortizedCost")])],
                        "NextPageToken": "t2"}
            return {"ResultsByTime": [day("2026-01-31", [group("acc-2", "1", "AmortizedCost")])]}

    client = FakeCostExplorer()
    rows, pages = cost_explorer_rows(client, JAN, JAN, dt.date(2026, 2, 1), "AmortizedCost", "accountant_id",
                                     "tax-demo")
    assert pages == 2
    assert client.requests[0] == {
        "TimePeriod": {"Start": "2026-01-01", "End": "2026-02-01"}, "Granularity": "DAILY",
        "Metrics": ["AmortizedCost"], "GroupBy": [{"Type": "TAG", "Key": "accountant_id"}],
        "Filter": {"Tags": {"Key": "application", "Values": ["tax-demo"], "MatchOptions": ["EQUALS"]}},
    }
    assert client.requests[1] == {**client.requests[0], "NextPageToken": "t2"}
    assert [(r["accountant_id"], r["amount"]) for r in rows] == [("acc-1", D("0.3333333333")), ("acc-2", D("1"))]
    # the current month is asked up to today (End is exclusive); a future month not at all
    assert query_window(JAN, dt.date(2026, 2, 1), dt.date(2026, 1, 10)) == (JAN, dt.date(2026, 1, 11))
    assert query_window(JAN, dt.date(2026, 2, 1), dt.date(2026, 11, 25)) == (JAN, dt.date(2026, 2, 1))


def test_off_unless_configured(warehouse, monkeypatch):
    monkeypatch.delenv("BILLING_COST_EXPLORER", raising=False)
    result = run(warehouse, enabled=None)  # no AWS at all: nothing is called
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["status"].value == "not configured (BILLING_COST_EXPLORER is not set)"
    assert check_of(result).passed
    assert table_rows(warehouse) == []
