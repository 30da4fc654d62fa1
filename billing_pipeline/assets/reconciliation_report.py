"""reconciliation_report: what the application estimated against what AWS billed, per tenant."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, cur_is_final, month_of, stage_sql
from billing_pipeline.assets.implausible_money import implausible_lines, lines_table, settings
from billing_pipeline.assets.tenant_costs import covered_cost_not_charged, kept_by_company
from billing_pipeline.assets.tenant_registry import reporting_known_tenants
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.reconciliation_report import GRAIN as REPORT_GRAIN
from billing_pipeline.lineage import month_delivery, stamp_params, stamped
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

REPORT_COLUMNS = "accountant_id, resource_type, currency, estimated_cost, actual_cost, variance, variance_pct, flagged"
CHART_WIDTH = 40


def estimated_vs_actual_chart(totals, title: str, width: int = CHART_WIDTH) -> str:
    """A bar chart of estimated (░) vs actual (█) cost per tenant, as text in a markdown code block: the Dagster
    UI renders it everywhere (no image hosting, nothing to load), and it reads the same in logs and exports.
    `totals`: rows (accountant_id, currency, estimated, actual, variance_pct, flagged), one per tenant-month."""
    rows = list(totals)
    if not rows:
        return f"**{title}**\n\n_no rows_"
    scale = max([abs(v) for r in rows for v in (r[2], r[3])] + [0]) or 1
    name_width = max(len(str(r[0])) for r in rows)
    value_width = max(len(f"{v:,.2f}") for r in rows for v in (r[2], r[3]))
    lines = [f"{'':{name_width}}      ░ estimated  █ actual  ({rows[0][1]}; negative amounts have no bar)"]
    for accountant, _, estimated, actual, variance_pct, flagged in rows:
        bars = [("est", "░", estimated), ("act", "█", actual)]
        for index, (label, block, value) in enumerate(bars):
            length = int(round(float(max(value, 0)) / float(scale) * width))
            note = ""
            if index == 1:
                unknown = variance_pct is None or variance_pct != variance_pct  # None, or NaN from pandas
                note = "  n/a" if unknown else f"  {float(variance_pct):+.1f}%"
                note += "  ⚑ flagged" if flagged else ""
            name = str(accountant) if index == 0 else ""
            lines.append(f"{name:{name_width}}  {label} {block * length:{width}} {float(value):>{value_width},.2f}{note}")
    return f"**{title}**\n\n```\n" + "\n".join(lines) + "\n```"


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "estimated_usage", "cur_line_items"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
)
def reconciliation_report(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse,
    tenants: TenantRegistry,
) -> MaterializeResult:
    """Per tenant x resource type (and 'total' per tenant): estimated cost, actual attributed cost (the
    configured metric), variance, variance_pct, flagged when |variance_pct| exceeds the pricing file's threshold
    (10 %), and whether the month is final (the CUR carries an invoice id) or provisional. Ids outside the tenant
    registry are reported together as 'unknown'."""
    period, _ = month_of(context)
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    with warehouse.connect() as con:
        delivery = month_delivery(con, period, "tenant_costs")  # refuses tenant costs of another delivery
        is_final = cur_is_final(con, period)
        checks = guard("reconciliation_report", period, {  # the table's blocking check, before the commit
            "no_duplicate_report_rows": lambda relation: duplicate_check(con, relation, REPORT_GRAIN, period)})
        with reporting_known_tenants(con, tenants, period):
            rows = con.replace_month_with_query(
                "reconciliation_report",
                period,
                stamped(stage_sql("reconciliation_report")),
                stamp_params({"billing_period": period, "currency": pricing.currency, "is_final": is_final,
                              "threshold_pct": pricing.variance_threshold_pct}, delivery),
                verify=checks,
            )
        report = con.execute(
            f"""SELECT {REPORT_COLUMNS} FROM reconciliation_report WHERE billing_period = ?
                ORDER BY accountant_id, resource_type = 'total', resource_type""",
            [period],
        ).df()
        totals = con.execute(
            """SELECT sum(estimated_cost), sum(actual_cost), count(*) FILTER (flagged)
               FROM reconciliation_report WHERE billing_period = ? AND resource_type = 'total'""",
            [period],
        ).fetchall()[0]
        # the bill's implausible lines, which hold invoicing of the month (implausible_money.py), shown here too
        # (the bound from BILLING_MAX_LINE_COST: not a resource here, so the report needs no more wiring)
        implausible = implausible_lines(con, period, settings(MoneyBounds())[0])
        # what no tenant carries: account-level lines the company keeps, covered cost under `unblended`
        metric = billing_config.metric()
        kept = kept_by_company(con, period, metric, pricing)
        covered = covered_cost_not_charged(con, period, metric)
    flagged = report[report["flagged"] & (report["resource_type"] != "total")]
    estimated_total, actual_total, flagged_tenants = totals
    status = "final" if is_final else "provisional"
    context.log.info(f"{period:%Y-%m} ({status}): {len(flagged)} tenant x resource type rows over the threshold")
    notes = [f"- kept by the company: {t} {format(c, 'f')} {cur}" for t, cur, c in kept]
    notes += [f"- BILLING_COST_METRIC=unblended: {format(c, 'f')} {cur} of Savings Plan / RI covered usage is charged "
              "to no tenant (amortized charges it)" for cur, c in covered]
    extra = {f"kept_by_company/{cur}": format(sum(c for _t, k, c in kept if k == cur), "f") for _t, cur, _c in kept}
    extra.update({f"covered_cost_not_charged/{cur}": format(c, "f") for cur, c in covered})
    return MaterializeResult(
        metadata={
            **extra,
            "dagster/row_count": MetadataValue.int(rows),
            "is_final": MetadataValue.bool(bool(is_final)),
            "estimated_total": MetadataValue.float(as_float(estimated_total)),
            "actual_total": MetadataValue.float(as_float(actual_total)),
            "variance_total": MetadataValue.float(as_float((actual_total or 0) - (estimated_total or 0))),
            "flagged_rows": MetadataValue.int(len(flagged)),
            "flagged_tenants": MetadataValue.int(int(flagged_tenants or 0)),
            "implausible_lines": MetadataValue.int(len(implausible)),
            "implausible": MetadataValue.md(lines_table(implausible) if implausible else "none"),
            "report": MetadataValue.md(f"**{period:%Y-%m} ({status})**\n\n" + report.to_markdown(index=False)
                                       + ("\n\nNot charged to any tenant:\n" + "\n".join(notes) if notes else "")),
            "estimated_vs_actual": MetadataValue.md(estimated_vs_actual_chart(
                report[report["resource_type"] == "total"][
                    ["accountant_id", "currency", "estimated_cost", "actual_cost", "variance_pct", "flagged"]
                ].itertuples(index=False),
                f"Estimated vs actual per tenant, {period:%Y-%m} ({status})")),
        },
    )
