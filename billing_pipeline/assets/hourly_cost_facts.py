"""hourly_cost_facts: line items summed to the grain at which cost is attributed."""


import datetime as dt
import math

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, markdown, month_of, stage_sql
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.hourly_cost_facts import facts_match_line_items
from billing_pipeline.lineage import month_delivery, require_upstream, stamp_params, stamped
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse
from billing_pipeline.sql import sql_string

# Line items aggregated in one statement at most: at 1 GB of DuckDB memory one GROUP BY of 10M line items at this
# grain spills and succeeds, one of 100M runs out of memory (the hash table's directory alone grows with the groups).
SLICE_LINE_ITEMS = 10_000_000


# Product codes whose lines the reader read as another service (cur_line_items.sql: a Marketplace model's tokens are
# AmazonBedrock's), each with that service: a handful of codes, looked up once rather than joined in every slice
# (a join there doubled the step's time and memory).
READ_AS_SQL = """
    SELECT product_code, min(service) FROM cur_line_items
    WHERE billing_period = ? AND product_code <> service
    GROUP BY product_code HAVING count(DISTINCT service) = 1 ORDER BY product_code"""


def facts_sql(con, period: dt.date) -> str:
    """hourly_cost_facts.sql with its `{service_read_as}`: the service each such product code is read as."""
    read_as = con.execute(READ_AS_SQL, [period]).fetchall()
    branches = " ".join(f"WHEN {sql_string(code)} THEN {sql_string(service)}" for code, service in read_as)
    service = f"CASE product_code {branches} ELSE service END" if read_as else "service"
    return stage_sql("hourly_cost_facts").replace("{service_read_as}", service)


def month_slices(period: dt.date, next_period: dt.date, line_items: int) -> list[dict]:
    """[slice_start, slice_end) ranges of usage start covering every instant (the first and last are open-ended,
    for lines dated outside the month), cut at whole days, about SLICE_LINE_ITEMS line items each."""
    days = (next_period - period).days
    count = max(1, min(days, math.ceil(line_items / SLICE_LINE_ITEMS)))
    cuts = [dt.datetime.combine(period, dt.time()) + dt.timedelta(days=days * i // count) for i in range(1, count)]
    bounds = [dt.datetime(1, 1, 1)] + cuts + [dt.datetime(9999, 12, 31)]
    return [{"slice_start": a, "slice_end": b} for a, b in zip(bounds, bounds[1:])]


@asset(
    partitions_def=billing_month_partitions,
    deps=["cur_line_items"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
)
def hourly_cost_facts(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """Cost and usage per hour x service x usage type x resource x owner tags, with `in_scope` marking the
    application's cost (tag `application` = BILLING_APPLICATION). Lines longer than an hour keep their span."""
    period, next_period = month_of(context)
    params = {"billing_period": period, "application": billing_config.application_tag()}
    with warehouse.connect() as con:
        require_upstream(con, period, "hourly_cost_facts")  # a month never loaded is no month without cost
        ((line_items,),) = con.execute(
            "SELECT count(*) FROM cur_line_items WHERE billing_period = ?", [period]).fetchall()
        slices = month_slices(period, next_period, line_items)
        delivery = month_delivery(con, period, "cur_line_items")
        # before the commit: the new facts add up to the line items, or the month stays as it was
        facts_add_up = guard("hourly_cost_facts", period, {
            "facts_add_up_to_line_items": lambda relation: facts_match_line_items(con, period, relation)})
        rows = con.replace_month_with_slices("hourly_cost_facts", period, stamped(facts_sql(con, period)),
                                             [stamp_params({**params, **s}, delivery) for s in slices],
                                             verify=facts_add_up)
        in_scope, out_of_scope = con.execute(
            """SELECT sum(unblended_cost) FILTER (in_scope), sum(unblended_cost) FILTER (NOT in_scope)
               FROM hourly_cost_facts WHERE billing_period = ?""",
            [period],
        ).fetchall()[0]
        by_service = markdown(
            con,
            """SELECT service, in_scope, currency, count(*) AS facts, sum(line_items) AS line_items,
                      sum(unblended_cost) AS unblended_cost, sum(amortized_cost) AS amortized_cost
               FROM hourly_cost_facts WHERE billing_period = $billing_period
               GROUP BY ALL ORDER BY in_scope DESC, unblended_cost DESC""",
            {"billing_period": period},
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "in_scope_unblended": MetadataValue.float(as_float(in_scope)),
            "out_of_scope_unblended": MetadataValue.float(as_float(out_of_scope)),
            "by_service": by_service,
        },
    )
