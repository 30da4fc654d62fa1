"""pricing_feedback: the unit cost the bill shows per driver against the pricing file's constants, exact, and each
tenant's variance split into a price part and a quantity part."""

import datetime as dt
import json
from decimal import Decimal as D

import duckdb
import pyarrow as pa
from dagster import DagsterInstance, materialize

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.assets.pricing_feedback import pricing_feedback
from billing_pipeline.assets.tenant_costs import tenant_costs
from billing_pipeline.checks.pricing_feedback import pricing_constants_within_threshold
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl

JAN = dt.date(2026, 1, 1)
H = dt.datetime(2026, 1, 1, 5)
PRICING = parse_pricing(BillingConfig().pricing_text())
COLUMNS = """quantity, actual_cost, bill_quantity, recorded_quantity, implied_unit_cost, configured_unit_cost,
             variance_pct, flagged, suggested_unit_cost, price_variance, quantity_variance"""


def feedback(con, metric="amortized"):
    con.register("driver_prices", PRICING.driver_prices_table())
    con.register("estimate_operations", PRICING.estimate_operations_table())
    rows = con.execute(
        f"SELECT service, driver, accountant_id, {COLUMNS} FROM ({stage_sql('pricing_feedback')})",
        {"billing_period": JAN, "currency": "USD", "is_final": False, "threshold_pct": D("10"), "cost_metric": metric},
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in rows}


def add_fact(con, service, usage_type, usage, cost, line_item_type="Usage", unblended=None, hour=H, accountant_id=None):
    con.execute(
        """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id, line_item_type,
               service, usage_type, operation, resource_id, accountant_id, application, currency, in_scope,
               usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
           VALUES (?, ?, 1, '1', ?, ?, ?, '', '', ?, 'tax-demo', 'USD', true, ?, ?, ?, NULL, 1)""",
        [JAN, hour, line_item_type, service, usage_type, accountant_id, D(usage),
         D(unblended if unblended is not None else cost), D(cost)])


def add_usage(con, service, driver, accountant, quantity, scope="", hour=H):
    con.execute("INSERT INTO usage_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1.0)",
                [JAN, hour, service, driver, scope, accountant, D(quantity), D(quantity)])


def add_cost(con, accountant, service, resource_type, allocation, driver, cost):
    con.execute("INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', ?, ?, NULL, 'USD', 'amortized', ?, NULL)",
                [JAN, JAN, accountant, service, resource_type, allocation, driver, D(cost)])


def add_estimate(con, accountant, resource_type, operation, quantity):
    con.execute("INSERT INTO estimated_usage VALUES (?, ?, ?, ?, ?, ?, 0, 1)",
                [JAN, accountant, resource_type, operation, JAN, D(quantity)])


