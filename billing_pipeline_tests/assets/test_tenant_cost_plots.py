"""tenant_costs' plots: each tenant's cost by service and by day, in cents half up of the exact rows."""

import datetime as dt
from decimal import Decimal as D

import duckdb

from billing_pipeline.assets.tenant_costs import cost_plots
from billing_pipeline.resources.warehouse import warehouse_ddl
from billing_pipeline_tests.assets.plot_support import png_of

FEB = dt.date(2026, 2, 1)


def test_cost_by_service_and_by_day_are_the_cents_of_the_table():
    with duckdb.connect() as con:
        con.execute(warehouse_ddl())
        for day, accountant, service, cost in [(1, "acc-1", "AWSLambda", "1.005"), (1, "acc-1", "AWSLambda", "0.0049"),
                                               (2, "acc-1", "AmazonS3", "2.50"), (28, "acc-2", "AmazonS3", "0.125"),
                                               (28, "acc-2", None, "-0.10")]:
            con.execute("INSERT INTO tenant_costs VALUES (?, ?, ?, ?, 'lambda', 'u', 'Usage', 'direct', NULL, NULL, "
                        "'USD', 'amortized', ?, NULL)", [FEB, FEB + dt.timedelta(days=day - 1), accountant, service,
                                                         D(cost)])
        plots = cost_plots(con, FEB)
    assert sorted(plots) == ["cost_by_day", "cost_by_service"]
    by_service = plots["cost_by_service"]
    assert by_service.categories == ("acc-1", "acc-2")
    # 1.005 + 0.0049 = 1.0099 -> 1.01; the account-level credit (no service) its own series, below zero
    assert by_service.series == {"(account level)": (D("0.00"), D("-0.10")), "AWSLambda": (D("1.01"), D("0.00")),
                                 "AmazonS3": (D("2.50"), D("0.13"))}
    by_day = plots["cost_by_day"]
    assert by_day.categories == tuple(f"{d:02d}" for d in range(1, 29))  # February 2026: 28 days
    assert by_day.series["acc-1"][:3] == (D("1.01"), D("2.50"), D("0.00"))
    assert by_day.series["acc-2"][27] == D("0.03") and sum(by_day.series["acc-2"]) == D("0.03")
    assert by_day.title == "Cost by day per tenant, 2026-02"
    for plot in plots.values():
        assert png_of(plot.markdown()) == plot.png


def test_cost_by_day_of_a_provisional_month_stops_at_its_last_day_with_cost():
    with duckdb.connect() as con:
        con.execute(warehouse_ddl())
        con.execute("INSERT INTO tenant_costs VALUES (?, ?, 'acc-1', 'AWSLambda', 'lambda', 'u', 'Usage', 'direct', "
                    "NULL, NULL, 'USD', 'amortized', 2, NULL)", [FEB, dt.date(2026, 2, 21)])
        by_day = cost_plots(con, FEB)["cost_by_day"]
    assert by_day.categories == tuple(f"{d:02d}" for d in range(1, 22))
    assert by_day.series == {"acc-1": (D("0.00"),) * 20 + (D("2.00"),)}
