"""Checks of cur_line_items: one delivery per month, never written twice."""

from dagster import AssetCheckResult

from billing_pipeline.checks.common import OFFENDING_ROWS, query_check, rows_table, written_once

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


one_delivery = query_check(
    "cur_line_items", "one_delivery", deliveries_in_month,
    description="All of the month's rows come from one delivery: a restatement replaced, never added.")

no_duplicate_line_items = written_once(
    "cur_line_items", "no_duplicate_line_items", LINE_ITEM_KEYS,
    description="The month holds exactly the line items its delivery was loaded with: never written twice.")
