"""S3 Inventory reports -> hourly `gb_months` per (bucket, client), with hand-computed GB-month arithmetic."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from decimal import Decimal as D

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.assets.tenant_costs import stage_cost_allocations
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.pricing import Pricing
from billing_pipeline.readers.s3_inventory import client_bytes
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.usage_builders import (
    GIB,
    JANUARY,
    JANUARY_HOURS,
    quantities,
    read_january,
    write_snapshot,
)

def test_daily_snapshots_become_hourly_gb_months(tmp_path):
    # Dec 31 01:00 snapshot stands for Dec 31 01:00 .. Jan 1 00:00: one January hour.
    write_snapshot(tmp_path, "2025-12-31T01-00Z", [("clients/acc-a/2025.pdf", 2 * GIB * JANUARY_HOURS)])
    write_snapshot(
        tmp_path,
        "2026-01-01T01-00Z",
        [
            ("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS // 2),
            ("clients/acc-a/1099.pdf", GIB * JANUARY_HOURS // 2),  # acc-a: 1 GiB-month per month-hour
            ("clients%2Facc-b%2Fscan%201.pdf", GIB * JANUARY_HOURS // 4),  # CSV keys are URL-encoded
            ("assets/logo.png", 123456),  # not a client's: unattributed bytes (nobody's), counted
            ("clients/acc-b/deleted-marker", ""),  # no size (delete marker)
        ],
    )
    write_snapshot(tmp_path, "2026-01-02T01-00Z", [("clients/acc-a/w2.pdf", 3 * GIB * JANUARY_HOURS)])

    evidence = read_january(inventory=tmp_path)
    rows = quantities(evidence)

    assert rows[("2026-01-01 00", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("2")
    for hour in range(1, 24):
        assert rows[(f"2026-01-01 {hour:02d}", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("1")
        assert rows[(f"2026-01-01 {hour:02d}", "AmazonS3", "gb_months", "tax-demo-docs", "acc-b")] == D("0.25")
    assert rows[("2026-01-02 00", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("1")
    assert rows[("2026-01-02 01", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("3")
    assert rows[("2026-01-03 00", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("3")
    assert ("2026-01-03 01", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a") not in rows  # 24 hours only
    # the logo outside clients/ is stored bytes nobody owns: its own share, never the tenants' (123456 / 2^30 / 744, 10 places)
    for hour in range(1, 25):
        at = f"2026-01-{1 + hour // 24:02d} {hour % 24:02d}"
        assert rows[(at, "AmazonS3", "gb_months", "tax-demo-docs", "unattributed")] == D("0.0000001545")
    assert len(rows) == 1 + 24 + 24 + 24 + 24  # acc-a Dec-31 hour, acc-a+acc-b+logo Jan 1, acc-a Jan 2

    # GB-months: each hour is bytes / 2^30 / 744; acc-b held 186 GiB for 24 hours = 186 x 24 / 744 = 6.
    by_tenant = {}
    for (_, _, _, _, tenant), quantity in rows.items():
        by_tenant[tenant] = by_tenant.get(tenant, 0) + quantity
    assert by_tenant == {"acc-a": D("2") + 24 * D("1") + 24 * D("3"), "acc-b": D("6"),
                         "unattributed": 24 * D("0.0000001545")}
    assert evidence.problems == {"inventory_key_outside_clients": 1}
    assert evidence.files_read == 6  # 3 manifests + 3 data files
    assert evidence.lines_read == 7


def test_csv_keys_are_form_encoded_a_space_as_plus(tmp_path):
    # S3 Inventory's CSV keys encode a space as `+` and a `+` as `%2B` (as S3 event notifications do): the folder
    # `clients/Acme Corp/` is listed `clients/Acme+Corp/`, and was counted for a tenant `Acme+Corp` nobody else names.
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/Acme+Corp/w2.pdf", GIB * JANUARY_HOURS),
                                                   ("clients/a%2Bb/w2.pdf", 2 * GIB * JANUARY_HOURS)])
    rows = quantities(read_january(inventory=tmp_path))
    assert rows[("2026-01-10 00", "AmazonS3", "gb_months", "tax-demo-docs", "Acme Corp")] == D("1")
    assert rows[("2026-01-10 00", "AmazonS3", "gb_months", "tax-demo-docs", "a+b")] == D("2")
    assert {key[4] for key in rows} == {"Acme Corp", "a+b"}


def test_a_rerun_snapshot_does_not_count_hours_twice(tmp_path):
    write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB * JANUARY_HOURS)])
    write_snapshot(tmp_path, "2026-01-10T05-30Z", [("clients/acc-a/x", 2 * GIB * JANUARY_HOURS)])
    rows = quantities(read_january(inventory=tmp_path))
    assert rows[("2026-01-10 04", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("1")
    assert rows[("2026-01-10 05", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("2")
    assert len(rows) == 4 + 24


def test_snapshots_of_other_months_are_not_read(tmp_path):
    manifest = write_snapshot(tmp_path, "2026-03-01T01-00Z", [("clients/acc-a/x", GIB)])
    (manifest.parent.parent / "data" / "2026-03-01T01-00Z.csv.gz").write_bytes(b"not gzip at all")
    assert read_january(inventory=tmp_path).usage.num_rows == 0


def test_manifest_naming_a_missing_file_is_an_error(tmp_path):
    manifest = write_snapshot(tmp_path, "2026-01-01T01-00Z", [("clients/acc-a/x", GIB)])
    (manifest.parent.parent / "data" / "2026-01-01T01-00Z.csv.gz").unlink()
    with pytest.raises(ValueError, match=r"2026-01-01T01-00Z/manifest\.json.*missing"):
        read_january(inventory=tmp_path)


def test_corrupt_inventory_gzip_names_the_file(tmp_path):
    manifest = write_snapshot(tmp_path, "2026-01-01T01-00Z", [("clients/acc-a/x", GIB)])
    (manifest.parent.parent / "data" / "2026-01-01T01-00Z.csv.gz").write_bytes(b"\x1f\x8bcorrupt")
    with pytest.raises(ValueError, match=r"data/2026-01-01T01-00Z\.csv\.gz"):
        read_january(inventory=tmp_path)


def test_each_storage_class_is_its_own_driver(tmp_path):
    write_snapshot(tmp_path, "2026-01-01T00-00Z", [
        ("clients/acc-a/a.pdf", GIB * JANUARY_HOURS, "STANDARD"),
        ("clients/acc-a/old.pdf", 4 * GIB * JANUARY_HOURS, "GLACIER"),
        ("clients/acc-b/b.pdf", 2 * GIB * JANUARY_HOURS, "STANDARD_IA"),
        ("clients/acc-b/c.pdf", GIB * JANUARY_HOURS, "EXPRESS_ONEZONE"),  # not in the catalog: as STANDARD
    ])
    rows = quantities(read_january(inventory=tmp_path))
    hour = "2026-01-01 00"
    # the Glacier object's 40 KB of metadata: 32 KB at its class's rate, 8 KB at Standard's (32,768 and 8,192 bytes
    # / 2^30 / 744 hours = 0.0000000410 and 0.0000000103 GB-months an hour)
    assert {k[2:]: v for k, v in rows.items() if k[0] == hour} == {
        ("gb_months", "tax-demo-docs", "acc-a"): D("1.0000000103"),
        ("gb_months_glacier", "tax-demo-docs", "acc-a"): D("4.0000000410"),
        ("gb_months_standard_ia", "tax-demo-docs", "acc-b"): D("2"),
        ("gb_months", "tax-demo-docs", "acc-b"): D("1"),
    }


def test_an_intelligent_tiering_objects_access_tier_is_its_driver(tmp_path):
    """With the report's IntelligentTieringAccessTier field, each tier is its own driver (S3 bills the tiers as
    their own usage types); an object of no tier, or of one the catalog does not name, counts as the class."""
    write_snapshot(tmp_path, "2026-01-01T00-00Z", [
        ("clients/acc-a/a.pdf", GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "FREQUENT"),
        ("clients/acc-a/b.pdf", 3 * GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "ARCHIVE_INSTANT_ACCESS"),
        ("clients/acc-b/c.pdf", 2 * GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "DEEP_ARCHIVE_ACCESS"),
        ("clients/acc-b/d.pdf", 4 * GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "INFREQUENT"),
        ("clients/acc-b/e.pdf", 5 * GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "ARCHIVE_ACCESS"),
        ("clients/acc-b/f.pdf", GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", ""),
        ("clients/acc-b/g.pdf", GIB * JANUARY_HOURS, "INTELLIGENT_TIERING", "NEW_TIER"),
        ("clients/acc-b/h.pdf", GIB * JANUARY_HOURS, "STANDARD", ""),
    ])
    rows = quantities(read_january(inventory=tmp_path))
    assert {k[2:]: v for k, v in rows.items() if k[0] == "2026-01-01 00"} == {
        ("gb_months_int_frequent", "tax-demo-docs", "acc-a"): D("1"),
        ("gb_months_int_archive_instant", "tax-demo-docs", "acc-a"): D("3"),
        ("gb_months_int_deep_archive", "tax-demo-docs", "acc-b"): D("2"),
        ("gb_months_int_infrequent", "tax-demo-docs", "acc-b"): D("4"),
        ("gb_months_int_archive", "tax-demo-docs", "acc-b"): D("5"),
        ("gb_months_intelligent_tiering", "tax-demo-docs", "acc-b"): D("2"),
        ("gb_months", "tax-demo-docs", "acc-b"): D("1"),
    }


def add_files(manifest, *keys):
    content = json.loads(manifest.read_text())
    content["files"] += [{"key": key, "size": 1, "MD5checksum": "0"} for key in keys]
    manifest.write_text(json.dumps(content))


def test_a_manifest_reads_only_its_own_report_and_each_file_once(tmp_path):
    """A manifest listing its data file twice doubled the client's bytes; one listing another bucket's inventory
    file (below the same inventory folder) counted that bucket's 50 GiB as its own. Both fail naming the
    manifest."""
    twice = write_snapshot(tmp_path / "twice", "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    add_files(twice, "inventory/tax-demo-docs/daily/data/2026-01-10T01-00Z.csv.gz")
    with pytest.raises(ValueError, match=r"2026-01-10T01-00Z/manifest\.json: lists the data file "
                                         r"'inventory/tax-demo-docs/daily/data/2026-01-10T01-00Z.csv.gz' more than once"):
        read_january(inventory=tmp_path / "twice")

    other = write_snapshot(tmp_path / "cross", "2026-01-10T01-00Z", [("clients/victim/x", 50 * GIB)],
                           bucket="other-bucket")
    shutil.rmtree(other.parent)  # only other-bucket's data file lies there
    own = write_snapshot(tmp_path / "cross", "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    add_files(own, "other-bucket/daily/data/2026-01-10T01-00Z.csv.gz")  # (the key below the inventory folder)
    with pytest.raises(ValueError, match=r"lists data file 'other-bucket/daily/data/2026-01-10T01-00Z"
                                         r"\.csv\.gz', which lies outside its own inventory report .*tax-demo-docs/daily"):
        read_january(inventory=tmp_path / "cross")


def test_parquet_sizes_that_are_not_byte_counts_fail_naming_the_file(tmp_path):
    """A size of 'abc' failed with a bare ArrowInvalid naming no file; a negative size lowered a client's share."""
    for sizes, problem in ((["abc"], "inventory key or size of the wrong type"),
                           ([2.0], "inventory key or size of the wrong type \\(size is double"),
                           ([True], "inventory key or size of the wrong type \\(size is bool"),
                           ([-GIB], "an object of negative size")):
        folder = tmp_path / str(sizes[0])
        manifest = write_snapshot(folder, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
        data = manifest.parent.parent / "data" / "2026-01-10T01-00Z.parquet"
        pq.write_table(pa.table({"bucket": ["tax-demo-docs"], "key": ["clients/acc-a/x"], "size": sizes}), data)
        content = json.loads(manifest.read_text())
        content.update(fileFormat="Parquet", files=[{"key": "inventory/tax-demo-docs/daily/data/2026-01-10T01-00Z"
                                                            ".parquet", "size": 1, "MD5checksum": "0"}])
        manifest.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=rf"data/2026-01-10T01-00Z\.parquet: {problem}"):
            read_january(inventory=folder)


