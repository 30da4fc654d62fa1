"""pricing_feedback: implied unit cost per driver against the pricing file's constants, exact."""

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig

JAN = dt.date(2026, 1, 1)
H = dt.datetime(2026, 1, 1, 5)
PRICING = parse_pricing(BillingConfig().pricing_text())


def feedback(con):
    con.register("driver_prices", PRICING.driver_prices_table())
    rows = con.execute(
        f"""SELECT service, driver, quantity, actual_cost, implied_unit_cost, configured_unit_cost, variance_pct,
                   flagged, suggested_unit_cost, resource_type, currency, is_final
            FROM ({stage_sql('pricing_feedback')})""",
        {"billing_period": JAN, "currency": "USD", "is_final": False, "threshold_pct": D("10")},
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def add_usage(con, service, driver, scope, accountant, quantity, hour=H):
    con.execute("INSERT INTO usage_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1.0)",
                [JAN, hour, service, driver, scope, accountant, D(quantity), D(quantity)])


def add_cost(con, accountant, service, resource_type, allocation, driver, cost, day=JAN):
    con.execute("INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', ?, ?, NULL, 'USD', 'unblended', ?, NULL)",
                [JAN, day, accountant, service, resource_type, allocation, driver, D(cost)])


def test_implied_unit_cost_variance_and_suggestion(warehouse_con):
    con = warehouse_con
    # Lambda GB-seconds: 1000 + 500 (another table scope, another hour, an unowned REPORT) measured
    add_usage(con, "AWSLambda", "gb_seconds", "", "a", "1000")
    add_usage(con, "AWSLambda", "gb_seconds", "", "b", "400", H + dt.timedelta(hours=1))
    add_usage(con, "AWSLambda", "gb_seconds", "", "unattributed", "100")
    # cost split by it: shared hour + a month-level credit; direct cost (no driver) is not counted
    add_cost(con, "a", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0200000000")
    add_cost(con, "b", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0080000000")
    add_cost(con, "unattributed", "AWSLambda", "lambda", "shared_hour", "gb_seconds", "0.0020000000")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_month", "gb_seconds", "-0.0030000000")
    add_cost(con, "a", "AWSLambda", "lambda", "direct", None, "5.0000000000")
    # requests: exactly +10 % -> not flagged
    add_usage(con, "AWSLambda", "requests", "", "a", "3")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_hour", "requests", "0.0000006600")
    # data transfer: split by 'combined', no constant, never flagged
    add_cost(con, "a", "AWSLambda", "lambda", "shared_hour", "combined", "0.0123456789")
    # DynamoDB writes on two tables
    add_usage(con, "AmazonDynamoDB", "write_units", "tax-agent-usage", "a", "3")
    add_usage(con, "AmazonDynamoDB", "write_units", "tax-sessions", "b", "4")
    add_cost(con, "a", "AmazonDynamoDB", "dynamodb", "shared_hour", "write_units", "0.0000100000")
    # Bedrock tokens measured, nothing billed in scope
    add_usage(con, "AmazonBedrock", "input_tokens", "", "a", "1000")
    # a driver the pricing file has no constant for
    add_usage(con, "AmazonS3", "glacier_gb_months", "docs", "a", "2")
    add_cost(con, "a", "AmazonS3", "s3", "shared_day", "glacier_gb_months", "0.0080000000")

    rows = feedback(con)
    assert set(rows) == {("AWSLambda", "gb_seconds"), ("AWSLambda", "requests"), ("AWSLambda", "combined"),
                         ("AmazonDynamoDB", "write_units"), ("AmazonBedrock", "input_tokens"),
                         ("AmazonS3", "glacier_gb_months")}
    # 0.027 / 1500 = 0.000018 per GB-s vs 0.0000166667: +7.9998 % -> within 10 %
    assert rows[("AWSLambda", "gb_seconds")] == (
        D("1500"), D("0.0270000000"), D("0.000018000000000000"), D("0.000016666700000000"), D("7.9998"), False, None,
        "lambda", "USD", False)
    assert rows[("AWSLambda", "requests")][2:6] == (D("0.000000220000000000"), D("0.000000200000000000"), D("10.0000"),
                                                   False)
    assert rows[("AWSLambda", "combined")] == (None, D("0.0123456789"), None, None, None, False, None, "lambda",
                                               "USD", False)
    # 0.00001 / 7 = 0.00000142857142857142857... rounded half up at 1e-18; +14.2857 % -> suggest it
    assert rows[("AmazonDynamoDB", "write_units")][:7] == (
        D("7"), D("0.0000100000"), D("0.000001428571428571"), D("0.000001250000000000"), D("14.2857"), True,
        D("0.000001428571"))
    assert rows[("AmazonBedrock", "input_tokens")][:7] == (
        D("1000"), D("0"), D("0E-18"), D("0.000003000000000000"), D("-100.0000"), True, D("0E-12"))
    assert rows[("AmazonS3", "glacier_gb_months")][:7] == (
        D("2"), D("0.0080000000"), D("0.004000000000000000"), None, None, True, D("0.004000000000"))


def test_negative_implied_cost_rounds_away_from_zero(warehouse_con):
    con = warehouse_con
    add_usage(con, "AWSLambda", "gb_seconds", "", "a", "3")
    add_cost(con, "a", "AWSLambda", "lambda", "shared_month", "gb_seconds", "-0.0000000002")
    # -2e-10 / 3 = -6.666...e-11 -> -0.000000000066666667
    assert feedback(con)[("AWSLambda", "gb_seconds")][2] == D("-0.000000000066666667")


# The generated month's pricing feedback, against the sample generator's oracle, is tested in test_statements.py
# (one materialization of the chain serves both).
