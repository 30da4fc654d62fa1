"""Sample data for one billing month, in AWS's own layouts, with the exact per-tenant costs it should produce.

    python -m billing_pipeline.sample_data --out data/sample --month 2026-01 --tenants 5 --rows 20000 --seed 7

writes under `--out`:

- `cur/`       legacy CUR, Athena Parquet layout (`cur/tax-demo-cur/tax-demo-cur/year=2026/month=1/*.snappy.parquet`,
               `cost_and_usage_data_status/`, and the `<yyyymmdd-yyyymmdd>/tax-demo-cur-Manifest.json` manifest);
- `logs/`      CloudWatch Logs exported to S3 (`exportedlogs/[aws/lambda/<function>/]<task id>/<log stream>/000000.gz`,
               a Lambda log group under a prefix naming its function): the shared function's and each tenant's own
               worker function's START/END/REPORT lines, the application's JSON lines (requestId + accountant_id,
               DynamoDB ConsumedCapacity), Bedrock AgentCore session_start / tool_call lines, and the AgentCore
               Runtime's usage logs (per session and hour: `agent.runtime.vcpu.hours.used`, `...gb_hours.used`);
- `inventory/` S3 Inventory of the shared bucket `tax-agent-documents` (daily CSV snapshots, objects under
               `clients/<accountant_id>/`);
- `usage/tax-agent-usage.jsonl`  the application's own cost estimates.

The scenario (which hours lack evidence, who is estimated badly, ...) is described in `SampleMonth.scenario`.
The expected costs come from `sample_data_oracle`, an independent implementation of docs/attribution-rules.md.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import math
import shutil
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_pipeline import sample_data_formats as fmt
from billing_pipeline import sample_data_oracle as oracle

APPLICATION = "tax-demo"
PAYER_ACCOUNT = "123456789012"
APP_ACCOUNT = "111122223333"  # the tax-demo workload account
OTHER_ACCOUNT = "444455556666"  # another workload in the same organization
REGION = "us-east-1"
CUR_BUCKET = "tax-demo-billing-reports"
CUR_PREFIX = "cur"
REPORT_NAME = "tax-demo-cur"
LAMBDA_FUNCTION = "tax-agent-api"
WORKER_FUNCTION = "tax-agent-worker-"  # + tenant: a tenant's own (tagged) worker function
USAGE_TABLE = "tax-agent-usage"
SESSIONS_TABLE = "tax-agent-sessions"
AUDIT_TABLE = "tax-agent-audit"  # shared table no log line names: split by all tables' write units
DOCS_BUCKET = "tax-agent-documents"
INVENTORY_BUCKET = "tax-demo-inventory"
INVENTORY_CONFIG = "daily"
LOG_EXPORT_PREFIX = "exportedlogs"


def lambda_export_prefix(function: str) -> str:
    """A Lambda function's log group exported under a prefix that names it, as the reader recognizes it."""
    return f"{LOG_EXPORT_PREFIX}/aws/lambda/{function}"


AGENT_RUNTIME_ARN = f"arn:aws:bedrock-agentcore:{REGION}:{APP_ACCOUNT}:runtime/tax_agent-Xk3Lw9PqRt"
AGENT_GATEWAY_ARN = f"arn:aws:bedrock-agentcore:{REGION}:{APP_ACCOUNT}:gateway/tax-tools-gw-8f2k1m"
PRICING_FILE = Path(__file__).with_name("pricing.json")
CATALOG_FILE = Path(__file__).with_name("catalog.json")
TOOLS = ("lookup_tax_form", "calculate_deduction", "fetch_w2", "search_irs_publications")
NS = uuid.UUID("5b0c9a52-35a8-4d52-9d0e-6f1f0d6c2b11")  # namespace for ids that must not depend on the seed
TEN = 10**10  # 1e-10 units per dollar
HOUR_MS = 3_600_000


def load_pricing(path: Path | str | None = None) -> dict[str, Any]:
    """The pricing file as written, with every driver's price (the catalog's unless the file sets it) as a
    Decimal under `drivers`."""
    data = json.loads(Path(path or PRICING_FILE).read_text())
    catalog = json.loads(CATALOG_FILE.read_text())["services"]
    drivers = {s: {d: Decimal(v["unit_price"]) for d, v in spec["drivers"].items()} for s, spec in catalog.items()}
    for service, prices in data.get("drivers", {}).items():
        drivers.setdefault(service, {}).update({d: Decimal(p) for d, p in prices.items()})
    data["drivers"] = drivers
    return data


@dataclass
class SampleMonth:
    billing_period: dt.date
    cur_uri: str
    logs_uri: str
    inventory_uri: str
    usage_uri: str
    # (accountant_id incl. 'unattributed', CUR product code) -> exact in-scope cost of the month, with the
    # tenants' parts of the account-level lines (amortized = unblended for every line the sample tags)
    expected_costs: dict[tuple[str, str], Decimal]
    # (accountant_id, product code, UTC usage date) -> the same by day
    expected_daily_costs: dict[tuple[str, str, dt.date], Decimal]
    # (accountant_id, resource_type) -> sum of estimated_cost in the usage table
    expected_estimates: dict[tuple[str, str], Decimal]
    bill_total: Decimal
    in_scope_total: Decimal
    out_of_scope_total: Decimal
    line_items: int
    account_level_to_tenants: Decimal  # the application's part of the untagged tax / credits (docs/attribution-rules.md)
    kept_by_company: Decimal  # account-level lines whose policy is `company`
    # extras, for tests and for debugging a disagreement with the SQL implementation
    tenants: list[str] = field(default_factory=list)
    expected_actuals: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (accountant, resource_type)
    fallback_counts: dict[str, int] = field(default_factory=dict)  # allocation kind -> number of facts
    allocations: list[oracle.Allocation] = field(default_factory=list)  # the oracle's rows, one per fact x tenant
    scenario: dict[str, Any] = field(default_factory=dict)
    # (service, driver) -> (CUR usage amount, cost units) of the in-scope lines that bill the driver
    bill_quantities: dict[tuple[str, str], tuple[Decimal, int]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _round_units(value: Fraction) -> int:
    """Dollars (a Fraction) -> integer 1e-10 units, rounding half away from zero."""
    scaled = value * TEN
    return int(math.floor(abs(scaled) + Fraction(1, 2))) * (1 if scaled >= 0 else -1)


def _units(value: str | Decimal) -> int:
    return oracle.decimal_to_units(Decimal(value))


def _dec10(value: Fraction) -> Decimal:
    return oracle.units_to_decimal(_round_units(value))


def _epoch_ms(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1))


