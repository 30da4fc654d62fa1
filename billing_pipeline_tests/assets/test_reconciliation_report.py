"""The reconciliation SQL: estimated vs actual per tenant x resource type x currency and per tenant, with the flag."""

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.assets.tenant_registry import reported_tenants
from billing_pipeline.resources.tenant_registry import Registry

JAN = dt.date(2026, 1, 1)


def report(con, is_final=False):
    con.register("reported_tenants", reported_tenants(con, Registry(frozenset("abcde"), "test"), JAN))
    return {
        (r[0], r[1], r[2]): r[3:]
        for r in con.execute(
            f"""SELECT accountant_id, resource_type, currency, estimated_cost, actual_cost, variance, variance_pct,
                       flagged, is_final
                FROM ({stage_sql('reconciliation_report')})""",
            {"billing_period": JAN, "currency": "USD", "is_final": is_final, "threshold_pct": D("10")},
        ).fetchall()
    }


def add_cost(con, accountant, service, resource_type, cost, currency="USD"):
    con.execute(
        """INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', 'direct', NULL, NULL, ?, 'amortized', ?, NULL)""",
        [JAN, JAN, accountant, service, resource_type, currency, D(cost)],
    )


def add_estimate(con, accountant, resource_type, cost):
    con.execute("INSERT INTO estimated_usage VALUES (?, ?, ?, 'op', ?, 1, ?, 1)", [JAN, accountant, resource_type, JAN, D(cost)])


def test_the_seeds_variance_pct_and_flags(warehouse_con):
    con = warehouse_con
    for args in [("a", "AWSLambda", "lambda", "1.10"), ("a", "AmazonS3", "s3", "2.00"), ("b", "AWSLambda", "lambda", "0.50"),
                 ("unattributed", "AmazonCloudWatch", "other", "0.25"), ("e", "AWSLambda", "lambda", "1.00"),
                 ("e", "AmazonS3", "s3", "1.00"), ("d", "AWSLambda", "lambda", "-0.50")]:
        add_cost(con, *args)
    for args in [("a", "lambda", "1.00"), ("a", "s3", "1.90"), ("b", "dynamodb", "0.10"), ("e", "lambda", "0.90"),
                 ("e", "s3", "0.8999999999"), ("d", "lambda", "0.20")]:
        add_estimate(con, *args)
    rows = report(con, is_final=True)
    # variance_pct = (actual - estimated) / actual x 100: 0.10 / 1.10 = 9.0909 %
    assert rows[("a", "lambda", "USD")] == (D("1.00"), D("1.10"), D("0.10"), D("9.0909"), False, True)
    assert rows[("a", "s3", "USD")] == (D("1.90"), D("2.00"), D("0.10"), D("5.0000"), False, True)
    assert rows[("a", "total", "USD")] == (D("2.90"), D("3.10"), D("0.20"), D("6.4516"), False, True)
    # exactly 10 % of the actual is not flagged; 1e-10 more is (compared exactly, not through the rounded 10.0000)
    assert rows[("e", "lambda", "USD")][3:5] == (D("10.0000"), False)
    assert rows[("e", "s3", "USD")][3:5] == (D("10.0000"), True)
    # cost nobody estimated: +100 %, flagged; an estimate that found no cost: 0 (actual not positive), flagged
    assert rows[("b", "lambda", "USD")] == (D("0"), D("0.50"), D("0.50"), D("100.0000"), True, True)
    assert rows[("b", "dynamodb", "USD")] == (D("0.10"), D("0"), D("-0.10"), D("0.0000"), True, True)
    assert rows[("d", "lambda", "USD")] == (D("0.20"), D("-0.50"), D("-0.70"), D("0.0000"), True, True)
    assert rows[("unattributed", "other", "USD")][4] is True
    assert len(rows) == 13


def test_estimates_meet_only_actuals_of_their_own_currency(warehouse_con):
    con = warehouse_con
    add_cost(con, "c", "AWSLambda", "lambda", "1.00")
    add_cost(con, "c", "AWSLambda", "lambda", "2.00", currency="EUR")
    add_estimate(con, "c", "lambda", "1.00")
    rows = report(con)
    assert rows == {
        ("c", "lambda", "USD"): (D("1.00"), D("1.00"), D("0"), D("0.0000"), False, False),
        ("c", "total", "USD"): (D("1.00"), D("1.00"), D("0"), D("0.0000"), False, False),
        # the EUR cost is not counted against the USD estimate (nor the estimate twice): its own rows, no estimate
        ("c", "lambda", "EUR"): (D("0"), D("2.00"), D("2.00"), D("100.0000"), True, False),
        ("c", "total", "EUR"): (D("0"), D("2.00"), D("2.00"), D("100.0000"), True, False),
    }
