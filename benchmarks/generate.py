"""A realistic billing month at benchmark sizes (1M-100M CUR line items), fast and in bounded memory.

    python -m benchmarks.generate --out data/bench/10m --rows 10000000

`billing_pipeline.sample_data.generate_month` is the generator with an oracle (exact expected answers), but it is
built for correctness, not size: it holds the whole CUR as one Arrow table (~0.5 KB per line item, so 5 GB at
10M), loops over every request in Python, and its padding is a handful of EC2 instances rather than ~20k
resources, with only the tagged line items of a few tenants. This module writes the same layouts (DESIGN.md,
"Inputs") without an oracle, vectorized with numpy/pyarrow, one Parquet file (500k rows) at a time:

- `cur/`: legacy CUR, Athena Parquet layout (`cur/tax-demo-cur/tax-demo-cur/year=2026/month=1/*.snappy.parquet`,
  `cost_and_usage_data_status/`, the `20260101-20260201/tax-demo-cur-Manifest.json` manifest naming the files),
  the columns of `sample_data_formats.CUR_COLUMNS`. Contents: `resources` resources (default ~20k at 10M) of
  EC2/EBS/RDS/Lambda/DynamoDB/S3/CloudWatch/ElastiCache, each line one resource x usage type x hour, spread over
  every hour of the month; 30% of the resources carry the application tag and an accountant_id (direct cost of
  one of `tenants` tenants), 10% belong to another application, 30% carry only cost_center/environment tags, the
  rest none. The application's shared resources (3 Lambda functions, 3 DynamoDB tables, the documents bucket, its
  log group) bill hourly from the same invocations the logs carry. About 1 line in 2000 is Tax, Credit or Fee
  (monthly), some of them in scope.
- `logs/`: CloudWatch Logs exports (`exportedlogs/<task id>/<function>/<day>/[$LATEST]<n>/000000.gz`), for every
  invocation START, one application JSON line (requestId + accountant_id), DynamoDB ConsumedCapacity lines (one
  or two per invocation, object or list), END and the REPORT line; 1% of the invocations are ownerless pings.
- `inventory/`: daily S3 Inventory snapshots of the documents bucket (objects under `clients/<accountant_id>/`).
- `usage/tax-agent-usage.jsonl`: the application's estimates per tenant x day x operation.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import gzip
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_pipeline import sample_data_formats as fmt

APPLICATION = "tax-demo"
PAYER = "123456789012"
APP_ACCOUNT = "111122223333"
ACCOUNTS = np.array([APP_ACCOUNT, "444455556666", "555566667777", "666677778888", "777788889999"], dtype=object)
REGION = "us-east-1"
REPORT = "tax-demo-cur"
PREFIX = "cur"
FUNCTIONS = ["tax-agent-api", "tax-agent-worker", "tax-agent-auth"]
FUNCTION_MEMORY = np.array([1024, 2048, 512])
TABLES = ["tax-agent-usage", "tax-agent-sessions", "tax-agent-audit"]
DOCS_BUCKET = "tax-agent-documents"
FILE_ROWS = 500_000
HOUR_MS = 3_600_000
NS = uuid.UUID("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")

# service, product name, family, [(usage type, operation, pricing unit, rate, typical amount)], weight
SERVICES = [
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance",
     [("USE1-BoxUsage:m5.large", "RunInstances", "Hrs", 0.096, 1.0),
      ("USE1-EBS:VolumeUsage.gp3", "CreateVolume-Gp3", "GB-Mo", 0.08, 0.14),
      ("USE1-DataTransfer-Out-Bytes", "RunInstances", "GB", 0.09, 0.4)], 40),
    ("AmazonRDS", "Amazon Relational Database Service", "Database Instance",
     [("USE1-InstanceUsage:db.r5.large", "CreateDBInstance:0014", "Hrs", 0.25, 1.0),
      ("USE1-RDS:GP2-Storage", "CreateDBInstance:0014", "GB-Mo", 0.115, 0.3)], 8),
    ("AWSLambda", "AWS Lambda", "Serverless",
     [("USE1-Lambda-GB-Second", "Invoke", "Lambda-GB-Second", 0.0000166667, 4000.0),
      ("USE1-Request", "Invoke", "Requests", 0.0000002, 2000.0)], 14),
    ("AmazonDynamoDB", "Amazon DynamoDB", "Amazon DynamoDB PayPerRequest Throughput",
     [("USE1-ReadRequestUnits", "PayPerRequestThroughput", "ReadRequestUnits", 0.00000025, 30000.0),
      ("USE1-WriteRequestUnits", "PayPerRequestThroughput", "WriteRequestUnits", 0.00000125, 8000.0)], 10),
    ("AmazonS3", "Amazon Simple Storage Service", "Storage",
     [("USE1-TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 0.023, 0.5),
      ("USE1-Requests-Tier1", "PutObject", "Requests", 0.000005, 300.0),
      ("USE1-Requests-Tier2", "GetObject", "Requests", 0.0000004, 2000.0)], 14),
    ("AmazonCloudWatch", "AmazonCloudWatch", "Data Payload",
     [("USE1-DataProcessing-Bytes", "PutLogEvents", "GB", 0.5, 0.02)], 8),
    ("AmazonElastiCache", "Amazon ElastiCache", "Cache Instance",
     [("USE1-NodeUsage:cache.m5.large", "CreateCacheCluster:0002", "Hrs", 0.156, 1.0)], 6),
]


# Real CUR files are wide: the workshop sample (../shared/samples) has 120-126 columns, most of them product
# attributes that the pipeline never reads. These are its columns beyond `sample_data_formats.CUR_COLUMNS`, so the
# benchmark's files are as wide as AWS's and a reader that loads whole rows pays what it would pay on real data.
# Values: per service (below), else '' as in AWS's Parquet files.
WIDE_COLUMNS = [
    "product_availability", "product_capacitystatus", "product_category", "product_clock_speed",
    "product_current_generation", "product_database_engine", "product_dedicated_ebs_throughput",
    "product_deployment_option", "product_description", "product_durability", "product_ecu", "product_edition",
    "product_engine_code", "product_enhanced_networking_supported", "product_event_type", "product_free_query_types",
    "product_from_location", "product_from_location_type", "product_group", "product_group_description",
    "product_instance_family", "product_instance_type_family", "product_license_model", "product_location_type",
    "product_max_iops_burst_performance", "product_max_iopsvolume", "product_max_throughputvolume",
    "product_max_volume_size", "product_memory", "product_message_delivery_frequency",
    "product_message_delivery_order", "product_min_volume_size", "product_network_performance",
    "product_normalization_size_factor", "product_operating_system", "product_physical_processor",
    "product_pre_installed_sw", "product_processor_architecture", "product_processor_features", "product_queue_type",
    "product_servicename", "product_storage", "product_storage_class", "product_storage_media",
    "product_subscription_type", "product_tenancy", "product_to_location", "product_to_location_type",
    "product_transfer_type", "product_vcpu", "product_version", "product_volume_type",
    "pricing_lease_contract_length", "pricing_offering_class", "pricing_purchase_option", "pricing_rate_id",
    "reservation_end_time", "reservation_modification_status", "reservation_normalized_units_per_reservation",
    "reservation_number_of_reservations", "reservation_start_time", "reservation_subscription_id",
    "reservation_total_reserved_normalized_units", "reservation_total_reserved_units",
    "reservation_units_per_reservation", "reservation_unused_normalized_unit_quantity",
    "reservation_unused_quantity", "reservation_upfront_value",
]
WIDE_TAG_COLUMNS = ["resource_tags_user_department", "resource_tags_user_name", "resource_tags_user_workload"]
_REGION_ATTRS = {"product_location_type": "AWS Region"}
PRODUCT_ATTRIBUTES = {
    "AmazonEC2": {
        **_REGION_ATTRS, "product_servicename": "Amazon Elastic Compute Cloud", "product_instance_family":
        "General purpose", "product_instance_type_family": "m5", "product_vcpu": "2", "product_memory": "8 GiB",
        "product_operating_system": "Linux", "product_tenancy": "Shared", "product_physical_processor":
        "Intel Xeon Platinum 8175", "product_clock_speed": "3.1 GHz", "product_network_performance":
        "Up to 10 Gigabit", "product_processor_architecture": "64-bit", "product_current_generation": "Yes",
        "product_ecu": "10", "product_storage": "EBS only", "product_capacitystatus": "Used",
        "product_pre_installed_sw": "NA", "product_license_model": "No License required",
        "product_normalization_size_factor": "4", "product_dedicated_ebs_throughput": "Up to 2120 Mbps",
        "product_enhanced_networking_supported": "Yes", "product_processor_features":
        "Intel AVX; Intel AVX2; Intel AVX512; Intel Turbo", "product_volume_type": "General Purpose",
        "product_max_volume_size": "16 TiB", "product_storage_media": "SSD-backed", "pricing_rate_id": "2213574853"},
    "AmazonRDS": {
        **_REGION_ATTRS, "product_servicename": "Amazon Relational Database Service", "product_database_engine":
        "PostgreSQL", "product_deployment_option": "Single-AZ", "product_instance_family": "Memory optimized",
        "product_vcpu": "2", "product_memory": "16 GiB", "product_engine_code": "14", "product_license_model":
        "No license required", "product_network_performance": "Up to 10 Gigabit", "product_current_generation":
        "Yes", "product_storage": "EBS Only", "product_physical_processor": "Intel Xeon Platinum 8175",
        "product_normalization_size_factor": "4", "pricing_rate_id": "1845520112"},
    "AWSLambda": {**_REGION_ATTRS, "product_servicename": "AWS Lambda", "product_group": "AWS-Lambda-Duration",
                  "product_group_description": "Invocation duration", "pricing_rate_id": "3108814413"},
    "AmazonDynamoDB": {**_REGION_ATTRS, "product_servicename": "Amazon DynamoDB", "product_group": "DDB-ReadUnits",
                       "product_group_description": "DynamoDB PayPerRequest Read Request Units",
                       "pricing_rate_id": "2847562291"},
    "AmazonS3": {**_REGION_ATTRS, "product_servicename": "Amazon Simple Storage Service", "product_availability":
                 "99.99%", "product_durability": "99.999999999%", "product_storage_class": "General Purpose",
                 "product_volume_type": "Standard", "product_group": "S3-API-Tier1", "pricing_rate_id": "1006531442"},
    "AmazonCloudWatch": {**_REGION_ATTRS, "product_servicename": "AmazonCloudWatch", "product_group":
                         "Ingested Logs", "product_event_type": "DataProcessing-Bytes", "pricing_rate_id": "2281733307"},
    "AmazonElastiCache": {**_REGION_ATTRS, "product_servicename": "Amazon ElastiCache", "product_engine_code":
                          "redis", "product_instance_family": "Standard", "product_vcpu": "2", "product_memory":
                          "6.38 GiB", "product_network_performance": "Up to 10 Gigabit",
                          "product_current_generation": "Yes", "pricing_rate_id": "1730495527"},
}
WIDE_SCHEMA = pa.schema(list(fmt.CUR_SCHEMA) + [pa.field(n, pa.string()) for n in WIDE_COLUMNS + WIDE_TAG_COLUMNS])


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime, int]:
    start = dt.datetime.strptime(month[:7], "%Y-%m")
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + dt.timedelta(days=days), days * 24


def epoch_ms(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1))


def _strings(values) -> pa.Array:
    return pa.array(list(values), pa.string())


def _fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """An (n, width) uint8 matrix of ASCII -> a StringArray of n strings, without a Python loop."""
    n, width = chars.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(np.ascontiguousarray(chars).tobytes()))


HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random UUID-shaped strings (8-4-4-4-12 hex)."""
    digits = HEX[rng.integers(0, 16, size=(n, 32), dtype=np.uint8)]
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    for src, dst in ((slice(0, 8), slice(0, 8)), (slice(8, 12), slice(9, 13)), (slice(12, 16), slice(14, 18)),
                     (slice(16, 20), slice(19, 23)), (slice(20, 32), slice(24, 36))):
        chars[:, dst] = digits[:, src]
    return _fixed_width_strings(chars)


