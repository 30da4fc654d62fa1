import datetime as dt

from dagster import build_schedule_context

from billing_pipeline.resources.warehouse import BillingWarehouse
from billing_pipeline.schedules import daily_billing_refresh, months_to_refresh


def test_previous_month_is_refreshed_until_final():
    today = dt.date(2026, 2, 3)
    assert months_to_refresh(today, previous_is_final=False) == [dt.date(2026, 1, 1), dt.date(2026, 2, 1)]
    assert months_to_refresh(today, previous_is_final=True) == [dt.date(2026, 2, 1)]


def test_schedule_requests_current_and_unfinished_previous_month(tmp_path):
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc),
        resources={"warehouse": BillingWarehouse(database=str(tmp_path / "missing.duckdb"))},
    )
    requests = daily_billing_refresh(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-01-01", "2026-01-01@2026-02-03"), ("2026-02-01", "2026-02-01@2026-02-03")]


def test_schedule_skips_a_previous_month_that_is_final(tmp_path):
    warehouse = BillingWarehouse(database=str(tmp_path / "warehouse.duckdb"))
    with warehouse.connect() as con:
        con.execute(
            """INSERT INTO cur_line_items (billing_period, usage_start, usage_end, line_item_type, currency,
                   unblended_cost, amortized_cost, invoice_id, source_file, delivery_id)
               VALUES (DATE '2026-01-01', TIMESTAMP '2026-01-05', TIMESTAMP '2026-01-05 01:00', 'Usage', 'USD',
                       1, 1, '123456789', 'x.parquet', 'assembly-1')"""
        )
    context = build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 2, 3, 6, tzinfo=dt.timezone.utc), resources={"warehouse": warehouse}
    )
    assert [r.partition_key for r in daily_billing_refresh(context)] == ["2026-02-01"]