class _Ids:
    """Deterministic ids from the seeded generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.bytes(16), version=4))

    def hex(self, n: int) -> str:
        return self.rng.bytes((n + 1) // 2).hex()[:n]


# ---------------------------------------------------------------------------------------------------------------
# 1. What happened in the month: requests, DynamoDB calls, agent sessions, stored documents


@dataclass
class _Request:
    request_id: str
    tenant: str | None  # None: a REPORT that no application line names (warm-up pings)
    start: dt.datetime
    duration_ms: str
    init_ms: str | None
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    bytes_out: int
    ddb: list[tuple[dt.datetime, str, list[tuple[str, str, int]]]]  # (time, operation, [(table, read|write, half units)])


@dataclass
class _Session:
    session_id: str
    tenant: str
    start: dt.datetime
    end: dt.datetime
    tool_calls: list[tuple[dt.datetime, str]]


@dataclass
class _Sim:
    month_start: dt.datetime
    month_end: dt.datetime
    days: int
    hours: int
    tenants: list[str]
    dormant: str | None
    requests: list[_Request]
    sessions: list[_Session]
    duplicate_start: _Session | None
    objects: list[tuple[str, str, int, dt.datetime]]  # (tenant, key, size, created)
    storage_unit: int  # every object size is a multiple: gb_months per hour stay exact at 10 decimals
    lost_day: dt.date | None  # the log export for this day is missing
    lost_hours: set[dt.datetime]  # hours whose log lines are missing
    missing_snapshot: dt.date | None  # the inventory snapshot that was not delivered

    def hour_index(self, t: dt.datetime) -> int:
        return int((t - self.month_start) // dt.timedelta(hours=1))

    def hour_of(self, t: dt.datetime) -> dt.datetime:
        return t.replace(minute=0, second=0, microsecond=0)

    def logged(self, t: dt.datetime) -> bool:
        """Did the log line at `t` reach the export?"""
        return t.date() != self.lost_day and self.hour_of(t) not in self.lost_hours

    def snapshot_bytes(self, day: dt.date) -> dict[str, int]:
        """Bytes under clients/<tenant>/ in the inventory taken at `day` 00:00Z."""
        at = dt.datetime.combine(day, dt.time())
        out: dict[str, int] = defaultdict(int)
        for tenant, _key, size, created in self.objects:
            if created < at:
                out[tenant] += size
        return out


def _simulate(month_start: dt.datetime, n_tenants: int, rng: np.random.Generator, ids: _Ids) -> _Sim:
    days = calendar.monthrange(month_start.year, month_start.month)[1]
    hours = days * 24
    month_end = month_start + dt.timedelta(days=days)
    tenants = [f"acct-{i + 1:04d}" for i in range(n_tenants)]
    dormant = tenants[-1] if n_tenants >= 4 else None  # stores documents, never calls the agent
    activity = rng.uniform(0.6, 2.2, size=n_tenants)
    diurnal = np.array([1.0] * 2 + [0.25] * 9 + [1.0] * 3 + [1.6] * 9 + [1.0])  # by UTC hour (US business hours)

    lost_day = dt.date(month_start.year, month_start.month, 15) if days >= 15 else None
    lost_hours = {
        month_start + dt.timedelta(days=d - 1, hours=14) for d in (3, 9, 21, 27) if d <= days
    }
    missing_snapshot = dt.date(month_start.year, month_start.month, 20) if days >= 20 else None

    requests: list[_Request] = []

    def new_request(tenant: str | None, start: dt.datetime) -> _Request:
        if tenant is None:
            duration = float(np.round(rng.uniform(1.5, 20.0), 2))
        else:
            duration = float(np.round(min(25_000.0, max(3.0, rng.lognormal(math.log(600), 0.9))), 2))
        init = float(np.round(rng.uniform(150, 900), 2)) if rng.random() < 0.04 else None
        billed = math.ceil(round(duration + (init or 0.0), 2) - 1e-9)
        memory = 512 if start.day < 10 else 1024  # the function's memory was raised on the 10th
        return _Request(
            request_id=ids.uuid(), tenant=tenant, start=start, duration_ms=f"{duration:.2f}",
            init_ms=f"{init:.2f}" if init is not None else None, billed_ms=billed, memory_mb=memory,
            max_memory_mb=int(rng.integers(60, memory * 6 // 10)),
            bytes_out=int(rng.integers(2_000, 400_000)) if tenant else int(rng.integers(100, 400)), ddb=[],
        )

    for h in range(hours):
        hour_start = month_start + dt.timedelta(hours=h)
        counts = rng.poisson(activity * 2.5 * diurnal[h % 24])
        owners: list[str | None] = [t for t, c in zip(tenants, counts) if t != dormant for _ in range(c)]
        owners += [None] * int(rng.poisson(0.2))
        for owner in owners:
            offset_ms = int(rng.integers(0, (3600 - 40) * 1000))  # so every line of a request stays in the hour
            req = new_request(owner, hour_start + dt.timedelta(milliseconds=offset_ms))
            if owner is not None:
                t = req.start + dt.timedelta(milliseconds=5)
                req.ddb.append((t, "Query", [(USAGE_TABLE, "read", int(rng.integers(1, 10)))]))
                if rng.random() < 0.4:
                    req.ddb.append((t + dt.timedelta(milliseconds=3), "PutItem",
                                    [(USAGE_TABLE, "write", 2 * int(rng.integers(1, 3)))]))
                if rng.random() < 0.25:
                    req.ddb.append((t + dt.timedelta(milliseconds=6), "BatchGetItem",
                                    [(USAGE_TABLE, "read", int(rng.integers(1, 6))),
                                     (SESSIONS_TABLE, "read", int(rng.integers(1, 4)))]))
                if rng.random() < 0.35:
                    req.ddb.append((t + dt.timedelta(milliseconds=9), "UpdateItem", [(SESSIONS_TABLE, "write", 2)]))
            requests.append(req)

    sessions: list[_Session] = []
    for tenant, a in zip(tenants, activity):
        if tenant == dormant:
            continue
        for d in range(days):
            for _ in range(int(rng.poisson(a * 3))):
                start = month_start + dt.timedelta(days=d, milliseconds=int(rng.integers(0, 86_400_000)))
                end = min(start + dt.timedelta(seconds=int(rng.integers(60, 2400))), month_end - dt.timedelta(seconds=1))
                span_ms = max(1, int((end - start) // dt.timedelta(milliseconds=1)))
                calls = sorted(
                    (start + dt.timedelta(milliseconds=int(rng.integers(1, span_ms + 1))), TOOLS[int(rng.integers(0, 4))])
                    for _ in range(int(rng.poisson(2.5)))
                )
                sessions.append(_Session(ids.uuid(), tenant, start, end, calls))
    sessions.sort(key=lambda s: (s.start, s.tenant))
    duplicate_start = next((s for s in sessions if s.start.minute < 58 and s.start.date() != lost_day
                            and s.start.replace(minute=0, second=0, microsecond=0) not in lost_hours), None)

    # documents in the shared bucket: sizes are multiples of `unit`, so byte-hours -> GB-months stays exact
    unit = (2**20 * hours) // math.gcd(hours, 5**10)
    objects: list[tuple[str, str, int, dt.datetime]] = []
    for tenant in tenants:
        n = 0
        for _ in range(int(rng.integers(2, 7))):
            n += 1
            created = month_start - dt.timedelta(days=int(rng.integers(2, 300)), seconds=int(rng.integers(0, 86_400)))
            objects.append((tenant, f"clients/{tenant}/returns/2025/scan-batch-{n:04d}.zip",
                            unit * int(rng.integers(1, 4)), created))
        for d in range(days):
            if rng.random() < (0.1 if tenant == dormant else 0.35):
                n += 1
                created = month_start + dt.timedelta(days=d, seconds=int(rng.integers(0, 86_400)))
                objects.append((tenant, f"clients/{tenant}/returns/2025/scan-batch-{n:04d}.zip",
                                unit * int(rng.integers(1, 4)), created))

    return _Sim(month_start, month_end, days, hours, tenants, dormant, requests, sessions, duplicate_start,
                objects, unit, lost_day, lost_hours, missing_snapshot)


# ---------------------------------------------------------------------------------------------------------------
# 2. The evidence the logs and the inventory carry (what the pipeline can know), for the oracle


def _evidence(sim: _Sim) -> list[oracle.Evidence]:
    ev: list[oracle.Evidence] = []
    for r in sim.requests:
        if not sim.logged(r.start):
            continue
        owner = r.tenant or oracle.UNATTRIBUTED
        hour = sim.hour_of(r.start)
        ev.append(oracle.Evidence(hour, "AWSLambda", "gb_seconds", LAMBDA_FUNCTION, owner,
                                  Fraction(r.billed_ms * r.memory_mb, 1000 * 1024)))
        ev.append(oracle.Evidence(hour, "AWSLambda", "requests", LAMBDA_FUNCTION, owner, Fraction(1)))
        for t, _op, items in r.ddb:
            for table, kind, half in items:
                ev.append(oracle.Evidence(sim.hour_of(t), "AmazonDynamoDB", f"{kind}_units", table, owner,
                                          Fraction(half, 2)))
    for s in sim.sessions:
        if sim.logged(s.start):  # a duplicated session_start line counts once (distinct session ids)
            ev.append(oracle.Evidence(sim.hour_of(s.start), "AmazonBedrockAgentCore", "sessions", "", s.tenant,
                                      Fraction(1)))
        for t, _tool in s.tool_calls:
            if sim.logged(t):
                ev.append(oracle.Evidence(sim.hour_of(t), "AmazonBedrockAgentCore", "tool_calls", "", s.tenant,
                                          Fraction(1)))
    for d in range(sim.days):
        day = (sim.month_start + dt.timedelta(days=d)).date()
        if day == sim.missing_snapshot:
            continue
        for tenant, size in sim.snapshot_bytes(day).items():
            q = Fraction(size, 2**30 * sim.hours)  # GB-months per hour
            for h in range(24):
                ev.append(oracle.Evidence(sim.month_start + dt.timedelta(days=d, hours=h), "AmazonS3", "gb_months",
                                          DOCS_BUCKET, tenant, q))
    return ev


# ---------------------------------------------------------------------------------------------------------------
# 3. The CUR: one line item per hour x resource x usage type (S3 storage daily, tax and credits monthly)


_STRING_DEFAULTS = {name: "" for name, _c, _n, typ, _m in fmt.CUR_COLUMNS if typ == pa.string()}


class _Cur:
    """Line items collected as column chunks (scalars or arrays), so a million rows stay cheap."""

    def __init__(self, sim: _Sim):
        self.sim = sim
        self.chunks: list[tuple[int, dict[str, Any]]] = []
        self.worker_gb_micro: dict[str, np.ndarray] = {}  # tenant -> its worker function's GB-s per hour, millionths

    def add(self, *, start_ms, end_ms, units, usage, service: str, usage_type: str, operation: str,
            resource_id: str, product_name: str, pricing_unit: str, rate: str, tags: dict[str, str],
            line_item_type: str = "Usage", account: str = APP_ACCOUNT, description: str = "", az: str = "",
            family: str = "", instance_type: str = "", **extra: Any) -> None:
        start_ms = np.atleast_1d(np.asarray(start_ms, dtype=np.int64))
        n = len(start_ms)
        if n == 0:
            return
        cols = {
            "_start": start_ms,
            "_end": np.broadcast_to(np.asarray(end_ms, dtype=np.int64), (n,)).copy(),
            "_units": np.broadcast_to(np.asarray(units, dtype=np.int64), (n,)).copy(),
            "line_item_usage_amount": np.broadcast_to(np.asarray(usage, dtype=np.float64), (n,)).copy(),
            "line_item_usage_account_id": account,
            "line_item_line_item_type": line_item_type,
            "line_item_product_code": service,
            "line_item_usage_type": usage_type,
            "line_item_operation": operation,
            "line_item_resource_id": resource_id,
            "line_item_availability_zone": az,
            "line_item_unblended_rate": rate,
            "line_item_blended_rate": rate,
            "line_item_line_item_description": description or f"{product_name} {usage_type}",
            "product_product_name": product_name,
            "product_product_family": family,
            "product_instance_type": instance_type,
            "product_servicecode": service,
            "product_usagetype": usage_type,
            "product_operation": operation,
            "pricing_unit": pricing_unit,
            "pricing_public_on_demand_rate": rate,
            "resource_tags_user_accountant_id": tags.get("accountant_id", ""),
            "resource_tags_user_application": tags.get("application", ""),
            "resource_tags_user_environment": tags.get("environment", ""),
            "resource_tags_user_cost_center": tags.get("cost_center", ""),
            **extra,
        }
        self.chunks.append((n, cols))

    def hourly(self, hours, **kw) -> None:
        hours = np.asarray(hours, dtype=np.int64)
        start = _epoch_ms(self.sim.month_start) + hours * HOUR_MS
        self.add(start_ms=start, end_ms=start + HOUR_MS, **kw)

    @property
    def rows(self) -> int:
        return sum(n for n, _ in self.chunks)

    def line_items(self, through: dt.datetime | None = None
                   ) -> tuple[list[oracle.LineItem], int, dict[tuple[str, str], int]]:
        """The tagged and the untagged account-level line items as the oracle's LineItems, the summed cost of the
        untagged rest, and that rest's cost per (product code, currency); only the line items ending at or before
        `through`, when given (a CUR delivery that stops there)."""
        items: list[oracle.LineItem] = []
        untagged = 0
        other_bill: dict[tuple[str, str], int] = defaultdict(int)
        epoch = dt.datetime(1970, 1, 1)
        end_ms = _epoch_ms(through) if through is not None else None
        for n, c in self.chunks:
            kept = c["_end"] <= end_ms if end_ms is not None else np.ones(n, dtype=bool)
            account_level = oracle.is_account_level_type(c["line_item_line_item_type"], c["line_item_resource_id"])
            if not c["resource_tags_user_application"] and not account_level:
                untagged += int(c["_units"][kept].sum())
                other_bill[(c["line_item_product_code"], "USD")] += int(c["_units"][kept].sum())
                continue
            for i in np.nonzero(kept)[0]:
                items.append(oracle.LineItem(
                    usage_start=epoch + dt.timedelta(milliseconds=int(c["_start"][i])),
                    usage_end=epoch + dt.timedelta(milliseconds=int(c["_end"][i])),
                    usage_account_id=c["line_item_usage_account_id"], line_item_type=c["line_item_line_item_type"],
                    service=c["line_item_product_code"], usage_type=c["line_item_usage_type"],
                    operation=c["line_item_operation"], resource_id=c["line_item_resource_id"],
                    accountant_id=c["resource_tags_user_accountant_id"],
                    application=c["resource_tags_user_application"],
                    environment=c["resource_tags_user_environment"],
                    cost_center=c["resource_tags_user_cost_center"], currency="USD",
                    cost_units=int(c["_units"][i]),
                    # the Parquet DOUBLE as the reader casts it to DECIMAL(38, 10)
                    usage_amount=Decimal(float(c["line_item_usage_amount"][i])).quantize(
                        Decimal("1e-10"), rounding=ROUND_HALF_UP),
                ))
        return items, untagged, dict(other_bill)

    def table(self, rng: np.random.Generator, invoice_id: str) -> pa.Table:
        sim = self.sim
        arrays: dict[str, pa.Array] = {}
        for name, _cat, _n, typ, _m in fmt.CUR_COLUMNS:
            parts = []
            for n, c in self.chunks:
                if name in ("line_item_usage_start_date",):
                    parts.append(pa.array(c["_start"], pa.int64()).cast(typ))
                elif name == "line_item_usage_end_date":
                    parts.append(pa.array(c["_end"], pa.int64()).cast(typ))
                elif name in ("line_item_unblended_cost", "line_item_blended_cost"):
                    parts.append(pa.array(c["_units"].astype(np.float64) / TEN, typ))
                elif name == "pricing_public_on_demand_cost":
                    v = c.get(name, c["_units"].astype(np.float64) / TEN)
                    parts.append(pa.array(np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)), typ))
                elif name in c:
                    v = c[name]
                    if isinstance(v, np.ndarray):
                        parts.append(pa.array(v, typ))
                    else:
                        parts.append(pa.repeat(pa.scalar(v, typ), n))
                elif typ == pa.string():
                    parts.append(pa.repeat(pa.scalar(_STRING_DEFAULTS[name], typ), n))
                elif typ == pa.float64():
                    parts.append(pa.repeat(pa.scalar(0.0, typ), n))
                else:
                    parts.append(pa.repeat(pa.scalar(None, typ), n))
            arrays[name] = pa.concat_arrays(parts)
        n_rows = self.rows
        def stamp(arr: pa.Array) -> pa.Array:
            return pc.strftime(arr.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")

        arrays["identity_time_interval"] = pc.binary_join_element_wise(
            stamp(arrays["line_item_usage_start_date"]), stamp(arrays["line_item_usage_end_date"]), "/")
        period_start = pa.scalar(_epoch_ms(sim.month_start), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        period_end = pa.scalar(_epoch_ms(sim.month_end), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        arrays["bill_billing_period_start_date"] = pa.repeat(period_start, n_rows)
        arrays["bill_billing_period_end_date"] = pa.repeat(period_end, n_rows)
        arrays["bill_invoice_id"] = pa.repeat(pa.scalar(invoice_id), n_rows)
        arrays["bill_billing_entity"] = pa.repeat(pa.scalar("AWS"), n_rows)
        arrays["bill_bill_type"] = pa.repeat(pa.scalar("Anniversary"), n_rows)
        arrays["bill_payer_account_id"] = pa.repeat(pa.scalar(PAYER_ACCOUNT), n_rows)
        arrays["line_item_currency_code"] = pa.repeat(pa.scalar("USD"), n_rows)
        arrays["line_item_legal_entity"] = pa.repeat(pa.scalar("Amazon Web Services, Inc."), n_rows)
        arrays["product_region"] = pa.repeat(pa.scalar(REGION), n_rows)
        arrays["product_location"] = pa.repeat(pa.scalar("US East (N. Virginia)"), n_rows)
        arrays["pricing_term"] = pa.repeat(pa.scalar("OnDemand"), n_rows)
        table = pa.table([arrays[name] for name, *_ in fmt.CUR_COLUMNS], schema=fmt.CUR_SCHEMA)
        order = rng.permutation(n_rows)  # AWS's files are in no useful order
        table = table.take(pa.array(order))
        alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
        chars = alphabet[rng.integers(0, 32, size=(n_rows, 52), dtype=np.uint8)]
        offsets = pa.array(np.arange(0, 52 * n_rows + 1, 52, dtype=np.int32))
        line_ids = pa.StringArray.from_buffers(n_rows, offsets.buffers()[1], pa.py_buffer(chars.tobytes()))
        return table.set_column(0, fmt.CUR_SCHEMA.field(0), line_ids)


def _lambda_gbs_cost(gbs_micro: int) -> int:
    """GB-seconds in 1e-6 x $0.0000166667, rounded half up to 1e-10."""
    return (gbs_micro * 166_667 + 500_000) // 1_000_000


def _build_cur(sim: _Sim, rows: int, rng: np.random.Generator, ids: _Ids, prices) -> _Cur:
    cur = _Cur(sim)
    H = sim.hours
    app = {"application": APPLICATION, "environment": "prod", "cost_center": "CC-1001"}

    # --- the shared Lambda function: GB-seconds, requests, and data transfer (split by the combined driver)
    gbs_micro = np.zeros(H, dtype=np.int64)
    n_requests = np.zeros(H, dtype=np.int64)
    bytes_out = np.zeros(H, dtype=np.int64)
    read_half = {USAGE_TABLE: np.zeros(H, dtype=np.int64), SESSIONS_TABLE: np.zeros(H, dtype=np.int64)}
    write_half = {USAGE_TABLE: np.zeros(H, dtype=np.int64), SESSIONS_TABLE: np.zeros(H, dtype=np.int64)}
    for r in sim.requests:
        h = sim.hour_index(r.start)
        gbs_micro[h] += r.billed_ms * (r.memory_mb // 128) * 125
        n_requests[h] += 1
        bytes_out[h] += r.bytes_out
        for t, _op, items in r.ddb:
            for table, kind, half in items:
                (read_half if kind == "read" else write_half)[table][sim.hour_index(t)] += half
    active = np.nonzero(n_requests)[0]
    fn_arn = f"arn:aws:lambda:{REGION}:{APP_ACCOUNT}:function:{LAMBDA_FUNCTION}"
    lam = dict(service="AWSLambda", product_name="AWS Lambda", resource_id=fn_arn, tags=app, family="Serverless")
    cur.hourly(active, units=[_lambda_gbs_cost(int(x)) for x in gbs_micro[active]], usage=gbs_micro[active] / 1e6,
               usage_type="USE1-Lambda-GB-Second", operation="Invoke", pricing_unit="Lambda-GB-Second",
               rate="0.0000166667", **lam)
    cur.hourly(active, units=n_requests[active] * 2_000, usage=n_requests[active].astype(float),
               usage_type="USE1-Request", operation="Invoke", pricing_unit="Requests", rate="0.0000002", **lam)
    cur.hourly(active, units=[(int(b) * 900_000_000 * 2 + 2**30) // 2**31 for b in bytes_out[active]],
               usage=bytes_out[active] / 2**30, usage_type="USE1-DataTransfer-Out-Bytes", operation="Invoke",
               pricing_unit="GB", rate="0.09", **{**lam, "family": "Data Transfer"})

    # --- the shared DynamoDB tables (on-demand)
    def ddb(table: str, kind: str, half: np.ndarray, per_half: int, rate: str) -> None:
        hrs = np.nonzero(half)[0]
        utype = "USE1-ReadRequestUnits" if kind == "read" else "USE1-WriteRequestUnits"
        cur.hourly(hrs, units=half[hrs] * per_half, usage=half[hrs] / 2.0, service="AmazonDynamoDB",
                   usage_type=utype, operation="PayPerRequestThroughput", pricing_unit=utype[5:],
                   resource_id=f"arn:aws:dynamodb:{REGION}:{APP_ACCOUNT}:table/{table}",
                   product_name="Amazon DynamoDB", rate=rate, tags=app, family="Amazon DynamoDB PayPerRequest Throughput")

    for table in (USAGE_TABLE, SESSIONS_TABLE):
        ddb(table, "read", read_half[table], 1_250, "0.00000025")
        ddb(table, "write", write_half[table], 6_250, "0.00000125")
    ddb(AUDIT_TABLE, "write", 2 * rng.integers(1, 40, size=H), 6_250, "0.00000125")

    # --- the shared S3 bucket: storage is reported per day, requests per hour (no access logs: unattributed)
    s3 = dict(service="AmazonS3", product_name="Amazon Simple Storage Service", resource_id=DOCS_BUCKET, tags=app)
    for d in range(sim.days):
        day = (sim.month_start + dt.timedelta(days=d)).date()
        total = sum(sim.snapshot_bytes(day).values())
        gbmo = Fraction(total * 24, 2**30 * H)
        start = _epoch_ms(sim.month_start) + d * 24 * HOUR_MS
        cur.add(start_ms=start, end_ms=start + 24 * HOUR_MS, units=_round_units(gbmo * Fraction(23, 1000)),
                usage=float(gbmo), usage_type="USE1-TimedStorage-ByteHrs", operation="StandardStorage",
                pricing_unit="GB-Mo", rate="0.023", family="Storage", **s3)
    tier1 = rng.integers(20, 400, size=H)
    cur.hourly(np.arange(H), units=tier1 * 50_000, usage=tier1.astype(float), usage_type="USE1-Requests-Tier1",
               operation="PutObject", pricing_unit="Requests", rate="0.000005", family="API Request", **s3)

    # --- Bedrock AgentCore: runtime vCPU and memory while sessions run, gateway tool invocations
    active_s = np.zeros(H, dtype=np.int64)
    tool_calls = np.zeros(H, dtype=np.int64)
    for s in sim.sessions:
        t = s.start
        while t < s.end:
            hour_end = sim.hour_of(t) + dt.timedelta(hours=1)
            active_s[sim.hour_index(t)] += int(math.ceil((min(hour_end, s.end) - t).total_seconds()))
            t = hour_end
        for tc, _tool in s.tool_calls:
            tool_calls[sim.hour_index(tc)] += 1
    hrs = np.nonzero(active_s)[0]
    ac = dict(service="AmazonBedrockAgentCore", product_name="Amazon Bedrock AgentCore", tags=app,
              family="AgentCore Runtime")
    cur.hourly(hrs, units=[(int(s) * 895_000_000 * 2 + 3600) // 7200 for s in active_s[hrs]],
               usage=active_s[hrs] / 3600.0, usage_type="USE1-AgentCoreRuntime-vCPU-Hours",
               operation="InvokeAgentRuntime", resource_id=AGENT_RUNTIME_ARN, pricing_unit="vCPU-Hours",
               rate="0.0895", **ac)
    cur.hourly(hrs, units=[(int(s) * 2 * 94_500_000 * 2 + 3600) // 7200 for s in active_s[hrs]],
               usage=active_s[hrs] * 2 / 3600.0, usage_type="USE1-AgentCoreRuntime-Memory-GB-Hours",
               operation="InvokeAgentRuntime", resource_id=AGENT_RUNTIME_ARN, pricing_unit="GB-Hours",
               rate="0.00945", **ac)
    hrs = np.nonzero(tool_calls)[0]
    cur.hourly(hrs, units=tool_calls[hrs] * 1_000_000, usage=tool_calls[hrs].astype(float),
               usage_type="USE1-AgentCoreGateway-ToolInvocations", operation="InvokeGateway",
               resource_id=AGENT_GATEWAY_ARN, pricing_unit="Invocations", rate="0.0001",
               **{**ac, "family": "AgentCore Gateway"})

    # --- CloudWatch log ingestion of the application's log group: in scope, split by each tenant's log bytes
    cw_bytes = (n_requests * 900 + rng.integers(50_000, 400_000, size=H)).astype(np.int64)
    cur.hourly(np.arange(H), units=[(int(b) * 5_000_000_000 * 2 + 2**30) // 2**31 for b in cw_bytes],
               usage=cw_bytes / 2**30, service="AmazonCloudWatch", usage_type="USE1-DataProcessing-Bytes",
               operation="PutLogEvents", resource_id=f"arn:aws:logs:{REGION}:{APP_ACCOUNT}:log-group:/aws/lambda/"
               f"{LAMBDA_FUNCTION}", product_name="AmazonCloudWatch", pricing_unit="GB", rate="0.50", tags=app,
               family="Data Payload")

    # --- in-scope credit on the shared function, for the whole month (negative, split by the month's GB-s):
    # about 10% of the function's GB-second cost, an odd number of 1e-10 units
    ms, me = _epoch_ms(sim.month_start), _epoch_ms(sim.month_end) - 1000
    credit = sum(_lambda_gbs_cost(int(x)) for x in gbs_micro) // 10 | 1
    cur.add(start_ms=ms, end_ms=me, units=-credit, usage=0.0, service="AWSLambda",
            usage_type="USE1-Lambda-GB-Second", operation="Invoke", resource_id=fn_arn, product_name="AWS Lambda",
            pricing_unit="", rate="", tags=app, line_item_type="Credit", description="AWS Activate credits")

    # --- resources tagged with an accountant_id: direct cost
    for i, tenant in enumerate(sim.tenants):
        tags = {**app, "accountant_id": tenant}
        size = int(rng.integers(5, 80)) * 10**9 + int(rng.integers(0, 10**9))
        gbmo = Fraction(size * 24, 2**30 * H)
        for d in range(sim.days):
            start = ms + d * 24 * HOUR_MS
            cur.add(start_ms=start, end_ms=start + 24 * HOUR_MS, units=_round_units(gbmo * Fraction(23, 1000)),
                    usage=float(gbmo), service="AmazonS3", usage_type="USE1-TimedStorage-ByteHrs",
                    operation="StandardStorage", resource_id=f"tax-demo-exports-{tenant}",
                    product_name="Amazon Simple Storage Service", pricing_unit="GB-Mo", rate="0.023", tags=tags,
                    family="Storage")
        if i % 2 == 0:  # a dedicated worker function
            micro = rng.integers(1_000, 4_000_000, size=H) * 125
            cur.worker_gb_micro[tenant] = micro
            cur.hourly(np.arange(H), units=[_lambda_gbs_cost(int(x)) for x in micro], usage=micro / 1e6,
                       service="AWSLambda", usage_type="USE1-Lambda-GB-Second", operation="Invoke",
                       resource_id=f"arn:aws:lambda:{REGION}:{APP_ACCOUNT}:function:{WORKER_FUNCTION}{tenant}",
                       product_name="AWS Lambda", pricing_unit="Lambda-GB-Second", rate="0.0000166667", tags=tags)
        else:  # a dedicated ledger table
            half = rng.integers(2, 20_000, size=H)
            cur.hourly(np.arange(H), units=half * 1_250, usage=half / 2.0, service="AmazonDynamoDB",
                       usage_type="USE1-ReadRequestUnits", operation="PayPerRequestThroughput",
                       resource_id=f"arn:aws:dynamodb:{REGION}:{APP_ACCOUNT}:table/tax-ledger-{tenant}",
                       product_name="Amazon DynamoDB", pricing_unit="ReadRequestUnits", rate="0.00000025", tags=tags)

    # --- out of scope: another application's function (tagged with an accountant_id, still not ours)
    payroll = {"application": "payroll-demo", "environment": "prod", "cost_center": "CC-2002",
               "accountant_id": sim.tenants[0]}
    micro = rng.integers(1_000, 2_000_000, size=H) * 125
    cur.hourly(np.arange(H), units=[_lambda_gbs_cost(int(x)) for x in micro], usage=micro / 1e6, service="AWSLambda",
               usage_type="USE1-Lambda-GB-Second", operation="Invoke",
               resource_id=f"arn:aws:lambda:{REGION}:{OTHER_ACCOUNT}:function:payroll-api", account=OTHER_ACCOUNT,
               product_name="AWS Lambda", pricing_unit="Lambda-GB-Second", rate="0.0000166667", tags=payroll)

    # --- out of scope: an EC2 instance under a Compute Savings Plan (covered usage, negation, recurring fee)
    sp_arn = f"arn:aws:savingsplans::{PAYER_ACCOUNT}:savingsplan/{ids.uuid()}"
    sp = dict(savings_plan_savings_plan_a_r_n=sp_arn, savings_plan_start_time="2025-06-01T00:00:00.000Z",
              savings_plan_end_time="2028-05-31T23:59:59.000Z", savings_plan_offering_type="ComputeSavingsPlans",
              savings_plan_payment_option="No Upfront", savings_plan_purchase_term="3yr", savings_plan_region="")
    ec2 = dict(service="AmazonEC2", product_name="Amazon Elastic Compute Cloud", account=OTHER_ACCOUNT,
               usage_type="USE1-BoxUsage:m5.large", operation="RunInstances", az="us-east-1a",
               family="Compute Instance", instance_type="m5.large", pricing_unit="Hrs", tags={"cost_center": "CC-3003"})
    hrs = np.arange(H)
    cur.hourly(hrs, units=_units("0.096"), usage=1.0, resource_id="i-0a1b2c3d4e5f60718", rate="0.096",
               line_item_type="SavingsPlanCoveredUsage", savings_plan_savings_plan_rate=0.06,
               savings_plan_savings_plan_effective_cost=0.06, **sp, **ec2)
    cur.hourly(hrs, units=-_units("0.096"), usage=1.0, resource_id="i-0a1b2c3d4e5f60718", rate="0.096",
               line_item_type="SavingsPlanNegation", pricing_public_on_demand_cost=0.0, **sp, **ec2)
    cur.hourly(hrs, units=_units("0.07"), usage=1.0, resource_id="", rate="0.07",
               line_item_type="SavingsPlanRecurringFee", savings_plan_total_commitment_to_date=0.07,
               savings_plan_used_commitment=0.06, savings_plan_recurring_commitment_for_billing_period=round(0.07 * H, 2),
               pricing_public_on_demand_cost=0.0,
               **sp, **{**ec2, "usage_type": "ComputeSP:3yrNoUpfront", "operation": "", "az": "",
                        "family": "", "instance_type": ""})

    # --- out of scope: tax and a credit for the month (untagged)
    for service, amount in (("AmazonEC2", "41.2700000000"), ("AWSLambda", "3.5800000000")):
        cur.add(start_ms=ms, end_ms=me, units=_units(amount), usage=1.0, service=service, usage_type="",
                operation="", resource_id="", product_name="", pricing_unit="", rate="", tags={},
                line_item_type="Tax", account=APP_ACCOUNT if service == "AWSLambda" else OTHER_ACCOUNT,
                description=f"Tax for product code {service}", line_item_tax_type="USSalesTax")
    cur.add(start_ms=ms, end_ms=me, units=-_units("25"), usage=0.0, service="AmazonEC2", usage_type="", operation="",
            resource_id="", product_name="Amazon Elastic Compute Cloud", pricing_unit="", rate="", tags={},
            line_item_type="Credit", account=OTHER_ACCOUNT, description="AWS Promotional Credit")

    # --- padding: more out-of-scope instances (untagged or another team's) until about `rows` line items
    types = [("t3.medium", "0.0416"), ("m5.large", "0.096"), ("c5.xlarge", "0.17"), ("r5.large", "0.126")]
    k = 0
    while cur.rows < rows:
        n = min(H, rows - cur.rows)
        itype, rate = types[k % len(types)]
        tags = {"cost_center": "CC-3003", "environment": "dev"} if k % 3 else {}
        cur.hourly(np.arange(H - n, H), units=_units(rate), usage=1.0, service="AmazonEC2",
                   product_name="Amazon Elastic Compute Cloud", account=OTHER_ACCOUNT,
                   usage_type=f"USE1-BoxUsage:{itype}", operation="RunInstances", az="us-east-1b",
                   family="Compute Instance", instance_type=itype, pricing_unit="Hrs", rate=rate, tags=tags,
                   resource_id=f"i-{ids.hex(17)}")
        k += 1
    return cur


# ---------------------------------------------------------------------------------------------------------------
# 4. Logs, inventory, estimates


def _write_logs(logs_dir: Path, sim: _Sim, ids: _Ids, rng: np.random.Generator, workers: dict[str, np.ndarray],
                extra: np.random.Generator) -> tuple[dict[str, int], list[oracle.Evidence]]:
    """Write the month's log exports; return the line counts and the evidence only the written logs know: each
    timestamped line of the month is message bytes + 26 of `log_bytes` in its log group for its owner (the line's
    tenant, its request's or its session's; 'unattributed' for lines nobody owns, e.g. the corrupted ones), and the
    worker functions' and AgentCore usage logs' quantities. Those two are drawn from `extra`, after everything
    else, so the rest of the sample stays what it was without them."""
    ym = f"{sim.month_start:%Y-%m}"
    lambda_task = str(uuid.uuid5(NS, f"logs/{ym}/lambda"))
    agent_task = str(uuid.uuid5(NS, f"logs/{ym}/agentcore"))
    usage_task = str(uuid.uuid5(NS, f"logs/{ym}/agentcore-usage"))
    for prefix, task in ((lambda_export_prefix(LAMBDA_FUNCTION), lambda_task), (LOG_EXPORT_PREFIX, agent_task),
                         (LOG_EXPORT_PREFIX, usage_task)):
        shutil.rmtree(logs_dir / prefix / task, ignore_errors=True)
    fmt.write_file(logs_dir / LOG_EXPORT_PREFIX / "aws-logs-write-test", b"Permission Check Successful")
    counts = defaultdict(int)
    log_bytes: list[oracle.Evidence] = []

    def owned(t: dt.datetime, message: str, owner: str | None, log_group: str = "") -> tuple[dt.datetime, str]:
        if not message.startswith("\0") and sim.month_start <= t < sim.month_end:
            log_bytes.append(oracle.Evidence(t.replace(minute=0, second=0, microsecond=0), "AmazonCloudWatch",
                                             "log_bytes", log_group, owner or oracle.UNATTRIBUTED,
                                             Fraction(len(message.encode()) + 26)))
        return t, message

    def lambda_owned(t: dt.datetime, message: str, owner: str | None) -> tuple[dt.datetime, str]:
        return owned(t, message, owner, f"/aws/lambda/{LAMBDA_FUNCTION}")

    # Lambda: a few execution environments (log streams) per day
    streams: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    stream_names: dict[tuple[dt.date, int], str] = {}
    for r in sim.requests:
        if not sim.logged(r.start):
            counts["lambda_requests_not_logged"] += 1
            continue
        slot = (r.start.date(), int(rng.integers(0, 3)))
        if slot not in stream_names:
            stream_names[slot] = f"{slot[0]:%Y/%m/%d}/[$LATEST]{ids.hex(32)}"
        lines = streams[stream_names[slot]]
        rid = r.request_id
        ms = dt.timedelta(milliseconds=1)
        lines.append(lambda_owned(r.start, f"START RequestId: {rid} Version: $LATEST", r.tenant))
        if r.tenant:
            lines.append(lambda_owned(r.start + 2 * ms, json.dumps({
                "timestamp": fmt.iso_ms(r.start + 2 * ms), "level": "INFO", "requestId": rid,
                "accountant_id": r.tenant, "message": "tax agent request handled"}), r.tenant))
            counts["app_lines"] += 1
        for t, op, items in r.ddb:
            cc = []
            for table, kind, half in items:
                cap = half / 2
                cc.append({"TableName": table, "CapacityUnits": cap,
                           ("ReadCapacityUnits" if kind == "read" else "WriteCapacityUnits"): cap})
            lines.append(lambda_owned(t, json.dumps({
                "timestamp": fmt.iso_ms(t), "level": "INFO", "accountant_id": r.tenant, "requestId": rid,
                "operation": op, "ConsumedCapacity": cc if len(cc) > 1 else cc[0]}), r.tenant))
            counts["dynamodb_lines"] += 1
        end = r.start + dt.timedelta(milliseconds=float(r.duration_ms) + float(r.init_ms or 0)) + ms
        lines.append(lambda_owned(end, f"END RequestId: {rid}", r.tenant))
        report = (f"REPORT RequestId: {rid}\tDuration: {r.duration_ms} ms\tBilled Duration: {r.billed_ms} ms\t"
                  f"Memory Size: {r.memory_mb} MB\tMax Memory Used: {r.max_memory_mb} MB")
        if r.init_ms:
            report += f"\tInit Duration: {r.init_ms} ms"
        lines.append(lambda_owned(end + ms, report, r.tenant))
        counts["report_lines"] += 1
        counts["reports_without_owner"] += r.tenant is None
    # two corrupted lines (a truncated JSON object, a line without timestamp): counted, never evidence
    first = min(streams)
    t0 = min(t for t, _ in streams[first])
    streams[first].append(lambda_owned(t0 + dt.timedelta(seconds=1), '{"timestamp": "' + fmt.iso_ms(t0) + '", "level": '
                                '"INFO", "requestId": "', None))
    streams[first].append(lambda_owned(t0 + dt.timedelta(seconds=2), "\0#### export chunk truncated ####", None))
    counts["malformed_lines"] += 2
    for stream, lines in streams.items():
        fmt.write_log_stream(logs_dir, lambda_export_prefix(LAMBDA_FUNCTION), lambda_task, stream, lines)

    # AgentCore runtime: one stream per day
    agent: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)

    def agent_line(t: dt.datetime, body: dict) -> None:
        if sim.logged(t):
            agent[f"{t:%Y/%m/%d}/[runtime-logs]{uuid.uuid5(NS, f'{ym}/{t:%d}')}"].append(
                owned(t, json.dumps({"timestamp": fmt.iso_ms(t), "level": "INFO", **body}), body["accountant_id"]))

    for s in sim.sessions:
        agent_line(s.start, {"accountant_id": s.tenant, "session_id": s.session_id, "event": "session_start"})
        counts["session_starts"] += sim.logged(s.start)
        if s is sim.duplicate_start:  # the runtime retried: the same session_start twice, counted once
            agent_line(s.start + dt.timedelta(milliseconds=250),
                       {"accountant_id": s.tenant, "session_id": s.session_id, "event": "session_start"})
        for t, tool in s.tool_calls:
            agent_line(t, {"accountant_id": s.tenant, "session_id": s.session_id, "event": "tool_call", "tool": tool})
            counts["tool_calls"] += sim.logged(t)
    first = min(agent)
    t0 = min(t for t, _ in agent[first])
    agent[first].append(owned(t0 + dt.timedelta(milliseconds=500), '{"accountant_id": "acct-0001", "session_id": ',
                              None))
    counts["malformed_lines"] += 1
    for stream, lines in agent.items():
        fmt.write_log_stream(logs_dir, LOG_EXPORT_PREFIX, agent_task, stream, lines)

    usage: list[oracle.Evidence] = []
    extra_ids = _Ids(extra)
    ms = dt.timedelta(milliseconds=1)
    # Each tenant's own worker function (tagged: direct cost) logs like the shared one, in its own log group: 128 MB,
    # so an hour's billed milliseconds are exactly its GB-second millionths / 125 (GB-s = ms / 1000 x 128 / 1024),
    # in as few invocations of at most 15 minutes as hold them
    for tenant, micro in workers.items():
        function = f"{WORKER_FUNCTION}{tenant}"
        group = f"/aws/lambda/{function}"
        prefix, task = lambda_export_prefix(function), str(uuid.uuid5(NS, f"logs/{ym}/{function}"))
        shutil.rmtree(logs_dir / prefix / task, ignore_errors=True)
        by_day: dict[dt.date, list[tuple[dt.datetime, str]]] = defaultdict(list)
        for h, gb_micro in enumerate(micro):
            hour_billed = int(gb_micro) // 125
            n = -(-hour_billed // 900_000)
            for j in range(n):
                billed = hour_billed // n + (hour_billed % n if j == 0 else 0)
                start = sim.month_start + dt.timedelta(hours=h, milliseconds=int(
                    extra.integers(0, 3_600_000 - billed - 1_000)))
                if not sim.logged(start):
                    counts["worker_requests_not_logged"] += 1
                    continue
                rid, end = extra_ids.uuid(), start + dt.timedelta(milliseconds=billed)
                by_day[start.date()] += [
                    owned(start, f"START RequestId: {rid} Version: $LATEST", tenant, group),
                    owned(start + 2 * ms, json.dumps({"timestamp": fmt.iso_ms(start + 2 * ms), "level": "INFO",
                                                      "requestId": rid, "accountant_id": tenant,
                                                      "message": "worker batch done"}), tenant, group),
                    owned(end, f"END RequestId: {rid}", tenant, group),
                    owned(end + ms, f"REPORT RequestId: {rid}\tDuration: {billed - 0.37:.2f} ms\tBilled Duration: "
                                    f"{billed} ms\tMemory Size: 128 MB\tMax Memory Used: 71 MB", tenant, group)]
                usage += [oracle.Evidence(sim.hour_of(start), "AWSLambda", "gb_seconds", function, tenant,
                                          Fraction(billed * 128, 1000 * 1024)),
                          oracle.Evidence(sim.hour_of(start), "AWSLambda", "requests", function, tenant, Fraction(1))]
                counts["worker_report_lines"] += 1
        for day, lines in sorted(by_day.items()):
            fmt.write_log_stream(logs_dir, prefix, task, f"{day:%Y/%m/%d}/[$LATEST]{extra_ids.hex(32)}", lines)

    # AgentCore Runtime usage logs, vended by the runtime: a record per session and clock hour it ran, its vCPU-hours
    # (1 vCPU) and memory GB-hours (2 GB) for the seconds the CUR bills that hour. No tenant on them: the reader
    # takes the session's owner from the application's lines (none logged: 'unattributed')
    owners = {s.session_id: s.tenant for s in sim.sessions
              if sim.logged(s.start) or any(sim.logged(t) for t, _ in s.tool_calls)}
    usage_streams: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for s in sim.sessions:
        t = s.start
        while t < s.end:
            hour_end = sim.hour_of(t) + dt.timedelta(hours=1)
            seconds = int(math.ceil((min(hour_end, s.end) - t).total_seconds()))
            at = min(s.end, hour_end - ms)
            t = hour_end
            if not sim.logged(at):
                continue
            vcpu, gb = (_dec10(Fraction(k * seconds, 3600)) for k in (1, 2))
            message = (f'{{"event_timestamp": {_epoch_ms(at)}, "resource_arn": "{AGENT_RUNTIME_ARN}", '
                       f'"session.id": "{s.session_id}", "agent.runtime.vcpu.hours.used": {vcpu:f}, '
                       f'"agent.runtime.memory.gb_hours.used": {gb:f}}}')
            owner = owners.get(s.session_id)
            usage_streams[f"{at:%Y/%m/%d}/[usage-logs]{uuid.uuid5(NS, f'{ym}/usage/{at:%d}')}"].append(
                owned(at, message, owner))
            usage += [oracle.Evidence(sim.hour_of(at), "AmazonBedrockAgentCore", driver, "",
                                      owner or oracle.UNATTRIBUTED, Fraction(f"{q:f}"))
                      for driver, q in (("vcpu_hours", vcpu), ("gb_hours", gb))]
            counts["agentcore_usage_lines"] += 1
            counts["agentcore_usage_without_owner"] += owner is None
    for stream, lines in usage_streams.items():
        fmt.write_log_stream(logs_dir, LOG_EXPORT_PREFIX, usage_task, stream, lines)
    return dict(counts), log_bytes + usage


def _write_inventory(inventory_dir: Path, sim: _Sim) -> list[str]:
    written = []
    days = [(sim.month_start - dt.timedelta(days=1)).date()]  # the last snapshot of the previous month, if absent
    days += [(sim.month_start + dt.timedelta(days=d)).date() for d in range(sim.days)]
    for day in days:
        taken = dt.datetime.combine(day, dt.time())
        folder = inventory_dir / DOCS_BUCKET / INVENTORY_CONFIG / taken.strftime("%Y-%m-%dT%H-%MZ")
        if day < sim.month_start.date():
            if folder.exists():
                continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
        if day == sim.missing_snapshot:
            continue
        rows = sorted((key, size, created) for _t, key, size, created in sim.objects if created < taken)
        fmt.write_inventory_snapshot(
            inventory_dir, source_bucket=DOCS_BUCKET, destination_bucket=INVENTORY_BUCKET,
            config_id=INVENTORY_CONFIG, taken_at=taken, rows=rows,
            data_name=str(uuid.uuid5(NS, f"inventory/{DOCS_BUCKET}/{day}")),
        )
        written.append(str(day))
    return written


_RESOURCE_OPS = {  # operation -> (resource_type, service, driver): how the application prices what it does
    "LambdaCompute": ("lambda", "AWSLambda", "gb_seconds"),
    "LambdaRequests": ("lambda", "AWSLambda", "requests"),
    "DynamoDBRead": ("dynamodb", "AmazonDynamoDB", "read_units"),
    "DynamoDBWrite": ("dynamodb", "AmazonDynamoDB", "write_units"),
    "S3Storage": ("s3", "AmazonS3", "gb_months"),
    "AgentCoreSession": ("agentcore", "AmazonBedrockAgentCore", "sessions"),
    "AgentCoreToolCall": ("agentcore", "AmazonBedrockAgentCore", "tool_calls"),
}


def _estimates(sim: _Sim, actuals: dict[tuple[str, str], int], prices, rng: np.random.Generator):
    """The application's usage table: hourly rollups per tenant and operation, priced with the seed constants.

    The application meters its own usage (it cannot see direct resources, fallbacks or credits), so each
    tenant x resource type is calibrated to land within +-6% of the actual cost, except two that are
    deliberately off (-30% lambda, +40% dynamodb) so the reconciliation has something to flag.
    """
    usage: dict[tuple[str, dt.datetime, str], Fraction] = defaultdict(Fraction)
    for r in sim.requests:
        if r.tenant is None:
            continue
        h = sim.hour_of(r.start)
        usage[(r.tenant, h, "LambdaCompute")] += Fraction(r.billed_ms * r.memory_mb, 1000 * 1024)
        usage[(r.tenant, h, "LambdaRequests")] += 1
        for _t, _op, items in r.ddb:
            for _table, kind, half in items:
                usage[(r.tenant, h, "DynamoDBRead" if kind == "read" else "DynamoDBWrite")] += Fraction(half, 2)
    for s in sim.sessions:
        usage[(s.tenant, sim.hour_of(s.start), "AgentCoreSession")] += 1
        for t, _tool in s.tool_calls:
            usage[(s.tenant, sim.hour_of(t), "AgentCoreToolCall")] += 1
    for d in range(sim.days):
        day_start = sim.month_start + dt.timedelta(days=d)
        for tenant, size in sim.snapshot_bytes(day_start.date()).items():
            usage[(tenant, day_start, "S3Storage")] += Fraction(size * 24, 2**30 * sim.hours)

    n = len(sim.tenants)
    off = {(sim.tenants[1 % n], "lambda"): Fraction(-30, 100), (sim.tenants[2 % n], "dynamodb"): Fraction(40, 100)}
    base: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for (tenant, _h, op), q in usage.items():
        rtype, service, driver = _RESOURCE_OPS[op]
        base[(tenant, rtype)] += q * Fraction(prices[service][driver])
    factor: dict[tuple[str, str], Fraction] = {}
    for key in sorted(base):
        delta = off.get(key, Fraction(int(rng.integers(-60, 61)), 1000))
        target = Fraction(actuals.get(key, 0), TEN) * (1 + delta)
        factor[key] = target / base[key] if target > 0 and base[key] > 0 else 1 + delta

    records = []
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    month = f"{sim.month_start:%Y-%m}"
    for (tenant, hour, op), q in sorted(usage.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        rtype, service, driver = _RESOURCE_OPS[op]
        price = prices[service][driver]
        quantity = _dec10(q * factor[(tenant, rtype)])
        cost = _dec10(Fraction(quantity) * Fraction(price))
        totals[(tenant, rtype)] += cost
        records.append({"accountant_id": tenant, "timestamp": f"{hour:%Y-%m-%dT%H:%M:%SZ}", "month": month,
                        "operation": op, "resource_type": rtype, "quantity": str(quantity), "unit_cost": format(price, "f"),
                        "estimated_cost": str(cost)})
    return records, dict(totals), off


def _write_usage(path: Path, month: str, records: list[dict]) -> None:
    """Replace this month's records in the JSON Lines file, keeping other months' (sorted: deterministic)."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and json.loads(line).get("month") != month:
                kept.append(line)
    lines = kept + [json.dumps(r) for r in records]
    lines.sort(key=lambda l: (json.loads(l)["month"], json.loads(l)["timestamp"]))
    fmt.write_file(path, ("\n".join(lines) + "\n").encode())