def test_implied_unit_cost_from_the_bills_quantities_and_the_variance_split(warehouse_con):
    con = warehouse_con
    # the bill: 1500 GB-s on demand + 500 covered by a Savings Plan (effective 0.006, on demand 0.0083) = 2000
    # GB-s for 0.033 amortized; a credit on the same usage type carries no usage and does not count
    add_fact(con, "AWSLambda", "USE1-Lambda-GB-Second", "1500", "0.0270")
    add_fact(con, "AWSLambda", "USE1-Lambda-GB-Second", "500", "0.0060", "SavingsPlanCoveredUsage", unblended="0.0083")
    add_fact(con, "AWSLambda", "USE1-Lambda-GB-Second", "0", "-0.0030", "Credit")
    add_fact(con, "AWSLambda", "USE1-Request", "3", "0.00000066")
    add_fact(con, "AWSLambda", "USE1-DataTransfer-Out-Bytes", "2", "0.0123456789")
    add_fact(con, "AmazonDynamoDB", "USE1-WriteRequestUnits", "7", "0.00001")
    # vCPU-hours split by sessions this month (no vCPU evidence): billed per vCPU-hour, never per session
    add_fact(con, "AmazonBedrockAgentCore", "USE1-AgentCoreRuntime-vCPU-Hours", "2", "0.179")
    # the evidence (fewer GB-s than billed: the logs miss some) and the cost split by it
    add_usage(con, "AWSLambda", "gb_seconds", "a", "1000")
    add_usage(con, "AWSLambda", "gb_seconds", "b", "400", hour=H + dt.timedelta(hours=1))
    add_usage(con, "AWSLambda", "gb_seconds", "unattributed", "100")
    add_usage(con, "AmazonBedrockAgentCore", "sessions", "a", "4")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0200000000")
    add_cost(con, "b", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0080000000")
    add_cost(con, "unattributed", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0020000000")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_month", "gb_seconds", "-0.0030000000")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_hour", "combined", "0.0123456789")
    add_cost(con, "a", "AmazonBedrockAgentCore", "agentcore", "shared_hour", "sessions", "0.1790000000")
    # what the application recorded
    add_estimate(con, "a", "lambda", "LambdaCompute", "1100")
    add_estimate(con, "b", "lambda", "LambdaCompute", "400")
    add_estimate(con, "b", "lambda", "SomethingElse", "99")

    rows = feedback(con)
    # 0.033 / 2000 = 0.0000165 vs 0.0000166667: -0.0000001667 / 0.0000166667 = -1.0002 %, not flagged
    assert rows[("AWSLambda", "gb_seconds", "total")] == (
        D("1500"), D("0.0270000000"), D("2000"), None, D("0.000016500000000000"), D("0.000016666700000000"),
        D("-1.0002"), False, None, None, None)
    # each tenant: price part = evidence x (0.0000165 - 0.0000166667),
    # quantity part = (evidence - recorded) x 0.0000166667
    assert rows[("AWSLambda", "gb_seconds", "a")][:4] == (D("1000"), D("0.0170000000"), None, D("1100"))
    assert rows[("AWSLambda", "gb_seconds", "a")][9:] == (D("-0.0001667000"), D("-0.0016666700"))
    assert rows[("AWSLambda", "gb_seconds", "b")][9:] == (D("-0.0000666800"), D("0E-10"))
    assert rows[("AWSLambda", "gb_seconds", "unattributed")][9:] == (D("-0.0000166700"), D("0.0016666700"))
    # requests: exactly +10 % -> not flagged
    assert rows[("AWSLambda", "requests", "total")][4:8] == (
        D("0.000000220000000000"), D("0.000000200000000000"), D("10.0000"), False)
    # 0.00001 / 7 = 0.00000142857142857142857... rounded half up at 1e-18; +14.2857 % -> suggest it
    assert rows[("AmazonDynamoDB", "write_units", "total")][2:9] == (
        D("7"), None, D("0.000001428571428571"), D("0.000001250000000000"), D("14.2857"), True, D("0.000001428571"))
    # combined: its cost, no quantity, no constant, never flagged
    assert rows[("AWSLambda", "combined", "total")][:9] == (
        None, D("0.0123456789"), None, None, None, None, None, False, None)
    # AgentCore: vCPU-hours billed at 0.179 / 2 = the constant; sessions carried the cost but have no bill quantity
    assert rows[("AmazonBedrockAgentCore", "vcpu_hours", "total")][2:8] == (
        D("2"), None, D("0.089500000000000000"), D("0.089500000000000000"), D("0.0000"), False)
    assert rows[("AmazonBedrockAgentCore", "sessions", "total")][:8] == (
        D("4"), D("0.1790000000"), None, None, None, D("0.003000000000000000"), None, False)


def test_negative_implied_cost_rounds_away_from_zero(warehouse_con):
    add_fact(warehouse_con, "AWSLambda", "USE1-Lambda-GB-Second", "3", "-0.0000000002")
    # -2e-10 / 3 = -6.666...e-11 -> -0.000000000066666667
    assert feedback(warehouse_con)[("AWSLambda", "gb_seconds", "total")][4] == D("-0.000000000066666667")


def test_a_month_billed_at_the_constants_flags_nothing_when_the_logs_miss_hours(tmp_path):
    """The issue's example: the CUR charged exactly the pricing constants; the logs saw only part of the usage
    (hours lost). Dividing the split cost by the evidence flagged GB-s +81.8 %; the bill's own quantities flag
    nothing. Through tenant_costs and pricing_feedback."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        for hour in range(10):  # ten hours billed: 100 GB-s, 500 requests and 1 GB-month... of storage each
            at = H + dt.timedelta(hours=hour)
            add_fact(con, "AWSLambda", "USE1-Lambda-GB-Second", "100", "0.00166667", hour=at)
            add_fact(con, "AWSLambda", "USE1-Request", "500", "0.0001", hour=at)
            add_fact(con, "AmazonS3", "USE1-TimedStorage-ByteHrs", "1", "0.023", hour=at)
        for hour in range(5):  # the logs kept only the first five hours, and a part of each
            at = H + dt.timedelta(hours=hour)
            add_usage(con, "AWSLambda", "gb_seconds", "a", "30", hour=at)
            add_usage(con, "AWSLambda", "gb_seconds", "b", "25", hour=at)
            add_usage(con, "AWSLambda", "requests", "a", "272", hour=at)
            add_usage(con, "AmazonS3", "gb_months", "a", "2", hour=at)
    resources = {"billing_config": BillingConfig(), "warehouse": DuckDBWarehouse(database=str(path)),
                 "outputs_config": OutputsConfig(export_uri=str(tmp_path / "exports"))}
    result = materialize([tenant_costs, pricing_feedback, pricing_constants_within_threshold], resources=resources, partition_key="2026-01-01",
                         instance=DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("""SELECT driver, bill_quantity, implied_unit_cost, configured_unit_cost, flagged
                              FROM pricing_feedback WHERE accountant_id = 'total' ORDER BY driver""").fetchall()
    assert rows == [
        ("gb_months", D("10"), D("0.023000000000000000"), D("0.023000000000000000"), False),
        ("gb_seconds", D("1000"), D("0.000016666700000000"), D("0.000016666700000000"), False),
        ("requests", D("5000"), D("0.000000200000000000"), D("0.000000200000000000"), False),
    ]
    check = next(c for c in result.get_asset_check_evaluations()
                 if c.check_name == "pricing_constants_within_threshold")
    assert check.passed
    metadata = result.get_asset_materialization_events()[-1].materialization.metadata
    assert json.dumps(metadata["suggested_pricing"].value["drivers"]["AWSLambda"]) == json.dumps(
        {"gb_seconds": "0.0000166667", "requests": "0.0000002"})


def test_a_trillion_tokens_split_without_overflow(warehouse_con):
    con = warehouse_con
    add_fact(con, "AmazonBedrock", "USE1-Claude-input-tokens", "2000000000000", "7000000")  # 0.0000035 a token
    add_usage(con, "AmazonBedrock", "input_tokens", "a", "1000000000000.5")
    con.execute("INSERT INTO estimated_usage VALUES (?, 'a', 'bedrock', 'BedrockInput', ?, 400000000000, 0, 1)",
                [JAN, JAN])
    con.register("driver_prices", PRICING.driver_prices_table())
    con.register("estimate_operations", pa.table(
        {"operation": ["BedrockInput"], "service": ["AmazonBedrock"], "driver": ["input_tokens"]}))
    rows = {r[0]: r[1:] for r in con.execute(
        f"""SELECT accountant_id, implied_unit_cost, price_variance, quantity_variance
            FROM ({stage_sql('pricing_feedback')})""",
        {"billing_period": JAN, "currency": "USD", "is_final": False, "threshold_pct": D("10"),
         "cost_metric": "amortized"}).fetchall()}
    # (0.0000035 - 0.000003) x 1,000,000,000,000.5 = 500,000.00000025 -> 500000.0000002500 (1e-10);
    # (1,000,000,000,000.5 - 400,000,000,000) x 0.000003 = 1,800,000.0000015
    assert rows["total"][0] == D("0.000003500000000000")
    assert rows["a"][1:] == (D("500000.0000002500"), D("1800000.0000015000"))
