"""A delivery copied to another bucket (S3 Replication to a central billing account, a restore, a test bucket):
its manifest still names the bucket AWS wrote it to. A Data Exports manifest lists its files as
`s3://<that bucket>/<key>`, so the reader resolves them in the bucket it was pointed at (never the named one),
confined to the manifest's report as any other key."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from decimal import Decimal

import boto3
import duckdb
import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.storage import locate
from billing_pipeline_tests.conftest import SAMPLES
from billing_pipeline_tests.readers.cur_builders import legacy_row, write_csv, write_legacy_manifest

REAL_EXPORT = SAMPLES / "extra" / "ola-raji-cur2-csv"
MANIFEST = "ha-project-CUR-daily-1-Manifest.json"
APRIL = dt.date(2026, 4, 1)


def put_real_export(client, bucket: str) -> tuple[str, str]:
    """The real CUR 2.0 export as AWS laid it out, under `bucket` (not the `ha-s3-bucket-1` its manifest names).
    Returns the data file's and the manifest's keys."""
    manifest = json.loads((REAL_EXPORT / MANIFEST).read_text())
    (uri,) = manifest["dataFiles"]
    key = uri.split("/", 3)[3]
    client.put_object(Bucket=bucket, Key=key,
                      Body=gzip.compress((REAL_EXPORT / "ha-project-CUR-daily-1-00001.csv").read_bytes()))
    manifest_key = f"{key.split('/data/')[0]}/metadata/BILLING_PERIOD=2026-04/{MANIFEST}"
    client.put_object(Bucket=bucket, Key=manifest_key, Body=(REAL_EXPORT / MANIFEST).read_bytes())
    return key, manifest_key


@pytest.mark.skipif(not REAL_EXPORT.is_dir(), reason="shared samples not present")
def test_a_real_export_replicated_to_another_bucket_is_read_from_that_bucket(aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket="central-billing-replica")
    key, _ = put_real_export(client, "central-billing-replica")
    location = locate("s3://central-billing-replica")
    delivery = find_deliveries(location)[APRIL]
    assert delivery.files == (f"central-billing-replica/{key}",)
    con = duckdb.connect()
    assert stage_line_items(con, location, delivery, "staged") == 1882
    assert con.execute("SELECT sum(unblended_cost), count(DISTINCT line_item_type) FROM staged").fetchone() == (
        Decimal("-0.0000000676"), 3)


def test_a_key_naming_the_original_bucket_is_read_from_the_copy_never_from_the_original(aws, tmp_path):
    """The bucket the manifest names exists and holds an object under the same key (its cost x1000): the copy in
    the bucket the pipeline was pointed at is what is read."""
    client = boto3.client("s3")
    for bucket in ("original-cur-bucket", "replica-cur-bucket"):
        client.create_bucket(Bucket=bucket)
    period = "20260101-20260201"
    key = f"cur/r1/{period}/asm/r1-1.csv.gz"
    for bucket, cost in (("original-cur-bucket", "2500"), ("replica-cur-bucket", "2.5")):
        local = write_csv(tmp_path / bucket / key, [legacy_row(**{"lineItem/UnblendedCost": cost})])
        client.upload_file(str(local), bucket, key)
    manifest = write_legacy_manifest(tmp_path / "m" / f"cur/r1/{period}/r1-Manifest.json", "r1",
                                     [f"s3://original-cur-bucket/{key}"], "asm")
    client.upload_file(str(manifest), "replica-cur-bucket", f"cur/r1/{period}/r1-Manifest.json")
    location = locate("s3://replica-cur-bucket/cur")
    (delivery,) = find_deliveries(location).values()
    assert delivery.files == (f"replica-cur-bucket/{key}",)
    con = duckdb.connect()
    stage_line_items(con, location, delivery, "staged")
    assert con.execute("SELECT sum(unblended_cost) FROM staged").fetchone() == (Decimal("2.5"),)


def test_a_key_naming_another_bucket_with_no_copy_in_the_report_is_refused(aws, tmp_path):
    client = boto3.client("s3")
    for bucket in ("original-cur-bucket", "replica-cur-bucket"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="original-cur-bucket", Key="private/secret.csv.gz", Body=b"someone else's")
    key = "s3://original-cur-bucket/private/secret.csv.gz"
    manifest = write_legacy_manifest(tmp_path / "cur/r1/20260101-20260201/r1-Manifest.json", "r1", [key], "asm")
    client.upload_file(str(manifest), "replica-cur-bucket", "cur/r1/20260101-20260201/r1-Manifest.json")
    with pytest.raises(CurFormatError, match=re.escape(
            "s3://replica-cur-bucket/cur/r1/20260101-20260201/r1-Manifest.json: report key "
            f"{key!r} (it names bucket 'original-cur-bucket'; only its copy in the manifest's own bucket "
            "'replica-cur-bucket' is read) lies outside the manifest's report s3://replica-cur-bucket/cur/r1")):
        find_deliveries(locate("s3://replica-cur-bucket/cur"))
