"""estimated_usage over the real Definitions: a DynamoDB export still running beside a finished one is left out,
said so in the metadata, from one listing of the folder (what it reports as left out is what was not read)."""

import datetime as dt
import gzip
import shutil
import json
from decimal import Decimal as D

import duckdb
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.storage import Location
from billing_pipeline_tests.readers.test_estimates import item, write_export


def test_an_export_still_running_is_left_out_and_reported_from_one_listing(tmp_path, monkeypatch):
    usage = tmp_path / "usage"
    write_export(usage, "01700000000000-aaaa", [item("acc-a", "2026-01-07T08:00:00Z", 2, D("0.5"), 1)])
    write_export(usage, "01700000090000-bbbb", [item("acc-a", "2026-01-07T08:00:00Z", 2, D("0.5"), 1)],
                 finished=False)
    monkeypatch.setenv("BILLING_USAGE_URI", str(usage))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "w.duckdb"))
    listings = []
    list_files = Location.list_files

    def counted(self):
        listings.append(self.uri)
        return list_files(self)

    monkeypatch.setattr(Location, "list_files", counted)
    result = materialize([a for a in defs.assets if a.key.to_user_string() == "estimated_usage"],
                         resources=defs.resources, partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert result.success
    assert listings == [str(usage)]
    metadata = result.asset_materializations_for_node("estimated_usage")[0].metadata
    assert metadata["unfinished_exports_skipped"].value == 1
    assert str(usage / "AWSDynamoDB" / "01700000090000-bbbb") in metadata["unfinished_exports"].value
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT accountant_id, usage_date, records, estimated_cost FROM estimated_usage").fetchall() == [
            ("acc-a", dt.date(2026, 1, 7), 1, D(1))]


def test_an_item_whose_month_field_is_not_its_utc_month_counts_once_in_its_utc_month(tmp_path, monkeypatch):
    """The application may write `month` in its local time: 2026-01-31T20:00:00-08:00 (February 1, 04:00 UTC) in
    '2026-01', or an item at 23:30 UTC on January 31 in '2026-02'. Each was read for its `month` and then dropped
    there by its timestamp, so it counted in no month (3 of 7 lost). It belongs to the month of its UTC instant,
    as the CUR dates its cost."""
    usage = tmp_path / "usage"
    usage.mkdir()
    (usage / "usage.jsonl").write_text("\n".join(json.dumps(i) for i in [
        item("acc-a", "2026-01-31T20:00:00-08:00", 1, 1, 1, month="2026-01"),
        item("acc-b", "2026-01-31T23:30:00Z", 1, 2, 2, month="2026-02"),
        item("acc-c", "2026-01-15T10:00:00Z", 1, 4, 4, month="2026-01"),
    ]))
    monkeypatch.setenv("BILLING_USAGE_URI", str(usage))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "w.duckdb"))
    asset = [a for a in defs.assets if a.key.to_user_string() == "estimated_usage"]
    for month in ("2026-01-01", "2026-02-01"):
        assert materialize(asset, resources=defs.resources, partition_key=month,
                           instance=DagsterInstance.ephemeral()).success
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("""SELECT billing_period, accountant_id, usage_date, estimated_cost FROM estimated_usage
                              ORDER BY billing_period, accountant_id""").fetchall() == [
            (dt.date(2026, 1, 1), "acc-b", dt.date(2026, 1, 31), D(2)),
            (dt.date(2026, 1, 1), "acc-c", dt.date(2026, 1, 15), D(4)),
            (dt.date(2026, 2, 1), "acc-a", dt.date(2026, 2, 1), D(1))]


def test_two_copies_of_the_usage_table_fail_the_run_and_the_month_keeps_its_last_good_rows(tmp_path, monkeypatch):
    """A JSON Lines copy of the table left beside its export, then a file beside its compressed copy: each was
    read twice, acc-a's 1 estimated as 2. The run fails naming both, and the month keeps what it had."""
    usage = tmp_path / "usage"
    january_item = item("acc-a", "2026-01-07T08:00:00Z", 2, D("0.5"), 1)
    write_export(usage, "01700000000000-aaaa", [january_item])
    monkeypatch.setenv("BILLING_USAGE_URI", str(usage))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "w.duckdb"))
    asset = [a for a in defs.assets if a.key.to_user_string() == "estimated_usage"]

    def run():
        return materialize(asset, resources=defs.resources, partition_key="2026-01-01",
                           instance=DagsterInstance.ephemeral(), raise_on_error=False)

    def month():
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
            return con.execute("SELECT accountant_id, records, estimated_cost FROM estimated_usage").fetchall()

    assert run().success and month() == [("acc-a", 1, D(1))]
    (usage / "tax-agent-usage.jsonl").write_text(json.dumps(item("acc-a", "2026-01-07T08:00:00Z", 2, "0.5", 1)))
    for copy in ("export and file", "file and compressed file"):
        result = run()
        assert not result.success, copy
        message = str(result.all_events)
        assert str(usage / "tax-agent-usage.jsonl") in message and (
            str(usage / "AWSDynamoDB" / "01700000000000-aaaa") if copy == "export and file"
            else str(usage / "tax-agent-usage.jsonl.gz")) in message
        assert month() == [("acc-a", 1, D(1))]
        shutil.rmtree(usage / "AWSDynamoDB", ignore_errors=True)
        (usage / "tax-agent-usage.jsonl.gz").write_bytes(gzip.compress((usage / "tax-agent-usage.jsonl").read_bytes()))
