"""Checks of implausible_money: no duplicates (money_is_plausible is reported by the asset itself)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

# A CUR line as cur_line_items' no-duplicates check tells two copies apart (the columns this table keeps of it)
GRAIN = ["source_file", "line_item_id", "line_item_type", "service", "usage_type", "resource_id", "currency",
         "unblended_cost", "amortized_cost", "reason"]


@month_check("implausible_money", description="No CUR line is listed twice in the month's implausible lines.")
def no_duplicate_implausible_lines(context: AssetCheckExecutionContext,
                                   warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "implausible_money", GRAIN, checked_month(context))
