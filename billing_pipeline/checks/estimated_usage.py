"""Checks of estimated_usage: no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["accountant_id", "resource_type", "operation", "usage_date"]


@month_check("estimated_usage",
             description="No two rows of the month share tenant x resource type x operation x day.")
def no_duplicate_estimates(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "estimated_usage", GRAIN, checked_month(context))
