"""Checks of cur_line_items: one delivery per month, never written twice."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import (
    OFFENDING_ROWS,
    checked_month,
    month_check,
    rows_table,
    rows_written,
    written_once_check,
)
from billing_pipeline.resources.warehouse import BillingWarehouse

# Enough of a line item to tell two copies of it apart from two different line items (names the doubled rows)
LINE_ITEM_KEYS = ["source_file", "line_item_id", "usage_start", "usage_end", "line_item_type", "service",
                  "usage_type", "operation", "resource_id", "unblended_cost"]


def deliveries_in_month(con, period) -> AssetCheckResult:
    deliveries = con.execute(
        f"""SELECT delivery_id, count(*) AS line_items, count(DISTINCT source_file) AS files
            FROM cur_line_items WHERE billing_period = ? GROUP BY delivery_id ORDER BY delivery_id
            LIMIT {OFFENDING_ROWS}""",
        [period],
    ).df()
    return AssetCheckResult(passed=len(deliveries) == 1,
                            metadata={"deliveries_in_month": len(deliveries), "deliveries": rows_table(deliveries)})


@month_check("cur_line_items",
             description="All of the month's rows come from one delivery: a restatement replaced, never added.")
def one_delivery(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return deliveries_in_month(con, checked_month(context))


@month_check("cur_line_items",
             description="The month holds exactly the line items its delivery was loaded with: never written twice.")
def no_duplicate_line_items(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return written_once_check(con, "cur_line_items", checked_month(context),
                                  rows_written(context, "cur_line_items"), LINE_ITEM_KEYS)