@pytest.mark.parametrize("file_format", ["Parquet", "ORC"])
def test_parquet_and_orc_data_files_count_as_csv_does(tmp_path, file_format):
    import pyarrow.orc as paorc

    csv_folder, folder = tmp_path / "csv", tmp_path / file_format
    rows = [("clients/acc-a/x", 3 * GIB, "STANDARD", ""), ("clients/acc-b/y", GIB, "GLACIER", ""),
            ("other/z", GIB, "STANDARD", ""), ("clients/acc-b/w", 2 * GIB, "INTELLIGENT_TIERING", "DEEP_ARCHIVE_ACCESS")]
    write_snapshot(csv_folder, "2026-01-10T01-00Z", rows)
    manifest = write_snapshot(folder, "2026-01-10T01-00Z", rows)
    data = manifest.parent.parent / "data" / f"2026-01-10T01-00Z.{file_format.lower()}"
    table = pa.table({"bucket": ["tax-demo-docs"] * 4, "key": [r[0] for r in rows],
                      "size": pa.array([r[1] for r in rows], pa.int64()), "storage_class": [r[2] for r in rows],
                      "is_latest": [True] * 4,
                      "intelligent_tiering_access_tier": [r[3] or None for r in rows]})
    (pq.write_table if file_format == "Parquet" else paorc.write_table)(table, data)
    content = json.loads(manifest.read_text())
    content.update(fileFormat=file_format, files=[{"key": f"inventory/tax-demo-docs/daily/data/{data.name}"}])
    manifest.write_text(json.dumps(content))
    assert quantities(read_january(inventory=folder)) == quantities(read_january(inventory=csv_folder))
    assert "gb_months_int_deep_archive" in {k[2] for k in quantities(read_january(inventory=folder))}


