"""Daily refresh: the current month, and the previous one until AWS has finalized it. Hourly: the current month
to date, from the usage evidence alone."""


import datetime as dt

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from billing_pipeline.jobs import billing_month_job, month_to_date_job
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.cur import discover
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import BillingWarehouse


def months_to_refresh(today: dt.date, previous_is_final: bool) -> list[dt.date]:
    current = today.replace(day=1)
    previous = (current - dt.timedelta(days=1)).replace(day=1)
    return [current] if previous_is_final else [previous, current]


@schedule(job=billing_month_job, cron_schedule="0 6 * * *", execution_timezone="UTC")
def daily_billing_refresh(context: ScheduleEvaluationContext, warehouse: BillingWarehouse,
                          billing_config: BillingConfig):
    """Every day at 06:00 UTC: rebuild the current month, and the previous month while it has no invoice id
    (AWS keeps restating a month for days after it ends), as the warehouse of BILLING_ENGINE holds it. A month the
    CUR bucket holds nothing of yet (the first days of a month, before AWS's first delivery) is left to the CUR
    sensor, which runs it when that delivery lands (the hourly month_to_date_job estimates it meanwhile): its run
    could only fail, every morning, for want of a delivery."""
    today = context.scheduled_execution_time.astimezone(dt.timezone.utc).date()
    previous = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    known_keys = set(billing_month_partitions.get_partition_keys(current_time=context.scheduled_execution_time))
    months = [m for m in months_to_refresh(today, warehouse.month_is_final(previous)) if m.isoformat() in known_keys]
    try:
        found = discover(billing_config.cur_location())  # an unreadable month is run: it fails naming the problem
    except Exception as error:  # noqa: BLE001 - the bucket unreadable as a whole (a stray file, S3 down)
        # the months are run as before the look: each fails naming the problem (a run failure alerts; a failed
        # tick is not retried, so the day's refresh of both months would be lost without a word but the tick's)
        context.log.warning(f"The CUR bucket could not be read ({error}): the months are run, to fail naming it")
        found = None
    waiting = [] if found is None else [m for m in months if m not in found.deliveries and m not in found.problems]
    if waiting:
        context.log.info(f"No CUR delivery of {', '.join(f'{m:%Y-%m}' for m in waiting)} yet: the CUR sensor runs "
                         "it when AWS delivers (month_to_date_job estimates it meanwhile)")
        months = [m for m in months if m not in waiting]
    if not months:
        return SkipReason(f"no billing month to refresh on {today}"
                          + (" (no CUR delivery of it yet)" if waiting else ""))
    return [
        RunRequest(run_key=f"{month.isoformat()}@{today.isoformat()}", partition_key=month.isoformat(),
                   tags={"billing/trigger": "daily_schedule"})
        for month in months
    ]


@schedule(job=month_to_date_job, cron_schedule="10 * * * *", execution_timezone="UTC")
def hourly_month_to_date(context: ScheduleEvaluationContext):
    """Every hour at :10 (the logs of the hour just ended have mostly arrived): the current month's usage_shares
    and month_to_date, without the CUR. One run per month and hour."""
    at = context.scheduled_execution_time.astimezone(dt.timezone.utc)
    month = at.date().replace(day=1)
    if month.isoformat() not in set(billing_month_partitions.get_partition_keys(current_time=at)):
        return SkipReason(f"{month:%Y-%m} is not a billing month partition")
    return RunRequest(run_key=f"{month.isoformat()}@{at:%Y-%m-%dT%H}", partition_key=month.isoformat(),
                      tags={"billing/trigger": "hourly_month_to_date"})
