"""Checks of reconciliation_report: variance within the threshold (a warning), no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["accountant_id", "resource_type", "currency"]


def flagged_rows(con, period) -> AssetCheckResult:
    flagged = con.execute(
        """SELECT accountant_id, resource_type, currency, estimated_cost, actual_cost, variance, variance_pct, flagged
           FROM reconciliation_report WHERE billing_period = ? AND flagged AND resource_type <> 'total'
           ORDER BY accountant_id, resource_type, currency""",
        [period],
    ).df()
    return AssetCheckResult(
        passed=flagged.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"flagged": rows_table(flagged),
                  "flagged_accountants": ", ".join(sorted(set(flagged["accountant_id"]))) or "none"},
    )


@month_check("reconciliation_report", blocking=False,
             description="Warns on tenant x resource type rows whose variance exceeds the threshold.")
def variance_within_threshold(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return flagged_rows(con, checked_month(context))


@month_check("reconciliation_report", description="No two rows of the month share tenant x resource type x currency.")
def no_duplicate_report_rows(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "reconciliation_report", GRAIN, checked_month(context))