@pytest.mark.parametrize("content, problem", [
    ("[]", "manifest is not a JSON object"),
    (json.dumps({"files": [{"key": 5}]}), "files\\[0\\]\\.key is int 5, not text"),
])
def test_an_inventory_manifest_of_the_wrong_shape_fails_naming_it(tmp_path, content, problem):
    """A JSON array, or a key that is a number: a bare AttributeError / TypeError named no file."""
    manifest = write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    manifest.write_text(content)
    with pytest.raises(ValueError, match=rf"2026-01-10T01-00Z/manifest\.json: .*{problem}"):
        read_january(inventory=tmp_path)


@pytest.mark.parametrize("taken", ["2026-13-01T00-00Z", "2026-01-32T00-00Z", "2026-01-10T24-00Z"])
def test_a_snapshot_folder_naming_no_time_fails_naming_the_manifest(tmp_path, taken):
    """`2026-13-01T00-00Z/manifest.json` raised a bare `month must be in 1..12` that named no file."""
    write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    manifest = write_snapshot(tmp_path, taken, [("clients/acc-a/x", GIB)])
    with pytest.raises(ValueError, match=re.escape(str(manifest)) + ": .*no time"):
        read_january(inventory=tmp_path)


def test_a_manifest_whose_source_bucket_is_not_its_folders_fails_naming_both(tmp_path):
    """S3 Inventory writes `<destination>/<source bucket>/<config>/...`: a manifest in tax-demo-docs' folder saying
    `sourceBucket: payroll-bucket` made tax-demo-docs' bytes the usage evidence of payroll-bucket's storage cost."""
    manifest = write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    content = json.loads(manifest.read_text())
    content["sourceBucket"] = "payroll-bucket"
    manifest.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=re.escape(f"{manifest}: sourceBucket 'payroll-bucket' is not the bucket "
                                                   "its folder names ('tax-demo-docs'")):
        read_january(inventory=tmp_path)


