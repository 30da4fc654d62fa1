"""The one job: the whole asset chain for one billing month."""

from dagster import AssetSelection, define_asset_job

billing_month_job = define_asset_job(
    name="billing_month_job",
    selection=AssetSelection.groups("billing"),
    description="Reads the month's CUR, logs and estimates and rebuilds every table of that month.",
)
