"""Checks of month_to_date_calibration (written by the month_to_date asset beside its table): no duplicates."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

# a unit cost per service x driver x scope x currency x grain, a run rate per tenant x service x usage type x
# currency x grain (nowcast.py), one calibration of each per basis and as_of
GRAIN = ["as_of", "kind", "basis", "service", "driver", "scope", "accountant_id", "usage_type", "currency", "grain"]


@month_check("month_to_date", blocking=False, name="no_duplicate_calibrations",
             description="No two calibrations of the month (month_to_date_calibration) share their key.")
def no_duplicate_calibrations(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "month_to_date_calibration", GRAIN, checked_month(context))