# -- Several inventory configurations of one bucket: each hour counts a client's largest bytes among them --------

def test_a_prefix_configuration_does_not_count_its_tenant_twice(tmp_path):
    """The daily whole-bucket report and a report filtered to acc-a's folder both list acc-a's objects: summed, the
    12 hours both stand for counted acc-a's 1 GiB-month per month-hour twice (2, while acc-b held 2: half the
    bucket's cost instead of a third)."""
    write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS),
                                                   ("clients/acc-b/scan.pdf", 2 * GIB * JANUARY_HOURS)])
    # Jan 10 13:00 .. Jan 11 13:00; the daily one stands for Jan 10 01:00 .. Jan 11 01:00: 12 hours in common
    write_snapshot(tmp_path, "2026-01-10T13-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS)],
                   config="acc-a-prefix")

    evidence = read_january(inventory=tmp_path)
    rows = quantities(evidence)

    def acc_a(hour):
        return rows[(hour, "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")]

    for hour in ["2026-01-10 01", "2026-01-10 12", "2026-01-10 13", "2026-01-10 23", "2026-01-11 00",
                 "2026-01-11 01", "2026-01-11 12"]:
        assert acc_a(hour) == D("1"), hour
    assert rows[("2026-01-10 13", "AmazonS3", "gb_months", "tax-demo-docs", "acc-b")] == D("2")
    tenants = {}
    for (_, _, _, _, tenant), quantity in rows.items():
        tenants[tenant] = tenants.get(tenant, 0) + quantity
    # acc-a: 36 hours (Jan 10 01:00 .. Jan 11 13:00) at 1; acc-b: the daily report's 24 hours at 2
    assert tenants == {"acc-a": D("36"), "acc-b": D("48")}
    assert len(rows) == 36 + 24  # one row per (hour, client): none per configuration
    assert evidence.problems == {"inventory_hours_overlapping_configurations": 12}
    assert evidence.files_read == 4 and evidence.lines_read == 3


