"""estimated_usage: the application's own estimates, from its usage table."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, markdown, month_of, stage_sql
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.estimated_usage import GRAIN as ESTIMATES_GRAIN
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.estimates import read_estimates, usage_table_files
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse


@asset(partitions_def=billing_month_partitions, pool=WAREHOUSE_POOL, group_name="billing", kinds={"duckdb"})
def estimated_usage(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """The estimated cost the application recorded at request time (DynamoDB `tax-agent-usage`, an export of it
    or JSON Lines), per tenant x resource type x operation x day."""
    period, next_period = month_of(context)
    source = billing_config.usage_source()
    spark = warehouse.engine_name() == "spark"
    # the folder listed once: the files read are those listed, and the exports still being written beside a
    # finished one, left out, are said so (none when reading the live table)
    paths, unfinished = (None, []) if isinstance(source, DynamoDBUsageTable) else usage_table_files(source)
    # DuckDB: read here, before the warehouse file (one writer at a time) is opened
    estimates = None if spark else read_estimates(source, period, paths)
    with warehouse.connect() as con:
        if spark:  # read and parsed by the executors, aggregated by the stage SQL there: never collected
            con.register_estimates("estimates", source, period, paths)
        else:
            con.register("estimates", estimates)
        checks = guard("estimated_usage", period, {  # the table's blocking check, before the commit
            "no_duplicate_estimates": lambda relation: duplicate_check(con, relation, ESTIMATES_GRAIN, period)})
        try:
            rows = con.replace_month_with_query(
                "estimated_usage", period, stage_sql("estimated_usage"), {"billing_period": period, "next_period": next_period},
                verify=checks,
            )
        finally:
            con.unregister("estimates")
        (total, records) = con.execute(
            "SELECT sum(estimated_cost), sum(records) FROM estimated_usage WHERE billing_period = ?", [period]
        ).fetchall()[0]
        by_type = markdown(
            con,
            """SELECT resource_type, count(DISTINCT accountant_id) AS tenants, sum(records) AS records,
                      sum(estimated_cost) AS estimated_cost
               FROM estimated_usage WHERE billing_period = $billing_period GROUP BY ALL ORDER BY resource_type""",
            {"billing_period": period},
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "usage_records": MetadataValue.int(int(records or 0)),
            "estimated_total": MetadataValue.float(as_float(total)),
            "by_resource_type": by_type,
            "unfinished_exports_skipped": MetadataValue.int(len(unfinished)),
            **({"unfinished_exports": MetadataValue.md("\n".join(f"- `{source.display(f)}`" for f in unfinished))}
               if unfinished else {}),
        }
    )
