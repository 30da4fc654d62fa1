"""Checks of statements: the cents add up, no duplicates."""

from decimal import ROUND_HALF_UP

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.money import CENT
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["accountant_id", "line", "currency"]


def cents_problems(con, period, relation: str = "statements") -> AssetCheckResult:
    in_scope = dict(con.execute(
        "SELECT currency, sum(cost) FROM tenant_costs WHERE billing_period = ? GROUP BY currency", [period]
    ).fetchall())
    sums = con.execute(
        f"""SELECT currency, sum(amount) FILTER (line = 'total'), sum(amount) FILTER (line <> 'total')
           FROM {relation} WHERE billing_period = ? GROUP BY currency ORDER BY currency""",
        [period],
    ).fetchall()
    unbalanced_tenants = con.execute(
        f"""SELECT accountant_id, currency FROM {relation} WHERE billing_period = ?
           GROUP BY ALL HAVING sum(amount) FILTER (line = 'total') <> sum(amount) FILTER (line <> 'total')
           ORDER BY ALL""",
        [period],
    ).fetchall()
    problems = []
    for currency, tenants_total, lines_total in sums:
        expected = in_scope[currency].quantize(CENT, rounding=ROUND_HALF_UP)
        if tenants_total != expected or lines_total != expected:
            problems.append(f"{currency}: tenants {tenants_total}, lines {lines_total}, in-scope cents {expected}")
    problems += [f"{accountant} ({currency}): lines do not add up to the total" for accountant, currency in unbalanced_tenants]
    return AssetCheckResult(passed=not problems, metadata={"problems": "\n".join(problems) or "none"})


@month_check("statements",
             description="Per currency the tenants' cents add up to the in-scope cost rounded to cents, and every "
                         "tenant's lines add up to its total.")
def statement_cents_add_up(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return cents_problems(con, checked_month(context))


@month_check("statements", description="No two lines of the month share tenant x line x currency.")
def no_duplicate_statement_lines(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "statements", GRAIN, checked_month(context))
