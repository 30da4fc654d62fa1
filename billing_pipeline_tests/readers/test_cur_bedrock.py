"""Bedrock on a real CUR 2.0 bill: Marketplace-billed models and the caller's IAM principal (or its tags)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from billing_pipeline_tests.readers.cur_builders import read_all, write_csv, write_export_manifest, write_parquet

JAN = dt.date(2026, 1, 1)
UTC_MS = pa.timestamp("ms", tz="UTC")
MAP = pa.map_(pa.string(), pa.string())


def test_marketplace_models_are_bedrock_lines_and_a_principal_naming_a_tenant_makes_the_line_direct(tmp_path):
    lines = [  # id, billing entity, product code, usage type, product name, principal, tags
        ("1", "AWS", "AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", "Amazon Bedrock",
         "arn:aws:sts::111111111111:assumed-role/tenant-access/acct-7", [("user_application", "tax-demo")]),
        ("2", "AWS", "AmazonBedrock", "USE1-Claude3Haiku-output-tokens", "Amazon Bedrock",
         "arn:aws:iam::111111111111:role/tax-agent", [("iamPrincipal/accountant_id", "acct-9")]),
        ("3", "AWS Marketplace", "b3k2x9prod", "USE1-MP:USE1_InputTokenCount-Units",
         "Claude 3 Haiku (Amazon Bedrock Edition)", "arn:aws:iam::111111111111:role/tax-agent", []),
        ("4", "AWS", "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", "Amazon Bedrock",
         "arn:aws:iam::111111111111:user/alice", [("user_accountant_id", "acct-1"),
                                                  ("iamPrincipal/accountant_id", "acct-9")]),
        ("5", "AWS Marketplace", "other-prod", "USE1-MP:Seats", "Some SaaS", None, []),
        # Claude 4 tokens are billed under product code AmazonBedrockService (and the foundation-model offer's
        # code): the catalog's Bedrock, so model evidence splits them like any Bedrock line
        ("6", "AWS", "AmazonBedrockService", "USE1-Claude4Sonnet-input-tokens", "Amazon Bedrock Service", None, []),
        ("7", "AWS", "AmazonBedrockFoundationModels", "USE1-Claude4.5Haiku-output-tokens", "Amazon Bedrock", None,
         []),
        ("8", "AWS", "AmazonBedrockAgentCore", "USE1-Runtime-vCPU-Hours", "Amazon Bedrock AgentCore", None, []),
    ]
    n = len(lines)
    table = pa.table({
        "bill_billing_period_start_date": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "bill_billing_entity": [r[1] for r in lines],
        "identity_line_item_id": [r[0] for r in lines],
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 2, 3)] * n, UTC_MS),
        "line_item_usage_end_date": pa.array([dt.datetime(2026, 1, 2, 4)] * n, UTC_MS),
        "line_item_product_code": [r[2] for r in lines],
        "line_item_usage_type": [r[3] for r in lines],
        "product_product_name": [r[4] for r in lines],
        "line_item_iam_principal": [r[5] for r in lines],
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": [1.0] * n,
        "resource_tags": pa.array([r[6] for r in lines], MAP),
    })
    root = tmp_path / "bucket"
    export = root / "exports" / "cur2"
    listed = write_parquet(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-00001.snappy.parquet", table)
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-Manifest.json", "cur2",
                          [f"s3://cur-bucket/{listed.relative_to(root).as_posix()}"])
    _, rows = read_all(root)
    got = [(r["service"], r["usage_type"], r["accountant_id"]) for r in rows[JAN]]
    assert got == [
        ("AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", "acct-7"),  # the principal's session names it
        ("AmazonBedrock", "USE1-Claude3Haiku-output-tokens", "acct-9"),  # the principal's tag
        ("AmazonBedrock", "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))", None),
        ("AmazonBedrock", "USE1-Claude3Haiku-input-tokens", "acct-1"),  # the resource's own tag first
        ("other-prod", "USE1-MP:Seats", None),  # other Marketplace products stay what they are
        ("AmazonBedrock", "USE1-Claude4Sonnet-input-tokens", None),
        ("AmazonBedrock", "USE1-Claude4.5Haiku-output-tokens", None),
        ("AmazonBedrockAgentCore", "USE1-Runtime-vCPU-Hours", None),  # a service of its own stays itself
    ]


def test_cur2_marketplace_model_named_by_the_product_map_as_aws_writes_it(tmp_path):
    """CUR 2.0 has no product_product_name column: the product name is `product['product_name']` (the AWS data
    dictionary's "Product columns"; in a CSV export the map is JSON text, as the real export in
    ../shared/samples/extra/ola-raji-cur2-csv has it). Without it a Marketplace model's tokens name no model and
    are split by every model's users."""
    lines = [  # id, billing entity, product code, usage type, product map
        ("1", "AWS Marketplace", "b3k2x9prod", "USE1-MP:USE1_InputTokenCount-Units",
         [("product_name", "Claude 3 Haiku (Amazon Bedrock Edition)")]),
        ("2", "AWS", "AmazonBedrock", "USE1-Claude4Sonnet-input-tokens",
         [("product_name", "Amazon Bedrock"), ("region", "us-east-1")]),
        ("3", "AWS Marketplace", "b3k2x9prod", "USE1-MP:USE1_OutputTokenCount-Units", []),  # no name: as it is
    ]
    n = len(lines)
    columns = {
        "bill_billing_period_start_date": pa.array([dt.datetime(2026, 1, 1)] * n, UTC_MS),
        "bill_billing_entity": [r[1] for r in lines],
        "identity_line_item_id": [r[0] for r in lines],
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([dt.datetime(2026, 1, 2, 3)] * n, UTC_MS),
        "line_item_usage_end_date": pa.array([dt.datetime(2026, 1, 2, 4)] * n, UTC_MS),
        "line_item_product_code": [r[2] for r in lines],
        "line_item_usage_type": [r[3] for r in lines],
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": [1.0] * n,
    }
    expected = [
        ("AmazonBedrock", "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))"),
        ("AmazonBedrock", "USE1-Claude4Sonnet-input-tokens"),
        ("AmazonBedrock", "USE1-MP:USE1_OutputTokenCount-Units"),
    ]
    parquet_root = tmp_path / "parquet"
    table = pa.table({**columns, "product": pa.array([r[4] for r in lines], MAP)})
    export = parquet_root / "exports" / "cur2"
    listed = write_parquet(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-00001.snappy.parquet", table)
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-Manifest.json", "cur2",
                          [f"s3://cur-bucket/{listed.relative_to(parquet_root).as_posix()}"])
    _, rows = read_all(parquet_root)
    assert [(r["service"], r["usage_type"]) for r in rows[JAN]] == expected

    csv_root = tmp_path / "csv"
    text = [{name: str(values[i]) if not isinstance(values, pa.Array) else values[i].as_py().strftime(
                 "%Y-%m-%dT%H:%M:%SZ") for name, values in columns.items()}
            | {"product": json.dumps(dict(lines[i][4])) if lines[i][4] else ""} for i in range(n)]
    export = csv_root / "exports" / "cur2"
    listed = write_csv(export / "data" / "BILLING_PERIOD=2026-01" / "cur2-00001.csv.gz", text)
    write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "cur2-Manifest.json", "cur2",
                          [f"s3://cur-bucket/{listed.relative_to(csv_root).as_posix()}"])
    _, rows = read_all(csv_root)
    assert [(r["service"], r["usage_type"]) for r in rows[JAN]] == expected
