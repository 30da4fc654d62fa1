"""A run for each month whose CUR delivery changed: new assemblyId, or other files / ETags under the month."""


import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from billing_pipeline.assets.cur_line_items import DELIVERY_TAG
from billing_pipeline.jobs import billing_month_job
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.readers.cur import find_deliveries
from billing_pipeline.resources.billing_config import BillingConfig


@sensor(job=billing_month_job, minimum_interval_seconds=300)
def cur_delivery_sensor(context: SensorEvaluationContext, billing_config: BillingConfig) -> SensorResult:
    """Watches the CUR bucket's manifests. The cursor maps each month to the delivery id last seen; a month whose
    delivery id changed gets one run (run key month:delivery, so a delivery is processed once), others nothing."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known_keys = set(billing_month_partitions.get_partition_keys())
    run_requests = []
    for period, delivery in sorted(find_deliveries(billing_config.cur_location()).items()):
        key = period.isoformat()
        if seen.get(key) == delivery.delivery_id:
            continue
        if key not in known_keys:
            context.log.warning(f"CUR delivery for {period:%Y-%m} is outside the partitions (BILLING_FIRST_MONTH)")
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
