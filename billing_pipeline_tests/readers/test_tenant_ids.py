"""Tenant ids from logs and CUR tags: trimmed; empty = no owner; reserved words, control characters and non-string
JSON values are never tenants (their usage and cost go to `unattributed`, counted)."""

from __future__ import annotations

import json
from decimal import Decimal as D

from billing_pipeline_tests.readers.usage_builders import (
    of_service,
    quantities,
    read_january,
    report,
    text_app_line,
    write_export,
)


def test_log_tenant_ids_are_trimmed_and_invalid_ones_are_unattributed(tmp_path):
    owners = {"r1": " acc-1 ", "r2": "acc-1", "r3": "   ", "r4": "Total", "r5": 123, "r6": "acc\u00012",
              "r7": {"id": "acc-1"}, "r8": "unattributed"}
    lines = []
    for rid, owner in owners.items():
        lines.append(text_app_line("2026-01-06T07:00:00.000Z", rid, json.dumps({"accountant_id": owner})))
        lines.append(report("2026-01-06T07:00:01.000Z", rid, billed_ms=1000, memory_mb=1024))  # 1 GB-s each
    write_export(tmp_path, "s", lines)
    evidence = read_january(tmp_path)
    got = {k[4]: v for k, v in of_service(evidence, "AWSLambda").items() if k[2] == "gb_seconds"}
    # " acc-1 " is acc-1; "   " names nobody (the REPORT has no owner); the other five are never tenants
    assert got == {"acc-1": D(2), "unattributed": D(6)}
    assert evidence.problems == {"invalid_accountant_id": 5, "report_without_owner": 1, "unrecognized_line": 1}


def test_cur_tags_are_trimmed_and_invalid_ones_cost_unattributed(tmp_path, warehouse_con):
    import datetime as dt

    from billing_pipeline_tests.readers.cur_builders import (
        key_of,
        legacy_row,
        read_all,
        write_csv,
        write_legacy_manifest,
    )

    root = tmp_path / "bucket"
    tags = [" acc-1 ", "acc-1", "  ", "TOTAL", "unattributed", "acc\t2"]
    rows = [legacy_row(**{"identity/LineItemId": f"li-{i}", "resourceTags/user:accountant_id": tag,
                          "resourceTags/user:application": "tax-demo", "lineItem/UnblendedCost": f"{i + 1}"})
            for i, tag in enumerate(tags)]
    data = write_csv(root / "m" / "20260101-20260201" / "asm" / "m-1.csv.gz", rows)
    write_legacy_manifest(root / "m" / "20260101-20260201" / "m-Manifest.json", "m", [key_of(root, data)], "asm")
    _, staged = read_all(root)
    assert [r["accountant_id"] for r in staged[dt.date(2026, 1, 1)]] == [
        "acc-1", "acc-1", None, "unattributed", "unattributed", "unattributed"]
    # through the split: the tagged cost is acc-1's, the invalid tags' cost unattributed, "  " is untagged (shared:
    # no evidence here, so unattributed too)
    for r in staged[dt.date(2026, 1, 1)]:
        warehouse_con.execute(
            """INSERT INTO hourly_cost_facts VALUES (?, ?, 1, '2', 'Usage', 'AWSLambda', ?, 'Invoke', ?, ?, 'tax-demo',
                   NULL, NULL, 'USD', true, 1, ?, ?, NULL, 1, NULL, NULL)""",
            [r["billing_period"], r["usage_start"], r["line_item_id"], r["resource_id"], r["accountant_id"],
             r["unblended_cost"], r["amortized_cost"]])
    from billing_pipeline.assets.tenant_costs import stage_cost_allocations
    from billing_pipeline.engines.duckdb_engine import DuckDBEngine
    from billing_pipeline.pricing import parse_pricing

    stage_cost_allocations(DuckDBEngine(warehouse_con), {"billing_period": dt.date(2026, 1, 1),
                                                         "cost_metric": "amortized"}, parse_pricing("{}"))
    got = warehouse_con.execute(
        "SELECT accountant_id, allocation, sum(cost) FROM cost_allocations GROUP BY ALL ORDER BY 1, 2").fetchall()
    assert got == [("acc-1", "direct", D(3)), ("unattributed", "unattributed", D(3 + 4 + 5 + 6))]


def test_the_oracle_states_the_same_rule():
    from billing_pipeline.sample_data_oracle import tenant_id

    assert [tenant_id(v) for v in (" acc-1 ", "acc-1", "  ", None, "Total", "unattributed", "a\tb", 123, {"a": 1})] == [
        "acc-1", "acc-1", None, None, "unattributed", "unattributed", "unattributed", "unattributed", "unattributed"]


def test_s3_access_log_client_folders_that_are_never_tenants(tmp_path):
    def access(key):
        return (f"79a59df900b949e55d96a1e698fbaced tax-demo-docs [05/Jan/2026:15:00:01 +0000] 192.0.2.3 "
                f"arn:aws:sts::123456789012:assumed-role/app/x 3E57427F3EXAMPLE REST.PUT.OBJECT {key} "
                f'"PUT /{key} HTTP/1.1" 200 - 113 113 7 6 "-" "aws-sdk" - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 '
                "AuthHeader tax-demo-docs.s3.us-east-1.amazonaws.com TLSv1.2 - -")

    path = tmp_path / "s3-access" / "2026-01-05-15-00-00-ABCDEF"
    path.parent.mkdir()
    path.write_text("\n".join([access("clients/acc-1/a.pdf"), access("clients/Total/b.pdf"),
                               access("clients/unattributed/c.pdf")]))
    evidence = read_january(tmp_path)
    assert {k[4]: v for k, v in of_service(evidence, "AmazonS3").items()} == {"acc-1": D(1), "unattributed": D(2)}
    assert evidence.problems == {"invalid_accountant_id": 2}


def test_inventory_client_folders_that_are_never_tenants(tmp_path):
    from billing_pipeline_tests.readers.usage_builders import GIB, JANUARY_HOURS, write_snapshot

    # Jan 31 01:00 stands for the month's last 23 hours; 744 GiB is 1 GB-month per hour: 23 per folder
    # (URL-encoded " acc-1 " is trimmed; TOTAL is never a tenant)
    write_snapshot(tmp_path, "2026-01-31T01-00Z", [("clients/%20acc-1%20/a.pdf", GIB * JANUARY_HOURS),
                                                   ("clients/TOTAL/b.pdf", GIB * JANUARY_HOURS)])
    evidence = read_january(inventory=tmp_path)
    got = {}
    for (_hour, _s, _d, _scope, tenant), q in quantities(evidence).items():
        got[tenant] = got.get(tenant, D(0)) + q
    assert got == {"acc-1": D(23), "unattributed": D(23)}
    assert evidence.problems == {"invalid_accountant_id": 1}
