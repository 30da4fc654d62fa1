"""estimated_usage over the real Definitions: a DynamoDB export still running beside a finished one is left out,
said so in the metadata, from one listing of the folder (what it reports as left out is what was not read)."""

import datetime as dt
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
