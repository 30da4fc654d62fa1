"""Checks of usage_table_writeback: no duplicates (one item per tenant x day x service)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["table_name", "accountant_id", "usage_date", "service", "currency", "cost_metric"]


@month_check("usage_table_writeback", description="No two rows of the month share table x tenant x day x service.")
def no_duplicate_writeback_items(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "usage_table_writeback", GRAIN, checked_month(context))
