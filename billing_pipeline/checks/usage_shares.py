"""Checks of usage_shares: the tenants' shares add up, no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import OFFENDING_ROWS, checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["usage_hour", "service", "driver", "scope", "accountant_id"]


def uneven_shares(con, period, relation: str = "usage_shares") -> AssetCheckResult:
    uneven = con.execute(
        f"""SELECT usage_hour, service, driver, scope, sum(quantity) AS quantity,
                   min(total_quantity) AS total_quantity, sum(share) AS shares
            FROM {relation} WHERE billing_period = ?
            GROUP BY usage_hour, service, driver, scope
            HAVING sum(quantity) <> min(total_quantity) OR count(DISTINCT total_quantity) > 1
                OR abs(sum(share) - 1) > 1e-9
            ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        [period],
    ).df()
    return AssetCheckResult(passed=uneven.empty, metadata={"uneven_groups": rows_table(uneven)})


@month_check("usage_shares",
             description="Per hour x service x driver x scope the tenants' quantities add up to the total.")
def shares_sum_to_one(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return uneven_shares(con, checked_month(context))


@month_check("usage_shares", description="No two rows of the month share hour x service x driver x scope x tenant.")
def no_duplicate_shares(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "usage_shares", GRAIN, checked_month(context))
