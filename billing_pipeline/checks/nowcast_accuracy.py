"""Checks of nowcast_accuracy: no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["replay_day", "accountant_id", "currency"]


@month_check("nowcast_accuracy", blocking=False,
             description="No two rows of the replayed month share replay day x tenant x currency.")
def no_duplicate_accuracy_rows(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "nowcast_accuracy", GRAIN, checked_month(context))
