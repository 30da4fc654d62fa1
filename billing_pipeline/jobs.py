"""The one job: the whole asset chain for one billing month."""

from dagster import AssetSelection, define_asset_job

from billing_pipeline.partitions import billing_month_partitions

billing_month_job = define_asset_job(
    name="billing_month_job",
    selection=AssetSelection.groups("billing"),
    partitions_def=billing_month_partitions,
    description="Reads the month's CUR, logs and estimates and rebuilds every table of that month.",
)
