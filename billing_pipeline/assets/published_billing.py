"""published_billing: the month's figures as the API serves them, published as an immutable snapshot.

The last step of a month's run (downstream of statements and the reconciliation report, whose blocking checks
must have passed for it to run at all). It reads the month from the warehouse through the engine interface, so
DuckDB and Spark publish the same files, checks that the tables it publishes agree with each other, and only then
switches the month's pointer (billing_pipeline/publishing.py). Any failure before the switch leaves the month the
API serves as it was.

Every cent in the snapshot comes from the pipeline: the statements' rows as they are, the estimates' cents by the
statements' rule (largest remainder over the month's tenants, then over each tenant's lines), each variance's cents
rounded half up here. The API rounds nothing.
"""

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline import lineage
from billing_pipeline.assets.common import month_of
from billing_pipeline.assets.published_usage import (
    BILL_SQL,
    MONTH_TO_DATE_SQL,
    TENANT_LINES_SQL,
    month_to_date_problems,
    month_to_date_table,
    usage_tables,
)
from billing_pipeline.assets.statements import REPORT_ORDER, STATEMENT_ORDER, split_cents
from billing_pipeline.assets.tenant_registry import reported, reporting_known_tenants
from billing_pipeline.exports import month_table
from billing_pipeline.money import CENT, largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.publishing import publish_month
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse
from billing_pipeline.storage import Location

MONEY = pa.decimal128(38, 10)
CENTS = pa.decimal128(38, 2)
ESTIMATES = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()),
                       ("resource_type", pa.string()), ("operation", pa.string()), ("quantity", MONEY),
                       ("estimated_cost", MONEY), ("records", pa.int64())])
ESTIMATED_LINES = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), ("line", pa.string()),
                             ("estimated_cost", MONEY), ("amount", CENTS)])
DRIVERS = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), ("resource_type", pa.string()),
                     ("driver", pa.string()), ("quantity", MONEY), ("cost", MONEY)])

# Ids outside the tenant registry are published as 'unknown', as in the statements (assets/tenant_registry.py)
ESTIMATES_SQL = f"""
SELECT billing_period, accountant_id, resource_type, coalesce(operation, '') AS operation,
       CAST(sum(quantity) AS DECIMAL(38, 10)) AS quantity, CAST(sum(estimated_cost) AS DECIMAL(38, 10)) AS estimated_cost,
       CAST(sum(records) AS BIGINT) AS records
FROM {reported("estimated_usage", ["billing_period", "resource_type", "operation", "quantity", "estimated_cost",
                                   "records"])}
WHERE billing_period = ?
GROUP BY billing_period, accountant_id, resource_type, coalesce(operation, '')
ORDER BY accountant_id, resource_type, operation"""
# A tenant's measured usage of the shared services (the quantities that split shared cost) by resource type
MEASURED_DRIVERS_SQL = f"""
WITH types AS (SELECT DISTINCT service, resource_type FROM tenant_costs WHERE billing_period = ?)
SELECT s.accountant_id, coalesce(t.resource_type, 'other') AS resource_type, s.driver,
       CAST(sum(s.quantity) AS DECIMAL(38, 10)) AS quantity
FROM {reported("usage_shares", ["billing_period", "service", "driver", "quantity"], "s")}
     LEFT JOIN types t ON s.service = t.service
WHERE s.billing_period = ?
GROUP BY s.accountant_id, coalesce(t.resource_type, 'other'), s.driver"""
# ... and the part of its cost each driver split
DRIVER_COSTS_SQL = f"""
SELECT accountant_id, resource_type, driver, CAST(sum(cost) AS DECIMAL(38, 10)) AS cost
FROM {reported("tenant_costs", ["billing_period", "resource_type", "driver", "cost"])} WHERE billing_period = ? AND driver IS NOT NULL
GROUP BY accountant_id, resource_type, driver"""
CUR_SQL = """
SELECT count(DISTINCT delivery_id), min(delivery_id), coalesce(bool_or(invoice_id IS NOT NULL), false), count(*)
FROM cur_line_items WHERE billing_period = ?"""
IN_SCOPE_SQL = "SELECT currency, sum(cost) FROM tenant_costs WHERE billing_period = ? GROUP BY currency"


def estimated_lines(period: dt.date, estimates: list[dict]) -> list[dict]:
    """The estimates' cents by the statements' rule: each tenant's month by largest remainder over all tenants,
    then its resource types by largest remainder within the tenant (statements.split_cents)."""
    by_tenant: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in estimates:
        by_tenant[row["accountant_id"]][row["resource_type"]] += row["estimated_cost"]
    tenant_cents = largest_remainder_cents({a: sum(t.values(), Decimal(0)) for a, t in by_tenant.items()})
    rows = []
    for accountant in sorted(by_tenant):
        types = by_tenant[accountant]
        cents = split_cents(types, tenant_cents[accountant])
        for rtype in sorted(types):
            rows.append(dict(billing_period=period, accountant_id=accountant, line=rtype,
                             estimated_cost=types[rtype], amount=cents[rtype]))
        rows.append(dict(billing_period=period, accountant_id=accountant, line="total",
                         estimated_cost=sum(types.values(), Decimal(0)), amount=tenant_cents[accountant]))
    return rows


