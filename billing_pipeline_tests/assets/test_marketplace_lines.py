"""A model sold through AWS Marketplace: its token lines are read as Bedrock's (docs/attribution-rules.md), and its
tax and credits, which carry only the Marketplace product code, go to the tenants by their cost of THAT product
code (they were out of scope: no in-scope cost carried the code, so the tenants never got the model's credits).
A hand-written legacy CSV delivery and model invocation logs, through the real Definitions."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal as D

import duckdb
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline_tests.readers.cur_builders import legacy_row, write_csv, write_legacy_manifest

MARKETPLACE = "cl9pmkh3g2oxk4b3wvv2ma5zu"  # a Marketplace listing's product code
HAIKU = "Claude 3 Haiku (Amazon Bedrock Edition)"
ASSETS = {"cur_line_items", "hourly_cost_facts", "usage_shares", "tenant_costs"}


def line(i, kind, product, usage_type, cost, *, whole_month=False, app="tax-demo", marketplace=False):
    start, end = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z") if whole_month else (
        "2026-01-10T10:00:00Z", "2026-01-10T11:00:00Z")
    return legacy_row(**{
        "identity/LineItemId": f"li-{i}", "lineItem/LineItemType": kind, "lineItem/ProductCode": product,
        "lineItem/UsageType": usage_type, "lineItem/Operation": "", "lineItem/ResourceId": "",
        "lineItem/UnblendedCost": cost, "lineItem/UsageStartDate": start, "lineItem/UsageEndDate": end,
        "bill/BillingEntity": "AWS Marketplace" if marketplace else "AWS",
        "product/ProductName": HAIKU if marketplace else "Amazon Bedrock", "resourceTags/user:application": app})


def invocation(tenant: str, model: str, tokens_in: int, tokens_out: int) -> str:
    return "2026-01-10T10:03:00.000Z " + json.dumps({
        "schemaType": "ModelInvocationLog", "timestamp": "2026-01-10T10:03:00.000Z", "modelId": model,
        "requestMetadata": {"accountant_id": tenant},
        "input": {"inputTokenCount": tokens_in}, "output": {"outputTokenCount": tokens_out}})


def test_a_marketplace_models_tax_and_credits_go_by_its_own_cost(tmp_path, monkeypatch):
    rows = [
        line(1, "Usage", "AmazonBedrock", "USE1-Claude4Sonnet-input-tokens", "0.012"),
        line(2, "Usage", "AmazonBedrock", "USE1-Claude4Sonnet-input-tokens", "0.02", app="other-app"),
        line(3, "Usage", MARKETPLACE, "USE1-MP:USE1_InputTokenCount-Units", "0.0001", marketplace=True),
        line(4, "Usage", MARKETPLACE, "USE1-MP:USE1_OutputTokenCount-Units", "0.000125", marketplace=True),
        line(5, "Tax", MARKETPLACE, "", "0.00002", whole_month=True, app="", marketplace=True),
        line(6, "Credit", MARKETPLACE, "", "-0.0001", whole_month=True, app="", marketplace=True),
        line(7, "Credit", "AmazonBedrock", "", "-0.005", whole_month=True, app=""),
    ]
    cur = tmp_path / "cur"
    key = "cur/rep/20260101-20260201/a1/rep-1.csv.gz"
    write_csv(cur / key, rows)
    write_legacy_manifest(cur / "cur/rep/20260101-20260201/rep-Manifest.json", "rep", [key], "a1")
    logs = tmp_path / "logs" / "bedrock" / "task" / "stream" / "000000.gz"
    logs.parent.mkdir(parents=True)
    sonnet, haiku = "us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"
    logs.write_bytes(gzip.compress("\n".join([
        invocation("t1", sonnet, 1000, 0), invocation("t2", sonnet, 3000, 0),
        invocation("t1", haiku, 100, 10), invocation("t2", haiku, 300, 90)]).encode() + b"\n"))
    (tmp_path / "none").mkdir()
    for name, value in {"BILLING_CUR_URI": cur, "BILLING_LOGS_URI": tmp_path / "logs",
                        "BILLING_S3_INVENTORY_URI": tmp_path / "none", "BILLING_USAGE_URI": tmp_path / "none",
                        "BILLING_WAREHOUSE": tmp_path / "w.duckdb"}.items():
        monkeypatch.setenv(name, str(value))
    assert materialize([a for a in defs.assets if a.key.to_user_string() in ASSETS], resources=defs.resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral()).success

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        # the Marketplace lines are Bedrock's facts, under their own product code
        facts = con.execute("""SELECT line_item_type, service, product_code, sum(unblended_cost) FROM hourly_cost_facts
                               GROUP BY ALL ORDER BY ALL""").fetchall()
        costs = con.execute("""SELECT accountant_id, line_item_type, sum(cost) FROM tenant_costs
                               WHERE line_item_type <> 'Usage' GROUP BY ALL ORDER BY ALL""").fetchall()
    assert facts == [
        ("Credit", "AmazonBedrock", "AmazonBedrock", D("-0.005")),
        ("Credit", "AmazonBedrock", MARKETPLACE, D("-0.0001")),
        ("Tax", "AmazonBedrock", MARKETPLACE, D("0.00002")),
        ("Usage", "AmazonBedrock", "AmazonBedrock", D("0.032")),
        ("Usage", "AmazonBedrock", MARKETPLACE, D("0.000225")),
    ]
    # Haiku (all the application's): t1 0.0000375 (25 + 12.5 of 100 + 125 millionths), t2 0.0001875, so its tax
    # and credit 1/6 and 5/6 each; AmazonBedrock's credit by its own charges, 0.012 of 0.032 the application's,
    # split by Sonnet's 0.003 and 0.009 (no Haiku in it): -0.005 x 0.012 / 0.032 = -0.001875, t1 x 1/4, t2 x 3/4
    assert costs == [
        ("t1", "Credit", D("-0.0000166667") + D("-0.00046875")),
        ("t1", "Tax", D("0.0000033333")),
        ("t2", "Credit", D("-0.0000833333") + D("-0.00140625")),
        ("t2", "Tax", D("0.0000166667")),
    ]
