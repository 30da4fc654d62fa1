"""Checks of tenant_costs: per day x service x currency, attributed plus unattributed is the CUR cost; the whole
bill is accounted for; no duplicates. (The same conservation per hour x service is verified inside the asset
before it writes anything.)"""

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue

from billing_pipeline.assets.tenant_costs import METRIC_COLUMN, bill_conservation, stage_account_level_lines
from billing_pipeline.checks.common import OFFENDING_ROWS, checked_month, duplicate_check, month_check, rows_table
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import BillingWarehouse

GRAIN = ["usage_date", "accountant_id", "service", "usage_type", "line_item_type", "allocation", "driver", "currency"]


def daily_mismatches(con, period, metric: str, relation: str = "tenant_costs") -> AssetCheckResult:
    mismatches = con.execute(
        f"""WITH facts AS (
                SELECT CAST(usage_hour AS DATE) AS usage_date, service, currency, sum({METRIC_COLUMN[metric]}) AS cost
                FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope GROUP BY ALL),
            attributed AS (
                SELECT usage_date, service, currency, sum(cost) AS cost
                FROM {relation} WHERE billing_period = $billing_period AND allocation <> 'proportional'
                GROUP BY ALL)
            SELECT usage_date, service, currency, facts.cost AS cur_cost, attributed.cost AS attributed_cost
            FROM facts FULL JOIN attributed USING (usage_date, service, currency)
            WHERE coalesce(facts.cost, 0) <> coalesce(attributed.cost, 0)
            ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        {"billing_period": period},
    ).df()
    return AssetCheckResult(passed=mismatches.empty, metadata={"mismatches": rows_table(mismatches)})


@month_check("tenant_costs",
             description="Per day x service x currency the tenants' and unattributed cost equal the application's "
                         "CUR cost exactly (account-level parts aside).")
def attributed_plus_unattributed_equals_cur(
    context: AssetCheckExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> AssetCheckResult:
    with warehouse.connect() as con:
        return daily_mismatches(con, checked_month(context), billing_config.metric())


@month_check("tenant_costs", description="No two rows of the month share the tenant_costs grain.")
def no_duplicate_tenant_costs(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    with warehouse.connect() as con:
        return duplicate_check(con, "tenant_costs", GRAIN, checked_month(context))


def conservation_check(conservation) -> AssetCheckResult:
    """`bill_conserved` from bill_conservation's rows: exact DECIMAL sums per currency."""
    unbalanced = [r for r in conservation
                  if r.tenants + r.unattributed + r.kept_by_company + r.out_of_scope != r.bill]
    return AssetCheckResult(
        check_name="bill_conserved",
        passed=not unbalanced,
        metadata={"unbalanced": MetadataValue.md(
            "\n".join(f"- {r.currency}: tenants {r.tenants} + unattributed {r.unattributed} + kept "
                      f"{r.kept_by_company} + out of scope {r.out_of_scope} != bill {r.bill}" for r in unbalanced)
            or "none")},
    )


@month_check("tenant_costs",
             description="Per currency: tenants + unattributed + kept by the company + out of scope = the bill, exactly.")
def bill_conserved(
    context: AssetCheckExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> AssetCheckResult:
    period, metric = checked_month(context), billing_config.metric()
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    with warehouse.connect() as con:
        stage_account_level_lines(con, period, metric, pricing)
        try:
            return conservation_check(bill_conservation(con, period, metric))
        finally:
            con.drop("account_level_lines")
