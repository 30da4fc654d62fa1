"""implausible_money: the CUR lines whose money no one should be invoiced for without a look, and the hold.

A negative Usage line (a refund has its own line item type; a negative Usage line lowers some tenant's charge
for no reason AWS gives) or a line beyond `BILLING_MAX_LINE_COST` (resources/money_bounds.py) fails the blocking
check `money_is_plausible`, so the job does not go on to `invoices` for that month; `invoices` refuses the month by
itself too (`invoicing_hold`), so running it alone does not slip past. The hold ends when the bill is corrected
(a new delivery) or when someone re-runs with the month named in the allowance (`BILLING_ALLOW_IMPLAUSIBLE` or
run config); the lines stay listed in the metadata either way.
"""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import month_of, stage_sql
from billing_pipeline.formatting import markdown_table, money_in
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

SHOWN = 20
COLUMNS = ["source_file", "line_item_id", "line_item_type", "usage_type", "accountant_id", "currency",
           "unblended_cost", "amortized_cost", "net_amortized_cost", "reason"]


def settings(bounds: MoneyBounds):
    try:
        return bounds.bound(), bounds.allowed_months()
    except ValueError as error:
        raise Failure(str(error)) from None


def implausible_lines(con, period: dt.date, bound) -> list[tuple]:
    """The month's implausible lines, straight from cur_line_items (COLUMNS order)."""
    return con.execute(f"SELECT {', '.join(COLUMNS)} FROM ({stage_sql('implausible_money')}) AS lines",
                       {"billing_period": period, "max_line_cost": bound}).fetchall()


def lines_table(lines: list[tuple]) -> str:
    body = markdown_table(COLUMNS, lines[:SHOWN], {c: money_in(c) for c in COLUMNS if c.endswith("_cost")})
    more = f"\n\n_and {len(lines) - SHOWN} more_" if len(lines) > SHOWN else ""
    return body + more


def hold_message(month: str, lines: list[tuple], bound) -> str:
    first = lines[0]
    return (f"{month}: invoicing is held: {len(lines)} implausible CUR line(s) (negative Usage lines, or a cost "
            f"beyond BILLING_MAX_LINE_COST={bound}), e.g. {first[0]} line item {first[1]}: {first[9]}, unblended "
            f"{first[6]} {first[5]}. Check the bill; to invoice {month} as it is, re-run with "
            f"BILLING_ALLOW_IMPLAUSIBLE={month} (or run config resources.money_bounds.config."
            f"allow_implausible_months: \"{month}\"). The implausible_money asset lists every line.")


@asset(
    partitions_def=billing_month_partitions,
    deps=["cur_line_items"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
    check_specs=[AssetCheckSpec(
        "money_is_plausible", asset="implausible_money", blocking=True,
        description="No negative Usage line and no line beyond BILLING_MAX_LINE_COST, unless the month is allowed "
                    "(BILLING_ALLOW_IMPLAUSIBLE); blocks invoicing of the month.")],
)
def implausible_money(context: AssetExecutionContext, warehouse: BillingWarehouse,
                      money_bounds: MoneyBounds) -> MaterializeResult:
    """The month's CUR lines with a negative Usage cost or a cost beyond the bound, with the file they came from."""
    period, _ = month_of(context)
    month = f"{period:%Y-%m}"
    bound, allowed = settings(money_bounds)
    with warehouse.connect() as con:
        written = con.replace_month_with_query("implausible_money", period, stage_sql("implausible_money"),
                                               {"billing_period": period, "max_line_cost": bound})
        lines = implausible_lines(con, period, bound)
    allowance = month in allowed
    if lines and allowance:
        context.log.warning(f"{month}: {len(lines)} implausible line(s) allowed by {money_bounds.allowance_source()}")
    metadata = {
        "implausible_lines": MetadataValue.int(written),
        "negative_usage_lines": MetadataValue.int(sum(1 for line in lines if line[9] == "negative Usage line")),
        "beyond_bound_lines": MetadataValue.int(sum(1 for line in lines if line[9] == "beyond the bound")),
        "max_line_cost": str(bound),
        "allowed": MetadataValue.bool(allowance),
        "lines": MetadataValue.md(lines_table(lines) if lines else "none"),
    }
    return MaterializeResult(
        metadata=metadata,
        check_results=[AssetCheckResult(
            check_name="money_is_plausible",
            passed=not lines or allowance,
            severity=AssetCheckSeverity.ERROR,
            description=(hold_message(month, lines, bound) if lines and not allowance else None),
            metadata={**metadata, **({"allowed_by": money_bounds.allowance_source()} if lines and allowance else {})},
        )],
    )
