"""AWS's optional CUR data through the real Definitions: the bill, the tenants, `unattributed` and the account-level
parts count every line exactly once.

Split cost allocation data (ECS tasks and EKS pods on EC2, and Fargate) as AWS writes it, in a legacy CSV report
(`splitLineItem/*` columns) and a CUR 2.0 export (`split_line_item_*`). What AWS documents (AWS Data Exports, "Understanding split cost allocation data", "Split line item columns"; Amazon
ECS Developer Guide, "Amazon ECS usage reports"): two new usage records per task or pod and hour, line item type
`Usage`, operation `ECSTask-EC2` / `EKSPod-EC2`, usage type `<region>-ECS-EC2-vCPU-Hours` / `...-GB-Hours` (EKS:
`...-EKS-EC2-...`), the task or pod ARN as resource id, and "the tasks don't have a direct cost associated with
them": their line item costs are 0. Their split_cost + unused_cost re-divide the parent instance's amortized cost,
which the instance's own EC2 line already bills (split_line_item_parent_resource_id names it). A Fargate task's
line is the billed line itself (operation `FargateTask`), the split columns beside its cost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import duckdb
import pyarrow as pa
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline_tests.readers.cur_builders import (
    legacy_row,
    write_csv,
    write_legacy_manifest,
    write_parquet,
)

ASSETS = {"cur_line_items", "hourly_cost_facts", "usage_shares", "tenant_costs"}
ACCOUNT = "222222222222"
TASK = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/0a1b2c3d4e5f"
POD = f"arn:aws:eks:us-east-1:{ACCOUNT}:pod/prod/default/web-7d9f/1f2e3d4c-0000-4000-8000-000000000001"
FARGATE = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/9f8e7d6c5b4a"
APP = {"application": "tax-demo"}


def item(i, product, usage_type, operation, resource, cost, *, kind="Usage", usage=1, tags=None, parent="",
         split=None, unused=None, whole_month=False):
    """One line item in CUR 2.0 names (split columns empty unless given)."""
    return {"identity_line_item_id": f"li-{i}", "line_item_line_item_type": kind,
            "line_item_usage_start_date": dt.datetime(2026, 1, 1 if whole_month else 5, 0 if whole_month else 10),
            "line_item_usage_end_date": dt.datetime(2026, 2, 1) if whole_month else dt.datetime(2026, 1, 5, 11),
            "line_item_product_code": product, "line_item_usage_type": usage_type, "line_item_operation": operation,
            "line_item_resource_id": resource, "line_item_usage_amount": usage, "line_item_unblended_cost": cost,
            "split_line_item_parent_resource_id": parent, "split_line_item_split_cost": split,
            "split_line_item_unused_cost": unused, "tags": tags or {}}


# One hour of a cluster. Instance i-0a (the application's, no tenant tag) runs acme's ECS task; i-0b (the
# application's) runs beta's EKS pod; each instance bills 1.00 on its own EC2 line and its split rows re-divide that
# 1.00 (vCPU 0.34 + 0.06 unused, memory 0.08 + 0.02, twice 0.5). acme's Fargate task bills 0.0101200000 itself. Another
# team's instance bills 0.50; the month's EC2 tax 0.10 has no tag.
ITEMS = [
    item(1, "AmazonEC2", "USE1-BoxUsage:m5.xlarge", "RunInstances", "i-0a", "1.00", tags=APP),
    item(2, "AmazonECS", "USE1-ECS-EC2-vCPU-Hours", "ECSTask-EC2", TASK, "0", usage=2, parent="i-0a",
         split="0.34", unused="0.06", tags={**APP, "accountant_id": "acme"}),
    item(3, "AmazonECS", "USE1-ECS-EC2-GB-Hours", "ECSTask-EC2", TASK, "0", usage=4, parent="i-0a",
         split="0.08", unused="0.02", tags={**APP, "accountant_id": "acme"}),
    item(4, "AmazonEC2", "USE1-BoxUsage:m5.xlarge", "RunInstances", "i-0b", "1.00", tags=APP),
    item(5, "AmazonEKS", "USE1-EKS-EC2-vCPU-Hours", "EKSPod-EC2", POD, "0", usage=2, parent="i-0b",
         split="0.34", unused="0.06", tags={**APP, "accountant_id": "beta"}),
    item(6, "AmazonEKS", "USE1-EKS-EC2-GB-Hours", "EKSPod-EC2", POD, "0", usage=4, parent="i-0b",
         split="0.08", unused="0.02", tags={**APP, "accountant_id": "beta"}),
    item(7, "AmazonECS", "USE1-Fargate-vCPU-Hours:perCPU", "FargateTask", FARGATE, "0.0101200000", usage=0.25,
         split="0.0101200000", unused="0", tags={**APP, "accountant_id": "acme"}),
    item(8, "AmazonEC2", "USE1-BoxUsage:m5.large", "RunInstances", "i-0c", "0.50", tags={"application": "other"}),
    item(9, "AmazonEC2", "", "", "", "0.10", kind="Tax", usage=None, whole_month=True),
]

LEGACY = {"identity_line_item_id": "identity/LineItemId", "line_item_line_item_type": "lineItem/LineItemType",
          "line_item_usage_start_date": "lineItem/UsageStartDate", "line_item_usage_end_date": "lineItem/UsageEndDate",
          "line_item_product_code": "lineItem/ProductCode", "line_item_usage_type": "lineItem/UsageType",
          "line_item_operation": "lineItem/Operation", "line_item_resource_id": "lineItem/ResourceId",
          "line_item_usage_amount": "lineItem/UsageAmount", "line_item_unblended_cost": "lineItem/UnblendedCost",
          "split_line_item_parent_resource_id": "splitLineItem/ParentResourceId",
          "split_line_item_split_cost": "splitLineItem/SplitCost",
          "split_line_item_unused_cost": "splitLineItem/UnusedCost"}


def legacy_delivery(root):
    rows = []
    for it in ITEMS:
        row = {LEGACY[k]: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, dt.datetime) else
                           "" if v is None else str(v)) for k, v in it.items() if k in LEGACY}
        row.update({f"resourceTags/user:{k}": v for k, v in it["tags"].items()})
        row.update({"lineItem/UsageAccountId": ACCOUNT, "lineItem/LineItemDescription": ""})
        rows.append(legacy_row(**row))
    # every row has every tag column, empty where the line has no such tag (as AWS writes a legacy CSV)
    for row in rows:
        for key in ("resourceTags/user:application", "resourceTags/user:accountant_id"):
            row.setdefault(key, "")
    key = "cur/scad/20260101-20260201/a1/scad-1.csv.gz"
    write_csv(root / key, rows)
    write_legacy_manifest(root / "cur/scad/20260101-20260201/scad-Manifest.json", "scad", [key], "a1")


def cur2_delivery(root):
    """Data Exports Parquet: money as DOUBLE, the user tags in the `resource_tags` map (`user_<key>`)."""
    utc = pa.timestamp("ms", tz="UTC")
    money = ("line_item_unblended_cost", "split_line_item_split_cost", "split_line_item_unused_cost")
    columns = {k: [it[k] for it in ITEMS] for k in ITEMS[0] if k != "tags"}
    table = {
        **{k: pa.array([None if v is None else float(v) for v in vs], pa.float64()) if k in money
           else pa.array(vs, utc) if k.endswith("_date") else pa.array(vs, pa.float64())
           if k == "line_item_usage_amount" else pa.array([v or None for v in vs], pa.string())
           for k, vs in columns.items()},
        "bill_billing_period_start_date": pa.array([dt.datetime(2026, 1, 1)] * len(ITEMS), utc),
        "line_item_usage_account_id": [ACCOUNT] * len(ITEMS),
        "line_item_currency_code": ["USD"] * len(ITEMS),
        "resource_tags": pa.array([[(f"user_{k}", v) for k, v in it["tags"].items()] for it in ITEMS],
                                  pa.map_(pa.string(), pa.string())),
    }
    write_parquet(root / "scad" / "data" / "BILLING_PERIOD=2026-01" / "scad-00001.snappy.parquet", pa.table(table))


def run_month(tmp_path, monkeypatch, root, metric="amortized"):
    """cur_line_items .. tenant_costs (and their checks) for January 2026 of the delivery under `root`."""
    (tmp_path / "none").mkdir()
    for name, value in {"BILLING_CUR_URI": root, "BILLING_LOGS_URI": tmp_path / "none",
                        "BILLING_S3_INVENTORY_URI": tmp_path / "none", "BILLING_USAGE_URI": tmp_path / "none",
                        "BILLING_WAREHOUSE": tmp_path / "w.duckdb", "BILLING_COST_METRIC": metric}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("BILLING_APPLICATION", raising=False)  # tax-demo
    selected = [a for a in defs.assets if a.key.to_user_string() in ASSETS]
    checks = [c for c in defs.asset_checks if {k.asset_key for k in c.check_keys} <= {a.key for a in selected}]
    result = materialize([*selected, *checks], resources=defs.resources, partition_key="2026-01-01",
                         instance=DagsterInstance.ephemeral())
    assert result.success
    assert next(c for c in result.get_asset_check_evaluations() if c.check_name == "bill_conserved").passed
    return result


@pytest.mark.parametrize("layout", ["legacy_csv", "cur2"])
@pytest.mark.parametrize("metric", ["amortized", "unblended"])
def test_split_rows_count_the_instances_cost_once(tmp_path, monkeypatch, layout, metric):
    root = tmp_path / "bucket"
    (legacy_delivery if layout == "legacy_csv" else cur2_delivery)(root)
    result = run_month(tmp_path, monkeypatch, root, metric)

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        lines = con.execute("""SELECT line_item_id, unblended_cost, amortized_cost FROM cur_line_items
                               ORDER BY line_item_id""").fetchall()
        costs = con.execute("""SELECT accountant_id, service, allocation, sum(cost) FROM tenant_costs
                               GROUP BY ALL HAVING sum(cost) <> 0 ORDER BY ALL""").fetchall()
    # the split rows carry no cost of their own (their split columns are read into no cost)
    assert [(i, u, a) for i, u, a in lines if i in ("li-2", "li-3", "li-5", "li-6")] == [
        (i, D(0), D(0)) for i in ("li-2", "li-3", "li-5", "li-6")]
    # the instances' 2.00 (no tenant tag, EC2 has no driver) is unattributed once; acme pays its Fargate task only.
    # The tax 0.10 x 2.00 / 2.50 (the application's share of the bill's EC2 cost) = 0.08, all unattributed's
    # (the only positive EC2 cost of the application's)
    assert costs == [
        ("acme", "AmazonECS", "direct", D("0.0101200000")),
        ("unattributed", "AmazonEC2", "proportional", D("0.0800000000")),
        ("unattributed", "AmazonEC2", "unattributed", D("2.0000000000")),
    ]
    metadata = result.asset_materializations_for_node("tenant_costs")[0].metadata
    assert metadata["bill/USD"].value == "2.6101200000"  # 2.00 + 0.01012 + 0.50 + 0.10: each line once
    assert metadata["tenants/USD"].value == "0.0101200000"
    assert metadata["unattributed/USD"].value == "2.0800000000"
    assert metadata["out_of_scope/USD"].value == "0.5200000000"



def test_cur2_export_options_daily_monthly_no_resources_discount_compatibility_capacity_reservations(
        tmp_path, monkeypatch):
    """A CUR 2.0 export with TIME_GRANULARITY DAILY lines and MONTHLY lines, INCLUDE_RESOURCES off (no
    line_item_resource_id column), INCLUDE_MANUAL_DISCOUNT_COMPATIBILITY on (the discount is a BundledDiscount line
    item; `discount_bundled_discount` stays and repeats it on the usage line; `discount` and
    `discount_total_discount` are removed: AWS data dictionary, Discount columns) and capacity reservation data
    (`capacity_reservation_*` columns; the reservation's `Reservation` line bills 0, its used part is on the
    instance's line, its unused part an `UnusedBox` line: AWS Data Exports, "Monitoring your On-Demand capacity
    reservations")."""
    utc = pa.timestamp("ms", tz="UTC")
    day = (dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 6))
    month = (dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1))
    cr = f"arn:aws:ec2:us-east-1:{ACCOUNT}:capacity-reservation/cr-0be443example1db6f"
    acme, beta, app = {**APP, "accountant_id": "acme"}, {**APP, "accountant_id": "beta"}, APP
    # (type, product, usage type, period, cost, tags, bundled discount column, reservation arn, status)
    rows = [
        ("Usage", "AWSLambda", "USE1-Lambda-GB-Second", day, 0.30, acme, -0.03, None, None),
        ("Usage", "AWSLambda", "USE1-Lambda-GB-Second", day, 0.10, {"application": "other"}, -0.01, None, None),
        ("BundledDiscount", "AWSLambda", "USE1-Lambda-GB-Second", day, -0.04, {}, None, None, None),
        ("Usage", "AmazonEC2", "USE1-BoxUsage:m5.large", month, 0.50, beta, None, cr, "Used"),
        ("Usage", "AmazonEC2", "USE1-Reservation:m5.large", month, 0.0, app, None, cr, None),
        ("Usage", "AmazonEC2", "USE1-UnusedBox:m5.large", month, 0.70, app, None, cr, "Unused"),
    ]
    n = len(rows)
    table = pa.table({
        "bill_billing_period_start_date": pa.array([month[0]] * n, utc),
        "identity_line_item_id": [f"li-{i}" for i in range(n)],
        "line_item_usage_account_id": [ACCOUNT] * n,
        "line_item_line_item_type": [r[0] for r in rows],
        "line_item_product_code": [r[1] for r in rows],
        "line_item_usage_type": [r[2] for r in rows],
        "line_item_usage_start_date": pa.array([r[3][0] for r in rows], utc),
        "line_item_usage_end_date": pa.array([r[3][1] for r in rows], utc),
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": pa.array([r[4] for r in rows], pa.float64()),
        "resource_tags": pa.array([[(f"user_{k}", v) for k, v in r[5].items()] for r in rows],
                                  pa.map_(pa.string(), pa.string())),
        "discount_bundled_discount": pa.array([r[6] for r in rows], pa.float64()),
        "capacity_reservation_capacity_reservation_arn": [r[7] for r in rows],
        "capacity_reservation_capacity_reservation_status": [r[8] for r in rows],
        "capacity_reservation_capacity_reservation_type": ["Default" if r[7] else None for r in rows],
    })
    root = tmp_path / "bucket"
    write_parquet(root / "opts" / "data" / "BILLING_PERIOD=2026-01" / "opts-00001.snappy.parquet", table)
    result = run_month(tmp_path, monkeypatch, root)

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        facts = con.execute("""SELECT usage_hour, span_hours, line_item_type, usage_type, resource_id,
                                      sum(unblended_cost) FROM hourly_cost_facts GROUP BY ALL ORDER BY ALL""").fetchall()
        costs = con.execute("""SELECT accountant_id, service, line_item_type, allocation, sum(cost) FROM tenant_costs
                               GROUP BY ALL HAVING sum(cost) <> 0 ORDER BY ALL""").fetchall()
    assert facts == [
        (month[0], 744, "Usage", "USE1-BoxUsage:m5.large", None, D("0.5")),
        (month[0], 744, "Usage", "USE1-Reservation:m5.large", None, D("0")),
        (month[0], 744, "Usage", "USE1-UnusedBox:m5.large", None, D("0.7")),
        (day[0], 24, "BundledDiscount", "USE1-Lambda-GB-Second", None, D("-0.04")),
        (day[0], 24, "Usage", "USE1-Lambda-GB-Second", None, D("0.4")),
    ]
    # the discount once, from its line item: -0.04 x 0.30 / 0.40 = -0.03 to acme, never again from the column
    assert costs == [
        ("acme", "AWSLambda", "BundledDiscount", "proportional", D("-0.0300000000")),
        ("acme", "AWSLambda", "Usage", "direct", D("0.3000000000")),
        ("beta", "AmazonEC2", "Usage", "direct", D("0.5000000000")),
        ("unattributed", "AmazonEC2", "Usage", "unattributed", D("0.7000000000")),
    ]
    metadata = result.asset_materializations_for_node("tenant_costs")[0].metadata
    assert metadata["bill/USD"].value == "1.5600000000"
    assert metadata["tenants/USD"].value == "0.7700000000"
    assert metadata["unattributed/USD"].value == "0.7000000000"
    assert metadata["out_of_scope/USD"].value == "0.0900000000"