def join(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays and scalars."""
    return pc.binary_join_element_wise(*[p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.scalar(p)
                                         for p in parts], "")


def money(values: np.ndarray) -> np.ndarray:
    return np.round(values, 10)


class Plan:
    """Everything about the month that is not per line item: resources, tenants, invocations."""

    def __init__(self, rows: int, month: str, tenants: int, resources: int | None, invocations: int | None,
                 seed: int):
        self.rows, self.month, self.seed = rows, month, seed
        self.start, self.end, self.hours = month_bounds(month)
        self.start_ms = epoch_ms(self.start)
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.tenants = np.array([f"acct-{i + 1:04d}" for i in range(tenants)], dtype=object)
        self.n_extra = max(30, rows // 2000)  # Tax / Credit / Fee
        self.n_shared = 0  # set by shared_lines
        self.invocations = invocations if invocations is not None else max(200, rows // 20)
        self.n_resources = resources or int(min(20_000, max(50, rows // 500)))

        # resources: service, owner tags
        n = self.n_resources
        weights = np.array([s[4] for s in SERVICES], dtype=float)
        self.res_service = rng.choice(len(SERVICES), size=n, p=weights / weights.sum())
        kind = rng.integers(0, 10, size=n)  # 0-2 tenant's, 3 other app, 4-6 cost-center only, 7-9 untagged
        self.res_kind = kind
        self.res_tenant = rng.integers(0, tenants, size=n)
        self.res_account = np.where(kind <= 2, 0, rng.integers(1, len(ACCOUNTS), size=n))
        self.res_scale = rng.lognormal(0.0, 0.8, size=n)
        ids = []
        for i, s in enumerate(self.res_service):
            service = SERVICES[s][0]
            owner = self.tenants[self.res_tenant[i]] if kind[i] <= 2 else f"r{i:05d}"
            if service in ("AmazonEC2", "AmazonElastiCache"):
                ids.append(f"i-{i:08x}{uuid.uuid5(NS, str(i)).hex[:9]}")
            elif service == "AmazonRDS":
                ids.append(f"arn:aws:rds:{REGION}:{ACCOUNTS[self.res_account[i]]}:db:db-{owner}-{i}")
            elif service == "AWSLambda":
                ids.append(f"arn:aws:lambda:{REGION}:{ACCOUNTS[self.res_account[i]]}:function:fn-{owner}-{i}")
            elif service == "AmazonDynamoDB":
                ids.append(f"arn:aws:dynamodb:{REGION}:{ACCOUNTS[self.res_account[i]]}:table/t-{owner}-{i}")
            elif service == "AmazonS3":
                ids.append(f"bucket-{owner}-{i}")
            else:
                ids.append(f"arn:aws:logs:{REGION}:{ACCOUNTS[self.res_account[i]]}:log-group:/app/{owner}/{i}")
        self.res_id = _strings(ids)
        short = np.array([SERVICES[s][0].removeprefix("Amazon").removeprefix("AWS").lower() for s in range(len(SERVICES))],
                         dtype=object)
        self.res_name = np.where(kind <= 6, short[self.res_service] + "-" + np.arange(n).astype(str), "")
        self.res_department = np.select([kind <= 2, kind == 3, kind <= 6], ["tax", "payroll", "platform"], "")
        self.res_workload = np.select([kind <= 2, kind <= 6], ["tax-agent", "shared-services"], "")

        # invocations of the shared functions: time, tenant (Zipf-like activity), function, durations
        k = self.invocations
        activity = 1.0 / np.arange(1, tenants + 1) ** 0.8
        activity = rng.permutation(activity / activity.sum())
        self.inv_time = np.sort(self.start_ms + rng.integers(0, self.hours * HOUR_MS - 5_000, size=k))
        owner = rng.choice(tenants, size=k, p=activity)
        self.inv_owner = np.where(rng.random(k) < 0.01, -1, owner)  # -1: an ownerless ping
        self.inv_function = rng.choice(3, size=k, p=[0.7, 0.2, 0.1])
        self.inv_duration = np.round(np.clip(rng.lognormal(np.log(400), 0.9, size=k), 2, 25_000), 2)
        self.inv_billed = np.ceil(self.inv_duration).astype(np.int64)
        self.inv_memory = FUNCTION_MEMORY[self.inv_function]
        # DynamoDB: a read on tax-agent-usage for every owned invocation; a write on sessions for 40%
        owned = self.inv_owner >= 0
        self.inv_read_half = np.where(owned, rng.integers(1, 10, size=k), 0)  # units x 2
        self.inv_write_half = np.where(owned & (rng.random(k) < 0.4), 2 * rng.integers(1, 3, size=k), 0)
        self.inv_audit_half = np.where(owned & (rng.random(k) < 0.15), 2, 0)  # batched with the write
        self.inv_hour = (self.inv_time - self.start_ms) // HOUR_MS


# ------------------------------------------------------------------------------------------------------------
# CUR


def _usage_chunk(plan: Plan, lo: int, hi: int) -> dict[str, object]:
    """Line items lo..hi of the generic resources: resource r = i mod R, one usage type x hour per line."""
    i = np.arange(lo, hi, dtype=np.int64)
    R = plan.n_resources
    r = i % R
    slot = i // R
    hour = (slot + r * 37) % plan.hours
    svc = plan.res_service[r]
    k = slot // plan.hours  # which of the resource's usage types (the next one every full month)
    n = len(i)
    utype = np.empty(n, dtype=object)
    oper = np.empty(n, dtype=object)
    unit = np.empty(n, dtype=object)
    rate = np.zeros(n)
    amount = np.zeros(n)
    service = np.empty(n, dtype=object)
    product = np.empty(n, dtype=object)
    family = np.empty(n, dtype=object)
    rng = np.random.default_rng([plan.seed, lo])
    for s, (code, name, fam, types, _w) in enumerate(SERVICES):
        m = svc == s
        if not m.any():
            continue
        t = (k[m] + r[m]) % len(types)
        service[m], product[m], family[m] = code, name, fam
        utype[m] = np.array([x[0] for x in types], dtype=object)[t]
        oper[m] = np.array([x[1] for x in types], dtype=object)[t]
        unit[m] = np.array([x[2] for x in types], dtype=object)[t]
        rate[m] = np.array([x[3] for x in types])[t]
        amount[m] = np.array([x[4] for x in types])[t]
    amount = np.round(amount * plan.res_scale[r] * rng.uniform(0.5, 1.5, size=n), 6)
    start = plan.start_ms + hour * HOUR_MS
    kind = plan.res_kind[r]
    tenant = plan.tenants[plan.res_tenant[r]]
    return {
        "start": start, "end": start + HOUR_MS, "type": np.full(n, "Usage", dtype=object),
        "account": ACCOUNTS[plan.res_account[r]], "service": service, "product": product, "family": family,
        "usage_type": utype, "operation": oper, "pricing_unit": unit, "rate": rate, "amount": amount,
        "cost": money(amount * rate), "resource": plan.res_id.take(pa.array(r)),
        "accountant_id": np.where(kind <= 3, tenant, ""),
        "application": np.where(kind <= 2, APPLICATION, np.where(kind == 3, "payroll-demo", "")),
        "environment": np.where(kind <= 6, np.where(kind % 2 == 0, "prod", "dev"), ""),
        "cost_center": np.where(kind <= 6, np.where(kind <= 2, "CC-1001", "CC-3003"), ""),
        "name": plan.res_name[r], "department": plan.res_department[r], "workload": plan.res_workload[r],
    }


def shared_lines(plan: Plan) -> dict[str, object]:
    """The application's shared resources, billed hourly from the same invocations the logs carry."""
    H = plan.hours
    cols: dict[str, list] = {k: [] for k in ("start", "end", "service", "usage_type", "operation", "pricing_unit",
                                             "rate", "amount", "resource", "family", "product")}

    def add(hours, amounts, service, usage_type, operation, unit, rate, resource, product, family, span=1):
        hours = np.asarray(hours)
        n = len(hours)
        cols["start"].append(plan.start_ms + hours * HOUR_MS)
        cols["end"].append(plan.start_ms + (hours + span) * HOUR_MS)
        cols["amount"].append(np.asarray(amounts, dtype=float))
        for key, value in (("service", service), ("usage_type", usage_type), ("operation", operation),
                           ("pricing_unit", unit), ("resource", resource), ("product", product), ("family", family)):
            cols[key].append(np.full(n, value, dtype=object))
        cols["rate"].append(np.full(n, rate))

    for f, name in enumerate(FUNCTIONS):
        m = plan.inv_function == f
        gbs = np.bincount(plan.inv_hour[m], weights=plan.inv_billed[m] * plan.inv_memory[m] / 1024_000, minlength=H)
        req = np.bincount(plan.inv_hour[m], minlength=H)
        hrs = np.nonzero(req)[0]
        arn = f"arn:aws:lambda:{REGION}:{APP_ACCOUNT}:function:{name}"
        add(hrs, np.round(gbs[hrs], 6), "AWSLambda", "USE1-Lambda-GB-Second", "Invoke", "Lambda-GB-Second",
            0.0000166667, arn, "AWS Lambda", "Serverless")
        add(hrs, req[hrs], "AWSLambda", "USE1-Request", "Invoke", "Requests", 0.0000002, arn, "AWS Lambda",
            "Serverless")
        add(hrs, np.round(req[hrs] * 0.00004, 6), "AWSLambda", "USE1-DataTransfer-Out-Bytes", "Invoke", "GB", 0.09,
            arn, "AWS Lambda", "Data Transfer")
    for table, half, utype, rate in ((TABLES[0], plan.inv_read_half, "USE1-ReadRequestUnits", 0.00000025),
                                     (TABLES[1], plan.inv_write_half, "USE1-WriteRequestUnits", 0.00000125),
                                     (TABLES[2], plan.inv_audit_half, "USE1-WriteRequestUnits", 0.00000125)):
        units = np.bincount(plan.inv_hour, weights=half / 2, minlength=H)
        hrs = np.nonzero(units)[0]
        add(hrs, units[hrs], "AmazonDynamoDB", utype, "PayPerRequestThroughput", utype[5:], rate,
            f"arn:aws:dynamodb:{REGION}:{APP_ACCOUNT}:table/{table}", "Amazon DynamoDB",
            "Amazon DynamoDB PayPerRequest Throughput")
    days = H // 24
    add(np.arange(days) * 24, np.full(days, round(0.002 * len(plan.tenants), 6)), "AmazonS3",
        "USE1-TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 0.023, DOCS_BUCKET,
        "Amazon Simple Storage Service", "Storage", span=24)
    add(np.arange(H), plan.rng.integers(20, 400, size=H), "AmazonS3", "USE1-Requests-Tier1", "PutObject", "Requests",
        0.000005, DOCS_BUCKET, "Amazon Simple Storage Service", "API Request")
    add(np.arange(H), np.round(plan.rng.uniform(0.001, 0.01, size=H), 6), "AmazonCloudWatch",
        "USE1-DataProcessing-Bytes", "PutLogEvents", "GB", 0.5,
        f"arn:aws:logs:{REGION}:{APP_ACCOUNT}:log-group:/aws/lambda/{FUNCTIONS[0]}", "AmazonCloudWatch",
        "Data Payload")
    out = {k: np.concatenate(v) for k, v in cols.items()}
    n = len(out["start"])
    out.update({
        "type": np.full(n, "Usage", dtype=object), "account": np.full(n, APP_ACCOUNT, dtype=object),
        "cost": money(out["amount"] * out["rate"]), "accountant_id": np.full(n, "", dtype=object),
        "application": np.full(n, APPLICATION, dtype=object), "environment": np.full(n, "prod", dtype=object),
        "cost_center": np.full(n, "CC-1001", dtype=object), "name": np.full(n, "tax-agent", dtype=object),
        "department": np.full(n, "tax", dtype=object), "workload": np.full(n, "tax-agent", dtype=object),
    })
    plan.n_shared = n
    return out


def extra_lines(plan: Plan) -> dict[str, object]:
    """Monthly Tax, Credit and Fee lines (some of the application's: in scope)."""
    n = plan.n_extra
    rng = np.random.default_rng([plan.seed, 99])
    kinds = np.array(["Tax", "Credit", "Fee"], dtype=object)[np.arange(n) % 3]
    svc = rng.integers(0, len(SERVICES), size=n)
    service = np.array([s[0] for s in SERVICES], dtype=object)[svc]
    in_scope = (np.arange(n) % 7 == 1) & (kinds != "Tax")
    amount = np.where(kinds == "Credit", -1, 1) * np.round(rng.uniform(0.5, 500, size=n), 2)
    return {
        "start": np.full(n, plan.start_ms), "end": np.full(n, epoch_ms(plan.end) - 1000), "type": kinds,
        "account": ACCOUNTS[np.arange(n) % len(ACCOUNTS)], "service": service,
        "product": np.array([s[1] for s in SERVICES], dtype=object)[svc], "family": np.full(n, "", dtype=object),
        "usage_type": np.where(kinds == "Fee", "USE1-Fee", ""), "operation": np.full(n, "", dtype=object),
        "pricing_unit": np.full(n, "", dtype=object), "rate": np.zeros(n), "amount": np.where(kinds == "Tax", 1.0, 0.0),
        "cost": amount, "resource": np.where(in_scope, f"arn:aws:lambda:{REGION}:{APP_ACCOUNT}:function:{FUNCTIONS[0]}", ""),
        "accountant_id": np.full(n, "", dtype=object),
        "application": np.where(in_scope, APPLICATION, ""), "environment": np.where(in_scope, "prod", ""),
        "cost_center": np.where(in_scope, "CC-1001", ""), "name": np.full(n, "", dtype=object),
        "department": np.full(n, "", dtype=object), "workload": np.full(n, "", dtype=object),
    }


def cur_table(plan: Plan, c: dict[str, object], rng: np.random.Generator) -> pa.Table:
    """One chunk of line items as a table of sample_data_formats.CUR_SCHEMA, rows shuffled."""
    n = len(c["start"])
    ts = pa.timestamp("ms", tz="UTC")
    start = pa.array(c["start"], pa.int64()).cast(ts)
    end = pa.array(c["end"], pa.int64()).cast(ts)
    resource = c["resource"] if isinstance(c["resource"], pa.Array) else pa.array(c["resource"], pa.string())
    rate = pa.array(c["rate"]).cast(pa.string())
    text = lambda key: pa.array(c[key], pa.string())  # noqa: E731
    usage_type = text("usage_type")
    product = text("product")
    stamp = lambda a: pc.strftime(a.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    line_ids = _fixed_width_strings(
        np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)[rng.integers(0, 32, size=(n, 52), dtype=np.uint8)])
    cost = pa.array(c["cost"], pa.float64())
    const = lambda value, typ=pa.string(): pa.repeat(pa.scalar(value, typ), n)  # noqa: E731
    values = {
        "identity_line_item_id": line_ids,
        "identity_time_interval": join(stamp(start), "/", stamp(end)),
        "bill_invoice_id": const(""),
        "bill_billing_entity": const("AWS"),
        "bill_bill_type": const("Anniversary"),
        "bill_payer_account_id": const(PAYER),
        "bill_billing_period_start_date": const(pa.scalar(plan.start_ms, pa.int64()).cast(ts), ts),
        "bill_billing_period_end_date": const(pa.scalar(epoch_ms(plan.end), pa.int64()).cast(ts), ts),
        "line_item_usage_account_id": text("account"),
        "line_item_line_item_type": text("type"),
        "line_item_usage_start_date": start,
        "line_item_usage_end_date": end,
        "line_item_product_code": text("service"),
        "line_item_usage_type": usage_type,
        "line_item_operation": text("operation"),
        "line_item_availability_zone": const("us-east-1a"),
        "line_item_resource_id": resource,
        "line_item_usage_amount": pa.array(c["amount"], pa.float64()),
        "line_item_currency_code": const("USD"),
        "line_item_unblended_rate": rate,
        "line_item_unblended_cost": cost,
        "line_item_blended_rate": rate,
        "line_item_blended_cost": cost,
        "line_item_line_item_description": join(product, " ", usage_type),
        "line_item_tax_type": pc.if_else(pc.equal(text("type"), "Tax"), "USSalesTax", ""),
        "line_item_legal_entity": const("Amazon Web Services, Inc."),
        "product_product_name": product,
        "product_product_family": text("family"),
        "product_location": const("US East (N. Virginia)"),
        "product_region": const(REGION),
        "product_servicecode": text("service"),
        "product_usagetype": usage_type,
        "product_operation": text("operation"),
        "pricing_public_on_demand_cost": cost,
        "pricing_public_on_demand_rate": rate,
        "pricing_term": const("OnDemand"),
        "pricing_unit": text("pricing_unit"),
        "resource_tags_user_accountant_id": text("accountant_id"),
        "resource_tags_user_application": text("application"),
        "resource_tags_user_cost_center": text("cost_center"),
        "resource_tags_user_environment": text("environment"),
        "resource_tags_user_department": text("department"),
        "resource_tags_user_name": text("name"),
        "resource_tags_user_workload": text("workload"),
    }
    # product attributes by service: one small array per column, taken by each row's service
    codes = list(PRODUCT_ATTRIBUTES)
    service_index = pc.fill_null(pc.index_in(text("service"), value_set=pa.array(codes)), len(codes))
    for name in WIDE_COLUMNS:
        per_service = [PRODUCT_ATTRIBUTES[code].get(name, "") for code in codes] + [""]
        if any(per_service):
            values[name] = pa.array(per_service, pa.string()).take(service_index)
    arrays = []
    for field in WIDE_SCHEMA:
        if field.name in values:
            arrays.append(values[field.name])
        elif field.type == pa.string():
            arrays.append(const(""))
        else:
            arrays.append(pa.nulls(n, field.type))
    table = pa.Table.from_arrays(arrays, schema=WIDE_SCHEMA)
    return table.take(pa.array(rng.permutation(n)))  # AWS's files are in no useful order


def manifest_column(parquet_name: str) -> dict[str, str]:
    """The manifest entry of a WIDE_COLUMNS column: `product_max_iopsvolume` -> product / maxIopsvolume."""
    if parquet_name.startswith("resource_tags_user_"):
        return {"category": "resourceTags", "name": "user:" + parquet_name[len("resource_tags_user_"):],
                "type": "String"}
    category, _, rest = parquet_name.partition("_")
    head, *tail = rest.split("_")
    return {"category": category, "name": head + "".join(t.capitalize() for t in tail), "type": "String"}


def write_cur(plan: Plan, out: Path) -> list[str]:
    base = out / "cur" / PREFIX / REPORT
    part = f"{REPORT}/year={plan.start.year}/month={plan.start.month}"
    shutil.rmtree(base, ignore_errors=True)
    shared, extra = shared_lines(plan), extra_lines(plan)
    usage_rows = max(0, plan.rows - plan.n_shared - plan.n_extra)
    keys = []
    rng = np.random.default_rng([plan.seed, 7])
    chunks = [("shared", shared), ("extra", extra)]
    for lo in range(0, usage_rows, FILE_ROWS):
        chunks.append(("usage", (lo, min(usage_rows, lo + FILE_ROWS))))
    # the shared and extra lines ride in the first file (AWS mixes everything)
    pending = [shared, extra]
    if usage_rows == 0:
        chunks = [("usage", (0, 0))]
    for index, (_kind, spec) in enumerate(c for c in chunks if c[0] == "usage"):
        parts = [_usage_chunk(plan, *spec)] + (pending if index == 0 else [])
        merged = {k: (pa.concat_arrays([p[k] if isinstance(p[k], pa.Array) else pa.array(p[k], pa.string())
                                        for p in parts]) if k == "resource"
                      else np.concatenate([np.asarray(p[k]) for p in parts])) for k in parts[0]}
        table = cur_table(plan, merged, rng)
        name = f"{REPORT}-{index + 1:05d}.snappy.parquet"
        path = base / part / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="snappy")
        keys.append(f"{PREFIX}/{REPORT}/{part}/{name}")
    status = base / "cost_and_usage_data_status" / "cost_and_usage_data_status.parquet"
    status.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"status": pa.array(["READY"])}), status)
    manifest = {
        "assemblyId": str(uuid.uuid5(NS, f"{plan.month}/{plan.rows}/{plan.seed}")), "account": PAYER,
        "columns": [{"category": c, "name": n, "type": m} for _p, c, n, _t, m in fmt.CUR_COLUMNS]
                   + [manifest_column(name) for name in WIDE_COLUMNS + WIDE_TAG_COLUMNS],
        "charset": "UTF-8", "compression": "Parquet", "contentType": "application/x-parquet",
        "reportId": uuid.uuid5(NS, REPORT).hex * 2, "reportName": REPORT,
        "billingPeriod": {"start": fmt.aws_stamp(plan.start), "end": fmt.aws_stamp(plan.end)},
        "bucket": "tax-demo-billing-reports", "reportKeys": keys, "additionalArtifactKeys": [],
    }
    period = f"{plan.start:%Y%m%d}-{plan.end:%Y%m%d}"
    fmt.write_file(base / period / f"{REPORT}-Manifest.json", json.dumps(manifest, indent=2).encode())
    return keys


