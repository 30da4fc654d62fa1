"""tenant_costs: the application's cost per tenant, direct and shared, exact to 1e-10."""


from decimal import Decimal

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import as_float, duplicate_check, month_of, stage_sql
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import Pricing, parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

# The network pass's evidence: each tenant's compute cost per hour, as the first pass allocated it (the compute
# services' cost, their own NAT gateway / data transfer lines excluded).
COMPUTE_COSTS_SQL = """
    SELECT a.usage_hour, a.accountant_id, sum(a.cost) AS cost
    FROM cost_allocations_compute a
    JOIN compute_services c ON c.service = a.service
    LEFT JOIN (SELECT DISTINCT t.usage_type FROM cost_allocations_compute t
               JOIN network_usage_types n ON contains(t.usage_type, n.pattern)) nt ON nt.usage_type = a.usage_type
    WHERE nt.usage_type IS NULL
    GROUP BY a.usage_hour, a.accountant_id"""
NO_COMPUTE_COSTS_SQL = """SELECT CAST(NULL AS TIMESTAMP) AS usage_hour, CAST(NULL AS VARCHAR) AS accountant_id,
                                 CAST(NULL AS DECIMAL(38, 10)) AS cost WHERE false"""


def stage_cost_allocations(con, params: dict, pricing: Pricing) -> None:
    """Stage `cost_allocations` (cost_allocations.sql; params: billing_period, cost_metric) in its two passes:
    every fact but the untagged NAT gateway / data transfer ones, then those by the tenants' compute cost of the
    first pass (or unattributed, by the pricing file's network_policy)."""
    params = {**params, "network_policy": pricing.network_policy}
    compute, network = (stage_sql("cost_allocations").replace("$pass", f"'{p}'") for p in ("compute", "network"))
    con.register("driver_prices", pricing.driver_prices_table())
    try:
        con.stage("compute_costs", NO_COMPUTE_COSTS_SQL)
        con.stage("cost_allocations_compute", compute, params)
        con.drop("compute_costs")
        con.stage("compute_costs", COMPUTE_COSTS_SQL)
        # Both passes in one statement (the compute pass again, not its staged copy: Spark 4 fails to union two
        # checkpointed relations, "key not found: billing_period").
        con.stage("cost_allocations", f"SELECT * FROM ({compute}) UNION ALL SELECT * FROM ({network})", params)
    finally:
        for name in ("compute_costs", "cost_allocations_compute"):
            con.drop(name)
        con.unregister("driver_prices")


GRAIN = ["usage_date", "accountant_id", "service", "usage_type", "line_item_type", "allocation", "driver", "currency"]
METRIC_COLUMN = {"unblended": "unblended_cost", "amortized": "amortized_cost", "net_amortized": "net_amortized_cost"}


@asset(
    partitions_def=billing_month_partitions,
    deps=["hourly_cost_facts", "usage_shares"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
    check_specs=[
        AssetCheckSpec("attributed_plus_unattributed_equals_cur", asset="tenant_costs", blocking=True,
                       description="Per day x service x currency the tenants' and unattributed cost equal the "
                                   "application's CUR cost exactly."),
        AssetCheckSpec("no_duplicate_tenant_costs", asset="tenant_costs", blocking=True),
    ],
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
        stage_cost_allocations(con, params, pricing)

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

        daily_mismatches = con.execute(
            f"""WITH facts AS (
                    SELECT CAST(usage_hour AS DATE) AS usage_date, service, currency, sum({METRIC_COLUMN[metric]}) AS cost
                    FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope GROUP BY ALL),
                attributed AS (
                    SELECT usage_date, service, currency, sum(cost) AS cost
                    FROM tenant_costs WHERE billing_period = $billing_period GROUP BY ALL)
                SELECT usage_date, service, currency, facts.cost AS cur_cost, attributed.cost AS attributed_cost
                FROM facts FULL JOIN attributed USING (usage_date, service, currency)
                WHERE coalesce(facts.cost, 0) <> coalesce(attributed.cost, 0) LIMIT 10""",
            {"billing_period": period},
        ).df()
        no_duplicates = duplicate_check(con, "tenant_costs", GRAIN, period, "no_duplicate_tenant_costs")

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
    return MaterializeResult(
        metadata=metadata,
        check_results=[
            AssetCheckResult(
                check_name="attributed_plus_unattributed_equals_cur",
                passed=daily_mismatches.empty,
                metadata={"mismatches": MetadataValue.md(
                    daily_mismatches.to_markdown(index=False) if not daily_mismatches.empty else "none")},
            ),
            no_duplicates,
        ],
    )
