"""Write-back of attributed actual costs into the application's usage table (DynamoDB over HTTP, local server):
deterministic keys, idempotent re-runs, restatements that change and remove items."""

import datetime as dt
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, Failure, materialize

from billing_pipeline.assets.usage_table_writeback import dynamodb_number, usage_table_writeback
from billing_pipeline.readers.estimates import read_estimates
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import DuckDBWarehouse, warehouse_ddl
from billing_pipeline_tests.aws_support import TABLE, cur_item, items

JAN = dt.date(2026, 1, 1)


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


def run(path, table=TABLE, tenants=("acc-1", "acc-2", "acc-3")):
    registry = Path(f"{path}.tenants.txt")  # the tenant registry: these tests' warehouses have no estimates
    registry.write_text("\n".join(tenants) + "\n")
    return materialize(
        [usage_table_writeback],
        resources={"outputs_config": OutputsConfig(writeback_table=table), "warehouse": DuckDBWarehouse(database=str(path)),
                   "aws": AwsClients(), "tenants": TenantRegistry(source=str(registry))},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
    )


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


def test_ids_outside_the_tenant_registry_are_not_written(tmp_path, usage_table):
    """A resource tagged `<img ...>` or `ACC-1` does not create an accountant in the application's table."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [
        ("acc-1", 2, "AWSLambda", "lambda", "direct", "0.5"),
        ("<img src=x onerror=alert(1)>", 2, "AWSLambda", "lambda", "direct", "1.25"),
        ("ACC-1", 2, "AmazonS3", "s3", "direct", "2"),
    ])
    result = run(warehouse)
    assert [(i["accountant_id"], i["amount"]) for i in items(usage_table)
            if i.get("source") == "cur" and i["month"] == "2026-01"] == \
        [("acc-1", D("0.5"))]
    assert result.asset_materializations_for_node("usage_table_writeback")[0].metadata[
        "held_out_tenants"].value == ["'<img src=x onerror=alert(1)>' is not in the tenant registry (U+0020 SPACE)",
                                     "'ACC-1' looks like 'acc-1'"]


def test_items_of_a_run_that_died_before_recording_them_are_deleted_on_a_restatement(tmp_path, usage_table):
    """A run put acc-2's items, then died before the warehouse recorded them; the month is restated and acc-2 has no
    cost any more. The next run deletes acc-2's items: every tenant of the registry is looked up in the table, not
    only those the warehouse says were written (they stayed, showing cost acc-2 no longer has)."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "1.0000000000"),
                                 ("acc-2", 2, "AmazonDynamoDB", "dynamodb", "shared_hour", "2.0000000000")])
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    assert run(warehouse).success
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM usage_table_writeback")  # what a run that died after its puts left recorded
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "3.0000000000")])
    restated = run(warehouse)
    assert restated.success
    assert items(usage_table) == sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "3")],
                                        key=lambda i: (i["accountant_id"], i["timestamp"]))
    assert restated.get_asset_materialization_events()[0].materialization.metadata["items_deleted"].value == 1


