"""reconciliation_report: what the application estimated against what AWS billed, per tenant."""


import datetime as dt
from decimal import Decimal

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, cur_is_final, month_of, stage_sql
from billing_pipeline.assets.implausible_money import implausible_lines, lines_table, settings
from billing_pipeline.assets.tenant_costs import covered_cost_not_charged, covered_usage_note, kept_by_company
from billing_pipeline.assets.tenant_registry import reporting_known_tenants
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.reconciliation_report import GRAIN as REPORT_GRAIN
from billing_pipeline.checks.reconciliation_report import flagged_accountants
from billing_pipeline.formatting import markdown_table, money, money_in, percent_in
from billing_pipeline.lineage import month_delivery, require_upstream, stamp_params, stamped
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.plots import Plot
from billing_pipeline.plots import grouped_bars as plots_grouped_bars
from billing_pipeline.plots import lines as plots_lines
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

REPORT_COLUMNS = ["accountant_id", "resource_type", "currency", "estimated_cost", "actual_cost", "variance",
                  "variance_pct", "flagged"]
REPORT_FORMATS = {"estimated_cost": money_in("estimated_cost"), "actual_cost": money_in("actual_cost"),
                  "variance": money_in("variance"), "variance_pct": percent_in("variance_pct"),
                  "flagged": lambda row: "⚑ flagged" if row["flagged"] else ""}
TREND_MONTHS = 24  # the month-over-month plot: this many months up to the partition's


def statement_cents(totals: dict[tuple[str, str], Decimal]) -> dict[tuple[str, str], Decimal]:
    """Each tenant-month's actual total in the cents its statement shows: largest remainder per currency."""
    cents: dict[tuple[str, str], Decimal] = {}
    for currency in sorted({currency for _, currency in totals}):
        cents.update(largest_remainder_cents({key: v for key, v in totals.items() if key[1] == currency}))
    return cents


def report_formats(report: list[tuple]) -> dict:
    """REPORT_FORMATS, with each tenant's total actual in its statement's cents (the parts stay half up)."""
    cents = statement_cents({(r[0], r[2]): r[4] for r in report if r[1] == "total"})
    return {**REPORT_FORMATS, "actual_cost": lambda row: money(
        cents[(row["accountant_id"], row["currency"])] if row["resource_type"] == "total" else row["actual_cost"],
        row["currency"])}


def estimated_vs_actual(con, period: dt.date, status: str) -> list[Plot]:
    """Per currency: each tenant's estimate (cents, half up) beside its actual (its statement's cents), the
    flagged tenants (checks.reconciliation_report.flagged_accountants) marked."""
    rows = con.execute(
        """SELECT accountant_id, currency, estimated_cost, actual_cost FROM reconciliation_report
           WHERE billing_period = ? AND resource_type = 'total' ORDER BY currency, accountant_id""", [period]
    ).fetchall()
    actual = statement_cents({(a, c): act for a, c, _e, act in rows})
    flagged = flagged_accountants(con, period)
    plots = []
    for currency in sorted({c for _a, c, _e, _act in rows}):
        mine = [r for r in rows if r[1] == currency]
        plots.append(plots_grouped_bars(
            f"Estimated vs actual per tenant, {period:%Y-%m} ({status})", currency, [r[0] for r in mine],
            {"estimated": [r[2] for r in mine], "actual": [actual[(r[0], currency)] for r in mine]}, marked=flagged))
    return plots


def month_over_month(con, period: dt.date) -> list[Plot]:
    """Per currency: each tenant's actual total (statement cents) over the months in the warehouse up to `period`."""
    rows = con.execute(
        """SELECT billing_period, accountant_id, currency, actual_cost FROM reconciliation_report
           WHERE resource_type = 'total' AND billing_period <= ? AND billing_period > ?
           ORDER BY billing_period, currency, accountant_id""",
        [period, period - dt.timedelta(days=31 * TREND_MONTHS)],
    ).fetchall()
    plots = []
    for currency in sorted({r[2] for r in rows}):
        months = sorted({r[0] for r in rows if r[2] == currency})
        cents = {m: statement_cents({(a, c): v for p, a, c, v in rows if p == m and c == currency}) for m in months}
        tenants = sorted({r[1] for r in rows if r[2] == currency})
        series = {t: [cents[m].get((t, currency), Decimal(0)) for m in months] for t in tenants}
        plots.append(plots_lines(f"Actual cost per tenant by month, to {period:%Y-%m}", currency,
                                 [f"{m:%Y-%m}" for m in months], series))
    return plots


