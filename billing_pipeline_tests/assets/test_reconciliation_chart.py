"""The plots on the reconciliation_report materialization (PNG in markdown metadata): estimated vs actual per
tenant and the month-over-month trend, drawn from the exact cents of the table; the report table in the one number
format; one definition of a flagged tenant; the warning for a known tenant with no data."""

import datetime as dt
from decimal import Decimal as D

import duckdb
from dagster import DagsterInstance, materialize

from billing_pipeline.assets.reconciliation_report import (
    accountants_without_data,
    estimated_vs_actual,
    month_over_month,
    reconciliation_report,
)
from billing_pipeline.checks.reconciliation_report import (
    flagged_accountants,
    flagged_rows,
)
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl
from billing_pipeline_tests.assets.plot_support import png_of

DEC, JAN = dt.date(2025, 12, 1), dt.date(2026, 1, 1)
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        for accountant, service, resource_type, cost in [("acc-1", "AWSLambda", "lambda", "1.104"),
                                                         ("acc-1", "AmazonS3", "s3", "0.50"),
                                                         ("acc-2", "AmazonS3", "s3", "3.005"),
                                                         ("acc-3", "AmazonS3", "s3", "0.001")]:
            con.execute("INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', 'direct', NULL, NULL, 'USD', "
                        "'unblended', ?, NULL)", [JAN, JAN, accountant, service, resource_type, D(cost)])
        for accountant, resource_type, cost in [("acc-1", "lambda", "1.00"), ("acc-1", "s3", "0.56"),
                                                ("acc-2", "s3", "2.00"), ("acc-3", "s3", "0.001")]:
            con.execute("INSERT INTO estimated_usage VALUES (?, ?, ?, 'op', ?, 1, ?, 1)",
                        [JAN, accountant, resource_type, JAN, D(cost)])
        # December, already in the warehouse: acc-1 and acc-9 (who has no data in January)
        for accountant, cost in [("acc-1", "2.345"), ("acc-9", "7.10")]:
            con.execute("""INSERT INTO reconciliation_report (billing_period, accountant_id, resource_type, currency,
                           estimated_cost, actual_cost, variance, variance_pct, flagged, is_final)
                           VALUES (?, ?, 'total', 'USD', ?, ?, 0, 0, false, true)""", [DEC, accountant, D(cost), D(cost)])
    return path


def test_materialization_carries_plots_of_the_exact_cents(tmp_path):
    path = warehouse(tmp_path)
    result = materialize([reconciliation_report],
                         resources={"billing_config": BillingConfig(), "warehouse": DuckDBWarehouse(database=str(path)),
                                    "tenants": TenantRegistry()},
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata

    with duckdb.connect(str(path), read_only=True) as con:
        (plot,) = estimated_vs_actual(con, JAN, "provisional")
        (trend,) = month_over_month(con, JAN)
        # one definition of a flagged tenant: acc-1's lambda row (+9.4 %) is not, its s3 row (-12 %) is; acc-2 +33 %
        assert flagged_accountants(con, JAN) == ["acc-1", "acc-2"]
        assert flagged_rows(con, JAN).metadata["flagged_accountants"].value == "acc-1, acc-2"
    assert metadata["flagged_tenants"].value == 2 and metadata["flagged_accountants"].value == "acc-1, acc-2"

    # estimated half up to cents; actual in the statements' cents (largest remainder: 1.604 + 3.005 + 0.001 = 4.61,
    # floors 1.60 + 3.00 + 0.00 = 4.60, the missing cent to acc-2's remainder .005)
    assert plot.categories == ("acc-1", "acc-2", "acc-3")
    assert plot.series == {"estimated": (D("1.56"), D("2.00"), D("0.00")),
                           "actual": (D("1.60"), D("3.01"), D("0.00"))}
    assert metadata["estimated_vs_actual"].value == plot.markdown()
    assert png_of(plot.markdown()) == plot.png
    assert plot.title == "Estimated vs actual per tenant, 2026-01 (provisional)"

    # the trend: December's statement cents (2.345 + 7.10 = 9.445 -> 9.45: acc-1 2.35, acc-9 7.10), then January
    assert trend.categories == ("2025-12", "2026-01")
    assert trend.series == {"acc-1": (D("2.35"), D("1.60")), "acc-2": (D("0.00"), D("3.01")),
                            "acc-3": (D("0.00"), D("0.00")), "acc-9": (D("7.10"), D("0.00"))}
    assert metadata["month_over_month"].value == trend.markdown()
    png_of(trend.markdown())

    # the table in the one format: money half up with currency, totals in statement cents, signed percentages
    report = metadata["report"].value
    assert "| acc-1 | lambda | USD | 1.00 USD | 1.10 USD | 0.10 USD | +9.4 % |  |" in report
    assert "| acc-1 | s3 | USD | 0.56 USD | 0.50 USD | -0.06 USD | -12.0 % | ⚑ flagged |" in report
    assert "| acc-2 | total | USD | 2.00 USD | 3.01 USD | 1.01 USD | +33.4 % | ⚑ flagged |" in report
    assert "nan" not in report and "0.000" not in report

    # acc-9 had December and has nothing in January
    assert metadata["accountants_without_data"].value == "acc-9"
    with duckdb.connect(str(path)) as con:
        # a tenant that starts in February is not missing from January; a known tenant of the registry is
        con.execute("""INSERT INTO reconciliation_report (billing_period, accountant_id, resource_type, currency,
                       estimated_cost, actual_cost, variance, variance_pct, flagged, is_final)
                       VALUES (DATE '2026-02-01', 'acc-new', 'total', 'USD', 1, 1, 0, 0, false, false)""")
        con.execute("INSERT INTO tenant_registry VALUES (?, 'acc-7', 'USD', 'known', NULL, 0, 0, 'test')", [JAN])
        assert accountants_without_data(con, JAN) == ["acc-7", "acc-9"]


def test_plots_are_deterministic(tmp_path):
    path = warehouse(tmp_path)
    with duckdb.connect(str(path)) as con:
        con.execute("""INSERT INTO reconciliation_report (billing_period, accountant_id, resource_type, currency,
                       estimated_cost, actual_cost, variance, variance_pct, flagged, is_final)
                       VALUES (?, 'acc-1', 'total', 'USD', 1, 2, 1, 50, true, false)""", [JAN])
        first, second = estimated_vs_actual(con, JAN, "provisional"), estimated_vs_actual(con, JAN, "provisional")
    assert first[0].png == second[0].png and first[0].series == {"estimated": (D("1.00"),), "actual": (D("2.00"),)}