# ------------------------------------------------------------------------------------------------------------
# Logs, inventory, estimates


def write_logs(plan: Plan, out: Path) -> int:
    """CloudWatch Logs exports of the three shared functions; returns the number of lines written."""
    root = out / "logs" / "exportedlogs"
    shutil.rmtree(out / "logs", ignore_errors=True)
    fmt.write_file(root / "aws-logs-write-test", b"Permission Check Successful")
    task = str(uuid.uuid5(NS, f"logs/{plan.month}"))
    rng = np.random.default_rng([plan.seed, 3])
    k = plan.invocations
    rid = uuids(rng, k)
    t = plan.inv_time
    iso = lambda ms: pc.strftime(pa.array(ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),  # noqa: E731
                                 format="%Y-%m-%dT%H:%M:%SZ")
    owned = plan.inv_owner >= 0
    tenant = pa.array(np.where(owned, plan.tenants[np.maximum(plan.inv_owner, 0)], ""), pa.string())
    end_ms = t + plan.inv_billed + 2
    cents = np.round(plan.inv_duration * 100).astype(np.int64)  # AWS writes two decimals: "15.70 ms"
    duration = join(pa.array(cents // 100).cast(pa.string()), ".",
                    pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"))
    lines, times, kinds = [], [], []

    def emit(mask, when, text):
        idx = np.nonzero(mask)[0]
        lines.append(text.take(pa.array(idx)) if len(idx) < k else text)
        times.append(when[idx])
        kinds.append(idx)

    all_ = np.ones(k, dtype=bool)
    emit(all_, t, join(iso(t), " START RequestId: ", rid, " Version: $LATEST"))
    emit(owned, t + 1, join(iso(t + 1), ' {"timestamp": "', iso(t + 1), '", "level": "INFO", "requestId": "', rid,
                            '", "accountant_id": "', tenant, '", "message": "tax agent request handled"}'))
    read_units = pa.array(plan.inv_read_half / 2).cast(pa.string())
    emit(plan.inv_read_half > 0, t + 2,
         join(iso(t + 2), ' {"timestamp": "', iso(t + 2), '", "level": "INFO", "accountant_id": "', tenant,
              '", "requestId": "', rid, '", "operation": "Query", "ConsumedCapacity": {"TableName": "', TABLES[0],
              '", "CapacityUnits": ', read_units, ', "ReadCapacityUnits": ', read_units, '}}'))
    write_units = pa.array(plan.inv_write_half / 2).cast(pa.string())
    audit_units = pa.array(plan.inv_audit_half / 2).cast(pa.string())
    single = (plan.inv_write_half > 0) & (plan.inv_audit_half == 0)
    emit(single, t + 3,
         join(iso(t + 3), ' {"timestamp": "', iso(t + 3), '", "level": "INFO", "accountant_id": "', tenant,
              '", "requestId": "', rid, '", "operation": "UpdateItem", "ConsumedCapacity": {"TableName": "',
              TABLES[1], '", "CapacityUnits": ', write_units, ', "WriteCapacityUnits": ', write_units, '}}'))
    batch = (plan.inv_write_half > 0) & (plan.inv_audit_half > 0)
    emit(batch, t + 3,
         join(iso(t + 3), ' {"timestamp": "', iso(t + 3), '", "level": "INFO", "accountant_id": "', tenant,
              '", "requestId": "', rid, '", "operation": "TransactWriteItems", "ConsumedCapacity": [{"TableName": "',
              TABLES[1], '", "CapacityUnits": ', write_units, ', "WriteCapacityUnits": ', write_units,
              '}, {"TableName": "', TABLES[2], '", "CapacityUnits": ', audit_units, ', "WriteCapacityUnits": ',
              audit_units, '}]}'))
    emit(all_, end_ms, join(iso(end_ms), " END RequestId: ", rid))
    emit(all_, end_ms + 1, join(iso(end_ms + 1), " REPORT RequestId: ", rid, "\tDuration: ", duration,
                                " ms\tBilled Duration: ", pa.array(plan.inv_billed).cast(pa.string()),
                                " ms\tMemory Size: ", pa.array(plan.inv_memory).cast(pa.string()),
                                " MB\tMax Memory Used: ", pa.array(rng.integers(60, 400, size=k)).cast(pa.string()),
                                " MB"))
    # large_string: at 100M line items the month's log text passes the 2 GiB a string array can address
    text = pa.chunked_array([join(x, "\n").cast(pa.large_string()) for x in lines]).combine_chunks()
    when = np.concatenate(times)
    inv = np.concatenate(kinds)
    # streams: function x day x 4 execution environments
    day = (plan.inv_time[inv] - plan.start_ms) // (24 * HOUR_MS)
    stream = (plan.inv_function[inv] * 64 + day) * 4 + (inv % 4)
    order = np.lexsort((when, stream))
    text = text.take(pa.array(order))
    stream = stream[order]
    bounds = np.flatnonzero(np.diff(stream)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(stream)]])
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + len(text) + 1]
    data = text.buffers()[2]
    for a, b in zip(starts, ends):
        s = int(stream[a])
        f, rest = divmod(s, 64 * 4)
        d, env = divmod(rest, 4)
        day_name = (plan.start + dt.timedelta(days=int(d))).strftime("%Y/%m/%d")
        name = f"{FUNCTIONS[f]}/{day_name}/[$LATEST]{uuid.uuid5(NS, f'{s}').hex}"
        body = memoryview(data)[offsets[a]:offsets[b]]
        fmt.write_file(root / task / name / "000000.gz", gzip.compress(body, compresslevel=1, mtime=0))
    return len(text)


