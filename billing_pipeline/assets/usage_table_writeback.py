"""usage_table_writeback: the attributed actual costs, written back into the application's usage table.

Off unless BILLING_WRITEBACK_TABLE names the DynamoDB table (the application's `tax-agent-usage`). Then every
tenant x service x day of the month with attributed cost becomes one item:

    accountant_id  (partition key)   the tenant
    timestamp      (sort key)        YYYY-MM-DDT00:00:00Z#cur#<service>   e.g. 2026-01-05T00:00:00Z#cur#AWSLambda
                                     (a day outside the billing month, which the CUR sometimes dates a line on:
                                     <month>-01T00:00:00Z#cur#<day>#<service>, within the month's keys)
    source = 'cur', actual_cost = true, amount (Number, exact), currency, cost_metric, month, usage_date,
    service, resource_type, operation = 'actual_cost', is_final, estimated_cost = 0

The key is a function of the tenant, the day and the service only, so a re-run overwrites the same items (a
PutItem replaces the whole item): never a duplicate. The sort key sorts with the application's own items of that
day and cannot collide with them (theirs are ISO timestamps without `#cur#`). `estimated_cost = 0` keeps code that
sums the table's estimates unaffected. Readers of the table's estimates must skip `source = 'cur'` items: the sort
key is no timestamp (billing_pipeline.readers.estimates does).
After writing, the month's `source = 'cur'` items of every tenant of the registry (and of any tenant the previous
run wrote) that this run did not produce are deleted: a restated month whose cost moved away from a tenant, day or
service leaves no stale item behind, even when the run that wrote it died before recording it in the warehouse.
A month whose tables come from different deliveries is refused before anything is written (billing_pipeline/lineage.py).
"""


import datetime as dt
from decimal import Decimal
from typing import NamedTuple

import pyarrow as pa
from boto3.dynamodb.conditions import Attr, Key
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, cur_is_final, month_of, stage_sql
from billing_pipeline.assets.tenant_registry import describe, load_registry
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.usage_table_writeback import GRAIN as WRITEBACK_GRAIN
from billing_pipeline.exports import arrow_schema
from billing_pipeline.lineage import month_delivery, require_upstream
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.output_lock import OutputLockTimeout, writeback_lock
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import Registry, TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse, replace_month_with_rows


def sort_key(usage_date: dt.date, service: str, period: dt.date) -> str:
    """The item's sort key. A day outside the billing month (the CUR dates some lines outside their period) is
    keyed under the month's first day, the day after the marker: it must not take the key of the other month's own
    item of that day, and the month's stale scan (its keys start YYYY-MM-) must find it."""
    if (usage_date.year, usage_date.month) != (period.year, period.month):
        return f"{period:%Y-%m}-01T00:00:00Z#cur#{usage_date:%Y-%m-%d}#{service}"
    return f"{usage_date:%Y-%m-%d}T00:00:00Z#cur#{service}"


def dynamodb_number(value: Decimal) -> Decimal:
    """The exact amount as a DynamoDB Number: the DECIMAL's trailing zeros dropped (1.2300000000 -> 1.23), 0 as 0."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text if text not in ("", "-", "-0") else "0")


def usage_item(row: dict, period: dt.date, is_final: bool) -> dict:
    """The DynamoDB item of one tenant x service x day."""
    return {
        "accountant_id": row["accountant_id"],
        "timestamp": row["timestamp"],
        "month": f"{period:%Y-%m}",
        "usage_date": row["usage_date"].isoformat(),
        "operation": "actual_cost",
        "service": row["service"],
        "resource_type": row["resource_type"],
        "source": "cur",
        "actual_cost": True,
        "amount": dynamodb_number(row["amount"]),
        "estimated_cost": Decimal(0),
        "currency": row["currency"],
        "cost_metric": row["cost_metric"],
        "is_final": bool(is_final),
    }


def month_cur_keys(table, accountant_id: str, period: dt.date) -> set[tuple[str, str]]:
    """The keys of the tenant's `source = 'cur'` items of the month (a Query, every page through boto3's
    paginator; the table resource's client takes the condition objects and returns plain values)."""
    pages = table.meta.client.get_paginator("query").paginate(
        TableName=table.name,
        KeyConditionExpression=Key("accountant_id").eq(accountant_id) & Key("timestamp").begins_with(f"{period:%Y-%m}-"),
        FilterExpression=Attr("source").eq("cur"),
        ConsistentRead=True,
    )
    return {(item["accountant_id"], item["timestamp"]) for page in pages for item in page.get("Items", [])}


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "cur_line_items", "tenant_registry"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "dynamodb"},
)
def usage_table_writeback(
    context: AssetExecutionContext, outputs_config: OutputsConfig, warehouse: BillingWarehouse, aws: AwsClients,
    tenants: TenantRegistry,
) -> MaterializeResult:
    """Writes each tenant's attributed actual cost per service and day into the application's usage table
    (BILLING_WRITEBACK_TABLE; off when unset): source='cur', actual_cost=true, amount as a DynamoDB Number, a
    deterministic key so re-runs overwrite and restatements delete what they no longer produce."""
    period, _ = month_of(context)
    table_name = outputs_config.writeback_table_name()
    if table_name is None:
        context.log.info("BILLING_WRITEBACK_TABLE is not set: nothing written back")
        return MaterializeResult(metadata={"status": "not configured (BILLING_WRITEBACK_TABLE is not set)",
                                           "items_written": MetadataValue.int(0)})

    # One write-back run at a time across processes (resources/output_lock.py), from reading the month to recording
    # what was written: a run that read an older delivery would delete a newer run's items as stale and put back
    # its own amounts, and the table of what was written would not say what the usage table holds.
    try:
        with writeback_lock(context.instance, warehouse.lock_anchor(), context.log):
            done = _write_month(period, table_name, warehouse, aws, tenants)
    except OutputLockTimeout as error:
        raise Failure(str(error)) from None
    rows = done.rows
    total = sum((r["amount"] for r in rows), Decimal(0))
    context.log.info(f"{period:%Y-%m}: {len(rows)} items written to {table_name}, {len(done.stale)} stale items "
                     "deleted")
    if done.left_alone:
        context.log.warning(f"{period:%Y-%m}: items written before for {', '.join(map(repr, done.left_alone))}, "
                            "outside the tenant registry now, are left as they are in the usage table")
    return MaterializeResult(metadata={
        "status": f"written to {table_name}",
        "dagster/row_count": MetadataValue.int(done.recorded),
        "items_written": MetadataValue.int(len(rows)),
        "items_deleted": MetadataValue.int(len(done.stale)),
        "tenants": MetadataValue.int(len({r["accountant_id"] for r in rows})),
        "amount_written": MetadataValue.float(as_float(total)),
        "unattributed_not_written": MetadataValue.float(as_float(done.unattributed)),
        "held_out_tenants": MetadataValue.json([describe(a, *done.registry.classify(a)) for a in done.held_out]),
        "left_outside_registry": MetadataValue.json(done.left_alone),
    })


