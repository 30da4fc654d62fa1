"""Write-back of attributed actual costs into the application's usage table (DynamoDB over HTTP, local server):
deterministic keys, idempotent re-runs, restatements that change and remove items."""

import datetime as dt
from decimal import Decimal as D

import boto3
import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.assets.usage_table_writeback import dynamodb_number, usage_table_writeback
from billing_pipeline.readers.estimates import read_estimates
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.warehouse import BillingWarehouse, warehouse_ddl

JAN = dt.date(2026, 1, 1)
TABLE = "tax-agent-usage"


def set_tenant_costs(path, rows):
    """Replace January's tenant_costs by rows (accountant, day, service, resource_type, allocation, cost)."""
    with duckdb.connect(str(path)) as con:
        con.execute(warehouse_ddl())
        con.execute("DELETE FROM tenant_costs")
        for accountant, day, service, resource_type, allocation, cost in rows:
            con.execute(
                "INSERT INTO tenant_costs VALUES (?, ?, ?, ?, ?, 'u', 'Usage', ?, NULL, NULL, 'USD', 'unblended', ?, NULL)",
                [JAN, dt.date(2026, 1, day), accountant, service, resource_type, allocation, D(cost)],
            )


def run(path, table=TABLE):
    return materialize(
        [usage_table_writeback],
        resources={"outputs_config": OutputsConfig(writeback_table=table), "warehouse": BillingWarehouse(database=str(path))},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
    )


def items(table):
    scanned, request = [], {}
    while True:
        page = table.scan(**request)
        scanned += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(scanned, key=lambda i: (i["accountant_id"], i["timestamp"]))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def cur_item(accountant, day, service, resource_type, amount):
    return {
        "accountant_id": accountant, "timestamp": f"2026-01-{day:02d}T00:00:00Z#cur#{service}", "month": "2026-01",
        "usage_date": f"2026-01-{day:02d}", "operation": "actual_cost", "service": service,
        "resource_type": resource_type, "source": "cur", "actual_cost": True, "amount": D(amount),
        "estimated_cost": D(0), "currency": "USD", "cost_metric": "unblended", "is_final": False,
    }


@pytest.fixture
def usage_table(aws):
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "accountant_id", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "accountant_id", "AttributeType": "S"},
                              {"AttributeName": "timestamp", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # the application's own estimate items, and an actual-cost item of another month: never touched
    table.put_item(Item={"accountant_id": "acc-1", "timestamp": "2026-01-02T10:15:00Z", "month": "2026-01",
                         "operation": "compute_tax", "resource_type": "lambda", "quantity": D("1.5"),
                         "unit_cost": D("0.0000166667"), "estimated_cost": D("0.000025")})
    table.put_item(Item=cur_item("acc-1", 31, "AWSLambda", "lambda", "9.99") | {
        "timestamp": "2025-12-31T00:00:00Z#cur#AWSLambda", "month": "2025-12", "usage_date": "2025-12-31"})
    return table


def test_dynamodb_number_is_exact_without_trailing_zeros():
    assert str(dynamodb_number(D("1.2300000000"))) == "1.23"
    assert str(dynamodb_number(D("0E-10"))) == "0"
    assert dynamodb_number(D("-0.0000000001")) == D("-0.0000000001")
    assert str(dynamodb_number(D("1500.0000000000"))) == "1500"


def test_write_rerun_and_restate(tmp_path, usage_table):
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [
        ("acc-1", 2, "AWSLambda", "lambda", "direct", "0.1234567891"),
        ("acc-1", 2, "AWSLambda", "lambda", "shared_hour", "0.0000000009"),  # same day x service: summed
        ("acc-1", 2, "AmazonS3", "s3", "shared_day", "0.5000000000"),
        ("acc-1", 3, "AWSLambda", "lambda", "shared_hour", "-0.0100000000"),  # a credit
        ("acc-2", 2, "AmazonDynamoDB", "dynamodb", "shared_hour", "2.0000000000"),
        ("unattributed", 2, "AmazonCloudWatch", "other", "unattributed", "7.0000000000"),  # not written
    ])
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    first = run(warehouse)
    assert first.success
    expected = sorted(app_items + [
        cur_item("acc-1", 2, "AWSLambda", "lambda", "0.12345679"),
        cur_item("acc-1", 2, "AmazonS3", "s3", "0.5"),
        cur_item("acc-1", 3, "AWSLambda", "lambda", "-0.01"),
        cur_item("acc-2", 2, "AmazonDynamoDB", "dynamodb", "2"),
    ], key=lambda i: (i["accountant_id"], i["timestamp"]))
    assert items(usage_table) == expected
    metadata = first.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["items_written"].value, metadata["items_deleted"].value) == (4, 0)
    assert metadata["unattributed_not_written"].value == 7.0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        logged = con.execute('SELECT accountant_id, "timestamp", amount FROM usage_table_writeback ORDER BY ALL').fetchall()
    assert logged == [("acc-1", "2026-01-02T00:00:00Z#cur#AWSLambda", D("0.1234567900")),
                      ("acc-1", "2026-01-02T00:00:00Z#cur#AmazonS3", D("0.5000000000")),
                      ("acc-1", "2026-01-03T00:00:00Z#cur#AWSLambda", D("-0.0100000000")),
                      ("acc-2", "2026-01-02T00:00:00Z#cur#AmazonDynamoDB", D("2.0000000000"))]

    # re-run: the same items, overwritten in place, nothing added or deleted
    again = run(warehouse)
    assert again.success
    assert items(usage_table) == expected
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["items_written"].value, metadata["items_deleted"].value) == (4, 0)

    # restatement: acc-1's S3 cost moved to day 4, acc-2's cost changed, acc-1's credit is gone
    set_tenant_costs(warehouse, [
        ("acc-1", 2, "AWSLambda", "lambda", "direct", "0.1234567900"),
        ("acc-1", 4, "AmazonS3", "s3", "shared_day", "0.5000000000"),
        ("acc-2", 2, "AmazonDynamoDB", "dynamodb", "shared_hour", "2.2500000000"),
    ])
    restated = run(warehouse)
    assert restated.success
    assert items(usage_table) == sorted(app_items + [
        cur_item("acc-1", 2, "AWSLambda", "lambda", "0.12345679"),
        cur_item("acc-1", 4, "AmazonS3", "s3", "0.5"),
        cur_item("acc-2", 2, "AmazonDynamoDB", "dynamodb", "2.25"),
    ], key=lambda i: (i["accountant_id"], i["timestamp"]))
    metadata = restated.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["items_written"].value, metadata["items_deleted"].value) == (3, 2)

    # a tenant that has no cost at all any more: its items go too (known from the previous run's log)
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "0.1234567900")])
    assert run(warehouse).success
    assert items(usage_table) == sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "0.12345679")],
                                        key=lambda i: (i["accountant_id"], i["timestamp"]))


def test_estimates_reader_on_the_same_live_table_ignores_written_back_items(tmp_path, usage_table):
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "0.5")])
    assert run(warehouse).success
    estimates = read_estimates(DynamoDBUsageTable(TABLE), JAN)
    assert estimates.column("estimated_cost").to_pylist() == [D("0.000025")]


def test_off_unless_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("BILLING_WRITEBACK_TABLE", raising=False)
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "1")])
    result = run(warehouse, table=None)  # no AWS at all: nothing is called
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["status"].value == "not configured (BILLING_WRITEBACK_TABLE is not set)"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM usage_table_writeback").fetchall() == [(0,)]
