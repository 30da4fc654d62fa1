"""The estimated-vs-actual chart on the reconciliation_report materialization (a text bar chart in markdown), next
to the report table and the numeric totals that Dagster plots over partitions."""

import datetime as dt
from decimal import Decimal as D

import duckdb
from dagster import DagsterInstance, MetadataValue, materialize

from billing_pipeline.assets.reconciliation_report import estimated_vs_actual_chart, reconciliation_report
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl

JAN = dt.date(2026, 1, 1)


def test_chart_scales_bars_to_the_largest_amount():
    chart = estimated_vs_actual_chart(
        [("acc-1", "USD", D("10"), D("12.5"), D("25.0000"), True),
         ("acc-22", "USD", D("5"), D("4.75"), D("-5.0000"), False),
         ("unattributed", "USD", D("0"), D("-1"), None, True)],
        "Estimated vs actual per tenant, 2026-01 (provisional)", width=10)
    assert chart == (
        "**Estimated vs actual per tenant, 2026-01 (provisional)**\n\n"
        "```\n"
        "                  ░ estimated  █ actual  (USD; negative amounts have no bar)\n"
        "acc-1         est ░░░░░░░░   10.00\n"
        "              act ██████████ 12.50  +25.0%  ⚑ flagged\n"
        "acc-22        est ░░░░        5.00\n"
        "              act ████        4.75  -5.0%\n"
        "unattributed  est             0.00\n"
        "              act            -1.00  n/a  ⚑ flagged\n"
        "```"
    )
    assert estimated_vs_actual_chart([], "T") == "**T**\n\n_no rows_"


def test_materialization_carries_chart_table_and_totals(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        for accountant, service, resource_type, cost in [("acc-1", "AWSLambda", "lambda", "1.10"),
                                                         ("acc-2", "AmazonS3", "s3", "3.00")]:
            con.execute("INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', 'direct', NULL, NULL, 'USD', "
                        "'unblended', ?, NULL)", [JAN, JAN, accountant, service, resource_type, D(cost)])
        for accountant, resource_type, cost in [("acc-1", "lambda", "1.00"), ("acc-2", "s3", "2.00")]:
            con.execute("INSERT INTO estimated_usage VALUES (?, ?, ?, 'op', ?, 1, ?, 1)",
                        [JAN, accountant, resource_type, JAN, D(cost)])
    result = materialize([reconciliation_report],
                         resources={"billing_config": BillingConfig(), "warehouse": DuckDBWarehouse(database=str(path))},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    chart = metadata["estimated_vs_actual"]
    assert isinstance(chart, MetadataValue.md("").__class__)
    assert chart.value == estimated_vs_actual_chart(
        [("acc-1", "USD", D("1.00"), D("1.10"), D("9.0909"), False),
         ("acc-2", "USD", D("2.00"), D("3.00"), D("33.3333"), True)],
        "Estimated vs actual per tenant, 2026-01 (provisional)")
    assert "act ████████████████████████████████████████ 3.00  +33.3%  ⚑ flagged" in chart.value
    assert "| acc-2           | total" in metadata["report"].value
    assert (metadata["estimated_total"].value, metadata["actual_total"].value) == (3.0, 4.1)
    assert metadata["flagged_tenants"].value == 1
