"""statements: the monthly chargeback statement of every tenant, in cents that add up, and the exports.

Cents, exactly (DESIGN.md: "cents appear only in statements, per tenant-month, by largest remainder"):
1. Per currency, each tenant-month's exact cost (all of tenant_costs: direct + shared; `unattributed` too, so the
   statements cover the whole in-scope cost) is rounded with `money.largest_remainder_cents`: the tenants' cents
   add up to the in-scope total rounded half up to cents.
2. Within a tenant, its lines (one per resource type) share the tenant's cents by the same rule (floor, then one
   cent each to the largest remainders, ties by line name), so the lines add up to the tenant's total.
The statements and the month's reconciliation report are exported as CSV and Parquet (billing_pipeline/exports.py).
"""


import datetime as dt
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal
from typing import Hashable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, cur_is_final, month_of, stage_sql
from billing_pipeline.assets.tenant_registry import NOT_A_TENANT, reporting_known_tenants
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.statements import GRAIN as STATEMENT_GRAIN, cents_problems
from billing_pipeline.formatting import markdown_table, money_in
from billing_pipeline.exports import arrow_schema, month_table, write_exports
from billing_pipeline.lineage import month_delivery, require_upstream
from billing_pipeline.money import CENT, largest_remainder_cents
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse, replace_month_with_rows

REPORT_ORDER = "accountant_id, resource_type = 'total', resource_type, currency"
STATEMENT_ORDER = "currency, accountant_id, line = 'total', line"


def split_cents(amounts: Mapping[Hashable, Decimal], target: Decimal) -> dict[Hashable, Decimal]:
    """Round each amount to cents so that they add up to `target` (already in cents): floor each part, then
    give the missing cents one each to the largest remainders (ties by key); a surplus is taken back from the
    smallest remainders. Negative targets (credits) by symmetry."""
    if not amounts:
        return {}
    sign = -1 if target < 0 else 1
    signed = {key: value * sign for key, value in amounts.items()}
    floored = {key: value.quantize(CENT, rounding=ROUND_FLOOR) for key, value in signed.items()}
    missing = int((target * sign - sum(floored.values(), Decimal(0))) / CENT)
    by_remainder = sorted(signed, key=lambda key: (-(signed[key] - floored[key]), str(key)))
    if missing >= 0:
        for index in range(missing):
            floored[by_remainder[index % len(by_remainder)]] += CENT
    else:
        for index in range(-missing):
            floored[by_remainder[-1 - index % len(by_remainder)]] -= CENT
    return {key: value * sign for key, value in floored.items()}


