"""Checks of pricing_feedback: the pricing constants within the threshold (a warning), no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["service", "driver", "currency", "accountant_id"]


def flagged_drivers(con, period) -> AssetCheckResult:
    flagged = con.execute(
        """SELECT service, driver, implied_unit_cost, configured_unit_cost, variance_pct, suggested_unit_cost
           FROM pricing_feedback WHERE billing_period = ? AND flagged AND accountant_id = 'total'
           ORDER BY service, driver, currency""",
        [period],
    ).df()
    return AssetCheckResult(passed=flagged.empty, severity=AssetCheckSeverity.WARN,
                            metadata={"flagged": rows_table(flagged)})


@month_check("pricing_feedback", blocking=False,
             description="Warns on drivers whose implied unit cost differs from the pricing file's constant by more "
                         "than the threshold, with the suggested constants.")
def pricing_constants_within_threshold(
    context: AssetCheckExecutionContext, warehouse: BillingWarehouse
) -> AssetCheckResult:
    with warehouse.connect() as con:
        return flagged_drivers(con, checked_month(context))


@month_check("pricing_feedback", description="No two rows of the month share service x driver x currency x tenant.")
def no_duplicate_pricing_feedback(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "pricing_feedback", GRAIN, checked_month(context))