def test_an_all_versions_configuration_gives_the_noncurrent_bytes(tmp_path):
    """Current versions only, and all versions (acc-a's 0.5 GiB-month noncurrent version of w2.pdf, which S3 bills
    as storage too): acc-a counts 1.5 (the billed bytes), not 1 + 1.5; acc-b, the same in both, 2, not 4."""
    current = [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS), ("clients/acc-b/scan.pdf", 2 * GIB * JANUARY_HOURS)]
    write_snapshot(tmp_path, "2026-01-10T00-00Z", current, config="current")
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [*current, ("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS // 2)],
                   config="all-versions")

    evidence = read_january(inventory=tmp_path)
    rows = quantities(evidence)

    assert {k[2:]: v for k, v in rows.items() if k[0] == "2026-01-10 05"} == {
        ("gb_months", "tax-demo-docs", "acc-a"): D("1.5"),
        ("gb_months", "tax-demo-docs", "acc-b"): D("2"),
    }
    assert len(rows) == 2 * 24
    assert sum(rows.values()) == 24 * D("3.5")
    assert evidence.problems == {"inventory_hours_overlapping_configurations": 24}


def test_several_configurations_count_each_client_and_storage_class_on_its_own(tmp_path):
    """The largest bytes per (bucket, hour, client, driver): acc-a's Glacier bytes only one report lists and acc-b's
    larger figure in the other both count; another bucket's report is its own scope and overlaps nothing."""
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/acc-a/a.pdf", GIB * JANUARY_HOURS, "STANDARD"),
                                                   ("clients/acc-b/b.pdf", GIB * JANUARY_HOURS, "STANDARD")])
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/acc-a/a.pdf", GIB * JANUARY_HOURS, "STANDARD"),
                                                   ("clients/acc-a/old.pdf", 4 * GIB * JANUARY_HOURS, "GLACIER"),
                                                   ("clients/acc-b/b.pdf", 3 * GIB * JANUARY_HOURS, "STANDARD")],
                   config="weekly")
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/acc-a/a.pdf", GIB * JANUARY_HOURS)],
                   bucket="payroll-docs")

    evidence = read_january(inventory=tmp_path)
    rows = quantities(evidence)

    assert {k[2:]: v for k, v in rows.items() if k[0] == "2026-01-10 00"} == {
        ("gb_months", "tax-demo-docs", "acc-a"): D("1.0000000103"),  # + the Glacier object's 8 KB (weekly's, larger)
        ("gb_months_glacier", "tax-demo-docs", "acc-a"): D("4.0000000410"),  # + its 32 KB
        ("gb_months", "tax-demo-docs", "acc-b"): D("3"),
        ("gb_months", "payroll-docs", "acc-a"): D("1"),
    }
    assert evidence.problems == {"inventory_hours_overlapping_configurations": 24}  # tax-demo-docs' 24 hours


