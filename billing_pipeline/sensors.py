"""A run for each month whose CUR delivery changed: new assemblyId, or other files / ETags under the month; and a
month-to-date refresh of the current month when new usage evidence (log exports, S3 Inventory) arrives."""


import datetime as dt
import hashlib
import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from billing_pipeline.assets.cur_line_items import DELIVERY_TAG
from billing_pipeline.jobs import billing_month_job, month_to_date_job
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.cur import discover
from billing_pipeline.readers.cur_types import CurNotReady
from billing_pipeline.resources.billing_config import BillingConfig


@sensor(job=billing_month_job, minimum_interval_seconds=300)
def cur_delivery_sensor(context: SensorEvaluationContext, billing_config: BillingConfig) -> SensorResult:
    """Watches the CUR bucket's manifests. The cursor maps each month to the delivery id last seen; a month whose
    delivery id changed gets one run (run key month:delivery, so a delivery is processed once), others nothing.
    A month whose delivery cannot be read (a manifest naming a missing key, two reports) gets one run per distinct
    problem, which fails naming the file (so it alerts like any failed run), and keeps its last load; the other
    months go on."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known_keys = set(billing_month_partitions.get_partition_keys())
    found = discover(billing_config.cur_location())
    run_requests = []
    for period, problem in found.problems.items():
        key = period.isoformat()
        if key not in known_keys:
            continue
        if isinstance(problem, CurNotReady):  # AWS is still writing it: a later tick sees it ready
            context.log.info(f"The CUR delivery of {period:%Y-%m} is not ready: {problem}")
            continue
        context.log.error(f"The CUR delivery of {period:%Y-%m} cannot be read: {problem}")
        problem_id = hashlib.sha256(str(problem).encode()).hexdigest()[:16]
        run_requests.append(RunRequest(run_key=f"{key}:unreadable:{problem_id}", partition_key=key,
                                       tags={"billing/trigger": "cur_delivery_sensor", "billing/cur_problem": problem_id}))
    for period, delivery in sorted(found.deliveries.items()):
        key = period.isoformat()
        if seen.get(key) == delivery.delivery_id:
            continue
        if key not in known_keys:
            # a month before the first partition, or after the current one (UTC): a manifest dated in the future
            # (it said BILLING_FIRST_MONTH for 2099-01 too, which no setting of it would load)
            why = (f"before BILLING_FIRST_MONTH ({min(known_keys)[:7]})" if key < min(known_keys) else
                   f"after the current month ({max(known_keys)[:7]}, UTC): a delivery dated in the future")
            context.log.warning(f"CUR delivery for {period:%Y-%m} is outside the partitions, {why}: not loaded")
            continue
        run_requests.append(
            RunRequest(
                run_key=f"{key}:{delivery.delivery_id}",
                partition_key=key,
                # cur_line_items loads this delivery or fails (never another one under the same run key)
                tags={DELIVERY_TAG: delivery.delivery_id, "billing/trigger": "cur_delivery_sensor"},
            )
        )
        seen[key] = delivery.delivery_id
    return SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))


def evidence_fingerprint(billing_config: BillingConfig) -> str:
    """What the usage evidence looks like from outside: every file under the log exports (unless the logs are read
    through the CloudWatch Logs API: the hourly schedule covers those) and the S3 Inventory, with size and
    modification time. A new or rewritten file changes it; nothing is read."""
    digest = hashlib.sha256()
    sources = [billing_config.s3_inventory_location()]
    logs = billing_config.logs_source()
    if not is_cloudwatch(logs):
        sources.insert(0, logs)
    for location in sources:
        for info in location.list_files():
            digest.update(f"{info.path}\t{info.size}\t{info.mtime_ns}\n".encode())
    return digest.hexdigest()


def is_cloudwatch(source) -> bool:
    return not hasattr(source, "list_files")


def evidence_run_request(cursor: str | None, fingerprint: str, now: dt.datetime) -> RunRequest | None:
    """One month_to_date refresh of the month of `now` per new state of the evidence, none while it is unchanged."""
    if cursor == fingerprint:
        return None
    month = now.date().replace(day=1).isoformat()
    if month not in set(billing_month_partitions.get_partition_keys(current_time=now)):
        return None
    return RunRequest(run_key=f"{month}:evidence:{fingerprint[:16]}", partition_key=month,
                      tags={"billing/trigger": "usage_evidence_sensor"})


# A tick only lists the evidence's files (0.1 s for a month of exports): every minute keeps the lag from a usage
# record to a live figure at the export's delay + a minute + one refresh (docs/realtime.md).
@sensor(job=month_to_date_job, minimum_interval_seconds=60)
def usage_evidence_sensor(context: SensorEvaluationContext, billing_config: BillingConfig) -> SensorResult:
    """Watches the log exports and the S3 Inventory; when anything there changed, refreshes the current month to
    date (usage_shares and month_to_date, not the CUR). The cursor is the evidence's fingerprint."""
    fingerprint = evidence_fingerprint(billing_config)
    request = evidence_run_request(context.cursor, fingerprint, dt.datetime.now(dt.timezone.utc))
    return SensorResult(run_requests=[request] if request else [], cursor=fingerprint)
