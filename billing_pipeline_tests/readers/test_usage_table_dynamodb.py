"""read_estimates from the live DynamoDB usage table (`dynamodb://tax-agent-usage`) on a local moto_server over
HTTP: Query on the month GSI or Scan, every page, numbers exact, and the same rows as the JSON Lines reader."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import boto3
import pytest

from billing_pipeline.readers import usage_table_dynamodb
from billing_pipeline.readers.estimates import ESTIMATES_SCHEMA, read_estimates
from billing_pipeline.readers.usage_table_dynamodb import parse_dynamodb_uri
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.storage import Location, locate

JANUARY = dt.date(2026, 1, 1)
TABLE = "tax-agent-usage"


def items() -> list[dict]:
    """25 January items with numbers that a float would not keep, 3 of December and 1 of February."""
    rows = []
    for i in range(25):
        rows.append({
            "accountant_id": f"acc-{'abc'[i % 3]}", "timestamp": f"2026-01-{1 + i:02d}T{i % 24:02d}:15:00.123Z",
            "month": "2026-01", "operation": ["compute_tax", "store_document", "agent_session"][i % 3],
            "resource_type": ["lambda", "dynamodb", "agentcore"][i % 3],
            "quantity": D(f"{i + 1}.{i:04d}"), "unit_cost": D("0.0000166667"),
            "estimated_cost": D(f"0.{i:02d}00000001"),
        })
    for i in range(3):
        rows.append({"accountant_id": "acc-a", "timestamp": f"2025-12-{10 + i}T00:00:00Z", "month": "2025-12",
                     "operation": "compute_tax", "resource_type": "lambda", "quantity": D(1),
                     "unit_cost": D("0.2"), "estimated_cost": D("0.2")})
    rows.append({"accountant_id": "acc-b", "timestamp": "2026-02-01T00:00:00Z", "month": "2026-02",
                 "operation": "compute_tax", "resource_type": "lambda", "quantity": D(1), "unit_cost": D("0.2"),
                 "estimated_cost": D("0.2")})
    # no estimated_cost: quantity x unit_cost, as in the files
    rows.append({"accountant_id": "acc-c", "timestamp": "2026-01-31T23:59:59.999Z", "month": "2026-01",
                 "operation": "put", "resource_type": "dynamodb", "quantity": D(3), "unit_cost": D("0.00000125")})
    return rows


def create_table(month_index: dict | None = None, name: str = TABLE):
    definitions = ["accountant_id", "timestamp"]
    extra = {}
    if month_index is not None:
        definitions.append("month")
        extra["GlobalSecondaryIndexes"] = [{
            "IndexName": "month-index", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "month", "KeyType": "HASH"},
                          {"AttributeName": "timestamp", "KeyType": "RANGE"}],
            **month_index,
        }]
    return boto3.resource("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "accountant_id", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in definitions],
        **extra,
    )


def fill(table, rows) -> None:
    with table.batch_writer() as batch:
        for row in rows:
            batch.put_item(Item=row)


def from_json_lines(tmp_path, rows) -> list[tuple]:
    """What the JSON Lines reader gives for the same items (numbers written as their exact decimal text)."""
    folder = tmp_path / "jsonl"
    folder.mkdir()
    (folder / "usage.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return table_rows(read_estimates(locate(str(folder)), JANUARY))


def table_rows(table) -> list[tuple]:
    assert table.schema == ESTIMATES_SCHEMA
    return [tuple(r.values()) for r in table.to_pylist()]


def count_calls(monkeypatch) -> dict:
    calls: dict[str, int] = {}

    def client():
        dynamodb = boto3.client("dynamodb")
        for operation in ("Query", "Scan"):
            dynamodb.meta.events.register(
                f"after-call.dynamodb.{operation}",
                lambda operation=operation, **_: calls.__setitem__(operation, calls.get(operation, 0) + 1),
            )
        return dynamodb

    monkeypatch.setattr(usage_table_dynamodb, "dynamodb_client", client)
    return calls


@pytest.mark.parametrize(
    "index, uri, operation",
    [
        ({}, f"dynamodb://{TABLE}?page_size=4", "Query"),  # month-index found by itself
        ({}, f"dynamodb://{TABLE}?index=month-index&page_size=4", "Query"),
        ({}, f"dynamodb://{TABLE}?index=none&page_size=4", "Scan"),
        (None, f"dynamodb://{TABLE}?page_size=4", "Scan"),  # no index: Scan with a filter on month
        # an index without the cost fields cannot list the items: not used
        ({"Projection": {"ProjectionType": "KEYS_ONLY"}}, f"dynamodb://{TABLE}?page_size=4", "Scan"),
    ],
    ids=["query", "query-named", "scan-forced", "scan", "keys-only-index"],
)
def test_table_items_equal_the_json_lines_reader(aws, tmp_path, monkeypatch, index, uri, operation):
    rows = items()
    fill(create_table(index), rows)
    calls = count_calls(monkeypatch)

    got = table_rows(read_estimates(parse_dynamodb_uri(uri), JANUARY))

    assert got == from_json_lines(tmp_path, rows)
    assert len(got) == 26
    assert got[0] == ("acc-a", dt.datetime(2026, 1, 1, 0, 15, 0, 123000), "2026-01", "compute_tax", "lambda",
                      D("1.0000"), D("0.0000166667"), D("0.0000000001"))
    assert got[24] == ("acc-a", dt.datetime(2026, 1, 25, 0, 15, 0, 123000), "2026-01", "compute_tax", "lambda",
                       D("25.0024"), D("0.0000166667"), D("0.2400000001"))
    assert got[25] == ("acc-c", dt.datetime(2026, 1, 31, 23, 59, 59, 999000), "2026-01", "put", "dynamodb", D("3"),
                       D("0.00000125"), D("0.0000037500"))
    assert set(calls) == {operation}
    assert calls[operation] >= (7 if operation == "Query" else 8)  # 26 (Query) / 30 (Scan) items, 4 a page


def test_scan_keeps_items_without_a_month_by_their_timestamp(aws, tmp_path):
    rows = [
        {"accountant_id": "acc-a", "timestamp": "2026-01-05T10:00:00Z", "estimated_cost": D("0.1"),
         "resource_type": "s3"},
        {"accountant_id": "acc-a", "timestamp": "2026-02-05T10:00:00Z", "estimated_cost": D("0.1")},
    ]
    fill(create_table(None), rows)
    got = table_rows(read_estimates(parse_dynamodb_uri(f"dynamodb://{TABLE}"), JANUARY))
    assert got == from_json_lines(tmp_path, rows) == [
        ("acc-a", dt.datetime(2026, 1, 5, 10), "2026-01", None, "s3", None, None, D("0.1"))
    ]


@pytest.mark.parametrize("index", [{}, None], ids=["query", "scan"])
def test_an_item_counts_in_the_month_of_its_utc_timestamp_whatever_its_month_says(aws, tmp_path, index):
    """An application writing `month` in its local time puts 2026-01-31T20:00:00-08:00 (February 1, 04:00 UTC)
    in '2026-01' and 2026-01-31T23:30:00Z in '2026-02': the month's Query (or Scan) found the first only, then
    dropped it by its timestamp, and February's found neither. Each counts in its UTC month, once."""
    rows = [
        {"accountant_id": "acc-a", "timestamp": "2026-01-31T20:00:00-08:00", "month": "2026-01",
         "estimated_cost": D("1")},
        {"accountant_id": "acc-b", "timestamp": "2026-01-31T23:30:00Z", "month": "2026-02",
         "estimated_cost": D("2")},
        {"accountant_id": "acc-c", "timestamp": "2026-01-15T10:00:00Z", "month": "2026-01",
         "estimated_cost": D("4")},
    ]
    fill(create_table(index), rows)
    table = parse_dynamodb_uri(f"dynamodb://{TABLE}")
    january = table_rows(read_estimates(table, JANUARY))
    february = table_rows(read_estimates(table, dt.date(2026, 2, 1)))
    assert [(r[0], r[1], r[7]) for r in january] == [("acc-c", dt.datetime(2026, 1, 15, 10), D(4)),
                                                    ("acc-b", dt.datetime(2026, 1, 31, 23, 30), D(2))]
    assert [(r[0], r[1], r[7]) for r in february] == [("acc-a", dt.datetime(2026, 2, 1, 4), D(1))]
    assert january == from_json_lines(tmp_path, rows)


