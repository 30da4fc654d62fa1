"""Bad CUR input fails with a CurFormatError that names the file and the problem, and stages nothing."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re

import duckdb
import pyarrow as pa
import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import (
    athena_table,
    cur2_table,
    key_of,
    legacy_row,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

JAN = dt.date(2026, 1, 1)


def stage(root) -> duckdb.DuckDBPyConnection:
    location = locate(str(root))
    con = duckdb.connect()
    stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    return con


def legacy_delivery(root, rows=None, name="bad-1.csv.gz", raw: bytes | None = None):
    """A one-file legacy CSV delivery; `raw` replaces the file's bytes."""
    period = root / "bad" / "20260101-20260201"
    data = write_csv(period / "asm" / name, rows or [legacy_row()])
    if raw is not None:
        data.write_bytes(raw)
    write_legacy_manifest(period / "bad-Manifest.json", "bad", [key_of(root, data)], "asm")
    return data


def test_truncated_parquet_names_the_file(tmp_path):
    data = write_parquet(tmp_path / "r" / "r" / "year=2026" / "month=1" / "r-00001.snappy.parquet",
                         athena_table(["a", "b", "c"]))
    data.write_bytes(data.read_bytes()[:-40])
    con = duckdb.connect()
    location = locate(str(tmp_path))
    with pytest.raises(CurFormatError, match="r-00001.snappy.parquet"):
        stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    # Nothing is left behind: no half-staged table, no other table.
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]


def test_truncated_parquet_in_a_data_export_fails_discovery_with_its_name(tmp_path):
    data = write_parquet(tmp_path / "e" / "data" / "BILLING_PERIOD=2026-01" / "e-00001.parquet", cur2_table(["a"], [[]]))
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(CurFormatError, match="e-00001.parquet"):
        find_deliveries(locate(str(tmp_path)))


def test_corrupt_gzip_names_the_file(tmp_path):
    legacy_delivery(tmp_path, raw=b"\x1f\x8b\x08\x00 this is not deflate data at all")
    with pytest.raises(CurFormatError, match="bad-1.csv.gz"):
        stage(tmp_path)


def test_gzip_cut_off_midway_names_the_file(tmp_path):
    rows = [legacy_row(**{"identity/LineItemId": f"li-{i}", "lineItem/LineItemDescription": f"row {i} " * 20})
            for i in range(3000)]
    data = legacy_delivery(tmp_path, rows)
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(CurFormatError, match="bad-1.csv.gz"):
        stage(tmp_path)


def test_manifest_naming_a_missing_key(tmp_path):
    period = tmp_path / "bad" / "20260101-20260201"
    write_legacy_manifest(period / "bad-Manifest.json", "bad", ["cur/bad/20260101-20260201/asm/gone-1.csv.gz"], "asm")
    with pytest.raises(CurFormatError, match=r"bad-Manifest\.json.*gone-1\.csv\.gz"):
        find_deliveries(locate(str(tmp_path)))


def test_cost_column_with_text_names_file_and_column(tmp_path):
    legacy_delivery(tmp_path, [legacy_row(), legacy_row(**{"lineItem/UnblendedCost": "twelve dollars"})])
    with pytest.raises(CurFormatError, match=r"bad-1\.csv\.gz.*lineItem/UnblendedCost.*twelve dollars"):
        stage(tmp_path)


def test_usage_date_that_is_not_a_time_names_file_and_column(tmp_path):
    legacy_delivery(tmp_path, [legacy_row(**{"lineItem/UsageStartDate": "yesterday"})])
    with pytest.raises(CurFormatError, match=r"bad-1\.csv\.gz.*lineItem/UsageStartDate"):
        stage(tmp_path)


