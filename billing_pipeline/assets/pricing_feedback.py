"""pricing_feedback: the unit cost each usage driver really had this month, against the application's constants."""


import json

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import cur_is_final, month_of, stage_sql
from billing_pipeline.assets.tenant_registry import reporting_known_tenants
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.checks.guard import guard
from billing_pipeline.checks.pricing_feedback import GRAIN as FEEDBACK_GRAIN
from billing_pipeline.exports import month_table, write_exports
from billing_pipeline.formatting import markdown_table, money_in, percent_in, quantity, unit_price
from billing_pipeline.lineage import month_delivery
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

ORDER = "service, driver, currency, accountant_id = 'total' DESC, accountant_id"


def suggested_pricing(pricing_text: str, suggestions: dict[tuple[str, str], object]) -> dict:
    """The pricing file with every driver's constant (the catalog's unless the file sets it) and the flagged ones
    replaced by the suggested ones (strings, as in the file)."""
    document = json.loads(pricing_text)
    current = parse_pricing(pricing_text, "BILLING_PRICING").driver_prices
    for (service, driver), price in sorted({**current, **suggestions}.items()):
        document.setdefault("drivers", {}).setdefault(service, {})[driver] = format(price.normalize(), "f")
    return document


FEEDBACK_COLUMNS = ["service", "resource_type", "driver", "currency", "accountant_id", "quantity", "actual_cost",
                    "bill_quantity", "recorded_quantity", "implied_unit_cost", "configured_unit_cost", "variance_pct",
                    "flagged", "suggested_unit_cost", "price_variance", "quantity_variance"]


def feedback_table(rows) -> str:
    """The month's feedback in the one number format: costs in cents, unit costs as exact as the bill, quantities
    trimmed (formatting.py); not through pandas, which prints a Decimal as a float (`0.000139644`) and NULL as nan."""
    def fmt(column):
        if column.endswith("unit_cost"):
            return lambda r: unit_price(r[column], r["currency"])
        if column.endswith(("_cost", "_variance")):
            return money_in(column)
        if column.endswith("quantity"):
            return lambda r: quantity(r[column])
        return percent_in(column)
    numeric = [c for c in FEEDBACK_COLUMNS if c not in ("service", "resource_type", "driver", "currency",
                                                         "accountant_id", "flagged")]
    records = rows.select(FEEDBACK_COLUMNS).to_pylist()
    return markdown_table(FEEDBACK_COLUMNS, [[r[c] for c in FEEDBACK_COLUMNS] for r in records],
                          {c: fmt(c) for c in numeric} | {"flagged": lambda r: "⚑ flagged" if r["flagged"] else ""})


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "usage_shares", "cur_line_items", "estimated_usage"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "csv", "parquet"},
)
def pricing_feedback(
    context: AssetExecutionContext, billing_config: BillingConfig, outputs_config: OutputsConfig,
    warehouse: BillingWarehouse, tenants: TenantRegistry,
) -> MaterializeResult:
    """Per service x usage driver ('total'): the unit cost the bill shows (the in-scope cost of the driver's usage
    types over their CUR usage amount), the pricing file's constant, the variance % and, where |variance| exceeds
    the threshold (10 %), a suggested new constant; per tenant: its evidence, the usage the application recorded,
    and its variance split into a price part and a quantity part. Exported as CSV and Parquet."""
    period, _ = month_of(context)
    pricing_text = billing_config.pricing_text()
    pricing = parse_pricing(pricing_text, "BILLING_PRICING")
    with warehouse.connect() as con:
        # no feedback (nor export) from a month whose tables come from different deliveries
        month_delivery(con, period, "tenant_costs")
        is_final = cur_is_final(con, period)
        con.register("driver_prices", pricing.driver_prices_table())
        con.register("estimate_operations", pricing.estimate_operations_table())
        try:
            with reporting_known_tenants(con, tenants, period):
                rows = con.replace_month_with_query(
                    "pricing_feedback", period, stage_sql("pricing_feedback"),
                    {"billing_period": period, "currency": pricing.currency, "is_final": is_final,
                     "threshold_pct": pricing.variance_threshold_pct, "cost_metric": billing_config.metric()},
                    verify=guard("pricing_feedback", period, {  # the table's blocking check, before the commit
                        "no_duplicate_pricing_feedback":
                            lambda relation: duplicate_check(con, relation, FEEDBACK_GRAIN, period)}),
                )
        finally:
            con.unregister("driver_prices")
            con.unregister("estimate_operations")
        export_rows = month_table(con, "pricing_feedback", period, ORDER)
        # written while the warehouse is held, as the statements' exports (an older run's never replace a newer's)
        exported = write_exports(outputs_config.export_location(), "pricing_feedback", period, export_rows)
    frame = export_rows.drop_columns(["billing_period"]).to_pandas()
    flagged = frame[frame["flagged"] & (frame["accountant_id"] == "total")]
    suggestions = {(r.service, r.driver): r.suggested_unit_cost for r in flagged.itertuples()}
    table = feedback_table(export_rows)
    context.log.info(f"{period:%Y-%m}: {len(flagged)} of {len(frame)} drivers over the threshold; exported {exported}")
    return MaterializeResult(
        metadata={
            "dagster/row_count": MetadataValue.int(rows),
            "flagged_drivers": MetadataValue.int(len(flagged)),
            "is_final": MetadataValue.bool(bool(is_final)),
            "feedback": MetadataValue.md(table),
            "suggested_pricing": MetadataValue.json(suggested_pricing(pricing_text, suggestions)),
            "exports": MetadataValue.md("\n".join(f"- `{uri}`" for uri in exported)),
        },
    )