def test_items_of_ids_held_out_as_look_alikes_are_left_as_they_are(tmp_path, usage_table):
    """With the default registry, `ACC-1` beside `acc-1` in the usage table holds both out: acc-1's items written
    before are neither rewritten nor deleted as stale (it was deleted: its cost vanished from the app's table)."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "1.0000000000")])
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    assert run(warehouse).success
    with duckdb.connect(str(warehouse)) as con:
        for accountant in ("acc-1", "ACC-1"):
            con.execute("INSERT INTO estimated_usage (billing_period, accountant_id, resource_type, usage_date, "
                        "estimated_cost, records) VALUES ('2026-01-01', ?, 'lambda', '2026-01-02', 1, 1)", [accountant])
    result = materialize(
        [usage_table_writeback],
        resources={"outputs_config": OutputsConfig(writeback_table=TABLE), "warehouse": DuckDBWarehouse(database=str(warehouse)),
                   "aws": AwsClients(), "tenants": TenantRegistry()},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    assert items(usage_table) == sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "1")],
                                        key=lambda i: (i["accountant_id"], i["timestamp"]))


def test_a_day_outside_the_billing_month_neither_overwrites_the_other_month_nor_stays_stale(tmp_path, usage_table):
    """The CUR may date a line outside its billing period (hourly_cost_facts keeps such lines: a credit of January
    dated 2025-12-31). January's item of that day must not take the key of December's own item of the same tenant,
    day and service (January's run overwrote December's amount, and December's next run deleted January's item as
    stale), and when a restatement of January drops the line its item must go (January's stale scan only looked at
    keys starting 2026-01-, so the item stayed for good)."""
    warehouse = tmp_path / "w.duckdb"
    dec = dt.date(2025, 12, 1)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(warehouse_ddl())
        for period, day, cost in [(dec, dt.date(2025, 12, 31), "3"), (JAN, dt.date(2026, 1, 2), "1"),
                                  (JAN, dt.date(2025, 12, 31), "-0.5")]:
            con.execute("INSERT INTO tenant_costs VALUES (?, ?, 'acc-1', 'AWSLambda', 'lambda', 'u', 'Usage', "
                        "'direct', NULL, NULL, 'USD', 'unblended', ?, NULL)", [period, day, D(cost)])
    registry = tmp_path / "tenants.txt"
    registry.write_text("acc-1\n")

    def run_month(partition):
        return materialize(
            [usage_table_writeback],
            resources={"outputs_config": OutputsConfig(writeback_table=TABLE),
                       "warehouse": DuckDBWarehouse(database=str(warehouse)), "aws": AwsClients(),
                       "tenants": TenantRegistry(source=str(registry))},
            partition_key=partition, instance=DagsterInstance.ephemeral())

    def cur_amounts():
        return sorted((i["month"], i["usage_date"], i["amount"]) for i in items(usage_table)
                      if i.get("source") == "cur" and i["accountant_id"] == "acc-1")

    assert run_month("2025-12-01").success
    assert run_month("2026-01-01").success
    assert cur_amounts() == [("2025-12", "2025-12-31", D("3")), ("2026-01", "2025-12-31", D("-0.5")),
                             ("2026-01", "2026-01-02", D("1"))]
    assert run_month("2025-12-01").success  # December's re-run leaves January's items alone
    assert cur_amounts() == [("2025-12", "2025-12-31", D("3")), ("2026-01", "2025-12-31", D("-0.5")),
                             ("2026-01", "2026-01-02", D("1"))]

    with duckdb.connect(str(warehouse)) as con:  # January restated: the credit dated in December is gone
        con.execute("DELETE FROM tenant_costs WHERE billing_period = ? AND usage_date < ?", [JAN, JAN])
    assert run_month("2026-01-01").success
    assert cur_amounts() == [("2025-12", "2025-12-31", D("3")), ("2026-01", "2026-01-02", D("1"))]


def test_a_run_reads_the_month_only_once_it_holds_the_writeback_lock(tmp_path, usage_table, monkeypatch):
    """While a run waits for the write-back lock, the month is restated (acc-1's Lambda 0.10 -> 0.30, its S3 cost
    gone) and another run writes it back. The waiting run must write what the warehouse holds when it gets the
    lock: had it read the month before waiting, it would put back the old amounts and the S3 item the other run
    deleted, and its record would say so."""
    import billing_pipeline.assets.usage_table_writeback as writeback_module

    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "0.1"),
                                 ("acc-1", 2, "AmazonS3", "s3", "shared_day", "0.5")])
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    real_lock = writeback_module.writeback_lock
    waits = []

    @contextmanager
    def lock_got_after_another_run(*args, **kwargs):
        if not waits:  # the waiting run: meanwhile the month is restated and another run writes it back
            waits.append(True)
            set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "0.3")])
            assert run(warehouse).success
        with real_lock(*args, **kwargs) as held:
            yield held

    monkeypatch.setattr(writeback_module, "writeback_lock", lock_got_after_another_run)
    result = run(warehouse)
    assert result.success and waits == [True]
    restated = sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "0.3")],
                      key=lambda i: (i["accountant_id"], i["timestamp"]))
    assert items(usage_table) == restated
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute('SELECT accountant_id, "timestamp", amount FROM usage_table_writeback').fetchall() == [
            ("acc-1", "2026-01-02T00:00:00Z#cur#AWSLambda", D("0.3000000000"))]


# A one-off materialization of usage_table_writeback in a process of its own, starting at a given instant
RUNNER = """
import sys, time
from dagster import DagsterInstance, materialize
from billing_pipeline.assets.usage_table_writeback import usage_table_writeback
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import DuckDBWarehouse
start, warehouse, table, registry = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
time.sleep(max(0.0, start - time.time()))
result = materialize([usage_table_writeback], partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
                     resources={"outputs_config": OutputsConfig(writeback_table=table), "aws": AwsClients(),
                                "warehouse": DuckDBWarehouse(database=warehouse),
                                "tenants": TenantRegistry(source=registry)}, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def test_two_writeback_runs_at_once_write_one_set_one_after_the_other(tmp_path, usage_table):
    """Three processes write the month back at the same instant, each with its own ephemeral instance (no Dagster
    pool between them): each holds the lock beside the warehouse in turn, and the table ends with the month's
    items once, the warehouse with one record of them."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "0.1"),
                                 ("acc-2", 3, "AmazonS3", "s3", "shared_day", "0.5")])
    registry = tmp_path / "tenants.txt"
    registry.write_text("acc-1\nacc-2\n")
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    start = time.time() + 10  # time enough for each to import Dagster
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    processes = [subprocess.Popen([sys.executable, "-c", RUNNER, str(start), str(warehouse), TABLE, str(registry)],
                                  env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    assert all(f"Holding the file lock {warehouse}.usage_table_writeback.lock" in output for output in outputs)
    assert items(usage_table) == sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "0.1"),
                                                     cur_item("acc-2", 3, "AmazonS3", "s3", "0.5")],
                                        key=lambda i: (i["accountant_id"], i["timestamp"]))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM usage_table_writeback").fetchall() == [(2,)]


def test_items_of_a_tenant_that_left_the_registry_are_left_as_they_are(tmp_path, usage_table):
    """acc-2's items were written; then acc-2 is taken out of the registry and the month is restated. Its cost
    history in the application's table stays (invoicing leaves its Stripe items alone too): the run used to delete
    its items as stale. Named in the metadata."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "1"),
                                 ("acc-2", 2, "AmazonDynamoDB", "dynamodb", "shared_hour", "2")])
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    assert run(warehouse).success
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "3"),
                                 ("acc-2", 2, "AmazonDynamoDB", "dynamodb", "shared_hour", "5")])
    result = run(warehouse, tenants=("acc-1", "acc-3"))
    assert result.success
    assert items(usage_table) == sorted(app_items + [cur_item("acc-1", 2, "AWSLambda", "lambda", "3"),
                                                     cur_item("acc-2", 2, "AmazonDynamoDB", "dynamodb", "2")],
                                        key=lambda i: (i["accountant_id"], i["timestamp"]))
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["items_deleted"].value, metadata["left_outside_registry"].value) == (0, ["acc-2"])


