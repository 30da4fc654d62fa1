"""A month is replaced whole or not at all, and its tables come from one delivery (issue 16, items 5 and 6).

- Validate before commit: a delivery whose sums overflow fails naming its file and line item, inside the
  replacing transaction, and every table stays exactly as it was; a process killed inside that transaction
  (SIGKILL) leaves the last good month too.
- One delivery per month across tables: after a run of a new delivery is killed (SIGKILL) inside
  hourly_cost_facts, or cur_line_items alone took it, statements, exports, invoices and published_billing refuse
  the month naming the asset to re-run (the API keeps serving the last consistent snapshot), and the
  month_from_one_delivery check fails; re-running from that asset makes the month whole again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import duckdb
import pytest

from billing_pipeline import lineage
from billing_pipeline.api.auth import issue_token
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.api_support import in_process_client
from billing_pipeline_tests.month_support import (
    ASSETS,
    JAN,
    exports_of,
    failure_message,
    point_at,
    redeliver,
    run,
    run_check,
    snapshot,
)
from billing_pipeline_tests.readers.cur_builders import (
    legacy_row,
    write_csv,
    write_legacy_manifest,
)
from billing_pipeline_tests.stripe_support import API_KEY, Stripe


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=3, rows=1200, seed=31)


@pytest.fixture
def month(tmp_path, monkeypatch, sample):
    """A good month materialized end to end (its CUR copied, so a test can deliver it again)."""
    cur = tmp_path / "cur"
    shutil.copytree(sample.cur_uri, cur)
    point_at(monkeypatch, sample, tmp_path, cur=cur)
    assert run(ASSETS).success
    return tmp_path, cur


# -- item 5: validate before commit ---------------------------------------------------------------------------


def test_a_delivery_whose_sums_overflow_fails_naming_file_and_line_and_changes_nothing(month, monkeypatch):
    root, _ = month
    before = snapshot(root / "w.duckdb")
    bad = root / "bad-cur"
    period = bad / "huge" / "20260101-20260201"
    data = write_csv(period / "asm-huge" / "huge-1.csv.gz", [
        legacy_row(**{"identity/LineItemId": "ok", "lineItem/UnblendedCost": "1.5"}),
        legacy_row(**{"identity/LineItemId": "big-1", "lineItem/UnblendedCost": "9990000000000000000000000000"}),
        legacy_row(**{"identity/LineItemId": "big-2", "lineItem/UnblendedCost": "9990000000000000000000000000"}),
    ])
    write_legacy_manifest(period / "huge-Manifest.json", "huge", [data.relative_to(bad).as_posix()], "asm-huge")
    monkeypatch.setenv("BILLING_CUR_URI", str(bad))

    result = run({"cur_line_items"})

    assert not result.success
    message = failure_message(result)
    assert f"{data}: line item big-1 starting 2026-01-01 00:00:00 has unblended_cost " \
           "9990000000000000000000000000.0000000000" in message
    assert "add up to about 1.998e+28, beyond what DECIMAL(38, 10) holds (1e28)" in message
    assert "HUGEINT" not in message
    assert snapshot(root / "w.duckdb") == before


CRASH_SCRIPT = """
import sys, time, duckdb, datetime as dt
import billing_pipeline.assets.cur_line_items as asset
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.readers.cur import find_deliveries
from billing_pipeline.storage import locate

def stop_inside_the_transaction(engine, table, period):
    ((rows,),) = engine.execute("SELECT count(*) FROM cur_line_items WHERE billing_period = ?", [period]).fetchall()
    print("INSIDE", rows, flush=True)   # the old month deleted, the new one inserted, nothing committed
    time.sleep(120)