def test_missing_table_is_an_error_naming_it(aws):
    create_table({})
    with pytest.raises(ValueError, match=r"dynamodb://tax-agent-usag: table 'tax-agent-usag' not found"):
        read_estimates(parse_dynamodb_uri("dynamodb://tax-agent-usag"), JANUARY)


def test_named_index_that_is_missing_or_not_on_month_is_an_error(aws):
    create_table({})
    with pytest.raises(ValueError, match=r"has no global secondary index 'by-month' \(it has: month-index\)"):
        read_estimates(parse_dynamodb_uri(f"dynamodb://{TABLE}?index=by-month"), JANUARY)
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    create_table({"Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["estimated_cost"]}})
    with pytest.raises(ValueError, match=r"index 'month-index' cannot list a month's items: it does not project "
                                         r"operation, resource_type, quantity, unit_cost"):
        read_estimates(parse_dynamodb_uri(f"dynamodb://{TABLE}?index=month-index"), JANUARY)


def test_bad_item_is_an_error_naming_the_table_and_the_item(aws):
    fill(create_table({}), [{"accountant_id": "acc-a", "timestamp": "2026-01-05T10:00:00Z", "month": "2026-01",
                             "quantity": D("2")}])
    with pytest.raises(ValueError, match=r"dynamodb://tax-agent-usage: item 1 read by Query on month-index "
                                         r".*: no estimated_cost"):
        read_estimates(parse_dynamodb_uri(f"dynamodb://{TABLE}"), JANUARY)


def test_uri_forms_and_config(monkeypatch, tmp_path):
    parsed = parse_dynamodb_uri("dynamodb://tax-agent-usage?index=by-month&page_size=100")
    assert (parsed.table, parsed.index, parsed.page_size) == ("tax-agent-usage", "by-month", 100)
    assert parse_dynamodb_uri("dynamodb://t?index=NONE").index == "none"
    for bad in ["dynamodb://", "dynamodb://a/b", "dynamodb://t?limit=1", "dynamodb://t?page_size=x"]:
        with pytest.raises(ValueError, match="dynamodb://"):
            parse_dynamodb_uri(bad)
    monkeypatch.setenv("BILLING_USAGE_URI", "dynamodb://tax-agent-usage")
    assert BillingConfig().usage_source() == parse_dynamodb_uri("dynamodb://tax-agent-usage")
    monkeypatch.setenv("BILLING_USAGE_URI", str(tmp_path))
    assert isinstance(BillingConfig().usage_source(), Location)
    monkeypatch.setenv("BILLING_LOGS_URI", "cloudwatch:///aws/lambda/tax-agent?api=filter")
    assert BillingConfig().logs_source().log_groups == ("/aws/lambda/tax-agent",)
    monkeypatch.setenv("BILLING_LOGS_URI", "s3://bucket/logs")
    assert BillingConfig().logs_source().uri == "s3://bucket/logs"
