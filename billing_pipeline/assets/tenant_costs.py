"""tenant_costs: the application's cost per tenant, direct and shared, exact to 1e-10."""


from decimal import Decimal

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, month_of, stage_sql
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

METRIC_COLUMN = {"unblended": "unblended_cost", "amortized": "amortized_cost", "net_amortized": "net_amortized_cost"}


@asset(
    partitions_def=billing_month_partitions,
    deps=["hourly_cost_facts", "usage_shares"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
)
def tenant_costs(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """Per tenant x day x service x usage type: the cost of resources tagged with the tenant's accountant_id
    (direct), its share of untagged application resources by measured usage (shared_hour / shared_day /
    shared_month by the evidence window used), and the cost nobody's usage explains (`unattributed`).
    See docs/attribution-rules.md."""
    period, _ = month_of(context)
    metric = billing_config.metric()
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    params = {"billing_period": period, "cost_metric": metric}
    with warehouse.connect() as con:
        (missing_metric,) = con.execute(
            f"""SELECT count(*) FROM hourly_cost_facts
                WHERE billing_period = ? AND in_scope AND {METRIC_COLUMN[metric]} IS NULL""",
            [period],
        ).fetchall()[0]
        if missing_metric:
            raise Failure(f"BILLING_COST_METRIC={metric}, but {missing_metric} in-scope facts of {period:%Y-%m} have "
                          f"no {METRIC_COLUMN[metric]} (the delivery has no net_* columns)")
        con.register("driver_prices", pricing.driver_prices_table())
        con.stage("cost_allocations", stage_sql("cost_allocations"), params)
        con.unregister("driver_prices")

        # Conservation, checked before anything is written: per hour x service x line item type x currency the
        # allocated parts add up to the fact costs exactly.
        not_conserved = con.execute(
            f"""WITH facts AS (
                    SELECT usage_hour, service, line_item_type, currency, sum({METRIC_COLUMN[metric]}) AS cost
                    FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope GROUP BY ALL),
                parts AS (
                    SELECT usage_hour, service, line_item_type, currency, sum(cost) AS cost
                    FROM cost_allocations GROUP BY ALL)
                SELECT usage_hour, service, line_item_type, currency, facts.cost AS cur_cost, parts.cost AS allocated
                FROM facts FULL JOIN parts USING (usage_hour, service, line_item_type, currency)
                WHERE coalesce(facts.cost, 0) <> coalesce(parts.cost, 0) LIMIT 10""",
            {"billing_period": period},
        ).df()
        if not not_conserved.empty:
            raise Failure(f"Attribution of {period:%Y-%m} does not add up to the CUR cost (nothing written):\n"
                          + not_conserved.to_markdown(index=False))

        rows = con.replace_month_with_query("tenant_costs", period, stage_sql("tenant_costs"), {"cost_metric": metric})

        scope_totals = con.execute(
            f"""SELECT currency, sum({METRIC_COLUMN[metric]}) FILTER (in_scope), sum({METRIC_COLUMN[metric]}) FILTER (NOT in_scope),
                       sum({METRIC_COLUMN[metric]})
                FROM hourly_cost_facts WHERE billing_period = ? GROUP BY currency ORDER BY currency""",
            [period],
        ).fetchall()
        allocations = dict(
            con.execute("SELECT allocation, count(*) FROM cost_allocations GROUP BY allocation").fetchall()
        )
        fact_allocations = dict(
            con.execute(
                # a direct fact is one row; a shared fact is one row per tenant, with its fact_id
                """SELECT allocation, CASE allocation WHEN 'direct' THEN count(*) ELSE count(DISTINCT fact_id) END
                   FROM cost_allocations GROUP BY allocation"""
            ).fetchall()
        )
        per_tenant = con.execute(
            """SELECT accountant_id, currency, sum(cost) AS cost,
                      sum(cost) FILTER (allocation = 'direct') AS direct,
                      sum(cost) FILTER (allocation LIKE 'shared_%') AS shared
               FROM tenant_costs WHERE billing_period = ? GROUP BY ALL ORDER BY accountant_id, currency""",
            [period],
        ).fetchall()
        con.drop("cost_allocations")

    cents = {}
    for currency in {row[1] for row in per_tenant}:
        cents.update(largest_remainder_cents({(a, c): cost for a, c, cost, *_ in per_tenant if c == currency}))
    table = "| accountant_id | currency | cost (exact) | cents | direct | shared |\n|---|---|---:|---:|---:|---:|\n" + "\n".join(
        f"| {a} | {c} | {cost} | {cents[(a, c)]} | {direct or 0} | {shared or 0} |" for a, c, cost, direct, shared in per_tenant
    )
    metadata = {
        "dagster/row_count": MetadataValue.int(rows),
        "cost_metric": metric,
        "tenants": MetadataValue.int(len({row[0] for row in per_tenant} - {"unattributed"})),
        "per_tenant": MetadataValue.md(table),
        "unattributed_cost": MetadataValue.float(
            as_float(sum((row[2] for row in per_tenant if row[0] == "unattributed"), Decimal(0)))
        ),
    }
    for currency, in_scope, out_of_scope, bill in scope_totals:
        metadata[f"in_scope_cost/{currency}"] = MetadataValue.float(as_float(in_scope))
        metadata[f"out_of_scope_cost/{currency}"] = MetadataValue.float(as_float(out_of_scope))
        metadata[f"bill/{currency}"] = str(bill)
    for allocation in ("direct", "shared_hour", "shared_day", "shared_month", "unattributed"):
        metadata[f"facts/{allocation}"] = MetadataValue.int(int(fact_allocations.get(allocation, 0)))
    metadata["allocation_rows"] = MetadataValue.int(int(sum(allocations.values())))
    return MaterializeResult(metadata=metadata)
