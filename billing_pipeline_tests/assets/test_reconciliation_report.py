"""The reconciliation SQL: estimated vs actual per tenant x resource type and per tenant, with the flag."""

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.assets.common import stage_sql

JAN = dt.date(2026, 1, 1)


def report(con, is_final=False):
    return {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            f"""SELECT accountant_id, resource_type, estimated_cost, actual_cost, variance, variance_pct, flagged, is_final
                FROM ({stage_sql('reconciliation_report')})""",
            {"billing_period": JAN, "currency": "USD", "is_final": is_final, "threshold_pct": D("10")},
        ).fetchall()
    }


def test_variance_flags_and_totals(warehouse_con):
    con = warehouse_con
    costs = [("a", "AWSLambda", "lambda", "1.10"), ("a", "AmazonS3", "s3", "2.00"), ("b", "AWSLambda", "lambda", "0.50"),
             ("unattributed", "AmazonCloudWatch", "other", "0.25")]
    for accountant, service, resource_type, cost in costs:
        con.execute(
            """INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', 'direct', NULL, NULL, 'USD', 'unblended', ?, NULL)""",
            [JAN, JAN, accountant, service, resource_type, D(cost)],
        )
    estimates = [("a", "lambda", "1.00"), ("a", "s3", "1.90"), ("b", "dynamodb", "0.10")]
    for accountant, resource_type, cost in estimates:
        con.execute("INSERT INTO estimated_usage VALUES (?, ?, ?, 'op', ?, 1, ?, 1)", [JAN, accountant, resource_type, JAN, D(cost)])
    rows = report(con, is_final=True)
    # exactly 10 % over is not flagged; more than 10 % is
    assert rows[("a", "lambda")] == (D("1.00"), D("1.10"), D("0.10"), D("10.0000"), False, True)
    assert rows[("a", "s3")] == (D("1.90"), D("2.00"), D("0.10"), D("5.2632"), False, True)
    assert rows[("a", "total")] == (D("2.90"), D("3.10"), D("0.20"), D("6.8966"), False, True)
    # cost nobody estimated is flagged; an estimate with no cost is -100 %
    assert rows[("b", "lambda")] == (D("0"), D("0.50"), D("0.50"), None, True, True)
    assert rows[("b", "dynamodb")] == (D("0.10"), D("0"), D("-0.10"), D("-100.0000"), True, True)
    assert rows[("unattributed", "other")][4] is True
    assert set(rows) == {("a", "lambda"), ("a", "s3"), ("a", "total"), ("b", "lambda"), ("b", "dynamodb"),
                         ("b", "total"), ("unattributed", "other"), ("unattributed", "total")}