def statement_rows(lines: list[tuple], period: dt.date, is_final: bool) -> list[dict]:
    """Statement rows (the table `statements`) from the exact lines (accountant_id, line, currency, cost_metric,
    direct_cost, shared_cost, cost): each tenant's lines plus its 'total', in cents that add up."""
    by_tenant: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for line in lines:
        by_tenant[(line[0], line[2])].append(line)
    tenant_cents: dict[tuple[str, str], Decimal] = {}
    for currency in sorted({currency for _, currency in by_tenant}):
        totals = {key: sum((l[6] for l in rows), Decimal(0)) for key, rows in by_tenant.items() if key[1] == currency}
        tenant_cents.update(largest_remainder_cents(totals))
    rows = []
    for (accountant, currency), tenant_lines in sorted(by_tenant.items(), key=lambda item: (item[0][1], item[0][0])):
        metric = tenant_lines[0][3]
        cents = split_cents({l[1]: l[6] for l in tenant_lines}, tenant_cents[(accountant, currency)])
        for _, name, _, _, direct, shared, cost in sorted(tenant_lines, key=lambda l: l[1]):
            rows.append(dict(billing_period=period, accountant_id=accountant, line=name, currency=currency,
                             cost_metric=metric, direct_cost=direct, shared_cost=shared, cost=cost,
                             amount=cents[name], is_final=is_final))
        rows.append(dict(billing_period=period, accountant_id=accountant, line="total", currency=currency,
                         cost_metric=metric,
                         direct_cost=sum((l[4] for l in tenant_lines), Decimal(0)),
                         shared_cost=sum((l[5] for l in tenant_lines), Decimal(0)),
                         cost=sum((l[6] for l in tenant_lines), Decimal(0)),
                         amount=tenant_cents[(accountant, currency)], is_final=is_final))
    return rows


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "reconciliation_report", "cur_line_items"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "csv", "parquet"},
)
def statements(
    context: AssetExecutionContext, outputs_config: OutputsConfig, warehouse: BillingWarehouse,
    tenants: TenantRegistry,
) -> MaterializeResult:
    """Per tenant-month chargeback statement: one line per resource type and a 'total', exact cost (direct and
    shared) and the amount in cents by largest remainder, so that the tenants' cents add up to the in-scope cents.
    Writes the statements and the month's reconciliation report as CSV and Parquet to BILLING_EXPORT_URI."""
    period, _ = month_of(context)
    with warehouse.connect() as con:
        # no statement (nor export) from a month whose tables come from different deliveries
        require_upstream(con, period, "statements")  # else empty statements and exports replace the month's
        delivery = month_delivery(con, period, "reconciliation_report")
        is_final = cur_is_final(con, period)
        # only tenants of the registry get a statement; every other id is one 'unknown' statement
        with reporting_known_tenants(con, tenants, period):
            lines = con.execute(stage_sql("statements"), {"billing_period": period}).fetchall()
        statement_lines = [{**row, "delivery_id": delivery} for row in statement_rows(lines, period, bool(is_final))]
        staged = pa.Table.from_pylist(statement_lines, schema=arrow_schema("statements"))
        checks = guard("statements", period, {  # the table's blocking checks, before the commit
            "statement_cents_add_up": lambda relation: cents_problems(con, period, relation),
            "no_duplicate_statement_lines": lambda relation: duplicate_check(con, relation, STATEMENT_GRAIN, period)})
        rows = replace_month_with_rows(con, "statements", period, staged, verify=checks)
        in_scope = dict(con.execute(
            "SELECT currency, sum(cost) FROM tenant_costs WHERE billing_period = ? GROUP BY currency", [period]
        ).fetchall())
        sums = con.execute(
            """SELECT currency, sum(amount) FILTER (line = 'total')
               FROM statements WHERE billing_period = ? GROUP BY currency ORDER BY currency""",
            [period],
        ).fetchall()
        exported_statements = month_table(con, "statements", period, STATEMENT_ORDER)
        exported_report = month_table(con, "reconciliation_report", period, REPORT_ORDER)
        # written while the warehouse is held (DuckDB: one process at a time), so overlapping runs write their
        # files in the order they read the month: an older run's files never replace a newer run's
        location = outputs_config.export_location()
        exported = write_exports(location, "statements", period, exported_statements)
        exported += write_exports(location, "reconciliation_report", period, exported_report)

    metadata = {"dagster/row_count": MetadataValue.int(rows), "is_final": MetadataValue.bool(bool(is_final))}
    for currency, tenants_total in sums:
        metadata[f"statement_total/{currency}"] = MetadataValue.float(as_float(tenants_total))
        metadata[f"in_scope_cost/{currency}"] = str(in_scope[currency])
    columns = ["accountant_id", "currency", "direct_cost", "shared_cost", "amount"]
    totals = exported_statements.filter(pc.equal(exported_statements["line"], "total")).select(columns).to_pylist()
    metadata["tenants"] = MetadataValue.int(len({r["accountant_id"] for r in totals} - {"unattributed", NOT_A_TENANT}))
    # each tenant's statement amount (its cents) and the direct and shared parts of its exact cost, half up
    metadata["statements"] = MetadataValue.md(markdown_table(
        columns, [[r[c] for c in columns] for r in totals], {c: money_in(c) for c in columns[2:]}))
    metadata["exports"] = MetadataValue.md("\n".join(f"- `{uri}`" for uri in exported))
    context.log.info(f"{period:%Y-%m}: {len(totals)} statements; exported {exported}")
    return MaterializeResult(metadata=metadata)
