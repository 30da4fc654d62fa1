"""Checks of tenant_registry: no duplicates (its tenants_are_known check is reported by the asset itself)."""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.checks.common import checked_month, duplicate_check, month_check
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["accountant_id", "currency"]


@month_check("tenant_registry", description="No two rows of the month share accountant id x currency.")
def no_duplicate_registry_rows(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "tenant_registry", GRAIN, checked_month(context))