def month_of_days(tenants, days, cost):
    """tenant_costs rows: each tenant's Lambda cost `cost` on each of `days`."""
    return [(tenant, day, "AWSLambda", "lambda", "direct", cost) for tenant in tenants for day in days]


def cur_amounts(table):
    """(tenant, day, amount) of January's written-back items."""
    return [(i["accountant_id"], int(i["usage_date"][-2:]), i["amount"]) for i in items(table)
            if i.get("source") == "cur" and i["month"] == "2026-01"]


# A write-back run in a process of its own that is killed (SIGKILL) when it sends its second BatchWriteItem: the
# first 25 items are in the table, nothing after them, no stale item deleted, nothing recorded in the warehouse
KILLED_RUNNER = """
import os, signal, sys
from dagster import DagsterInstance, materialize
from billing_pipeline.assets.usage_table_writeback import usage_table_writeback
from billing_pipeline.resources.aws import AwsClients
from billing_pipeline.resources.outputs_config import OutputsConfig
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import DuckDBWarehouse
warehouse, table, registry = sys.argv[1:4]
calls = []

def killed_at_the_second_batch(**_kwargs):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

class Killed(AwsClients):
    def dynamodb_table(self, name):
        table = super().dynamodb_table(name)
        table.meta.client.meta.events.register("before-call.dynamodb.BatchWriteItem", killed_at_the_second_batch)
        return table

materialize([usage_table_writeback], partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
            resources={"outputs_config": OutputsConfig(writeback_table=table), "aws": Killed(),
                       "warehouse": DuckDBWarehouse(database=warehouse), "tenants": TenantRegistry(source=registry)})
"""


