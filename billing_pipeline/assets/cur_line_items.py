"""cur_line_items: the month's current CUR delivery, normalized, replacing whatever the month held before."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import as_float, markdown, month_of
from billing_pipeline.checks.cur_line_items import deliveries_in_month, duplicate_line_items
from billing_pipeline.checks.guard import guard
from billing_pipeline.engines import Engine
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.cur import CurDelivery, CurFormatError, discover
from billing_pipeline.readers.cur_validation import validate_line_items
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse
from billing_pipeline.settings import BY_VARIABLE
from billing_pipeline.storage import Location

# The run tag naming the delivery a run is for: the sensor sets it; a run without it loads the current delivery.
DELIVERY_TAG = "billing/delivery_id"


def files_stamp(location: Location, delivery: CurDelivery) -> dict[str, tuple]:
    """(size, modification time) of the delivery's manifest and files, as the filesystem says now."""
    paths = [*delivery.files, *([delivery.manifest] if delivery.manifest else [])]
    return {info.path: (info.type, info.size, info.mtime_ns) for info in location.filesystem.get_file_info(paths)}


def load_delivery(engine: Engine, location: Location, delivery: CurDelivery, period) -> int:
    """Replace the month's line items by the delivery's, normalized file by file (so an error names its file).
    On DuckDB the CUR reader streams the files straight into the table inside the replacing transaction; on Spark
    Spark reads them itself and runs the same normalization (readers/cur_spark.py), so a month is not bounded by
    one machine. Either way the rows are refused before they replace the month if any is of another month."""

    def refuse_empty_or_other_months(table: str) -> None:
        # one scan of the delivery's rows for both refusals
        ((rows, foreign),) = engine.execute(
            f"SELECT count(*), count(*) FILTER (billing_period <> ?) FROM {table} WHERE delivery_id = ?",
            [period, delivery.delivery_id],
        ).fetchall()
        # A report with no line items (header-only files: a month with no charges yet) would empty a month that
        # had some; never replace the month with nothing, say so instead of failing one_delivery with 0 deliveries
        if not rows:
            where = location.display(delivery.manifest) if delivery.manifest else location.uri
            raise CurFormatError(f"{where}: the delivery {delivery.delivery_id} for "
                                 f"{period:%Y-%m} holds no line items ({len(delivery.files)} file(s), headers only): "
                                 "nothing loaded, the month keeps its last load; it loads once AWS delivers its "
                                 "line items")
        if foreign:
            raise CurFormatError(f"{delivery.manifest or location.uri}: {foreign} line items of the delivery for "
                                 f"{period:%Y-%m} belong to another billing period")

    # the table's blocking checks, on the new rows before the commit (checks/guard.py)
    checks = guard("cur_line_items", period, {
        "one_delivery": lambda relation: deliveries_in_month(engine, period, relation),
        "no_duplicate_line_items": lambda relation: duplicate_line_items(engine, period, relation),
    })

    def verify(relation: str) -> None:
        refuse_empty_or_other_months(relation)
        validate_line_items(engine, relation, period)  # before the commit: a failure keeps the month
        checks(relation)
        # AWS replacing the files in place (an "overwrite" report or export) while they were read: some files
        # were read from one delivery, some from the next, and would be kept as the first one's
        changed = sorted(path for path, stamp in files_stamp(location, delivery).items() if before.get(path) != stamp)
        if changed:
            raise CurFormatError(f"{', '.join(location.display(p) for p in changed[:3])}: changed while the delivery "
                                 f"{delivery.delivery_id} of {period:%Y-%m} was read (AWS replaced it): nothing "
                                 "loaded, the month keeps its last load; run the month again")

    before = files_stamp(location, delivery)
    return engine.replace_month_with_cur("cur_line_items", period, location, delivery, verify)