def test_the_refresh_counts_overlapping_hours_from_since_only(tmp_path):
    """The month_to_date refresh (`since`): the hours from it on, each at the largest configuration's bytes, and only
    those hours counted as overlapping."""
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS)])
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS)],
                   config="acc-a-prefix")
    since = dt.datetime(2026, 1, 10, 20)

    evidence = read_usage_evidence(None, locate(str(tmp_path)), JANUARY, since=since)

    assert quantities(evidence) == {(f"2026-01-10 {hour}", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a"): D("1")
                                    for hour in range(20, 24)}
    assert evidence.problems == {"inventory_hours_overlapping_configurations": 4}


def test_usage_shares_reports_the_overlapping_hours_in_its_metadata(tmp_path, monkeypatch):
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    inventory = tmp_path / "inventory"
    write_snapshot(inventory, "2026-01-10T00-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS),
                                                    ("clients/acc-b/scan.pdf", 2 * GIB * JANUARY_HOURS)])
    write_snapshot(inventory, "2026-01-10T06-00Z", [("clients/acc-a/w2.pdf", GIB * JANUARY_HOURS)],
                   config="acc-a-prefix")
    (tmp_path / "logs").mkdir()
    monkeypatch.setenv("BILLING_LOGS_URI", str(tmp_path / "logs"))
    monkeypatch.setenv("BILLING_S3_INVENTORY_URI", str(inventory))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))

    result = materialize([a for a in defs.assets if a.key.to_user_string() == "usage_shares"],
                         resources=defs.resources, partition_key="2026-01-01", instance=DagsterInstance.ephemeral())

    assert result.success
    metadata = result.asset_materializations_for_node("usage_shares")[0].metadata
    assert metadata["problems/inventory_hours_overlapping_configurations"].value == 18  # Jan 10 06:00 .. Jan 11 00:00
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        shares = con.execute("""SELECT accountant_id, sum(quantity) FROM usage_shares
                                WHERE billing_period = DATE '2026-01-01' AND driver = 'gb_months'
                                GROUP BY ALL ORDER BY ALL""").fetchall()
    assert shares == [("acc-a", D("30")), ("acc-b", D("48"))]  # acc-a: 30 hours at 1; acc-b: 24 at 2


KIB = 1024


