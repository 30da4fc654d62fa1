"""cost_explorer_costs: AWS Cost Explorer's daily cost per tenant tag, and a cross-check with the CUR.

Off unless BILLING_COST_EXPLORER=1 (each GetCostAndUsage request is billed by AWS, $0.01). Then, for the month
(up to today for the current month), one `ce.get_cost_and_usage` with DAILY granularity, the metric matching
BILLING_COST_METRIC (UnblendedCost / AmortizedCost / NetAmortizedCost), filtered to the application's tag
(`application` = BILLING_APPLICATION) and grouped by the cost allocation tag `accountant_id`, following
NextPageToken to the last page.

The check compares each tenant x day with the CUR-derived direct cost (resources tagged with the tenant), and
CE's untagged group with the application's untagged cost (tenant_costs that is not direct). Tolerance: half a
cent per tenant x day (BILLING_COST_EXPLORER_TOLERANCE), because Cost Explorer returns every amount as a decimal
string that it has already rounded, while tenant_costs is exact to 1e-10: each CE amount can be off by up to half
a unit of its last reported digit, which is at most half a cent. Anything larger is a real difference (a missed
or extra line item, a tag that CE and the CUR see differently, a delivery not yet picked up).
"""


import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import as_float, month_of, stage_sql
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.cost_explorer_costs import GRAIN as CE_GRAIN
from billing_pipeline.catalog import load_catalog
from billing_pipeline.exports import arrow_schema
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse, replace_month_with_rows

CE_METRICS = {"unblended": "UnblendedCost", "amortized": "AmortizedCost", "net_amortized": "NetAmortizedCost"}
UNIT = Decimal("0.0000000001")


MISMATCH_COLUMNS = ["usage_date", "accountant_id", "currency", "cost_explorer", "cur", "difference"]


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """Rows as a markdown table, amounts exactly as stored (no float formatting)."""
    if not rows:
        return "none"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def query_window(period: dt.date, next_period: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days to ask about: the month, cut at tomorrow for the current month (End is exclusive)."""
    return period, min(next_period, today + dt.timedelta(days=1))


def cost_explorer_rows(client, period: dt.date, start: dt.date, end: dt.date, metric: str, tag_key: str,
                       application: str) -> tuple[list[dict], int]:
    """Cost Explorer's DAILY amounts per tag value (all pages), as rows of the table `cost_explorer_costs`, and the number of pages."""
    request = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}],
        "Filter": {"Tags": {"Key": load_catalog().tag_keys["application"], "Values": [application], "MatchOptions": ["EQUALS"]}},
    }
    amounts: dict[tuple[dt.date, str, str], Decimal] = defaultdict(Decimal)
    estimated: dict[tuple[dt.date, str, str], bool] = {}
    pages = 0
    while True:
        page = client.get_cost_and_usage(**request)
        pages += 1
        for result in page.get("ResultsByTime", []):
            day = dt.date.fromisoformat(result["TimePeriod"]["Start"])
            for group in result.get("Groups", []):
                key = group["Keys"][0]
                # a TAG group key is "<tag>$<value>"; "<tag>$" is the cost without the tag
                tenant = key.split("$", 1)[1] if "$" in key else key
                value = group["Metrics"][metric]
                row_key = (day, tenant, value.get("Unit") or "USD")
                amounts[row_key] += Decimal(value["Amount"])
                estimated[row_key] = estimated.get(row_key, False) or bool(result.get("Estimated", False))
        token = page.get("NextPageToken")
        if not token:
            break
        request["NextPageToken"] = token
    rows = [
        {"billing_period": period, "usage_date": day, "accountant_id": tenant, "metric": metric,
         "amount": amount.quantize(UNIT, rounding=ROUND_HALF_UP), "currency": currency,
         "estimated": estimated[(day, tenant, currency)]}
        for (day, tenant, currency), amount in sorted(amounts.items())
    ]
    return rows, pages


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "aws"},
    check_specs=[
        AssetCheckSpec("cost_explorer_matches_cur", asset="cost_explorer_costs",
                       description="Cost Explorer's daily cost per accountant_id tag equals the CUR-derived direct "
                                   "cost per tenant x day (and its untagged cost the shared cost), within half a "
                                   "cent. Passes without comparing when Cost Explorer is not configured."),
    ],
)
def cost_explorer_costs(
    context: AssetExecutionContext, billing_config: BillingConfig, outputs_config: OutputsConfig,
    warehouse: BillingWarehouse, aws: AwsClients,
) -> MaterializeResult:
    """Cost Explorer's DAILY cost of the application per `accountant_id` tag value (BILLING_COST_EXPLORER=1; off
    and nothing written when unset), and a check against the CUR-derived cost per tenant x day."""
    period, next_period = month_of(context)
    if not outputs_config.cost_explorer_enabled():
        context.log.info("BILLING_COST_EXPLORER is not set: Cost Explorer not queried")
        return MaterializeResult(
            metadata={"status": "not configured (BILLING_COST_EXPLORER is not set)"},
            check_results=[AssetCheckResult(check_name="cost_explorer_matches_cur", passed=True,
                                            metadata={"status": "skipped: Cost Explorer not configured"})],
        )
    metric = CE_METRICS[billing_config.metric()]
    tolerance = outputs_config.tolerance()
    start, end = query_window(period, next_period, dt.datetime.now(dt.timezone.utc).date())
    rows, pages = [], 0
    if start < end:
        client = aws.client("ce")
        rows, pages = cost_explorer_rows(client, period, start, end, metric, outputs_config.cost_explorer_tag_key(),
                                         billing_config.application_tag())
    staged = pa.Table.from_pylist(rows, schema=arrow_schema("cost_explorer_costs"))
    with warehouse.connect() as con:
        written = replace_month_with_rows(con, "cost_explorer_costs", period, staged, verify=guard(
            "cost_explorer_costs", period, {  # the table's blocking check, before the commit
                "no_duplicate_cost_explorer_rows": lambda relation: duplicate_check(con, relation, CE_GRAIN, period)}))
        mismatches = con.execute(
            stage_sql("cost_explorer_costs"),
            {"billing_period": period, "query_end": end, "tolerance": tolerance},
        ).fetchall()
        per_tenant = con.execute(
            """SELECT accountant_id, currency, sum(amount) AS cost_explorer FROM cost_explorer_costs
               WHERE billing_period = ? GROUP BY ALL ORDER BY ALL""",
            [period],
        ).fetchall()
    total = sum((r["amount"] for r in rows), Decimal(0))
    context.log.info(f"{period:%Y-%m}: {len(rows)} Cost Explorer rows ({pages} pages), {len(mismatches)} mismatches")
    return MaterializeResult(
        metadata={
            "status": f"queried {start} to {end} (exclusive), {metric}",
            "dagster/row_count": MetadataValue.int(written),
            "pages": MetadataValue.int(pages),
            "cost_explorer_total": MetadataValue.float(as_float(total)),
            "per_tenant": MetadataValue.md(markdown_table(["accountant_id", "currency", "cost_explorer"], per_tenant)),
        },
        check_results=[
            AssetCheckResult(
                check_name="cost_explorer_matches_cur",
                passed=not mismatches,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "tolerance_per_tenant_day": str(tolerance),
                    "mismatches": MetadataValue.int(len(mismatches)),
                    "mismatched": MetadataValue.md(markdown_table(MISMATCH_COLUMNS, mismatches[:50])),
                    "mismatched_accountants": ", ".join(sorted({r[1] or "(untagged)" for r in mismatches})) or "none",
                },
            )
        ],
    )
