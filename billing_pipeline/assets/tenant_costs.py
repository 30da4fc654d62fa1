"""tenant_costs: the application's cost per tenant, direct and shared, exact to 1e-10."""


import calendar
import datetime as dt
from collections import namedtuple
from decimal import Decimal

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, month_of, stage_sql
from billing_pipeline.formatting import count, markdown_table, money_in
from billing_pipeline.lineage import month_delivery, require_upstream, stamp_params, stamped
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.plots import Plot, lines, stacked_bars
from billing_pipeline.pricing import Pricing, parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

# The network pass's evidence: each tenant's compute cost per hour and currency, as the first pass allocated it (the
# compute services' cost, their own NAT gateway / data transfer lines excluded).
COMPUTE_COSTS_SQL = """
    SELECT a.usage_hour, a.currency, a.accountant_id, sum(a.cost) AS cost
    FROM cost_allocations_compute a
    JOIN compute_services c ON c.service = a.service
    LEFT JOIN (SELECT DISTINCT t.usage_type FROM cost_allocations_compute t
               JOIN network_usage_types n ON contains(t.usage_type, n.pattern)) nt ON nt.usage_type = a.usage_type
    WHERE nt.usage_type IS NULL
    GROUP BY a.usage_hour, a.currency, a.accountant_id"""
