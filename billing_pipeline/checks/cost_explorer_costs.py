"""Checks of cost_explorer_costs: no duplicates. (`cost_explorer_matches_cur` stays in the asset: it compares
only the days the asset asked Cost Explorer about.)"""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["usage_date", "accountant_id", "metric", "currency"]


@month_check("cost_explorer_costs", description="No two rows of the month share day x tag value x metric x currency.")
def no_duplicate_cost_explorer_rows(
    context: AssetCheckExecutionContext, warehouse: BillingWarehouse
) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "cost_explorer_costs", GRAIN, checked_month(context))
