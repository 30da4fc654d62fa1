"""month_to_date: each tenant's cost so far this month, between CUR deliveries, and the month-end forecast.

The actual part is tenant_costs as it stands; the hours the CUR has not reached are estimated from the usage
evidence after it, priced by the bill (billing_pipeline/nowcast.py, docs/realtime.md). The CUR is not read: an
hourly refresh needs only usage_shares and this asset (month_to_date_job).
"""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import as_float, cur_is_final, markdown, month_of
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.nowcast import (
    calibration_table,
    compute,
    month_to_date_table,
    warehouse_inputs,
)
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import (
    WAREHOUSE_POOL,
    BillingWarehouse,
    replace_month_with_rows,
)

GRAIN = ["accountant_id", "resource_type", "currency"]


def actual_check(con, period: dt.date) -> AssetCheckResult:
    """actual_cost per tenant x resource type x currency is tenant_costs', exactly (nothing lost, nothing added)."""
    mismatches = con.execute(
        """WITH mtd AS (SELECT accountant_id, resource_type, currency, sum(actual_cost) AS cost
                        FROM month_to_date WHERE billing_period = $p GROUP BY ALL),
                tc AS (SELECT accountant_id, resource_type, currency, sum(cost) AS cost
                       FROM tenant_costs WHERE billing_period = $p GROUP BY ALL)
           SELECT accountant_id, resource_type, currency, mtd.cost AS month_to_date, tc.cost AS tenant_costs
           FROM mtd FULL JOIN tc USING (accountant_id, resource_type, currency)
           WHERE coalesce(mtd.cost, 0) <> coalesce(tc.cost, 0) ORDER BY ALL LIMIT 10""",
        {"p": period},
    ).df()
    return AssetCheckResult(check_name="actual_equals_tenant_costs", passed=mismatches.empty, metadata={
        "mismatches": MetadataValue.md(mismatches.to_markdown(index=False) if not mismatches.empty else "none")})


def parts_check(con, period: dt.date) -> AssetCheckResult:
    """cost_to_date = actual + estimated, and forecast_low <= forecast_cost <= forecast_high, on every row."""
    bad = con.execute(
        """SELECT accountant_id, resource_type, currency, actual_cost, estimated_cost, cost_to_date,
                  forecast_low, forecast_cost, forecast_high
           FROM month_to_date WHERE billing_period = ?
             AND (cost_to_date <> actual_cost + estimated_cost OR forecast_low > forecast_cost
                  OR forecast_cost > forecast_high)
           ORDER BY ALL LIMIT 10""",
        [period],
    ).df()
    return AssetCheckResult(check_name="parts_add_up", passed=bad.empty, metadata={
        "rows": MetadataValue.md(bad.to_markdown(index=False) if not bad.empty else "none")})


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "usage_shares", "hourly_cost_facts"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
    check_specs=[
        AssetCheckSpec("actual_equals_tenant_costs", asset="month_to_date", blocking=True,
                       description="The actual part is tenant_costs' cost per tenant x resource type, exactly."),
        AssetCheckSpec("parts_add_up", asset="month_to_date", blocking=True,
                       description="cost_to_date = actual + estimated; the forecast lies inside its interval."),
        AssetCheckSpec("no_duplicate_month_to_date", asset="month_to_date", blocking=True),
    ],
)
def month_to_date(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """Per tenant x resource type x currency: actual_cost (the hours the CUR covers, as tenant_costs),
    estimated_cost (usage after covered_through through as_of, priced by the bill's implied unit costs; tagged
    resources by their own usage at their own unit cost, else at their run rate), cost_to_date, forecast_cost with forecast_low / forecast_high, covered_through,
    as_of and method. The calibrations are written to month_to_date_calibration."""
    period, next_period = month_of(context)
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with warehouse.connect() as con:
        with warehouse_inputs(con, billing_config.metric()):
            nowcast = compute(con, period, next_period, pricing, now=now, final=cur_is_final(con, period))
        rows = replace_month_with_rows(con, "month_to_date", period, month_to_date_table(nowcast))
        calibrations = replace_month_with_rows(con, "month_to_date_calibration", period, calibration_table(nowcast))
        checks = [actual_check(con, period), parts_check(con, period),
                  duplicate_check(con, "month_to_date", GRAIN, period, "no_duplicate_month_to_date")]
        totals = con.execute(
            """SELECT currency, sum(actual_cost), sum(estimated_cost), sum(cost_to_date), sum(forecast_cost),
                      sum(forecast_low), sum(forecast_high)
               FROM month_to_date WHERE billing_period = ? GROUP BY currency ORDER BY currency""", [period]).fetchall()
        per_tenant = markdown(
            con,
            """SELECT accountant_id, currency, sum(actual_cost) AS actual, sum(estimated_cost) AS estimated,
                      sum(cost_to_date) AS cost_to_date, sum(forecast_cost) AS forecast,
                      sum(forecast_low) AS low, sum(forecast_high) AS high
               FROM month_to_date WHERE billing_period = $p GROUP BY ALL ORDER BY accountant_id, currency""",
            {"p": period}, limit=100)
        by_basis = markdown(
            con,
            """SELECT kind, basis, source_period, count(*) AS calibrations FROM month_to_date_calibration
               WHERE billing_period = $p GROUP BY ALL ORDER BY ALL""", {"p": period})
    hours_behind = (nowcast.as_of - nowcast.covered_through) / dt.timedelta(hours=1)
    context.log.info(f"{period:%Y-%m}: actual through {nowcast.covered_through} UTC, estimated to {nowcast.as_of} UTC")
    metadata = {
        "dagster/row_count": MetadataValue.int(rows),
        "covered_through": str(nowcast.covered_through),
        "as_of": str(nowcast.as_of),
        "hours_estimated": MetadataValue.float(hours_behind),
        "calibrations": MetadataValue.int(calibrations),
        "calibrations_by_basis": by_basis,
        # hours after coverage whose logs were lost, estimated from the same hour of the days before
        "evidence_gaps": ", ".join(f"{hour:%Y-%m-%d %H:%M}" for hour in nowcast.evidence_gaps) or "none",
        "per_tenant": per_tenant,
    }
    for currency, actual, estimated, to_date, forecast, low, high in totals:
        metadata[f"application/{currency}/actual"] = MetadataValue.float(as_float(actual))
        metadata[f"application/{currency}/estimated"] = MetadataValue.float(as_float(estimated))
        metadata[f"application/{currency}/cost_to_date"] = str(to_date)
        metadata[f"application/{currency}/forecast"] = f"{forecast} [{low}, {high}]"
    return MaterializeResult(metadata=metadata, check_results=checks)