class WrittenBack(NamedTuple):
    """What a write-back run did: the items put, the stale keys deleted, the rows recorded in the warehouse, the
    registry it went by, the ids held out of it, the ids written before and left alone, the unattributed cost."""
    rows: list[dict]
    stale: set[tuple[str, str]]
    recorded: int
    registry: Registry
    held_out: list[str]
    left_alone: list[str]
    unattributed: Decimal | None


def _write_month(period: dt.date, table_name: str, warehouse: BillingWarehouse, aws: AwsClients,
                 tenants: TenantRegistry) -> WrittenBack:
    """The month's items put, the stale ones deleted, what was written recorded (under the write-back lock)."""
    with warehouse.connect() as con:
        # nothing written from a month whose tables come from different deliveries (a run killed after
        # cur_line_items took a new one): the old delivery's costs would go out marked with the new one's finality
        month_delivery(con, period, "tenant_costs")
        if not con.execute("SELECT 1 FROM tenant_costs WHERE billing_period = ? LIMIT 1", [period]).fetchall():
            # no tenant cost deletes every item of the month below: right for a month without application cost,
            # not for one whose tenant_costs never ran (a new warehouse, or this asset run on its own)
            require_upstream(con, period, "usage_table_writeback", through="tenant_costs")
        is_final = cur_is_final(con, period)
        columns = ["accountant_id", "usage_date", "service", "resource_type", "currency", "cost_metric", "amount"]
        produced = [dict(zip(columns, r)) for r in
                    con.execute(stage_sql("usage_table_writeback"), {"billing_period": period}).fetchall()]
        # only tenants of the registry get items in the application's table (a tag such as `<img ...>` would
        # otherwise become an accountant there); their cost stays in tenant_costs (assets/tenant_registry.py)
        registry = load_registry(tenants, con)
        held_out = sorted({r["accountant_id"] for r in produced if r["accountant_id"] not in registry.known})
        produced = [r for r in produced if r["accountant_id"] in registry.known]
        previous_accountants = {a for (a,) in con.execute(
            "SELECT DISTINCT accountant_id FROM usage_table_writeback WHERE billing_period = ? AND table_name = ?",
            [period, table_name]).fetchall()}
        (unattributed,) = con.execute(
            "SELECT sum(cost) FROM tenant_costs WHERE billing_period = ? AND accountant_id = 'unattributed'", [period]
        ).fetchall()[0]

    rows = []
    for row in produced:
        rows.append({"billing_period": period, "table_name": table_name,
                     "timestamp": sort_key(row["usage_date"], row["service"], period), **row})
    keys = [(r["accountant_id"], r["timestamp"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise Failure(f"{period:%Y-%m}: one tenant x service x day has cost in more than one currency; the usage "
                      "table's key (accountant_id, timestamp) cannot hold both")

    table = aws.dynamodb_table(table_name)
    with table.batch_writer(overwrite_by_pkeys=["accountant_id", "timestamp"]) as batch:
        for row in rows:
            batch.put_item(Item=usage_item(row, period, bool(is_final)))
    wanted = set(keys)
    stale: set[tuple[str, str]] = set()
    # every tenant of the registry, not only those the warehouse says were written: a run that died after its puts
    # recorded nothing. Never an id outside it: one held out as a look-alike of another (which one is the tenant is
    # not known), or one that left the registry after its items were written (their cost history in the
    # application's table is left as it is, as invoicing leaves its Stripe items)
    for accountant in sorted(registry.known - set(registry.ambiguous)):
        stale |= month_cur_keys(table, accountant, period) - wanted
    with table.batch_writer(overwrite_by_pkeys=["accountant_id", "timestamp"]) as batch:
        for accountant, timestamp in sorted(stale):
            batch.delete_item(Key={"accountant_id": accountant, "timestamp": timestamp})

    staged = pa.Table.from_pylist(rows, schema=arrow_schema("usage_table_writeback"))
    with warehouse.connect() as con:
        written = replace_month_with_rows(con, "usage_table_writeback", period, staged, verify=guard(
            "usage_table_writeback", period, {  # the table's blocking check, before the commit
                "no_duplicate_writeback_items":
                    lambda relation: duplicate_check(con, relation, WRITEBACK_GRAIN, period)}))
    # ids this table's items were written for before that are outside the registry now: left as they are
    left_alone = sorted(previous_accountants - registry.known)
    return WrittenBack(rows, stale, written, registry, held_out, left_alone, unattributed)