def test_parquet_cost_column_of_the_wrong_type(tmp_path):
    columns = athena_table(["a"])
    columns["line_item_unblended_cost"] = pa.array([True])
    write_parquet(tmp_path / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", columns)
    with pytest.raises(CurFormatError, match=r"r-1\.parquet.*line_item_unblended_cost.*bool"):
        stage(tmp_path)


def test_missing_required_column(tmp_path):
    row = legacy_row()
    del row["lineItem/UnblendedCost"]
    legacy_delivery(tmp_path, [row])
    with pytest.raises(CurFormatError, match=r"bad-1\.csv\.gz.*line_item_unblended_cost"):
        stage(tmp_path)


def test_missing_required_value(tmp_path):
    legacy_delivery(tmp_path, [legacy_row(**{"lineItem/CurrencyCode": ""})])
    with pytest.raises(CurFormatError, match=r"bad-1\.csv\.gz.*currency"):
        stage(tmp_path)


def test_unknown_layout(tmp_path):
    write_csv(tmp_path / "exports" / "2026-01" / "costs.csv.gz", [legacy_row()])
    with pytest.raises(CurFormatError, match=r"costs\.csv\.gz.*no known CUR layout"):
        find_deliveries(locate(str(tmp_path)))


def test_a_data_export_laid_flat_is_told_how_aws_lays_it_out(tmp_path):
    """A downloaded export with its manifest beside the data (as `../shared/samples/extra/ola-raji-cur2-csv`)."""
    write_csv(tmp_path / "download" / "cur2-00001.csv.gz", [legacy_row()])
    write_export_manifest(tmp_path / "download" / "cur2-Manifest.json", "cur2", ["s3://b/cur2/data/x.csv.gz"])
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(str(tmp_path)))
    assert str(error.value) == (
        f"{tmp_path}/download/cur2-00001.csv.gz: billing data in no known CUR layout (legacy manifest period "
        "folder, year=/month= folders, or a Data Exports BILLING_PERIOD= partition); "
        f"{tmp_path}/download/cur2-Manifest.json is a manifest outside its layout: a Data Exports delivery is "
        "<export>/data/BILLING_PERIOD=YYYY-MM/<files> with <export>/metadata/BILLING_PERIOD=YYYY-MM/"
        "<export>-Manifest.json, as AWS writes it")


def test_period_folder_without_manifest(tmp_path):
    write_csv(tmp_path / "r" / "20260101-20260201" / "asm" / "r-1.csv.gz", [legacy_row()])
    with pytest.raises(CurFormatError, match=r"r-1\.csv\.gz.*Manifest"):
        find_deliveries(locate(str(tmp_path)))


def test_two_reports_for_one_month_names_both(tmp_path):
    for report in ("alpha-cur", "beta-cur"):
        period = tmp_path / report / "20260101-20260201"
        data = write_csv(period / "asm" / f"{report}-1.csv.gz", [legacy_row()])
        write_legacy_manifest(period / f"{report}-Manifest.json", report, [key_of(tmp_path, data)], "asm")
    with pytest.raises(CurFormatError, match=r"alpha-cur.*beta-cur"):
        find_deliveries(locate(str(tmp_path)))


def test_unreadable_manifest(tmp_path):
    period = tmp_path / "bad" / "20260101-20260201"
    period.mkdir(parents=True)
    (period / "bad-Manifest.json").write_text("{not json")
    with pytest.raises(CurFormatError, match=r"bad-Manifest\.json"):
        find_deliveries(locate(str(tmp_path)))


def test_gzip_that_is_not_csv_at_all(tmp_path):
    legacy_delivery(tmp_path, raw=gzip.compress(b"\x00\x01\x02 binary junk without a header"))
    with pytest.raises(CurFormatError, match=r"bad-1\.csv\.gz"):
        stage(tmp_path)


@pytest.mark.parametrize("folder", [
    "r/r/year=2026/month=13", "r/r/year=2026/month=0", "r/r/year=0000/month=1",
    "e/data/BILLING_PERIOD=2026-13", "r/20261301-20270101/asm",
])
def test_a_folder_naming_no_month_fails_naming_the_file(tmp_path, folder):
    """`month=13`, `BILLING_PERIOD=2026-13`, a period folder of month 13: a bare `ValueError: month must be in
    1..12` named no file (and, not a CurFormatError, was not turned into the run's Failure)."""
    write_parquet(tmp_path / folder / "x.parquet", {"x": [1]})
    with pytest.raises(CurFormatError, match=re.escape(str(tmp_path / folder / "x.parquet")) + ".* no month"):
        find_deliveries(locate(str(tmp_path)))


def test_a_manifest_billing_period_of_year_zero_fails_naming_the_manifest(tmp_path):
    manifest = legacy_delivery(tmp_path).parent.parent / "bad-Manifest.json"
    content = json.loads(manifest.read_text())
    content["billingPeriod"] = {"start": "00000101T000000.000Z", "end": "00000201T000000.000Z"}
    manifest.write_text(json.dumps(content))
    with pytest.raises(CurFormatError, match=re.escape(str(manifest)) + ": billingPeriod '00000101T000000.000Z' is "
                                             "not a date"):
        find_deliveries(locate(str(tmp_path)))