def test_the_bytes_s3_bills_for_small_and_archived_objects(tmp_path):
    """S3 User Guide, storage classes: Standard-IA, One Zone-IA and Glacier Instant Retrieval have a minimum billable
    object size of 128 KB ("If an object is less than 128 KB, Amazon S3 charges you for 128 KB"); Glacier Flexible
    Retrieval and Deep Archive require "40 KB of additional metadata for each archived object": 32 KB charged at the
    class's rate and 8 KB at the S3 Standard rate. Intelligent-Tiering has no minimum. The inventory's sizes alone
    gave a tenant of many small or archived objects the storage others pay for."""
    objects = pa.table({
        "key": ["clients/acc-a/1", "clients/acc-a/2", "clients/acc-a/3", "clients/acc-a/4", "clients/acc-b/5",
                "clients/acc-b/6", "clients/acc-b/7", "clients/acc-b/8", "clients/acc-b/9", "clients/acc-b/10"],
        "size": pa.array([KIB, 0, 100 * KIB, 64 * KIB, 200 * KIB, 0, 5 * KIB, 5 * KIB, 5 * KIB, None], pa.int64()),
        "storage_class": ["STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE", "GLACIER",
                          "STANDARD", "INTELLIGENT_TIERING/FREQUENT", "STANDARD_IA", "STANDARD_IA"],
    })
    got: dict = {}
    for r in client_bytes(objects, 1, False).to_pylist():  # (rows of a key add up, as their readers sum them)
        bytes_, count = got.get((r["accountant_id"], r["driver"]), (0, 0))
        got[(r["accountant_id"], r["driver"])] = (bytes_ + r["bytes"], count + r["objects"])
    assert {k: v[0] for k, v in got.items() if v[0]} == {
        ("acc-a", "gb_months_standard_ia"): 128 * KIB,   # 1 KB billed as 128 KB
        ("acc-a", "gb_months_onezone_ia"): 128 * KIB,    # an empty object too
        ("acc-a", "gb_months_glacier_ir"): 128 * KIB,
        ("acc-a", "gb_months_glacier"): 96 * KIB,        # 64 KB + 32 KB
        ("acc-a", "gb_months"): 8 * KIB,                 # the archived object's 8 KB at the Standard rate
        ("acc-b", "gb_months_deep_archive"): 232 * KIB,  # 200 KB + 32 KB
        ("acc-b", "gb_months_glacier"): 32 * KIB,        # an empty archived object: its metadata
        ("acc-b", "gb_months"): (5 + 8 + 8) * KIB,       # 5 KB Standard + two archived objects' 8 KB
        ("acc-b", "gb_months_int_frequent"): 5 * KIB,    # no minimum
        ("acc-b", "gb_months_standard_ia"): 128 * KIB,   # 5 KB billed as 128 KB; an object of no size adds none
    }
    assert sum(v[1] for v in got.values()) == 10  # each object counted once


def test_small_standard_ia_objects_pay_their_billed_share(tmp_path, warehouse_con):
    """acc-a keeps 1,024 documents of 1 KB in Standard-IA, acc-b one of 128 MiB: S3 bills each the same 128 MiB
    (1,024 x 128 KB). The hour's Standard-IA storage went 1 : 128 by the inventory's sizes (acc-a 0.0775202955 of
    10), now half each."""
    con = warehouse_con
    write_snapshot(tmp_path, "2026-01-10T00-00Z", [(f"clients/acc-a/{i}.pdf", KIB, "STANDARD_IA") for i in range(1024)]
                   + [("clients/acc-b/big.zip", 128 * 1024 * KIB, "STANDARD_IA")])
    con.register("usage_evidence", read_january(inventory=tmp_path).usage)
    con.execute(f"INSERT INTO usage_shares BY NAME ({stage_sql('usage_shares')})",
                {"billing_period": JANUARY, "next_period": dt.date(2026, 2, 1)})
    for usage_type, cost in (("USE1-TimedStorage-SIA-ByteHrs", "9.5"), ("USE1-TimedStorage-SIA-SmObjects", "0.5")):
        con.execute(
            """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id,
                   line_item_type, service, usage_type, operation, resource_id, accountant_id, application, currency,
                   in_scope, usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
               VALUES (?, ?, 1, '1', 'Usage', 'AmazonS3', ?, 'StandardIAStorage', 'tax-demo-docs', NULL, 'tax-demo',
                       'USD', true, 1, CAST(? AS DECIMAL(38, 10)), CAST(? AS DECIMAL(38, 10)), NULL, 1)""",
            [JANUARY, dt.datetime(2026, 1, 10, 5), usage_type, cost, cost])
    stage_cost_allocations(DuckDBEngine(con), {"billing_period": JANUARY, "cost_metric": "unblended"},
                           Pricing("USD", D(10), {}))
    assert con.execute("SELECT accountant_id, sum(cost) FROM cost_allocations GROUP BY 1 ORDER BY 1").fetchall() == [
        ("acc-a", D("5")), ("acc-b", D("5"))]
