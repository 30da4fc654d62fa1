"""month_from_one_delivery: the month's tables were all computed from cur_line_items' one delivery.

A run killed between two steps leaves cur_line_items on the new delivery and the tables after it on the old one
(each asset replaces its month in its own transaction). The check fails naming the first table to re-run.
"""

import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, PreviewWarning, asset_check

from billing_pipeline.lineage import CHAIN, deliveries_by_table, problem
from billing_pipeline.partitions import billing_month_partitions, billing_period_of
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse


def _month_from_one_delivery(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    # The run's month (a check is not partitioned here: Dagster's partitioned checks are a preview), or every
    # month the warehouse holds when the check runs on its own.
    partition = context.run.tags.get("dagster/partition")
    with warehouse.connect() as con:
        months = ([billing_period_of(partition)] if partition else
                  [m for (m,) in con.execute("SELECT DISTINCT billing_period FROM cur_line_items ORDER BY 1").fetchall()])
        problems = [reason for month in months if (reason := problem(con, month, CHAIN[-1]))]
        found = deliveries_by_table(con, months[-1]) if len(months) == 1 else {}
    return AssetCheckResult(
        passed=not problems,
        metadata={
            "problems": MetadataValue.text("\n".join(problems) or "none"),
            **{table: MetadataValue.text(", ".join(ids) or "no rows") for table, ids in found.items()},
        },
    )


with warnings.catch_warnings():
    # Partitioned checks are a Dagster preview; the check needs the run's month, so it is partitioned like its asset.
    warnings.simplefilter("ignore", PreviewWarning)
    month_from_one_delivery = asset_check(
        name="month_from_one_delivery",
        asset="statements",
        partitions_def=billing_month_partitions,
        blocking=True,
        pool=WAREHOUSE_POOL,
        description="cur_line_items, hourly_cost_facts, tenant_costs, reconciliation_report and statements of the "
                    "month all come from one CUR delivery (a run that died between two steps leaves them mixed).",
    )(_month_from_one_delivery)