asset.validate_line_items = stop_inside_the_transaction
location = locate(sys.argv[2])
period = dt.date(2026, 1, 1)
con = duckdb.connect(sys.argv[1])
asset.load_delivery(DuckDBEngine(con), location, find_deliveries(location)[period], period)
"""


def test_a_process_killed_inside_the_replacing_transaction_leaves_the_last_good_month(month):
    root, cur = month
    before = snapshot(root / "w.duckdb")
    redeliver(cur, "asm-after-crash")
    process = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(root / "w.duckdb"), str(cur)],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        line = process.stdout.readline()
        assert line.startswith("INSIDE") and int(line.split()[1]) == len(before["cur_line_items"])
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert snapshot(root / "w.duckdb") == before


# -- item 6: one delivery per month across tables -------------------------------------------------------------


def test_a_half_recomputed_month_is_refused_by_every_reader_until_rerun(month, monkeypatch, localstripe):
    root, cur = month
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        ((old,),) = con.execute("SELECT DISTINCT delivery_id FROM cur_line_items").fetchall()
        assert lineage.deliveries_by_table(con, JAN) == {t: [old] for t in lineage.CHAIN}
    exports_before = exports_of(root / "exports")
    # What a SIGKILL during hourly_cost_facts leaves: cur_line_items on the new delivery, the rest on the old.
    redeliver(cur, "asm-new")
    assert run({"cur_line_items"}).success
    expected = (f"hourly_cost_facts of 2026-01 was computed from delivery {old}, but cur_line_items holds delivery "
                "asm-new: re-run hourly_cost_facts and the assets after it for 2026-01 "
                "(dagster asset materialize --select 'hourly_cost_facts*' --partition 2026-01-01)")

    # the check fails and says which asset to re-run
    evaluation = run_check()
    assert not evaluation.passed
    assert evaluation.metadata["problems"].value == expected
    assert evaluation.metadata["cur_line_items"].value == "asm-new"
    assert evaluation.metadata["hourly_cost_facts"].value == old

    # statements (and so their exports), the stages after the facts, pricing feedback (its export) and invoices
    # refuse the month
    for asset in ("statements", "tenant_costs", "reconciliation_report", "pricing_feedback"):
        result = run({asset})
        assert not result.success
        assert f"Refusing 2026-01: {expected}" in failure_message(result), asset
    assert exports_of(root / "exports") == exports_before
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe)
    result = run({"invoices"})
    assert not result.success and expected in failure_message(result)
    assert Stripe(localstripe).get("/v1/invoiceitems")["data"] == []
    monkeypatch.delenv("STRIPE_API_KEY")

    # the API: the month is not published, tenants keep the last consistent snapshot
    pointer = (root / "published" / "current" / "2026-01.json").read_bytes()
    result = run({"published_billing"})
    assert not result.success and expected in failure_message(result)
    assert (root / "published" / "current" / "2026-01.json").read_bytes() == pointer
    accountant = next(a for (a,) in duckdb.connect(str(root / "w.duckdb"), read_only=True).execute(
        "SELECT DISTINCT accountant_id FROM reconciliation_report WHERE accountant_id <> 'unattributed'").fetchall())
    headers = {"Authorization": f"Bearer {issue_token(accountant, str(root / 'tokens.json'))}"}
    client = in_process_client(root / "published", root / "tokens.json")
    doc = client.get("/billing", params={"month": "2026-01"}, headers=headers).json()
    assert doc["published"]["cur_delivery"] == old

    # re-running from the named asset makes the month whole again
    assert run(ASSETS - {"cur_line_items"}).success
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        assert lineage.deliveries_by_table(con, JAN) == {t: ["asm-new"] for t in lineage.CHAIN}
    doc = client.get("/billing", params={"month": "2026-01"}, headers=headers).json()
    assert (doc["month"], doc["published"]["cur_delivery"]) == ("2026-01", "asm-new")
    assert run_check().passed


KILLED_RUN = """
import time
from dagster import DagsterInstance, materialize
from billing_pipeline.definitions import defs
from billing_pipeline.engines.duckdb_engine import DuckDBEngine

replace = DuckDBEngine.replace_month_with

def stalling(self, table, period, insert):
    def insert_and_stall():
        insert()
        if table == "hourly_cost_facts":
            print("INSIDE hourly_cost_facts", flush=True)  # the new facts written, not committed
            time.sleep(120)
    return replace(self, table, period, insert_and_stall)