def report_with_cents(report: pa.Table) -> pa.Table:
    """The report rows plus `variance_amount`: each variance rounded half up to cents (not the difference of two
    rounded amounts, which can even have the other sign)."""
    cents = [None if v is None else v.quantize(CENT, rounding=ROUND_HALF_UP) for v in report["variance"].to_pylist()]
    return report.append_column(pa.field("variance_amount", CENTS), pa.array(cents, CENTS))


def consistency_problems(tables: dict[str, pa.Table], in_scope: dict[str, Decimal], cur: tuple) -> list[str]:
    """Why the month's tables must not be published together (empty: they agree). Checked on exactly the rows
    published, so a half-updated warehouse (a run that failed between two assets) is never served."""
    problems = []
    deliveries, delivery_id, cur_final, line_items = cur
    statements = tables["statements"].to_pylist()
    report = tables["reconciliation_report"].to_pylist()
    if statements and deliveries != 1:
        problems.append(f"cur_line_items holds {deliveries} deliveries of the month (re-run cur_line_items and after)")
    if line_items and not statements and any(in_scope.values()):
        # (a month whose line items hold nothing of the application has no statements, and is published so)
        problems.append("tenant_costs holds the month's cost but statements has no rows (re-run statements)")
    for name, rows in (("statements", statements), ("reconciliation_report", report)):
        # the tables record their delivery (issue 16.6): every row must name the CUR's (NULL: written before that)
        stale = {r["delivery_id"] for r in rows if r.get("delivery_id") not in (None, delivery_id)}
        if stale:
            problems.append(f"{name} was computed from delivery {sorted(map(str, stale))}, cur_line_items holds "
                            f"{delivery_id} (re-run {name})")
        if any(r["is_final"] != cur_final for r in rows):
            problems.append(f"{name}: is_final differs from the CUR's ({cur_final}) (re-run {name})")
    totals = {(r["accountant_id"], r["currency"]): r for r in statements if r["line"] == "total"}
    lines: dict[tuple, list] = defaultdict(list)
    for r in statements:
        if r["line"] != "total":
            lines[(r["accountant_id"], r["currency"])].append(r)
    for key, total in totals.items():
        parts = lines[key]
        if sum((p["amount"] for p in parts), Decimal(0)) != total["amount"] or \
                sum((p["cost"] for p in parts), Decimal(0)) != total["cost"]:
            problems.append(f"statements: the lines of {key[0]} ({key[1]}) do not add up to its total")
    for currency in sorted({c for _a, c in totals} | set(in_scope)):
        cents = sum((t["amount"] for (_a, c), t in totals.items() if c == currency), Decimal(0))
        expected = in_scope.get(currency, Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)
        if cents != expected:
            problems.append(f"statements ({currency}): {cents} in cents, tenant_costs holds {expected} (re-run statements)")
    report_totals = {(r["accountant_id"], r["currency"]): r["actual_cost"] for r in report if r["resource_type"] == "total"}
    for key, total in totals.items():
        if report_totals.get(key, Decimal(0)) != total["cost"]:
            problems.append(f"reconciliation_report: {key[0]} ({key[1]}) actual {report_totals.get(key)} but "
                            f"statements {total['cost']} (re-run reconciliation_report and statements)")
    for key, actual in report_totals.items():
        if key not in totals and actual != 0:
            problems.append(f"reconciliation_report: {key[0]} ({key[1]}) has actual cost {actual} but no statement "
                            "(re-run statements)")
    return problems


