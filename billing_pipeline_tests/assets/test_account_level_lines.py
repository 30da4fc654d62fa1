"""Account-level lines (tax, credits, refunds, discounts, fees without a resource): the application's proportional
part, split among the tenants, and the bill's conservation, on a hand-built month through the tenant_costs asset."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.assets.reconciliation_report import reconciliation_report
from billing_pipeline.assets.tenant_costs import bill_conservation, stage_account_level_lines, tenant_costs
from billing_pipeline.checks.tenant_costs import bill_conserved, conservation_check
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl

JAN = dt.date(2026, 1, 1)
H = dt.datetime(2026, 1, 5, 10)


def add_fact(con, service, cost, *, line_item_type="Usage", accountant_id=None, application="tax-demo",
             resource_id="", unblended=None):
    con.execute(
        """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id, line_item_type,
               service, usage_type, operation, resource_id, accountant_id, application, currency, in_scope,
               usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
           VALUES (?, ?, 1, '1', ?, ?, 'u', '', ?, ?, ?, 'USD', coalesce(? = 'tax-demo', false), 1, ?, ?, NULL, 1)""",
        [JAN, H, line_item_type, service, resource_id, accountant_id, application, application,
         D(unblended if unblended is not None else cost), D(cost)])


def hand_built_month(con):
    add_fact(con, "AWSLambda", "6.00", accountant_id="a")
    add_fact(con, "AWSLambda", "2.00", accountant_id="b")
    add_fact(con, "AWSLambda", "2.00", application="other-app")         # Lambda: N = 8, D = 10
    add_fact(con, "AmazonS3", "1.00", accountant_id="a")
    add_fact(con, "AmazonS3", "3.00", application=None)                 # S3: N = 1, D = 4
    add_fact(con, "AmazonCloudWatch", "1.00")                            # in scope, no driver: unattributed
    add_fact(con, "AWSLambda", "1.00", line_item_type="Tax", application=None)
    add_fact(con, "AmazonS3", "0.0000000010", line_item_type="Tax", application=None)
    add_fact(con, None, "-3.00", line_item_type="Credit", application=None)  # no product code: all, 10 / 15
    add_fact(con, "AWSLambda", "-0.50", line_item_type="Refund", application=None)  # policy company
    add_fact(con, "AmazonEC2", "0.40", line_item_type="Fee", application=None)  # the application has no EC2
    add_fact(con, "AWSLambda", "0.25", line_item_type="Fee", application=None, resource_id="r-1")  # not account-level
    # Lambda D = 10.25 with that fee; all product codes: N = 10, D = 15.25


@pytest.fixture
def month(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        hand_built_month(con)
    pricing = json.loads(BillingConfig().pricing_text())
    pricing["account_level_lines"] = {"Refund": "company"}
    (tmp_path / "pricing.json").write_text(json.dumps(pricing))
    config = BillingConfig(pricing=str(tmp_path / "pricing.json"))
    result = materialize([tenant_costs, reconciliation_report, bill_conserved],
                         resources={"billing_config": config, "warehouse": DuckDBWarehouse(database=str(path)),
                                    "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    return path, config, result


def metadata_of(result, asset="tenant_costs"):
    return next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == asset)


def test_account_level_parts_are_proportional_and_split_exactly(month):
    path, _, _ = month
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("""SELECT line_item_type, service, accountant_id, cost FROM tenant_costs
                              WHERE allocation = 'proportional' ORDER BY ALL""").fetchall()
    # Lambda tax 1.00 x 8 / 10.25 = 0.78048780487(8) -> 7804878049 units (half up), split 6 : 2 -> floors
    # 5853658536 (.75) and 1951219512 (.25), the unit left to a. S3 tax 10 units x 1 / 4 = 2.5 -> 3 units, all
    # a's. Credit -3.00 x 10 / 15.25 = -1.96721311475(4) -> -19672131148 units, split 7 : 2 : 1 -> floors
    # 13770491803 (.6), 3934426229 (.6), 1967213114 (.8): 2 units left, to unattributed and (tie, by id) a.
    assert rows == [
        ("Credit", None, "a", D("-1.3770491804")),
        ("Credit", None, "b", D("-0.3934426229")),
        ("Credit", None, "unattributed", D("-0.1967213115")),
        ("Tax", "AWSLambda", "a", D("0.5853658537")),
        ("Tax", "AWSLambda", "b", D("0.1951219512")),
        ("Tax", "AmazonS3", "a", D("0.0000000003")),
    ]


def test_the_bill_is_conserved_and_reported(month):
    _, _, result = month
    metadata = metadata_of(result)
    # bill 15.250000001 + 1.000000001 - 3 - 0.5 + 0.4 - 1.25 (the fee is in the 15.25 above)
    assert metadata["bill/USD"].value == "13.1500000010"
    assert metadata["kept_by_company/USD"].value == "-0.5000000000"
    assert metadata["account_level_to_tenants/USD"].value == "-1.1867253096"
    # tenants: a 7 + 0.5853658537 + 3e-10 - 1.3770491804, b 2 + 0.1951219512 - 0.3934426229
    assert metadata["tenants/USD"].value == "8.0099960019"
    assert metadata["unattributed/USD"].value == "0.8032786885"
    # outside the application's tag 3.1500000010, less kept -0.5 and the tenants' -1.1867253096
    assert metadata["out_of_scope/USD"].value == "4.8367253106"
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "bill_conserved")
    assert check.passed
    # the report says what the company keeps
    report = metadata_of(result, "reconciliation_report")
    assert report["kept_by_company/USD"].value == "-0.5000000000"
    assert "- kept by the company: Refund -0.50 USD" in report["report"].value


def test_bill_conservation_fails_when_a_tenant_part_changes(month):
    path, config, _ = month
    pricing = parse_pricing(config.pricing_text())
    with duckdb.connect(str(path)) as raw:
        con = DuckDBEngine(raw)
        con.execute("""UPDATE tenant_costs SET cost = cost + 0.0000000001
                       WHERE accountant_id = 'b' AND line_item_type = 'Tax'""")
        stage_account_level_lines(con, JAN, "amortized", pricing)
        check = conservation_check(bill_conservation(con, JAN, "amortized"))
    assert not check.passed
    assert "tenants 8.0099960020" in check.metadata["unbalanced"].value


@pytest.mark.parametrize("metric, tenant_cost, uncharged", [("unblended", D("0"), "0.0600000000"),
                                                            ("amortized", D("0.0600000000"), None)])
def test_covered_usage_under_each_metric(tmp_path, metric, tenant_cost, uncharged):
    """An hour of Lambda covered by a Savings Plan: on demand 0.096, effective 0.06. Under unblended the covered
    line and its negation cost tenant a 0, and the metadata says 0.06 of covered cost is charged to no tenant."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        add_fact(con, "AWSLambda", "0.06", line_item_type="SavingsPlanCoveredUsage", accountant_id="a",
                 unblended="0.096")
        add_fact(con, "AWSLambda", "0", line_item_type="SavingsPlanNegation", accountant_id="a", unblended="-0.096")
    result = materialize([tenant_costs, reconciliation_report],
                         resources={"billing_config": BillingConfig(cost_metric=metric),
                                    "warehouse": DuckDBWarehouse(database=str(path)), "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    metadata = metadata_of(result)
    report = metadata_of(result, "reconciliation_report")
    assert (report["covered_cost_not_charged/USD"].value if uncharged else None) == uncharged
    assert ("is charged to no tenant" in report["report"].value) == (uncharged is not None)
    with duckdb.connect(str(path), read_only=True) as con:
        (charged,) = con.execute("SELECT coalesce(sum(cost), 0) FROM tenant_costs WHERE accountant_id = 'a'").fetchone()
    assert charged == tenant_cost
    assert (metadata["covered_cost_not_charged/USD"].value if uncharged else None) == uncharged
    assert ("covered_cost_not_charged/USD" in metadata) == (uncharged is not None)


def test_the_default_metric_is_amortized(monkeypatch):
    monkeypatch.delenv("BILLING_COST_METRIC", raising=False)
    assert BillingConfig().metric() == "amortized"


def test_every_discount_type_is_account_level_and_leaves_the_other_lines_shares_alone(tmp_path):
    """Untagged SppDiscount, DistributorDiscount and RiVolumeDiscount lines (AWS's line item types for a Solution
    Provider, a distributor and an RI volume tier), and a FOCUS export's Adjustment, are account-level like EdpDiscount: the application takes its
    8 / 10 of each. Left in the bill's Lambda cost D they reached no tenant and, being negative, made the tax's
    share 8 / 7 (capped at 1): the whole 1.00 of tax charged to the application instead of 0.80."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        add_fact(con, "AWSLambda", "6.00", accountant_id="a")
        add_fact(con, "AWSLambda", "2.00", accountant_id="b")
        add_fact(con, "AWSLambda", "2.00", application="other-app")  # Lambda: N = 8, D = 10
        add_fact(con, "AWSLambda", "1.00", line_item_type="Tax", application=None)
        for discount in ("SppDiscount", "DistributorDiscount", "RiVolumeDiscount", "Adjustment"):
            add_fact(con, "AWSLambda", "-1.00", line_item_type=discount, application=None)
    result = materialize([tenant_costs, bill_conserved],
                         resources={"billing_config": BillingConfig(), "warehouse": DuckDBWarehouse(database=str(path)),
                                    "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        parts = dict(con.execute("""SELECT line_item_type, sum(cost) FROM tenant_costs
                                    WHERE allocation = 'proportional' GROUP BY ALL""").fetchall())
        split = con.execute("""SELECT accountant_id, sum(cost) FROM tenant_costs WHERE line_item_type = 'SppDiscount'
                               GROUP BY ALL ORDER BY ALL""").fetchall()
    assert parts == {"Tax": D("0.8"), "SppDiscount": D("-0.8"), "DistributorDiscount": D("-0.8"),
                     "RiVolumeDiscount": D("-0.8"), "Adjustment": D("-0.8")}
    assert split == [("a", D("-0.6")), ("b", D("-0.2"))]
    metadata = metadata_of(result)
    assert metadata["account_level_to_tenants/USD"].value == "-2.4000000000"
    assert metadata["out_of_scope/USD"].value == "1.4000000000"  # 2 + 0.2 of tax - 4 x 0.2 of discounts


def test_a_policy_may_name_any_discount_type_and_is_applied():
    """The SQL takes every `...Discount` type as account-level, so the pricing file may set its policy (it was
    refused as not account-level, and a policy for it was never looked up)."""
    pricing = json.loads(BillingConfig().pricing_text())
    pricing["account_level_lines"] = {"VolumeTierDiscount": "company"}
    table = parse_pricing(json.dumps(pricing)).account_level_policies_table().to_pylist()
    assert {"line_item_type": "VolumeTierDiscount", "policy": "company"} in table
    pricing["account_level_lines"] = {"Usage": "company"}
    with pytest.raises(ValueError, match="names line item types that are not account-level: Usage"):
        parse_pricing(json.dumps(pricing))


@pytest.mark.parametrize("metric", ["unblended", "amortized"])
def test_a_reservations_upfront_fee_is_never_split_over_the_months_tenants(tmp_path, metric):
    """An All Upfront reservation bought this month: a Fee of 1200.00 without a resource id whose amortized cost is
    0 (cur_line_items.sql spreads it over the reservation's usage). Under unblended it was account-level and tenant
    a took 1200 x 6 / 8 = 900 of a three-year purchase; now it is out of scope, as a Savings Plan's upfront fee is,
    and only counts in the bill's EC2 cost D. Another Fee without a resource id (0.40) is still split."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        add_fact(con, "AmazonEC2", "6.00", accountant_id="a")
        add_fact(con, "AmazonEC2", "2.00", application="other-app")
        add_fact(con, "AmazonEC2", "0", line_item_type="Fee", application=None, unblended="1200.00")
        add_fact(con, "AmazonEC2", "0.40", line_item_type="Fee", application=None)
    result = materialize([tenant_costs, bill_conserved],
                         resources={"billing_config": BillingConfig(cost_metric=metric),
                                    "warehouse": DuckDBWarehouse(database=str(path)), "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        fees = con.execute("""SELECT accountant_id, cost FROM tenant_costs WHERE line_item_type = 'Fee'
                              ORDER BY ALL""").fetchall()
    # unblended: EC2's D = 6 + 2 + 1200 (the fee is bill, not account-level), so the 0.40 fee's part is 0.40 x 6 / 1208
    assert fees == ([("a", D("0.0019867550"))] if metric == "unblended" else [("a", D("0.3000000000"))])
    metadata = metadata_of(result)
    assert metadata["out_of_scope/USD"].value == ("1202.3980132450" if metric == "unblended" else "2.1000000000")


def test_covered_usage_whose_negation_is_untagged_costs_the_on_demand_price_under_unblended_and_says_so(tmp_path):
    """AWS may group a plan's negations per hour and usage type, without a resource or its tags: the covered line
    (0.096 on demand, 0.06 effective) is then tenant a's and the negation nobody's. Under unblended tenant a pays
    0.096, as Cost Explorer's unblended cost by tag shows it; the metadata and the report's note said 0.06 was
    "charged to no tenant" (the figure was -0.036): they now say a pays 0.04 (in cents) above the effective cost."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        add_fact(con, "AWSLambda", "0.06", line_item_type="SavingsPlanCoveredUsage", accountant_id="a",
                 unblended="0.096")
        add_fact(con, "AWSLambda", "0", line_item_type="SavingsPlanNegation", application=None, unblended="-0.096")
    result = materialize([tenant_costs, reconciliation_report],
                         resources={"billing_config": BillingConfig(cost_metric="unblended"),
                                    "warehouse": DuckDBWarehouse(database=str(path)), "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        (charged,) = con.execute("SELECT sum(cost) FROM tenant_costs WHERE accountant_id = 'a'").fetchone()
    assert charged == D("0.096")
    assert metadata_of(result)["covered_cost_not_charged/USD"].value == "-0.0360000000"
    report = metadata_of(result, "reconciliation_report")["report"].value
    assert ("- BILLING_COST_METRIC=unblended: the tenants are charged 0.04 USD above their Savings Plan / RI covered "
            "usage's effective cost: its negation carries no tenant tag") in report
    assert "charged to no tenant" not in report
