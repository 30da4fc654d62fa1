"""Checks of reconciliation_report: variance within the threshold (a warning), no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["accountant_id", "resource_type", "currency"]


def flagged_accountants(con, period) -> list[str]:
    """THE definition of a flagged tenant, for every count and list (asset metadata, this check, the demo's report):
    a tenant with any flagged row of the month, its total or a resource type (reconciliation_report.sql flags a row
    whose |variance_pct| exceeds the pricing file's threshold, 10 % by default, cost nothing estimated, or an
    estimate that found no cost)."""
    rows = con.execute(
        """SELECT DISTINCT accountant_id FROM reconciliation_report WHERE billing_period = ? AND flagged
           ORDER BY accountant_id""", [period]).fetchall()
    return [accountant for (accountant,) in rows]


def flagged_rows(con, period) -> AssetCheckResult:
    flagged = con.execute(
        """SELECT accountant_id, resource_type, currency, estimated_cost, actual_cost, variance, variance_pct, flagged
           FROM reconciliation_report WHERE billing_period = ? AND flagged AND resource_type <> 'total'
           ORDER BY accountant_id, resource_type, currency""",
        [period],
    ).df()
    return AssetCheckResult(
        passed=flagged.empty and not flagged_accountants(con, period),
        severity=AssetCheckSeverity.WARN,
        metadata={"flagged": rows_table(flagged),
                  "flagged_accountants": ", ".join(flagged_accountants(con, period)) or "none"},
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
