"""The reconciliation's coverage-aligned columns: a provisional month compares the estimates of the whole days the
CUR covers with their actuals, and shows the estimates after coverage apart."""

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.assets.tenant_registry import reported_tenants
from billing_pipeline.resources.tenant_registry import Registry

JAN = dt.date(2026, 1, 1)
COLUMNS = """accountant_id, resource_type, estimated_cost, actual_cost, covered_through, covered_days_through,
             estimated_covered_cost, actual_covered_cost, covered_variance, covered_variance_pct,
             estimated_after_coverage"""


def report(con, is_final):
    con.register("reported_tenants", reported_tenants(con, Registry(frozenset("abcde"), "test"), JAN))
    return {(r[0], r[1]): r[2:] for r in con.execute(
        f"SELECT {COLUMNS} FROM ({stage_sql('reconciliation_report')})",
        {"billing_period": JAN, "currency": "USD", "is_final": is_final, "threshold_pct": D(10)}).fetchall()}


def test_provisional_month_is_compared_on_the_days_its_cur_covers(warehouse_con):
    con = warehouse_con
    # the CUR's last in-scope hourly line starts at 17:00 on the 10th (a daily line would not count)
    for hour, span in ((dt.datetime(2026, 1, 5, 3), 1), (dt.datetime(2026, 1, 10, 17), 1), (dt.datetime(2026, 1, 10), 24)):
        con.execute("""INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, line_item_type, currency,
                           in_scope, unblended_cost, amortized_cost, line_items)
                       VALUES (?, ?, ?, 'Usage', 'USD', true, 1, 1, 1)""", [JAN, hour, span])
    for day, cost in ((5, "1.00"), (10, "0.40")):
        con.execute("""INSERT INTO tenant_costs VALUES (?, ?, 'a', 'AWSLambda', 'lambda', 'u', 'Usage', 'direct', NULL,
                       NULL, 'USD', 'unblended', ?, NULL)""", [JAN, dt.date(2026, 1, day), D(cost)])
    for day, cost in ((5, "0.90"), (10, "0.50"), (20, "1.20")):
        con.execute("INSERT INTO estimated_usage VALUES (?, 'a', 'lambda', 'op', ?, 1, ?, 1)",
                    [JAN, dt.date(2026, 1, day), D(cost)])
    rows = report(con, is_final=False)
    covered = (dt.datetime(2026, 1, 10, 18), dt.date(2026, 1, 10))
    # whole month: 2.60 estimated against 1.40 actual; the days the CUR covers whole (before the 10th): 0.90 vs 1.00
    expected = (D("2.60"), D("1.40"), *covered, D("0.90"), D("1.00"), D("0.10"), D("10.0000"), D("1.70"))
    assert rows == {("a", "lambda"): expected, ("a", "total"): expected}

    rows = report(con, is_final=True)  # a final month is covered whole
    assert rows[("a", "total")] == (D("2.60"), D("1.40"), covered[0], dt.date(2026, 2, 1), D("2.60"), D("1.40"),
                                    D("-1.20"), D("-85.7143"), D(0))


def test_month_without_cur_has_nothing_covered(warehouse_con):
    warehouse_con.execute("INSERT INTO estimated_usage VALUES (?, 'a', 'lambda', 'op', ?, 1, 0.5, 1)",
                          [JAN, dt.date(2026, 1, 3)])
    assert report(warehouse_con, is_final=False)[("a", "total")] == (
        D("0.5"), D(0), None, JAN, D(0), D(0), D(0), D(0), D("0.5"))