def month_snapshot(con, period: dt.date, tenants: TenantRegistry | None = None
                   ) -> tuple[dict[str, pa.Table], dict[str, Decimal], tuple]:
    """The month's published tables, read from the warehouse through the engine interface (DuckDB or Spark); ids
    outside the tenant registry (`tenants`, default BILLING_TENANTS) as 'unknown'."""
    with reporting_known_tenants(con, tenants or TenantRegistry(), period):
        estimates_rows = [dict(zip(ESTIMATES.names, row)) for row in con.execute(ESTIMATES_SQL, [period]).fetchall()]
        measured = {(a, t, d): q for a, t, d, q in con.execute(MEASURED_DRIVERS_SQL, [period, period]).fetchall()}
        costs = {(a, t, d): c for a, t, d, c in con.execute(DRIVER_COSTS_SQL, [period]).fetchall()}
        tenant_lines = con.execute(TENANT_LINES_SQL, [period]).fetchall()
        month_to_date = con.execute(MONTH_TO_DATE_SQL, [period]).fetchall()
    drivers = [dict(billing_period=period, accountant_id=a, resource_type=t, driver=d, quantity=measured.get(key),
                    cost=costs.get(key)) for key in sorted(set(measured) | set(costs)) for a, t, d in [key]]
    tables = {
        "statements": month_table(con, "statements", period, STATEMENT_ORDER),
        "reconciliation_report": report_with_cents(month_table(con, "reconciliation_report", period, REPORT_ORDER)),
        "estimates": pa.Table.from_pylist(estimates_rows, schema=ESTIMATES),
        "estimated_lines": pa.Table.from_pylist(estimated_lines(period, estimates_rows), schema=ESTIMATED_LINES),
        "drivers": pa.Table.from_pylist(drivers, schema=DRIVERS),
    }
    # the accountant's detail (published_usage.py): usage lines in units, days, parts, the month to date
    statements = tables["statements"].to_pylist()
    tables.update(usage_tables(period, tenant_lines, con.execute(BILL_SQL, [period]).fetchall(), statements))
    tables["month_to_date"] = month_to_date_table(period, month_to_date, statements)
    in_scope = dict(con.execute(IN_SCOPE_SQL, [period]).fetchall())
    ((deliveries, delivery_id, is_final, line_items),) = con.execute(CUR_SQL, [period]).fetchall()
    return tables, in_scope, (deliveries, delivery_id, bool(is_final), line_items)


class NotPublishable(Exception):
    """The month's tables disagree: nothing is switched."""

    def __init__(self, period: dt.date, problems: list[str]):
        self.problems = problems
        super().__init__(f"{period:%Y-%m} not published; the API keeps serving the previous snapshot: "
                         + "; ".join(problems))


def publish_from(con, location: Location, period: dt.date, engine: str, tenants: TenantRegistry | None = None) -> dict:
    """Read the month from the warehouse, check it, publish it; returns the pointer (NotPublishable: nothing
    switched)."""
    tables, in_scope, cur = month_snapshot(con, period, tenants)
    # every table of the chain from one delivery (issue 16.6, billing_pipeline/lineage.py), then the rows published
    lineage_problem = lineage.problem(con, period, "statements")
    problems = ([lineage_problem] if lineage_problem else []) + consistency_problems(tables, in_scope, cur) \
        + month_to_date_problems(tables["month_to_date"], tables["statements"].to_pylist())
    # before the month's first CUR delivery the month to date (all estimated) is the whole of it: published, so
    # that the hourly refresh shows the month's first hours; a delivery with nothing of the application in it is
    # published too (a month without statements: no tenant owes anything), not refused as if never run
    line_items = cur[3]
    if not problems and not line_items and \
            not any(tables[t].num_rows for t in ("statements", "estimates", "month_to_date")):
        problems.append("the warehouse holds nothing of the month (run the month first)")
    if problems:
        raise NotPublishable(period, problems)
    return publish_month(location, period, tables, {"delivery_id": cur[1], "is_final": cur[2], "engine": engine})


@asset(
    partitions_def=billing_month_partitions,
    deps=["statements", "reconciliation_report", "estimated_usage", "tenant_costs", "usage_shares", "cur_line_items",
          "hourly_cost_facts", "month_to_date"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"parquet"},
)
def published_billing(
    context: AssetExecutionContext, outputs_config: OutputsConfig, warehouse: BillingWarehouse,
    tenants: TenantRegistry,
) -> MaterializeResult:
    """The month as the billing API serves it (statements, report, estimates, usage drivers, usage lines in units
    with the bill's unit costs, days, direct / shared / proportional parts, the month to date): an immutable
    Parquet snapshot under BILLING_PUBLISH_URI, switched in by replacing the month's pointer file only when the
    month's tables agree (one CUR delivery, statements' cents adding up, report = statements)."""
    period, _ = month_of(context)
    location = outputs_config.publish_location()
    try:
        with warehouse.connect() as con:
            pointer = publish_from(con, location, period, con.name, tenants)
    except NotPublishable as error:
        raise Failure(str(error), metadata={
            "problems": MetadataValue.md("\n".join(f"- {p}" for p in error.problems))}) from None
    context.log.info(f"{period:%Y-%m}: published snapshot {pointer['snapshot']} (delivery {pointer['delivery_id']})")
    return MaterializeResult(metadata={
        "snapshot": pointer["snapshot"],
        "published_at": pointer["published_at"],
        "delivery_id": str(pointer["delivery_id"]),
        "pointer": location.display(location.join("current", f"{period:%Y-%m}.json")),
        **{f"rows/{name}": MetadataValue.int(count) for name, count in pointer["rows"].items()},
    })