DuckDBEngine.replace_month_with = stalling
materialize([a for a in defs.assets if a.key.to_user_string() in ("cur_line_items", "hourly_cost_facts")],
            resources=defs.resources, partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
"""


def test_a_run_killed_during_hourly_cost_facts_leaves_a_month_every_reader_refuses(month):
    """The issue's SIGKILL for real: a run of the new delivery is killed inside hourly_cost_facts' transaction."""
    root, cur = month
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        ((old,),) = con.execute("SELECT DISTINCT delivery_id FROM cur_line_items").fetchall()
    redeliver(cur, "asm-killed")
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert process.stdout.readline().strip() == "INSIDE hourly_cost_facts"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        found = lineage.deliveries_by_table(con, JAN)
    assert found == {"cur_line_items": ["asm-killed"], "hourly_cost_facts": [old], "tenant_costs": [old],
                     "reconciliation_report": [old], "statements": [old]}
    result = run({"statements"})
    assert not result.success
    assert (f"Refusing 2026-01: hourly_cost_facts of 2026-01 was computed from delivery {old}, but cur_line_items "
            "holds delivery asm-killed: re-run hourly_cost_facts") in failure_message(result)
    assert not run_check().passed


def test_a_warehouse_from_before_lineage_gains_the_columns_and_keeps_its_rows(tmp_path):
    from billing_pipeline.resources.warehouse import DuckDBWarehouse

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE hourly_cost_facts (billing_period DATE NOT NULL, line_items BIGINT NOT NULL)")
        con.execute("INSERT INTO hourly_cost_facts VALUES ('2026-01-01', 3)")
    with DuckDBWarehouse(database=str(path)).connect() as engine:
        assert engine.execute("SELECT line_items, delivery_id FROM hourly_cost_facts").fetchall() == [(3, None)]
        assert lineage.problem(engine, JAN, "statements") is None  # unknown lineage is not a disagreement


def test_a_verification_that_fails_before_the_commit_keeps_the_month(month):
    """The engines' `verify` hook (hourly_cost_facts checks there that its facts add up to the line items):
    whatever it raises rolls the replacement back."""
    from billing_pipeline.engines.duckdb_engine import DuckDBEngine

    root, _ = month
    before = snapshot(root / "w.duckdb")
    seen = []

    def verify(relation):
        seen.append(engine.execute(f"SELECT count(*), sum(unblended_cost) FROM {relation}").fetchall()[0])
        raise ValueError("the new facts do not add up")

    with duckdb.connect(str(root / "w.duckdb")) as con:
        engine = DuckDBEngine(con)
        con.execute("CREATE TEMP TABLE old_facts AS SELECT * FROM hourly_cost_facts")
        with pytest.raises(ValueError, match="do not add up"):
            engine.replace_month_with_query(
                "hourly_cost_facts", JAN,
                "SELECT * REPLACE (unblended_cost * 2 AS unblended_cost) FROM old_facts", verify=verify)
    facts = before["hourly_cost_facts"]
    assert seen == [(len(facts), 2 * sum(row[16] for row in facts))]  # it saw the new rows, inside the transaction
    assert snapshot(root / "w.duckdb") == before


def test_a_delivery_replaced_in_place_while_it_is_read_is_not_loaded(tmp_path, monkeypatch):
    """An "overwrite" report: AWS replaces the month's files in place. Files read before and after the replacement
    were one delivery from two, kept under the first one's id; now the run fails naming the files and the month
    keeps its last load."""
    from billing_pipeline.readers import cur_staging

    period = tmp_path / "cur" / "r1" / "20260101-20260201"
    names = ["r1-1.csv.gz", "r1-2.csv.gz"]

    def deliver(cost: str, assembly: str) -> None:
        for name in names:
            write_csv(period / name, [legacy_row(**{"identity/LineItemId": name, "lineItem/UnblendedCost": cost})])
        write_legacy_manifest(period / "r1-Manifest.json", "r1", [f"cur/r1/20260101-20260201/{n}" for n in names],
                              assembly)

    for name in ("BILLING_LOGS_URI", "BILLING_S3_INVENTORY_URI", "BILLING_USAGE_URI"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("BILLING_CUR_URI", str(tmp_path / "cur"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "w.duckdb"))
    deliver("1", "A")
    assert run({"cur_line_items"}).success

    def line_items():
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
            return con.execute("SELECT line_item_id, unblended_cost, delivery_id FROM cur_line_items ORDER BY 1")\
                .fetchall()

    loaded = line_items()
    deliver("2", "B")
    stage, staged = cur_staging._stage_files, []

    def replaced_after_the_first_file(*args):
        stage(*args)
        staged.append(args[3])
        if len(staged) == 1:
            deliver("3", "C")  # AWS writes the next delivery over this one

    monkeypatch.setattr(cur_staging, "_stage_files", replaced_after_the_first_file)
    result = run({"cur_line_items"})
    assert not result.success
    assert f"{period / names[0]}, {period / names[1]}, {period / 'r1-Manifest.json'}: changed while the delivery B " \
           "of 2026-01 was read" in failure_message(result)
    assert line_items() == loaded  # not r1-1 of B beside r1-2 of C
