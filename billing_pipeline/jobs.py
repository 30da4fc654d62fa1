"""The jobs: the whole asset chain for one billing month, and the real-time refresh between CUR deliveries."""

from dagster import AssetSelection, define_asset_job

billing_month_job = define_asset_job(
    name="billing_month_job",
    selection=AssetSelection.groups("billing"),
    description="Reads the month's CUR, logs and estimates and rebuilds every table of that month.",
)

# The CUR is not read: usage_shares re-reads only the evidence of the hours after the CUR's coverage (the files
# that can hold it) and month_to_date re-estimates them; tenant_costs (the covered hours) stays as the last CUR run
# left it. published_billing then republishes the month (the same statements, the new month to date), so that
# GET /billing and the dashboard are as fresh as the evidence, not as the last CUR run.
REFRESH_AFTER_COVERAGE = {"ops": {"usage_shares": {"config": {"after_coverage": True}}}}
month_to_date_job = define_asset_job(
    name="month_to_date_job",
    selection=AssetSelection.assets("usage_shares", "month_to_date", "published_billing"),
    config=REFRESH_AFTER_COVERAGE,
    description="Refreshes the month to date from new usage evidence, without re-reading the CUR, and republishes it.",
)