NO_COMPUTE_COSTS_SQL = """SELECT CAST(NULL AS TIMESTAMP) AS usage_hour, CAST(NULL AS VARCHAR) AS currency,
                                 CAST(NULL AS VARCHAR) AS accountant_id,
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
        con.stage("cost_allocations_network", network, params)
        con.stage("cost_allocations",
                  "SELECT * FROM cost_allocations_compute UNION ALL SELECT * FROM cost_allocations_network")
    finally:
        for name in ("compute_costs", "cost_allocations_compute", "cost_allocations_network"):
            con.drop(name)
        con.unregister("driver_prices")


GRAIN = ["usage_date", "accountant_id", "service", "usage_type", "line_item_type", "allocation", "driver", "currency"]
# The configured metric of a fact; a delivery without net_* columns counts its non-net figure (never 0).
METRIC_COLUMN = {"unblended": "unblended_cost", "amortized": "amortized_cost",
                 "net_amortized": "coalesce(net_amortized_cost, amortized_cost)"}
COVERED_TYPES = ("SavingsPlanCoveredUsage", "SavingsPlanNegation", "DiscountedUsage")
Conservation = namedtuple("Conservation", "currency tenants unattributed kept_by_company out_of_scope "
                                          "account_level_to_tenants bill")


def stage_account_level_lines(con, period, metric: str, pricing) -> None:
    """The month's account-level lines with their policy and the application's part (account_level_lines.sql)."""
    con.register("account_level_policies", pricing.account_level_policies_table())
    try:
        con.stage("account_level_lines", stage_sql("account_level_lines"),
                  {"billing_period": period, "cost_metric": metric})
    finally:
        con.unregister("account_level_policies")


def covered_cost_not_charged(con, period, metric: str) -> list[tuple[str, Decimal]]:
    """Under `unblended`, Savings Plan / RI covered usage costs the tenants its unblended cost: 0 where its
    negation carries the tenant's tag too (covered line + negation), its on-demand cost where the negation is
    untagged (AWS may group a plan's negations per hour and usage type, without a resource). Per currency, the
    effective cost that leaves uncharged: amortized - unblended of the in-scope covered lines, negative where the
    tenants pay more than it. Empty under the other metrics, or when the month has no such lines."""
    if metric != "unblended":
        return []
    return con.execute(
        f"""SELECT currency, sum(amortized_cost - unblended_cost) FROM hourly_cost_facts
            WHERE billing_period = ? AND in_scope AND line_item_type IN {COVERED_TYPES} GROUP BY currency
            ORDER BY currency""",
        [period],
    ).fetchall()


def covered_usage_note(uncharged: Decimal, amount: str) -> str:
    """What covered_cost_not_charged's figure means for the tenants, in words (`amount`: its size as displayed)."""
    if uncharged >= 0:
        return f"{amount} of Savings Plan / RI covered usage is charged to no tenant (amortized charges it)"
    return (f"the tenants are charged {amount} above their Savings Plan / RI covered usage's effective cost: its "
            "negation carries no tenant tag, so they pay the on-demand price (amortized charges the effective cost)")


def kept_by_company(con, period, metric: str, pricing) -> list[tuple[str, str, Decimal]]:
    """The account-level lines the company keeps (policy `company`): (line item type, currency, cost)."""
    stage_account_level_lines(con, period, metric, pricing)
    try:
        return con.execute(
            """SELECT line_item_type, currency, sum(cost) FROM account_level_lines WHERE policy = 'company'
               GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    finally:
        con.drop("account_level_lines")


def bill_conservation(con, period, metric: str, relation: str = "tenant_costs"):
    """Per currency: tenants + unattributed (tenant_costs) + kept by the company + out of scope = the bill, each
    side computed on its own: the bill and the out-of-scope facts from hourly_cost_facts, the account-level lines'
    parts from `account_level_lines` (staged), the tenants from the table written. Rows whose sides differ are
    the check's failures."""
    cost = METRIC_COLUMN[metric]
    rows = con.execute(
        f"""WITH bill AS (
                SELECT currency, sum({cost}) AS bill FROM hourly_cost_facts
                WHERE billing_period = $billing_period GROUP BY currency),
            lines AS (
                SELECT currency,
                       sum(cost) FILTER (WHERE policy = 'company')                          AS kept_by_company,
                       sum(app_part)                                                         AS apportioned,
                       count(*)                                                              AS lines
                FROM account_level_lines GROUP BY currency),
            other AS (
                SELECT currency, sum({cost}) AS out_of_scope FROM hourly_cost_facts
                WHERE billing_period = $billing_period AND NOT in_scope GROUP BY currency),
            tenants AS (
                SELECT currency, sum(cost) FILTER (WHERE accountant_id <> 'unattributed') AS tenants,
                       sum(cost) FILTER (WHERE accountant_id = 'unattributed')             AS unattributed
                FROM {relation} WHERE billing_period = $billing_period GROUP BY currency)
            SELECT currency,
                   coalesce(tenants, 0)                                                     AS tenants,
                   coalesce(unattributed, 0)                                                AS unattributed,
                   coalesce(kept_by_company, 0)                                             AS kept_by_company,
                   -- every fact outside the application's tag, less what the company keeps and what the
                   -- application's tenants got of the account-level lines
                   coalesce(out_of_scope, 0) - coalesce(kept_by_company, 0) - coalesce(apportioned, 0)
                                                                                            AS out_of_scope,
                   coalesce(apportioned, 0)                                                 AS account_level_to_tenants,
                   coalesce(bill, 0)                                                        AS bill
            FROM bill FULL JOIN lines USING (currency) FULL JOIN other USING (currency)
                 FULL JOIN tenants USING (currency)
            ORDER BY currency""",
        {"billing_period": period},
    ).fetchall()
    return [Conservation(*row) for row in rows]


def cost_plots(con, period: dt.date) -> dict[str, Plot]:
    """Each tenant's cost of the month by service (stacked bars) and by day (a line per tenant, through the last day
    with cost), per currency, in cents half up (the day's or service's part; statements round only the month)."""
    by_service = con.execute(
        """SELECT currency, accountant_id, coalesce(service, '(account level)'), sum(cost) FROM tenant_costs
           WHERE billing_period = ? GROUP BY ALL ORDER BY ALL""", [period]).fetchall()
    by_day = con.execute(
        """SELECT currency, accountant_id, usage_date, sum(cost) FROM tenant_costs
           WHERE billing_period = ? GROUP BY ALL ORDER BY ALL""", [period]).fetchall()
    metadata = {}
    currencies = sorted({row[0] for row in by_service})
    # the days up to the last one with cost: a provisional month's CUR stops before the month does
    last = max((d for *_k, d, _v in by_day), default=period)
    days = [period + dt.timedelta(days=d) for d in range(calendar.monthrange(period.year, period.month)[1])
            if period + dt.timedelta(days=d) <= last]
    for currency in currencies:
        suffix = f"/{currency}" if len(currencies) > 1 else ""
        tenants = sorted({a for c, a, *_ in by_service if c == currency})
        services = sorted({s for c, _a, s, _v in by_service if c == currency})
        amounts = {(a, s): v for c, a, s, v in by_service if c == currency}
        plot = stacked_bars(f"Cost by service per tenant, {period:%Y-%m}", currency, tenants,
                            {s: [amounts.get((t, s), Decimal(0)) for t in tenants] for s in services})
        metadata["cost_by_service" + suffix] = plot
        daily = {(a, d): v for c, a, d, v in by_day if c == currency}
        plot = lines(f"Cost by day per tenant, {period:%Y-%m}", currency, [f"{d:%d}" for d in days],
                     {t: [daily.get((t, d), Decimal(0)) for d in days] for t in tenants}, tick_every=5)
        metadata["cost_by_day" + suffix] = plot
    return metadata


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
    shared_month by the evidence window used), the cost nobody's usage explains (`unattributed`), and its part of
    the account-level lines (tax, credits, discounts) whose policy is proportional (`proportional`).
    See docs/attribution-rules.md."""
    period, _ = month_of(context)
    metric = billing_config.metric()
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    params = {"billing_period": period, "cost_metric": metric}
    cost = METRIC_COLUMN[metric]
    with warehouse.connect() as con:
        require_upstream(con, period, "tenant_costs")  # facts never computed are not a month without cost
        delivery = month_delivery(con, period, "hourly_cost_facts")  # refuses facts of another delivery
        stage_cost_allocations(con, params, pricing)
        stage_account_level_lines(con, period, metric, pricing)
        con.stage("account_level_allocations", stage_sql("account_level_allocations"))

        # Conservation, checked before anything is written: per hour x service x line item type x currency the
        # allocated parts add up to the fact costs exactly, and each account-level line's tenant parts to its
        # application part.
        not_conserved = con.execute(
            f"""WITH facts AS (
                    SELECT usage_hour, service, line_item_type, currency, sum({cost}) AS cost
                    FROM hourly_cost_facts WHERE billing_period = $billing_period AND in_scope GROUP BY ALL),
                parts AS (
                    SELECT usage_hour, service, line_item_type, currency, sum(cost) AS cost
                    FROM cost_allocations GROUP BY ALL)
                SELECT usage_hour, service, line_item_type, currency, facts.cost AS cur_cost, parts.cost AS allocated
                FROM facts FULL JOIN parts USING (usage_hour, service, line_item_type, currency)
                WHERE coalesce(facts.cost, 0) <> coalesce(parts.cost, 0)
                UNION ALL
                SELECT l.usage_hour, l.service, l.line_item_type, l.currency, l.app_part, sum(a.cost)
                FROM account_level_lines l LEFT JOIN account_level_allocations a ON a.fact_id = l.line_id
                GROUP BY l.line_id, l.usage_hour, l.service, l.line_item_type, l.currency, l.app_part
                HAVING l.app_part <> coalesce(sum(a.cost), 0)
                LIMIT 10""",
            {"billing_period": period},
        ).df()
        if not not_conserved.empty:
            raise Failure(f"Attribution of {period:%Y-%m} does not add up to the CUR cost (nothing written):\n"
                          + not_conserved.to_markdown(index=False))

        # the table's blocking checks, before the commit (here: the checks import this module)
        from billing_pipeline.checks.common import duplicate_check
        from billing_pipeline.checks.guard import guard
        from billing_pipeline.checks.tenant_costs import GRAIN, conservation_check, daily_mismatches

        checks = guard("tenant_costs", period, {
            "attributed_plus_unattributed_equals_cur": lambda relation: daily_mismatches(con, period, metric, relation),
            "bill_conserved": lambda relation: conservation_check(bill_conservation(con, period, metric, relation)),
            "no_duplicate_tenant_costs": lambda relation: duplicate_check(con, relation, GRAIN, period)})
        rows = con.replace_month_with_query("tenant_costs", period, stamped(stage_sql("tenant_costs")),
                                            stamp_params({"cost_metric": metric}, delivery), verify=checks)

        conservation = bill_conservation(con, period, metric)  # the metadata's account of the bill
        scope_totals = con.execute(
            f"""SELECT currency, sum({cost}) FILTER (in_scope) FROM hourly_cost_facts
                WHERE billing_period = ? GROUP BY currency ORDER BY currency""",
            [period],
        ).fetchall()
        covered = covered_cost_not_charged(con, period, metric)
        account_level = con.execute(
            """SELECT line_item_type, policy, currency, count(*), sum(cost), sum(app_part) FROM account_level_lines
               GROUP BY ALL ORDER BY ALL"""
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
        for name in ("cost_allocations", "account_level_allocations", "account_level_lines"):
            con.drop(name)
        plots = cost_plots(con, period)

    cents = {}
    for currency in {row[1] for row in per_tenant}:
        cents.update(largest_remainder_cents({(a, c): cost for a, c, cost, *_ in per_tenant if c == currency}))
    table = markdown_table(
        ["accountant_id", "currency", "cost", "direct", "shared"],
        [(a, c, cents[(a, c)], direct, shared) for a, c, _cost, direct, shared in per_tenant],
        {"cost": money_in("cost"), "direct": money_in("direct"), "shared": money_in("shared")})
    metadata = {
        "dagster/row_count": MetadataValue.int(rows),
        "cost_metric": metric,
        "tenants": MetadataValue.int(len({row[0] for row in per_tenant} - {"unattributed"})),
        "per_tenant": MetadataValue.md(table),
        "unattributed_cost": MetadataValue.float(
            as_float(sum((row[2] for row in per_tenant if row[0] == "unattributed"), Decimal(0)))
        ),
        "bill_conservation": MetadataValue.md(
            markdown_table(Conservation._fields, conservation,
                           {name: money_in(name) for name in Conservation._fields if name != "currency"})),
        "account_level_lines": MetadataValue.md(
            markdown_table(["line_item_type", "policy", "currency", "lines", "cost", "to the application"],
                           account_level, {"lines": lambda r: count(r["lines"]), "cost": money_in("cost"),
                                           "to the application": money_in("to the application")}, empty="_none_")),
        **{name: MetadataValue.md(plot.markdown()) for name, plot in plots.items()},
    }
    for currency, in_scope in scope_totals:
        metadata[f"in_scope_cost/{currency}"] = MetadataValue.float(as_float(in_scope))
    for r in conservation:
        for name in ("tenants", "unattributed", "kept_by_company", "out_of_scope", "account_level_to_tenants", "bill"):
            metadata[f"{name}/{r.currency}"] = format(getattr(r, name), "f")
    for currency, uncharged in covered:
        metadata[f"covered_cost_not_charged/{currency}"] = format(uncharged, "f")
        note = covered_usage_note(uncharged, f"{abs(uncharged)} {currency}")
        context.log.warning(f"{period:%Y-%m}: BILLING_COST_METRIC=unblended: {note}")
    for allocation in ("direct", "shared_hour", "shared_day", "shared_month", "unattributed"):
        metadata[f"facts/{allocation}"] = MetadataValue.int(int(fact_allocations.get(allocation, 0)))
    metadata["allocation_rows"] = MetadataValue.int(int(sum(allocations.values())))
    return MaterializeResult(metadata=metadata)
