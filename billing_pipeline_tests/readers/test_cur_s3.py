"""The CUR reader against S3 (a local moto server): manifest keys are `<bucket>/<key>`, source_file an s3:// URI."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import BUCKET, legacy_row, upload, write_csv, write_legacy_manifest

JAN = dt.date(2026, 1, 1)


def test_create_new_version_on_s3(s3, tmp_path):
    period = tmp_path / "cur" / "s3-cur" / "20260101-20260201"
    old = write_csv(period / "old-asm" / "s3-cur-1.csv.gz", [legacy_row(**{"identity/LineItemId": "old"})])
    new = write_csv(period / "new-asm" / "s3-cur-1.csv.gz",
                    [legacy_row(**{"identity/LineItemId": "new", "lineItem/UnblendedCost": "2.5"})])
    write_legacy_manifest(period / "old-asm" / "s3-cur-Manifest.json", "s3-cur",
                          [old.relative_to(tmp_path).as_posix()], "old-asm")
    write_legacy_manifest(period / "s3-cur-Manifest.json", "s3-cur", [new.relative_to(tmp_path).as_posix()], "new-asm")
    upload(s3, tmp_path)

    location = locate(f"s3://{BUCKET}/cur")
    deliveries = find_deliveries(location)
    delivery = deliveries[JAN]
    key = new.relative_to(tmp_path).as_posix()
    assert (delivery.files, delivery.delivery_id) == ((f"{BUCKET}/{key}",), "new-asm")
    con = duckdb.connect()
    assert stage_line_items(con, location, delivery, "staged") == 1
    assert con.execute("SELECT line_item_id, unblended_cost, source_file FROM staged").fetchall() == [
        ("new", Decimal("2.5"), f"s3://{BUCKET}/{key}")]


def test_missing_key_on_s3_names_the_manifest_uri(s3, tmp_path):
    period = tmp_path / "cur" / "s3-cur" / "20260101-20260201"
    write_legacy_manifest(period / "s3-cur-Manifest.json", "s3-cur", ["cur/s3-cur/20260101-20260201/a/x.csv.gz"], "a")
    upload(s3, tmp_path)
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(f"s3://{BUCKET}/cur"))
    assert str(error.value) == (
        f"s3://{BUCKET}/cur/s3-cur/20260101-20260201/s3-cur-Manifest.json: report key "
        f"'cur/s3-cur/20260101-20260201/a/x.csv.gz' is missing: "
        f"s3://{BUCKET}/cur/s3-cur/20260101-20260201/a/x.csv.gz does not exist (an incomplete delivery)")
