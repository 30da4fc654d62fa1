"""The sample-data generator: AWS layouts, internal consistency, determinism, and its oracle's invariants."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing_pipeline import sample_data
from billing_pipeline.sample_data_oracle import (
    Evidence,
    LineItem,
    attribute,
    decimal_to_units,
    largest_remainder_split,
    summarize,
)

JAN = dt.date(2026, 1, 1)
CUR_PART = "cur/tax-demo-cur/tax-demo-cur/year=2026/month=1"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> sample_data.SampleMonth:
    return sample_data.generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=5, rows=20_000, seed=7)


@pytest.fixture(scope="module")
def cur(sample) -> pa.Table:
    return pq.read_table(Path(sample.cur_uri) / CUR_PART / "tax-demo-cur-00001.snappy.parquet")


def _units(x: float) -> int:
    return decimal_to_units(Decimal(repr(round(x, 10))).quantize(Decimal("1e-10")))


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# Layouts


def test_cur_layout_and_manifest(sample):
    root = Path(sample.cur_uri)
    assert (root / CUR_PART / "tax-demo-cur-00001.snappy.parquet").is_file()
    status = pq.read_table(root / "cur/tax-demo-cur/cost_and_usage_data_status/cost_and_usage_data_status.parquet")
    assert status.to_pylist() == [{"status": "READY"}]
    manifest = json.loads((root / "cur/tax-demo-cur/20260101-20260201/tax-demo-cur-Manifest.json").read_text())
    assert {"assemblyId", "account", "columns", "compression", "contentType", "reportId", "reportName",
            "billingPeriod", "bucket", "reportKeys"} <= manifest.keys()
    assert manifest["compression"] == "Parquet" and manifest["reportName"] == "tax-demo-cur"
    assert manifest["billingPeriod"] == {"start": "20260101T000000.000Z", "end": "20260201T000000.000Z"}
    assert manifest["reportKeys"] == [f"{CUR_PART}/tax-demo-cur-00001.snappy.parquet"]
    for key in manifest["reportKeys"]:
        assert key.startswith("cur/") and (root / key).is_file()
    names = {(c["category"], c["name"]) for c in manifest["columns"]}
    assert ("lineItem", "UnblendedCost") in names and ("resourceTags", "user:accountant_id") in names


def test_cur_columns_and_types(sample, cur):
    ts = pa.timestamp("ms", tz="UTC")
    expected = {
        "identity_line_item_id": pa.string(), "identity_time_interval": pa.string(), "bill_invoice_id": pa.string(),
        "bill_billing_entity": pa.string(), "bill_bill_type": pa.string(), "bill_payer_account_id": pa.string(),
        "bill_billing_period_start_date": ts, "bill_billing_period_end_date": ts,
        "line_item_usage_account_id": pa.string(), "line_item_line_item_type": pa.string(),
        "line_item_usage_start_date": ts, "line_item_usage_end_date": ts, "line_item_product_code": pa.string(),
        "line_item_usage_type": pa.string(), "line_item_operation": pa.string(),
        "line_item_availability_zone": pa.string(), "line_item_resource_id": pa.string(),
        "line_item_usage_amount": pa.float64(), "line_item_currency_code": pa.string(),
        "line_item_unblended_rate": pa.string(), "line_item_unblended_cost": pa.float64(),
        "line_item_blended_cost": pa.float64(), "line_item_line_item_description": pa.string(),
        "product_product_name": pa.string(), "product_region": pa.string(), "pricing_unit": pa.string(),
        "reservation_effective_cost": pa.float64(), "savings_plan_savings_plan_effective_cost": pa.float64(),
        "resource_tags_user_accountant_id": pa.string(), "resource_tags_user_application": pa.string(),
        "resource_tags_user_environment": pa.string(), "resource_tags_user_cost_center": pa.string(),
    }
    for name, typ in expected.items():
        assert cur.schema.field(name).type == typ, name
    assert cur.num_rows == sample.line_items == 20_000
    for field in cur.schema:  # AWS writes '' for missing strings, never NULL
        assert cur.column(field.name).null_count == 0, field.name
    assert set(cur.column("bill_invoice_id").to_pylist()) == {""}
    assert len(set(cur.column("identity_line_item_id").to_pylist())) == cur.num_rows
    types = set(cur.column("line_item_line_item_type").to_pylist())
    assert {"Usage", "Tax", "Credit", "SavingsPlanCoveredUsage", "SavingsPlanNegation"} <= types
    starts = cur.column("line_item_usage_start_date").to_pylist()
    assert min(starts) == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert max(starts) < dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def test_costs_round_trip_and_totals(sample, cur):
    costs = cur.column("line_item_unblended_cost").to_pylist()
    apps = cur.column("resource_tags_user_application").to_pylist()
    for c in costs:  # every double is a Decimal with at most 10 places
        assert Decimal(repr(c)) == Decimal(repr(round(c, 10)))
    bill = sum(_units(c) for c in costs)
    in_scope = sum(_units(c) for c, a in zip(costs, apps) if a == "tax-demo")
    assert Decimal(bill) / 10**10 == sample.bill_total
    assert Decimal(in_scope) / 10**10 == sample.in_scope_total
    path = str(Path(sample.cur_uri) / CUR_PART / "*.parquet")
    db_total, db_in = duckdb.connect().execute(
        f"SELECT sum(line_item_unblended_cost::DECIMAL(38,10)), "
        f"sum(line_item_unblended_cost::DECIMAL(38,10)) FILTER (resource_tags_user_application = 'tax-demo') "
        f"FROM read_parquet('{path}')").fetchone()
    assert (db_total, db_in) == (sample.bill_total, sample.in_scope_total)


def test_final_month_has_invoice_id(tmp_path):
    month = sample_data.generate_month(tmp_path, dt.date(2026, 2, 1), tenants=2, rows=0, seed=3, final=True)
    table = pq.read_table(Path(month.cur_uri) / "cur/tax-demo-cur/tax-demo-cur/year=2026/month=2")
    invoices = set(table.column("bill_invoice_id").to_pylist())
    assert len(invoices) == 1 and invoices != {""}
    assert (Path(month.cur_uri) / "cur/tax-demo-cur/20260201-20260301/tax-demo-cur-Manifest.json").is_file()
    assert sum(month.expected_costs.values()) == month.in_scope_total + month.account_level_to_tenants


LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$")
REPORT = re.compile(r"^REPORT RequestId: (\S+)\tDuration: ([\d.]+) ms\tBilled Duration: (\d+) ms\t"
                    r"Memory Size: (\d+) MB\tMax Memory Used: (\d+) MB(\tInit Duration: ([\d.]+) ms)?$")


def _log_lines(logs: Path):
    """(the Lambda function the export prefix names or '', line) of every exported line."""
    files = sorted(logs.rglob("000000.gz"))
    assert files
    for f in files:
        # exportedlogs / [aws / lambda / <function> /] <task id> / <log stream ...> / 000000.gz
        parts = f.relative_to(logs).parts
        assert parts[0] == "exportedlogs" and len(parts) >= 4
        function = parts[3] if parts[1:3] == ("aws", "lambda") else ""
        for line in gzip.decompress(f.read_bytes()).decode().splitlines():
            yield function, line


def test_logs_shapes_and_consistency_with_cur(sample, cur):
    reports, owners, ddb_read, malformed, init_durations, lists = {}, {}, defaultdict(Fraction), 0, 0, 0
    sessions, tools, agent_usage = set(), 0, defaultdict(Fraction)
    for function, line in _log_lines(Path(sample.logs_uri)):
        m = LINE.match(line)
        if not m:
            malformed += 1
            continue
        ts, msg = m.groups()
        hour = ts[:13]
        if msg.startswith("REPORT"):
            r = REPORT.match(msg)
            assert r, msg
            reports[r.group(1)] = (function, hour, int(r.group(3)), int(r.group(4)))
            init_durations += r.group(6) is not None
        elif msg.startswith(("START", "END")):
            continue
        else:
            try:
                obj = json.loads(msg, parse_float=Fraction)
            except json.JSONDecodeError:
                malformed += 1
                continue
            if "ConsumedCapacity" in obj:
                caps = obj["ConsumedCapacity"]
                lists += isinstance(caps, list)
                for c in caps if isinstance(caps, list) else [caps]:
                    if c["TableName"] == "tax-agent-usage" and "ReadCapacityUnits" in c:
                        ddb_read[hour] += Fraction(c["ReadCapacityUnits"])
            elif obj.get("event") == "session_start":
                sessions.add(obj["session_id"])
            elif obj.get("event") == "tool_call":
                tools += 1
            elif "agent.runtime.vcpu.hours.used" in obj:  # the runtime's usage log: no tenant, a session
                assert set(obj) == {"event_timestamp", "resource_arn", "session.id", "agent.runtime.vcpu.hours.used",
                                    "agent.runtime.memory.gb_hours.used"}
                # 2 GB: twice the vCPU-hours, each rounded to 10 decimals
                assert abs(obj["agent.runtime.memory.gb_hours.used"] - 2 * obj["agent.runtime.vcpu.hours.used"]) \
                    <= Fraction(1, 10**10)
                agent_usage[hour] += obj["agent.runtime.vcpu.hours.used"]
            else:
                assert set(obj) == {"timestamp", "level", "requestId", "accountant_id", "message"}
                owners[obj["requestId"]] = obj["accountant_id"]
    assert malformed == 3 and init_durations > 0 and lists > 0
    counts = sample.scenario["log_counts"]
    assert sum(1 for rid in reports if rid not in owners) == counts["reports_without_owner"] > 0
    assert len(sessions) == counts["session_starts"] and tools > 0
    # every worker invocation names its tenant, in its own function's log group
    workers = {rid: r for rid, r in reports.items() if r[0].startswith("tax-agent-worker-")}
    assert len(workers) == counts["worker_report_lines"] > 0
    assert all(owners[rid] == f[len("tax-agent-worker-"):] for rid, (f, *_rest) in workers.items())

    # in every hour whose logs were exported, the REPORT lines add up to the CUR's lines of their function, and
    # the AgentCore usage logs to the runtime's vCPU-hours (to the 10 decimals each record carries)
    gbs, reqs = defaultdict(Fraction), defaultdict(int)
    for function, hour, billed, memory in reports.values():
        gbs[(function, hour)] += Fraction(billed * memory, 1000 * 1024)
        reqs[(function, hour)] += 1
    cur_usage = defaultdict(float)
    for row in cur.filter(pa.compute.equal(cur.column("line_item_line_item_type"), "Usage")).to_pylist():
        resource = row["line_item_resource_id"]
        function = resource.rsplit(":", 1)[-1] if ":function:" in resource else resource
        cur_usage[(function, row["line_item_usage_start_date"].strftime("%Y-%m-%dT%H"), row["line_item_usage_type"])] \
            += row["line_item_usage_amount"]
    for function, hour in reqs:
        if function == "tax-agent-api":
            assert cur_usage[(function, hour, "USE1-Request")] == reqs[(function, hour)]
        assert cur_usage[(function, hour, "USE1-Lambda-GB-Second")] == pytest.approx(float(gbs[(function, hour)]),
                                                                                     abs=1e-9)
    assert {f for f, _ in reqs} == {"tax-agent-api"} | {f for f, *_ in workers.values()}
    runtime = "arn:aws:bedrock-agentcore:us-east-1:111122223333:runtime/tax_agent-Xk3Lw9PqRt"
    for hour, vcpu_hours in agent_usage.items():
        assert cur_usage[(runtime, hour, "USE1-AgentCoreRuntime-vCPU-Hours")] == pytest.approx(float(vcpu_hours),
                                                                                           abs=1e-8)
    missing = {h for (f, h, t) in cur_usage if t == "USE1-Request"} - {h for f, h in reqs if f == "tax-agent-api"}
    assert {h[:10] for h in missing} >= {"2026-01-15"}  # the lost export day has cost but no logs
    assert len(missing) >= 24 + 4


def test_inventory_layout(sample):
    root = Path(sample.inventory_uri) / "tax-agent-documents" / "daily"
    snapshots = sorted(p.name for p in root.iterdir() if p.name != "data")
    assert "2026-01-01T00-00Z" in snapshots and "2026-01-20T00-00Z" not in snapshots
    assert len([s for s in snapshots if s.startswith("2026-01")]) == 30
    manifest = json.loads((root / "2026-01-02T00-00Z" / "manifest.json").read_text())
    assert manifest["fileFormat"] == "CSV" and manifest["fileSchema"] == "Bucket, Key, Size, LastModifiedDate"
    assert manifest["sourceBucket"] == "tax-agent-documents"
    for f in manifest["files"]:
        data = (Path(sample.inventory_uri) / f["key"]).read_bytes()
        assert hashlib.md5(data).hexdigest() == f["MD5checksum"] and len(data) == f["size"]
        rows = list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
        assert rows and all(len(r) == 4 and r[0] == "tax-agent-documents" for r in rows)
        assert all(r[1].startswith("clients/acct-") for r in rows)
        assert all(int(r[2]) % sample.scenario["storage_unit_bytes"] == 0 for r in rows)
    assert gzip.decompress(data).startswith(b'"tax-agent-documents","clients/')


def test_usage_table_and_estimates(sample):
    lines = (Path(sample.usage_uri) / "tax-agent-usage.jsonl").read_text().splitlines()
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        r = json.loads(line)
        assert set(r) == {"accountant_id", "timestamp", "month", "operation", "resource_type", "quantity",
                          "unit_cost", "estimated_cost"}
        assert r["month"] == "2026-01" and r["resource_type"] in {"lambda", "dynamodb", "s3", "agentcore", "other"}
        totals[(r["accountant_id"], r["resource_type"])] += Decimal(r["estimated_cost"])
    assert dict(totals) == sample.expected_estimates
    off = {tuple(k.split("/")) for k in sample.scenario["estimates_off"]}
    assert len(off) == 2
    for key, estimate in sample.expected_estimates.items():
        actual = sample.expected_actuals[key]
        pct = abs(actual - estimate) / estimate * 100
        assert (pct > 10) == (key in off), (key, pct)


def test_deterministic_per_seed(sample, tmp_path):
    again = sample_data.generate_month(tmp_path / "a", JAN, tenants=5, rows=20_000, seed=7)
    first_root = Path(sample.cur_uri).parent
    assert _tree(first_root) == _tree(tmp_path / "a")
    assert again.expected_costs == sample.expected_costs
    assert again.expected_daily_costs == sample.expected_daily_costs
    other = sample_data.generate_month(tmp_path / "b", JAN, tenants=5, rows=20_000, seed=8)
    assert other.expected_costs != sample.expected_costs


# ---------------------------------------------------------------------------------------------------------------
# The oracle


def test_oracle_invariants(sample):
    attributed = sample.in_scope_total + sample.account_level_to_tenants  # + the tenants' part of the Lambda tax
    assert sum(sample.expected_costs.values()) == attributed
    assert sum(sample.expected_daily_costs.values()) == attributed
    assert sample.in_scope_total + sample.out_of_scope_total == sample.bill_total
    assert sample.account_level_to_tenants > 0 and sample.kept_by_company == 0
    assert set(sample.fallback_counts) == {"direct", "shared_hour", "shared_day", "shared_month", "unattributed",
                                           "proportional"}
    assert all(n > 0 for n in sample.fallback_counts.values())
    for value in [*sample.expected_costs.values(), *sample.expected_daily_costs.values()]:
        assert value == value.quantize(Decimal("1e-10"))
    tenants = {t for t, _s in sample.expected_costs}
    assert tenants == {*sample.tenants, "unattributed"}
    # log ingestion is split by each tenant's log bytes; lines nobody owns (corrupted ones) keep a share
    assert sample.expected_costs[("unattributed", "AmazonCloudWatch")] > 0
    assert any(t != "unattributed" and s == "AmazonCloudWatch" for t, s in sample.expected_costs)
    kinds = {(a.service, a.usage_type, a.allocation) for a in sample.allocations}
    assert ("AmazonCloudWatch", "USE1-DataProcessing-Bytes", "shared_hour") in kinds
    assert ("AmazonS3", "USE1-TimedStorage-ByteHrs", "shared_month") in kinds  # missing inventory snapshot
    assert ("AmazonS3", "USE1-Requests-Tier1", "unattributed") in kinds  # no access logs
    assert ("AWSLambda", "USE1-Lambda-GB-Second", "shared_day") in kinds  # lost log hours
    assert ("AWSLambda", "USE1-DataTransfer-Out-Bytes", "shared_hour") in kinds
    # data transfer goes by the tenants' compute cost (network_policy proportional)
    assert {a.driver for a in sample.allocations if a.usage_type == "USE1-DataTransfer-Out-Bytes"} == {"compute_cost"}
    credit = [a for a in sample.allocations if a.line_item_type == "Credit"]
    assert credit and all(a.allocation == "shared_month" and a.cost_units <= 0 for a in credit)


def test_oracle_conserves_every_fact(sample, cur):
    facts: dict[tuple, int] = defaultdict(int)
    for row in cur.to_pylist():
        if row["resource_tags_user_application"] == "tax-demo":
            key = (row["line_item_usage_start_date"].replace(tzinfo=None), row["line_item_product_code"],
                   row["line_item_usage_type"], row["line_item_line_item_type"], row["line_item_resource_id"])
            facts[key] += _units(row["line_item_unblended_cost"])
    allocated: dict[tuple, int] = defaultdict(int)
    for a in sample.allocations:
        if a.allocation == "proportional":  # an out-of-scope account-level line's part, not an in-scope fact
            continue
        allocated[(a.usage_hour, a.service, a.usage_type, a.line_item_type, a.resource_id)] += a.cost_units
    assert allocated == facts


def test_largest_remainder_by_hand():
    ten = decimal_to_units(Decimal("0.0000000010"))
    assert ten == 10
    assert largest_remainder_split(ten, {"acct-0002": 1, "acct-0001": 1, "acct-0003": 1}) == {
        "acct-0001": 4, "acct-0002": 3, "acct-0003": 3}
    assert largest_remainder_split(-ten, {"acct-0001": 1, "acct-0002": 1, "acct-0003": 1}) == {
        "acct-0001": -4, "acct-0002": -3, "acct-0003": -3}
    assert largest_remainder_split(7, {"a": 1, "b": 2}) == {"a": 2, "b": 5}  # 2.33 / 4.67
    assert largest_remainder_split(1, {"unattributed": 1, "acct-0009": 1}) == {"acct-0009": 1, "unattributed": 0}
    assert largest_remainder_split(5, {"a": Fraction(1, 3), "b": 0}) == {"a": 5}


def test_oracle_windows_and_scope_by_hand():
    h = dt.datetime(2026, 1, 5, 10)
    prices = sample_data.load_pricing()["drivers"]

    def li(service, usage_type, units, start=h, hours=1, resource="", accountant="", app="tax-demo"):
        return LineItem(start, start + dt.timedelta(hours=hours), "1", "Usage", service, usage_type, "", resource,
                        accountant, app, "", "", "USD", units)

    items = [
        li("AWSLambda", "USE1-Request", 100),  # hour evidence 1:3
        li("AWSLambda", "USE1-Request", 10, start=h + dt.timedelta(hours=1)),  # no evidence that hour -> day
        li("AWSLambda", "USE1-Request", 9, start=h + dt.timedelta(days=1)),  # none that day -> month
        li("AWSLambda", "USE1-Lambda-GB-Second", 5, resource="x", accountant="acct-0007"),  # direct
        li("AmazonCloudWatch", "USE1-DataProcessing-Bytes", 3),  # no drivers -> unattributed
        li("AmazonDynamoDB", "USE1-ReadRequestUnits", 4, resource="arn:aws:dynamodb:us-east-1:1:table/t2"),
        li("AmazonDynamoDB", "USE1-ReadRequestUnits", 6, resource="arn:aws:dynamodb:us-east-1:1:table/t9"),
        li("AWSLambda", "USE1-Request", 1000, app="other-app"),  # out of scope
    ]
    evidence = [
        Evidence(h, "AWSLambda", "requests", "", "acct-0001", Fraction(1)),
        Evidence(h, "AWSLambda", "requests", "", "acct-0002", Fraction(3)),
        Evidence(h + dt.timedelta(hours=5), "AWSLambda", "requests", "", "unattributed", Fraction(4)),
        Evidence(h, "AmazonDynamoDB", "read_units", "t1", "acct-0001", Fraction(1)),
        Evidence(h, "AmazonDynamoDB", "read_units", "t2", "acct-0002", Fraction(1, 2)),
    ]
    allocations, in_units, out_units = attribute(items, evidence, prices)
    assert (in_units, out_units) == (137, 1000)
    rows = {(a.usage_hour, a.service, a.resource_id, a.accountant_id): (a.allocation, a.cost_units)
            for a in allocations}
    nxt, tomorrow = h + dt.timedelta(hours=1), h + dt.timedelta(days=1)
    assert rows[(h, "AWSLambda", "", "acct-0001")] == ("shared_hour", 25)
    assert rows[(h, "AWSLambda", "", "acct-0002")] == ("shared_hour", 75)
    # the day: 1 : 3 : 4 of 10 units -> 1.25, 3.75, 5 -> 1, 4, 5 (remainders .25 < .75)
    assert rows[(nxt, "AWSLambda", "", "acct-0001")] == ("shared_day", 1)
    assert rows[(nxt, "AWSLambda", "", "acct-0002")] == ("shared_day", 4)
    assert rows[(nxt, "AWSLambda", "", "unattributed")] == ("shared_day", 5)
    assert rows[(tomorrow, "AWSLambda", "", "unattributed")][0] == "shared_month"
    assert rows[(h, "AWSLambda", "x", "acct-0007")] == ("direct", 5)
    assert rows[(h, "AmazonCloudWatch", "", "unattributed")] == ("unattributed", 3)
    t2 = "arn:aws:dynamodb:us-east-1:1:table/t2"  # its own table's evidence only
    assert rows[(h, "AmazonDynamoDB", t2, "acct-0002")] == ("shared_hour", 4)
    t9 = "arn:aws:dynamodb:us-east-1:1:table/t9"  # no evidence for t9: all tables, 1 : 0.5
    assert rows[(h, "AmazonDynamoDB", t9, "acct-0001")] == ("shared_hour", 4)
    assert rows[(h, "AmazonDynamoDB", t9, "acct-0002")] == ("shared_hour", 2)
    monthly, _daily, _types, kinds = summarize(allocations)
    assert sum(monthly.values()) == in_units
    assert kinds == {"direct": 1, "shared_day": 1, "shared_hour": 3, "shared_month": 1, "unattributed": 1}


def test_cli(tmp_path, capsys):
    assert sample_data.main(["--out", str(tmp_path), "--month", "2026-02", "--tenants", "3", "--rows", "0",
                             "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "billing period 2026-02" in out and "unattributed" in out
    assert (tmp_path / "cur/cur/tax-demo-cur/tax-demo-cur/year=2026/month=2").is_dir()
    assert (tmp_path / "usage/tax-agent-usage.jsonl").is_file()


def test_oracle_bedrock_models_and_lambda_functions_by_hand():
    h = dt.datetime(2026, 1, 5, 10)
    prices = sample_data.load_pricing()["drivers"]
    fn = "arn:aws:lambda:us-east-1:1:function:"

    def li(service, usage_type, units, resource=""):
        return LineItem(h, h + dt.timedelta(hours=1), "1", "Usage", service, usage_type, "", resource, "",
                        "tax-demo", "", "", "USD", units)

    items = [
        li("AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", 300),  # A's model only
        li("AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 225),  # B's model only
        li("AmazonBedrock", "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))", 50),
        li("AmazonBedrock", "USE1-NovaLite-input-tokens", 100),  # no Nova evidence: all models, 1 : 9
        li("AWSLambda", "USE1-Lambda-GB-Second-ARM", 40, fn + "worker"),  # the worker's evidence: B
        li("AWSLambda", "USE1-Lambda-GB-Second", 40, fn + "unlogged"),  # no evidence for it: all, 1 : 3
    ]
    evidence = [
        Evidence(h, "AmazonBedrock", "input_tokens", "anthropic.claude-3-5-sonnet-20240620-v1:0", "A", Fraction(1000)),
        Evidence(h, "AmazonBedrock", "input_tokens", "us.anthropic.claude-3-haiku-20240307-v1:0", "B", Fraction(9000)),
        Evidence(h, "AWSLambda", "gb_seconds", "api", "A", Fraction(1)),
        Evidence(h, "AWSLambda", "gb_seconds", "worker", "B", Fraction(3)),
    ]
    allocations, _, _ = attribute(items, evidence, prices)
    got = {(a.usage_type, a.accountant_id): a.cost_units for a in allocations}
    assert got == {
        ("USE1-Claude3.5Sonnet-input-tokens", "A"): 300,
        ("USE1-Claude3Haiku-input-tokens", "B"): 225,
        ("USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))", "B"): 50,
        ("USE1-NovaLite-input-tokens", "A"): 10, ("USE1-NovaLite-input-tokens", "B"): 90,
        ("USE1-Lambda-GB-Second-ARM", "B"): 40,
        ("USE1-Lambda-GB-Second", "A"): 10, ("USE1-Lambda-GB-Second", "B"): 30,
    }


@pytest.mark.parametrize("policy", ["proportional", "unattributed"])
def test_oracle_network_cost_by_compute_cost_by_hand(policy):
    h = dt.datetime(2026, 1, 9, 10)
    prices = sample_data.load_pricing()["drivers"]

    def li(service, usage_type, units, start=h, accountant=""):
        return LineItem(start, start + dt.timedelta(hours=1), "1", "Usage", service, usage_type, "", "", accountant,
                        "tax-demo", "", "", "USD", units)

    items = [
        li("AWSLambda", "USE1-Lambda-GB-Second", 30, accountant="A"),  # compute of the hour: A 30, B 10
        li("AmazonBedrockAgentCore", "USE1-AgentCoreRuntime-vCPU-Hours", 10),
        li("AmazonBedrock", "USE1-Claude3Haiku-input-tokens", 50, accountant="C"),  # not compute
        li("AmazonEC2", "USE1-NatGateway-Bytes", 4),
        li("AWSLambda", "USE1-DataTransfer-Out-Bytes", 2, start=h + dt.timedelta(hours=1)),  # the day's
    ]
    evidence = [Evidence(h, "AmazonBedrockAgentCore", "sessions", "", "B", Fraction(1))]
    allocations, _, _ = attribute(items, evidence, prices, network_policy=policy)
    got = {(a.usage_type, a.accountant_id, a.allocation): a.cost_units for a in allocations
           if a.usage_type in ("USE1-NatGateway-Bytes", "USE1-DataTransfer-Out-Bytes")}
    if policy == "unattributed":
        assert got == {("USE1-NatGateway-Bytes", "unattributed", "unattributed"): 4,
                       ("USE1-DataTransfer-Out-Bytes", "unattributed", "unattributed"): 2}
    else:
        # 4 x 30/40 = 3, 4 x 10/40 = 1; 2 x 3/4 = 1.5 -> 1 or 2 by largest remainder: .5 each, ties by id: A
        assert got == {("USE1-NatGateway-Bytes", "A", "shared_hour"): 3, ("USE1-NatGateway-Bytes", "B", "shared_hour"): 1,
                       ("USE1-DataTransfer-Out-Bytes", "A", "shared_day"): 2,
                       ("USE1-DataTransfer-Out-Bytes", "B", "shared_day"): 0}