# ---------------------------------------------------------------------------------------------------------------
# The public API


def _month_start(month: dt.date | str) -> dt.datetime:
    if isinstance(month, str):
        month = dt.date.fromisoformat(month if len(month) > 7 else month + "-01")
    return dt.datetime(month.year, month.month, 1)


def generate_month(out: Path, month: dt.date, tenants: int = 5, rows: int = 20_000, seed: int = 7,
                   final: bool = False, cur_through: dt.datetime | None = None) -> SampleMonth:
    """Write one billing month of sample data under `out` and return what the pipeline must compute from it.

    `cur_through` (UTC, naive): the CUR delivery stops there, as a provisional month's does (AWS is 6 to 24 hours
    behind the logs): only line items ending at or before it are written, while the logs, inventory and usage
    table cover the whole month. The expected costs are those of the cut CUR; the usage table, the logs and the
    random draws are the same as without the cut."""
    if tenants < 1:
        raise ValueError("tenants must be at least 1")
    if cur_through is not None and final:
        raise ValueError("a final month's CUR covers the whole month (cur_through is for provisional months)")
    out = Path(out)
    start = _month_start(month)
    rng = np.random.default_rng([seed, start.year, start.month])
    ids = _Ids(rng)
    prices = load_pricing()["drivers"]

    sim = _simulate(start, tenants, rng, ids)
    cur = _build_cur(sim, rows, rng, ids, prices)
    # write the CUR
    cur_dir = out / "cur"
    invoice = f"{(seed * 7919 + start.year * 12 + start.month) % 10**9:09d}" if final else ""
    table = cur.table(rng, invoice)
    bill_units = int(sum(int(c["_units"].sum()) for _n, c in cur.chunks))
    if cur_through is not None:
        # cut after the whole table is drawn, so the rest of the month's random draws stay the same
        cut = pa.scalar(_epoch_ms(cur_through), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        table = table.filter(pc.less_equal(table["line_item_usage_end_date"], cut.cast(table.schema.field(
            "line_item_usage_end_date").type)))
        bill_units = int(sum(int(c["_units"][c["_end"] <= _epoch_ms(cur_through)].sum()) for _n, c in cur.chunks))
    part_dir = cur_dir / CUR_PREFIX / REPORT_NAME / REPORT_NAME / f"year={start.year}" / f"month={start.month}"
    shutil.rmtree(part_dir, ignore_errors=True)
    fmt.write_cur(cur_dir, table, start, sim.month_end, bucket=CUR_BUCKET, prefix=CUR_PREFIX, report=REPORT_NAME,
                  account=PAYER_ACCOUNT, assembly_id=ids.uuid(), report_id=uuid.uuid5(NS, REPORT_NAME).hex * 2)

    # the oracle runs once the logs are written: their lines are the CloudWatch Logs evidence (log bytes)
    log_counts, log_evidence = _write_logs(out / "logs", sim, ids, rng, cur.worker_gb_micro,
                                           np.random.default_rng([seed, start.year, start.month, 2]))
    evidence = _evidence(sim) + log_evidence

    def attribute(through: dt.datetime | None):
        items, untagged_units, other_bill = cur.line_items(through)
        allocations, in_units, out_units = oracle.attribute(items, evidence, prices, APPLICATION)
        out_units += untagged_units
        assert sum(a.cost_units for a in allocations) == in_units, "the oracle lost or invented cost"
        account_level, apportioned, kept = oracle.attribute_account_level(
            items, allocations, APPLICATION, load_pricing().get("account_level_lines", {}), other_bill)
        return items, allocations + account_level, in_units, out_units, apportioned, kept

    items, allocations, in_units, out_units, apportioned, kept = attribute(None)
    full_month_by_type = oracle.summarize(allocations)[2]  # the application estimates the whole month
    if cur_through is not None:
        items, allocations, in_units, out_units, apportioned, kept = attribute(cur_through)
    assert bill_units == in_units + out_units
    monthly, daily, by_type, kinds = oracle.summarize(allocations)
    snapshots = _write_inventory(out / "inventory", sim)
    records, estimates, off = _estimates(sim, full_month_by_type, prices, rng)
    _write_usage(out / "usage" / "tax-agent-usage.jsonl", f"{start:%Y-%m}", records)

    def dec(d: dict) -> dict:
        return {k: oracle.units_to_decimal(v) for k, v in sorted(d.items(), key=lambda kv: str(kv[0])) if v != 0}

    scenario = {
        "tenants": sim.tenants,
        "dormant_tenant": sim.dormant,
        "lost_log_day": sim.lost_day,
        "lost_log_hours": sorted(sim.lost_hours),
        "missing_inventory_snapshot": sim.missing_snapshot,
        "inventory_snapshots": snapshots,
        "duplicated_session_start": sim.duplicate_start.session_id if sim.duplicate_start else None,
        "estimates_off": {f"{t}/{r}": f"{float(d) * 100:+.0f}%" for (t, r), d in off.items()},
        "storage_unit_bytes": sim.storage_unit,
        "requests": len(sim.requests),
        "sessions": len(sim.sessions),
        "log_counts": log_counts,
        "usage_records": len(records),
        "cur_through": cur_through,
    }
    return SampleMonth(
        billing_period=start.date(),
        cur_uri=str(cur_dir), logs_uri=str(out / "logs"), inventory_uri=str(out / "inventory"),
        usage_uri=str(out / "usage"),
        expected_costs=dec(monthly),
        expected_daily_costs=dec(daily),
        expected_estimates={k: v for k, v in sorted(estimates.items())},
        bill_total=oracle.units_to_decimal(bill_units),
        in_scope_total=oracle.units_to_decimal(in_units),
        account_level_to_tenants=oracle.units_to_decimal(apportioned),
        kept_by_company=oracle.units_to_decimal(kept),
        out_of_scope_total=oracle.units_to_decimal(out_units),
        line_items=table.num_rows,
        tenants=sim.tenants,
        expected_actuals=dec(by_type),
        fallback_counts=kinds,
        allocations=allocations,
        scenario=scenario,
        bill_quantities=oracle.bill_quantities(items, APPLICATION),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing-sample-data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="folder to write (default data/sample)")
    parser.add_argument("--month", default="2026-01", help="billing month, YYYY-MM (default 2026-01)")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000, help="about this many CUR line items")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--final", action="store_true", help="the month is invoiced (bill_invoice_id set)")
    parser.add_argument("--cur-through", type=dt.datetime.fromisoformat, default=None,
                        help="the CUR stops at this UTC time (YYYY-MM-DDTHH:MM), before the logs")
    args = parser.parse_args(argv)
    try:
        sample = generate_month(args.out, _month_start(args.month).date(), args.tenants, args.rows, args.seed,
                                args.final, cur_through=args.cur_through)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"billing period {sample.billing_period:%Y-%m}: {sample.line_items} CUR line items, "
          f"{len(sample.tenants)} tenants, seed {args.seed}{' (final)' if args.final else ''}")
    print(f"  bill {sample.bill_total} USD = in scope {sample.in_scope_total} + out of scope "
          f"{sample.out_of_scope_total}")
    per_tenant: dict[str, Decimal] = defaultdict(Decimal)
    for (tenant, _service), cost in sample.expected_costs.items():
        per_tenant[tenant] += cost
    for tenant, cost in sorted(per_tenant.items()):
        print(f"  {tenant:<13} {cost:>18}")
    print("  allocations (facts): " + ", ".join(f"{k} {v}" for k, v in sample.fallback_counts.items()))
    print(f"  cur {sample.cur_uri}\n  logs {sample.logs_uri}\n  inventory {sample.inventory_uri}\n"
          f"  usage {sample.usage_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