def accountants_without_data(con, period: dt.date) -> list[str]:
    """Tenants the warehouse knew by this month (a known id of the tenant registry, or a report row of an earlier
    month) that have no row in this month's report: no estimate and no cost. Worth a warning: a tenant whose usage
    stopped being logged or tagged looks exactly like this (a tenant that only starts later is not listed)."""
    rows = con.execute(
        """SELECT accountant_id FROM tenant_registry WHERE status = 'known' AND billing_period <= $period
           UNION SELECT accountant_id FROM reconciliation_report WHERE billing_period < $period
           EXCEPT SELECT accountant_id FROM reconciliation_report WHERE billing_period = $period
           ORDER BY 1""", {"period": period}).fetchall()
    return [accountant for (accountant,) in rows if accountant != "unattributed"]


def plot_metadata(name: str, plots: list[Plot]) -> dict[str, MetadataValue]:
    """One markdown entry per plot: `name`, or `name/CUR` when the month has more than one currency."""
    if len(plots) == 1:
        return {name: MetadataValue.md(plots[0].markdown())}
    return {f"{name}/{p.currency}": MetadataValue.md(p.markdown()) for p in plots} or {name: MetadataValue.md("_no rows_")}


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
        require_upstream(con, period, "reconciliation_report")  # else every actual cost would read 0
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
            f"""SELECT {", ".join(REPORT_COLUMNS)} FROM reconciliation_report WHERE billing_period = ?
                ORDER BY accountant_id, resource_type = 'total', resource_type""",
            [period],
        ).fetchall()  # Decimals, exact (not .df(): pandas would make them floats)
        totals = con.execute(
            """SELECT sum(estimated_cost), sum(actual_cost)
               FROM reconciliation_report WHERE billing_period = ? AND resource_type = 'total'""",
            [period],
        ).fetchall()[0]
        tenants_flagged = flagged_accountants(con, period)
        without_data = accountants_without_data(con, period)
        status = "final" if is_final else "provisional"
        plots = plot_metadata("estimated_vs_actual", estimated_vs_actual(con, period, status))
        plots.update(plot_metadata("month_over_month", month_over_month(con, period)))
        # the bill's implausible lines, which hold invoicing of the month (implausible_money.py), shown here too
        # (the bound from BILLING_MAX_LINE_COST: not a resource here, so the report needs no more wiring)
        implausible = implausible_lines(con, period, settings(MoneyBounds())[0])
        # what no tenant carries: account-level lines the company keeps, covered cost under `unblended`
        metric = billing_config.metric()
        kept = kept_by_company(con, period, metric, pricing)
        covered = covered_cost_not_charged(con, period, metric)
    flagged = [row for row in report if row[7] and row[1] != "total"]
    estimated_total, actual_total = totals
    context.log.info(f"{period:%Y-%m} ({status}): {len(flagged)} tenant x resource type rows over the threshold; "
                     f"flagged tenants: {', '.join(tenants_flagged) or 'none'}")
    if without_data:
        context.log.warning(f"{period:%Y-%m}: no estimate and no cost for {', '.join(without_data)} (known tenants "
                            "with no data this month: usage not logged, or resources not tagged?)")
    notes = [f"- kept by the company: {t} {money(c, cur)}" for t, cur, c in kept]
    notes += [f"- BILLING_COST_METRIC=unblended: {covered_usage_note(c, money(abs(c), cur))}"
              for cur, c in covered]
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
            "flagged_tenants": MetadataValue.int(len(tenants_flagged)),
            "flagged_accountants": ", ".join(tenants_flagged) or "none",
            "accountants_without_data": ", ".join(without_data) or "none",
            "implausible_lines": MetadataValue.int(len(implausible)),
            "implausible": MetadataValue.md(lines_table(implausible) if implausible else "none"),
            "report": MetadataValue.md(f"**{period:%Y-%m} ({status})**\n\n"
                                       + markdown_table(REPORT_COLUMNS, report, report_formats(report))
                                       + ("\n\nNot charged to any tenant:\n" + "\n".join(notes) if notes else "")),
            **plots,
        },
    )
