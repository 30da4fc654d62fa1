"""Checks of tenant_costs: per day x service x currency, attributed plus unattributed is the CUR cost; no
duplicates. (The same conservation per hour x service is verified inside the asset before it writes anything.)"""

from dagster import AssetCheckExecutionContext, AssetCheckResult

from billing_pipeline.assets.tenant_costs import METRIC_COLUMN
from billing_pipeline.checks.common import OFFENDING_ROWS, checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["usage_date", "accountant_id", "service", "usage_type", "line_item_type", "allocation", "driver", "currency"]


def daily_mismatches(con, period, metric: str) -> AssetCheckResult:
    mismatches = con.execute(
        f"""WITH facts AS (
                SELECT CAST(usage_hour AS DATE) AS usage_date, service, currency, sum({METRIC_COLUMN[metric]}) AS cost
                FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope GROUP BY ALL),
            attributed AS (
                SELECT usage_date, service, currency, sum(cost) AS cost
                FROM tenant_costs WHERE billing_period = $billing_period GROUP BY ALL)
            SELECT usage_date, service, currency, facts.cost AS cur_cost, attributed.cost AS attributed_cost
            FROM facts FULL JOIN attributed USING (usage_date, service, currency)
            WHERE coalesce(facts.cost, 0) <> coalesce(attributed.cost, 0)
            ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        {"billing_period": period},
    ).df()
    return AssetCheckResult(passed=mismatches.empty, metadata={"mismatches": rows_table(mismatches)})


@month_check("tenant_costs",
             description="Per day x service x currency the tenants' and unattributed cost equal the application's "
                         "CUR cost exactly.")
def attributed_plus_unattributed_equals_cur(
    context: AssetCheckExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> AssetCheckResult:
    with warehouse.connect() as con:
        return daily_mismatches(con, checked_month(context), billing_config.metric())


@month_check("tenant_costs", description="No two rows of the month share the tenant_costs grain.")
def no_duplicate_tenant_costs(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "tenant_costs", GRAIN, checked_month(context))