def test_a_run_killed_in_the_middle_of_its_batches_is_made_whole_by_the_next(tmp_path, usage_table):
    """January written back (acc-1..3, days 1-20, 1.00 each: 60 items); then restated lower (acc-1 and acc-2 at 0.25,
    acc-3 no cost at all) and the write-back killed (SIGKILL) after its first batch of 25. The table is half old,
    half new; the next run leaves exactly the restated month: 40 items of 0.25, acc-3's 20 deleted."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, month_of_days(("acc-1", "acc-2", "acc-3"), range(1, 21), "1.00"))
    assert run(warehouse).success
    assert cur_amounts(usage_table) == [(t, d, D("1")) for t in ("acc-1", "acc-2", "acc-3") for d in range(1, 21)]
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]

    set_tenant_costs(warehouse, month_of_days(("acc-1", "acc-2"), range(1, 21), "0.25"))
    registry = Path(f"{warehouse}.tenants.txt")  # written by run(): acc-1, acc-2, acc-3
    killed = subprocess.run([sys.executable, "-c", KILLED_RUNNER, str(warehouse), TABLE, str(registry)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert cur_amounts(usage_table) == (
        [("acc-1", d, D("0.25")) for d in range(1, 21)] + [("acc-2", d, D("0.25")) for d in range(1, 6)]
        + [("acc-2", d, D("1")) for d in range(6, 21)] + [("acc-3", d, D("1")) for d in range(1, 21)])

    again = run(warehouse)
    assert again.success
    assert items(usage_table) == sorted(
        app_items + [cur_item(t, d, "AWSLambda", "lambda", "0.25") for t in ("acc-1", "acc-2") for d in range(1, 21)],
        key=lambda i: (i["accountant_id"], i["timestamp"]))
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["items_written"].value, metadata["items_deleted"].value) == (40, 20)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), sum(amount) FROM usage_table_writeback").fetchall() == [(40, D("10"))]


def test_unprocessed_items_of_a_batch_are_sent_again_never_lost(tmp_path, usage_table, monkeypatch):
    """DynamoDB may answer a BatchWriteItem with part of it in UnprocessedItems (throttling): those items must be
    sent again (boto3's batch_writer re-queues them), not dropped. Every batch here is half refused once."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, month_of_days(("acc-1", "acc-2"), range(1, 21), "0.50"))
    app_items = [i for i in items(usage_table) if i.get("source") != "cur" or i["month"] != "2026-01"]
    refused = []

    class Throttled(AwsClients):
        def dynamodb_table(self, name):
            table = super().dynamodb_table(name)
            client = table.meta.client
            real = client.batch_write_item

            def half_processed(RequestItems):
                requests = RequestItems[name]
                if len(requests) < 2:
                    return real(RequestItems=RequestItems)
                half = len(requests) // 2
                real(RequestItems={name: requests[:half]})
                refused.extend(requests[half:])
                return {"UnprocessedItems": {name: requests[half:]}}

            client.batch_write_item = half_processed
            return table

    monkeypatch.setattr("billing_pipeline_tests.assets.test_usage_table_writeback.AwsClients", Throttled)
    assert run(warehouse).success
    assert len(refused) >= 20
    assert items(usage_table) == sorted(
        app_items + [cur_item(t, d, "AWSLambda", "lambda", "0.5") for t in ("acc-1", "acc-2") for d in range(1, 21)],
        key=lambda i: (i["accountant_id"], i["timestamp"]))


def deliver(path, delivery, invoice_id=None):
    """January's cur_line_items replaced by one line item of `delivery` (final when it carries an invoice id)."""
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM cur_line_items")
        con.execute("""INSERT INTO cur_line_items (billing_period, usage_start, usage_end, line_item_type, currency,
                           unblended_cost, amortized_cost, invoice_id, source_file, delivery_id)
                       VALUES (?, '2026-01-02 00:00:00', '2026-01-02 01:00:00', 'Usage', 'USD', 1, 1, ?, 'cur.csv', ?)""",
                    [JAN, invoice_id, delivery])


def test_a_month_whose_tables_come_from_two_deliveries_is_not_written_back(tmp_path, usage_table):
    """January written back from the provisional delivery `provisional` (acc-1's Lambda 1.00, is_final false).
    Then a run of the final delivery (`final`, with an invoice id, acc-1 restated to 0.80) was killed after
    cur_line_items: tenant_costs still holds the provisional 1.00. A write-back of the month alone (a one-off
    materialization) must refuse it, as statements, exports, invoices and the API do, naming what to re-run: it
    wrote the provisional 1.00 marked is_final = true, which the final bill does not say."""
    warehouse = tmp_path / "w.duckdb"
    set_tenant_costs(warehouse, [("acc-1", 2, "AWSLambda", "lambda", "direct", "1.00")])
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE tenant_costs SET delivery_id = 'provisional'")
    deliver(warehouse, "provisional")
    assert run(warehouse).success
    written = [i for i in items(usage_table) if i.get("source") == "cur" and i["month"] == "2026-01"]
    assert written == [cur_item("acc-1", 2, "AWSLambda", "lambda", "1")]

    deliver(warehouse, "final", invoice_id="INV-1")
    with pytest.raises(Failure, match="tenant_costs of 2026-01 was computed from delivery provisional, but "
                                      "cur_line_items holds delivery final: re-run tenant_costs"):
        run(warehouse)
    assert [i for i in items(usage_table) if i.get("source") == "cur" and i["month"] == "2026-01"] == written
def test_a_month_whose_tenant_costs_never_ran_deletes_nothing(tmp_path, usage_table):
    """usage_table_writeback on its own for a month the warehouse holds nothing of (a new warehouse file, or the
    asset selected alone before tenant_costs ran): no tenant cost read as "every item of the month is stale", and
    the application's actual costs of January were deleted from its table, the run green. It fails naming what to
    materialize first and deletes nothing."""
    written = [cur_item("acc-1", 5, "AWSLambda", "lambda", "1.2345"), cur_item("acc-2", 6, "AmazonS3", "s3", "0.5")]
    for item in written:
        usage_table.put_item(Item=item)
    before = items(usage_table)
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(warehouse_ddl())
    registry = tmp_path / "tenants.txt"
    registry.write_text("acc-1\nacc-2\n")
    result = materialize(
        [usage_table_writeback],
        resources={"outputs_config": OutputsConfig(writeback_table=TABLE), "warehouse": DuckDBWarehouse(database=str(warehouse)),
                   "aws": AwsClients(), "tenants": TenantRegistry(source=str(registry))},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message
    assert ("usage_table_writeback of 2026-01: cur_line_items holds nothing of 2026-01 (never materialized for the "
            "month): materialize it first") in error
    assert items(usage_table) == before
    assert [(i["accountant_id"], i["timestamp"], i["amount"]) for i in before if i.get("source") == "cur"
            and i["month"] == "2026-01"] == [("acc-1", "2026-01-05T00:00:00Z#cur#AWSLambda", D("1.2345")),
                                              ("acc-2", "2026-01-06T00:00:00Z#cur#AmazonS3", D("0.5"))]
