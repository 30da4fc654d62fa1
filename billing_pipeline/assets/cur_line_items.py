"""cur_line_items: the month's current CUR delivery, normalized, replacing whatever the month held before."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import as_float, markdown, month_of
from billing_pipeline.engines import Engine
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.cur import CurDelivery, CurFormatError, find_deliveries, insert_line_items
from billing_pipeline.readers.cur_validation import validate_line_items
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse
from billing_pipeline.settings import BY_VARIABLE
from billing_pipeline.storage import Location


def load_delivery(engine: Engine, location: Location, delivery: CurDelivery, period) -> int:
    """Replace the month's line items by the delivery's, normalized file by file (so an error names its file).
    On DuckDB the CUR reader streams the files straight into the table inside the replacing transaction; on Spark
    Spark reads them itself and runs the same normalization (readers/cur_spark.py), so a month is not bounded by
    one machine."""

    def refuse_other_months(table: str) -> None:
        ((foreign,),) = engine.execute(
            f"SELECT count(*) FROM {table} WHERE delivery_id = ? AND billing_period <> ?",
            [delivery.delivery_id, period],
        ).fetchall()
        if foreign:
            raise CurFormatError(f"{delivery.manifest or location.uri}: {foreign} line items of the delivery for "
                                 f"{period:%Y-%m} belong to another billing period")

    if engine.name == "duckdb":
        def insert() -> None:
            insert_line_items(engine.con, location, delivery, "cur_line_items")
            refuse_other_months("cur_line_items")
            validate_line_items(engine, "cur_line_items", period)  # inside the transaction: a failure rolls back

        return engine.replace_month_with("cur_line_items", period, insert)
    from billing_pipeline.readers.cur_spark import stage_line_items as stage_in_spark

    stage_in_spark(engine, location, delivery, "delivery_line_items")
    try:
        refuse_other_months("delivery_line_items")
        validate_line_items(engine, "delivery_line_items", period)
        return engine.replace_month("cur_line_items", period, "delivery_line_items")
    finally:
        engine.drop("delivery_line_items")


@asset(
    partitions_def=billing_month_partitions,
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "s3"},
    check_specs=[
        AssetCheckSpec("one_delivery", asset="cur_line_items", blocking=True,
                       description="All of the month's rows come from one delivery: a restatement replaced, never added."),
    ],
)
def cur_line_items(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """One row per line item of the month's current CUR delivery (legacy CSV/Parquet, Athena Parquet, CUR 2.0,
    FOCUS), normalized to one schema. Only the files the current manifest names are read; the month's rows are
    replaced in one transaction, so a bad delivery leaves the last good one in place."""
    period, _ = month_of(context)
    location = billing_config.cur_location()
    try:
        deliveries = find_deliveries(location)
    except CurFormatError as error:
        raise Failure(str(error)) from error
    delivery = deliveries.get(period)
    if delivery is None:
        found = ", ".join(sorted(f"{month:%Y-%m}" for month in deliveries)) or "none"
        wrong = BY_VARIABLE["BILLING_CUR_URI"].check(location.uri)  # e.g. the folder does not exist
        raise Failure(f"No CUR delivery for {period:%Y-%m} under BILLING_CUR_URI={location.uri}"
                      + (f": {wrong}" if wrong else f" (months found: {found})"))

    with warehouse.connect() as con:
        try:
            rows = load_delivery(con, location, delivery, period)
        except CurFormatError as error:
            raise Failure(str(error)) from error
        application = billing_config.application_tag()
        summary = con.execute(
            """SELECT count(DISTINCT delivery_id), count(DISTINCT source_file), sum(unblended_cost),
                      sum(unblended_cost) FILTER (application = $application),
                      sum(amortized_cost), bool_or(invoice_id IS NOT NULL), string_agg(DISTINCT currency, ', '),
                      string_agg(DISTINCT invoice_id, ', '),
                      -- accountant_id tags that are never a tenant (reserved word, control character)
                      count(*) FILTER (accountant_id = 'unattributed')
               FROM cur_line_items WHERE billing_period = $period""",
            {"period": period, "application": application},
        ).fetchall()[0]
        (deliveries_in_month, files, unblended, in_scope, amortized, is_final, currencies, invoices,
         invalid_tenant_tags) = summary
        by_type = markdown(
            con,
            """SELECT line_item_type, currency, count(*) AS line_items, sum(unblended_cost) AS unblended_cost,
                      sum(amortized_cost) AS amortized_cost, sum(net_amortized_cost) AS net_amortized_cost
               FROM cur_line_items WHERE billing_period = $period GROUP BY ALL ORDER BY line_item_type""",
            {"period": period},
            limit=100,
        )

    context.log.info(f"{period:%Y-%m}: {rows} line items from {files} file(s) of delivery {delivery.delivery_id}")
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "delivery_id": delivery.delivery_id,
            "layout": delivery.layout,
            "report": delivery.report,
            "manifest": MetadataValue.path(location.display(delivery.manifest)) if delivery.manifest else "none",
            "files": MetadataValue.int(files),
            "status": delivery.status or "n/a",
            "is_final": MetadataValue.bool(bool(is_final)),
            "invoice_ids": invoices or "none (provisional)",
            "currency": currencies or "",
            "unblended_total": MetadataValue.float(as_float(unblended)),
            "unblended_total_exact": str(unblended),
            "amortized_total": MetadataValue.float(as_float(amortized)),
            "in_scope_unblended": MetadataValue.float(as_float(in_scope)),
            "out_of_scope_unblended": MetadataValue.float(as_float((unblended or 0) - (in_scope or 0))),
            "by_line_item_type": by_type,
            "invalid_accountant_id_tags": MetadataValue.int(int(invalid_tenant_tags or 0)),
        },
        check_results=[
            AssetCheckResult(
                check_name="one_delivery",
                passed=deliveries_in_month == 1,
                metadata={"deliveries_in_month": MetadataValue.int(deliveries_in_month)},
            )
        ],
    )