@asset(
    partitions_def=billing_month_partitions,
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "s3"},
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
        discovery = discover(location)
    except CurFormatError as error:
        raise Failure(str(error)) from error
    if period in discovery.problems:
        raise Failure(str(discovery.problems[period])) from discovery.problems[period]
    for month, problem in discovery.problems.items():  # another month's: it does not stop this one
        context.log.warning(f"The CUR delivery of {month:%Y-%m} cannot be read (its runs fail): {problem}")
    deliveries = discovery.deliveries
    delivery = deliveries.get(period)
    if delivery is None:
        found = ", ".join(sorted(f"{month:%Y-%m}" for month in deliveries)) or "none"
        wrong = BY_VARIABLE["BILLING_CUR_URI"].check(location.uri)  # e.g. the folder does not exist
        raise Failure(f"No CUR delivery for {period:%Y-%m} under BILLING_CUR_URI={location.uri}"
                      + (f": {wrong}" if wrong else f" (months found: {found})"))
    requested = context.run.tags.get(DELIVERY_TAG)
    if requested is not None and requested != delivery.delivery_id:
        # AWS replaced the delivery after the sensor saw it: loading the new one would be a run that its run key
        # misnames; the sensor's next tick requests a run for the new delivery.
        raise Failure(f"This run is for CUR delivery {requested} of {period:%Y-%m} ({DELIVERY_TAG}), but the current "
                      f"delivery under {location.uri} is {delivery.delivery_id}: nothing loaded, the month's last "
                      f"load kept; the sensor requests a run for the current delivery")

    with warehouse.connect() as con:
        try:
            rows = load_delivery(con, location, delivery, period)
        except CurFormatError as error:
            raise Failure(str(error)) from error
        application = billing_config.application_tag()
        summary = con.execute(
            """SELECT count(DISTINCT source_file), sum(unblended_cost),
                      sum(unblended_cost) FILTER (application = $application),
                      sum(amortized_cost), bool_or(invoice_id IS NOT NULL), string_agg(DISTINCT currency, ', '),
                      string_agg(DISTINCT invoice_id, ', '),
                      -- accountant_id tags that are never a tenant (reserved word, control character)
                      count(*) FILTER (accountant_id = 'unattributed')
               FROM cur_line_items WHERE billing_period = $period""",
            {"period": period, "application": application},
        ).fetchall()[0]
        files, unblended, in_scope, amortized, is_final, currencies, invoices, invalid_tenant_tags = summary
        by_type = markdown(
            con,
            """SELECT line_item_type, currency, count(*) AS line_items, sum(unblended_cost) AS unblended_cost,
                      sum(amortized_cost) AS amortized_cost, sum(net_amortized_cost) AS net_amortized_cost
               FROM cur_line_items WHERE billing_period = $period GROUP BY ALL ORDER BY line_item_type""",
            {"period": period},
            limit=100,
        )
        uncounted = discounts_only_in_column(con, period, application)

    context.log.info(f"{period:%Y-%m}: {rows} line items from {files} file(s) of delivery {delivery.delivery_id}")
    for currency, amount in uncounted:
        context.log.warning(
            f"{period:%Y-%m}: the application's line items state {amount} {currency} of discounts in their discount "
            "column while the delivery has no discount line items: a CUR 2.0 export without manual discount "
            "compatibility. Costs are before those discounts (but under BILLING_COST_METRIC=net_amortized, whose "
            "net columns hold them); enable the export's manual discount compatibility (docs/attribution-rules.md)")
    return MaterializeResult(
        metadata={
            **{f"discounts_only_in_column/{currency}": format(amount, "f") for currency, amount in uncounted},
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
    )


def discounts_only_in_column(con, period, application: str) -> list[tuple[str, object]]:
    """Per currency, the discounts the application's line items state in their discount column
    (discount/TotalDiscount) when the month has no discount line item at all: legacy CUR writes each discount both
    ways (the column is informational there), a CUR 2.0 export without manual discount compatibility may hold them
    in the column only, and then no metric but net_amortized (net columns) includes them."""
    return con.execute(
        """SELECT currency, sum(column_discount) FROM cur_line_items
           WHERE billing_period = $period AND application = $application AND column_discount <> 0
             AND NOT EXISTS (SELECT 1 FROM cur_line_items d WHERE d.billing_period = $period
                             AND d.line_item_type LIKE '%Discount')
           GROUP BY currency ORDER BY currency""",
        {"period": period, "application": application},
    ).fetchall()