def write_inventory(plan: Plan, out: Path) -> None:
    shutil.rmtree(out / "inventory", ignore_errors=True)
    rng = np.random.default_rng([plan.seed, 5])
    unit = 2**20
    objects = []
    for t in plan.tenants:
        for n in range(int(rng.integers(1, 8))):
            created = plan.start - dt.timedelta(days=int(rng.integers(1, 300)))
            objects.append((f"clients/{t}/returns/2025/scan-{n:04d}.zip", unit * int(rng.integers(1, 50)), created))
    objects.sort()
    for d in range(plan.hours // 24):
        taken = plan.start + dt.timedelta(days=d)
        fmt.write_inventory_snapshot(out / "inventory", source_bucket=DOCS_BUCKET, destination_bucket="tax-demo-inventory",
                                     config_id="daily", taken_at=taken, rows=objects,
                                     data_name=str(uuid.uuid5(NS, f"inventory/{d}")))


def write_estimates(plan: Plan, out: Path) -> int:
    """Per tenant x day x operation, the application's own estimate (within +-20% of its measured usage)."""
    rng = np.random.default_rng([plan.seed, 11])
    T, D = len(plan.tenants), plan.hours // 24
    owned = plan.inv_owner >= 0
    key = plan.inv_owner[owned] * D + plan.inv_hour[owned] // 24
    gbs = plan.inv_billed * plan.inv_memory / 1_024_000
    ops = {
        "LambdaCompute": ("lambda", np.bincount(key, weights=gbs[owned], minlength=T * D), "0.0000166667"),
        "LambdaRequests": ("lambda", np.bincount(key, minlength=T * D).astype(float), "0.0000002"),
        "DynamoDBRead": ("dynamodb", np.bincount(key, weights=plan.inv_read_half[owned] / 2, minlength=T * D), "0.00000025"),
        "DynamoDBWrite": ("dynamodb", np.bincount(key, weights=(plan.inv_write_half + plan.inv_audit_half)[owned] / 2,
                                                  minlength=T * D), "0.00000125"),
    }
    lines = []
    month = plan.month[:7]
    for op, (rtype, qty, price) in ops.items():
        factor = rng.uniform(0.8, 1.2, size=T * D)
        for j in np.nonzero(qty)[0]:
            q = round(float(qty[j] * factor[j]), 6)
            day = plan.start + dt.timedelta(days=int(j % D))
            lines.append(json.dumps({"accountant_id": plan.tenants[j // D], "timestamp": f"{day:%Y-%m-%dT12:00:00Z}",
                                     "month": month, "operation": op, "resource_type": rtype, "quantity": str(q),
                                     "unit_cost": price, "estimated_cost": f"{q * float(price):.10f}"}))
    shutil.rmtree(out / "usage", ignore_errors=True)
    fmt.write_file(out / "usage" / "tax-agent-usage.jsonl", ("\n".join(lines) + "\n").encode())
    return len(lines)


def generate(out: Path, rows: int, month: str = "2026-01", tenants: int = 300, resources: int | None = None,
             invocations: int | None = None, seed: int = 7) -> dict:
    """Write the month under `out`; return what was written (and where), also saved as `out/generated.json`."""
    out = Path(out)
    began = time.perf_counter()
    plan = Plan(rows, month, tenants, resources, invocations, seed)
    keys = write_cur(plan, out)
    log_lines = write_logs(plan, out)
    write_inventory(plan, out)
    estimates = write_estimates(plan, out)
    info = {
        "rows": rows, "month": month, "tenants": tenants, "resources": plan.n_resources, "seed": seed,
        "invocations": plan.invocations, "log_lines": log_lines, "estimate_records": estimates,
        "cur_files": len(keys), "shared_lines": plan.n_shared, "tax_credit_fee_lines": plan.n_extra,
        "cur_bytes": sum(p.stat().st_size for p in (out / "cur").rglob("*.parquet")),
        "log_bytes_gz": sum(p.stat().st_size for p in (out / "logs").rglob("*.gz")),
        "cur_uri": str(out / "cur"), "logs_uri": str(out / "logs"), "inventory_uri": str(out / "inventory"),
        "usage_uri": str(out / "usage"), "seconds": round(time.perf_counter() - began, 1),
    }
    (out / "generated.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000, help="CUR line items (default 1M)")
    parser.add_argument("--month", default="2026-01")
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--resources", type=int, default=None, help="default: rows/500, at most 20k")
    parser.add_argument("--invocations", type=int, default=None, help="Lambda invocations (default rows/20)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    info = generate(args.out, args.rows, args.month, args.tenants, args.resources, args.invocations, args.seed)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
