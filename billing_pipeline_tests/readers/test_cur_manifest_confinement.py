"""Manifests stay in their report: every reportKey / dataFile must lie under the manifest's own bucket and report
folder, locally and on S3 (issue 16, item 3). Anything else fails naming the manifest and the key."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import (
    BUCKET,
    legacy_row,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

PERIOD = "20260101-20260201"


def legacy_report(root: Path, keys: list[str], report: str = "r1") -> Path:
    """A legacy CSV delivery of `report` (one real file) whose top-level manifest lists `keys`."""
    period = root / "cur" / report / PERIOD
    write_csv(period / "asm" / f"{report}-1.csv.gz", [legacy_row()])
    return write_legacy_manifest(period / f"{report}-Manifest.json", report, keys, "asm")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("s3://other-bucket/private/secret.csv.gz",  # never read from other-bucket; its copy here is outside
         r"\(it names bucket 'other-bucket'; only its copy in the manifest's own folder is read\) lies outside "
         "the manifest's report"),
        ("/etc/passwd", "absolute path"),
        (f"cur/r1/{PERIOD}/../../r2/{PERIOD}/asm/r2-1.csv.gz", r"'\.\.' segments"),
        (f"cur/r1/{PERIOD}/asm//r1-1.csv.gz", "empty"),
        (f"cur/r2/{PERIOD}/asm/r2-1.csv.gz", "lies outside the manifest's report"),  # another report's file
        ("private/secret.csv.gz", "lies outside the manifest's report"),  # beside the reports
        ("file:///etc/passwd", "another scheme"),
    ],
)
def test_a_legacy_key_outside_the_report_fails_naming_manifest_and_key(tmp_path, key, problem):
    manifest = legacy_report(tmp_path, [f"cur/r1/{PERIOD}/asm/r1-1.csv.gz", key])
    legacy_report(tmp_path, [f"cur/r2/{PERIOD}/asm/r2-1.csv.gz"], report="r2")  # so r2's file exists
    write_csv(tmp_path / "cur" / "private" / "secret.csv.gz", [legacy_row()])
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(str(tmp_path / "cur")))
    message = str(error.value)
    assert message.startswith(f"{manifest}: report key {key!r}")
    assert re.search(problem, message)


def test_keys_inside_the_report_still_resolve_in_every_form(tmp_path):
    legacy_report(tmp_path, [f"cur/r1/{PERIOD}/asm/r1-1.csv.gz"])
    (tmp_path / "cur" / "r1" / PERIOD / "r1-Manifest.json").unlink()
    write_legacy_manifest(tmp_path / "cur" / "r1" / PERIOD / "r1-Manifest.json", "r1",
                          [f"s3://{BUCKET}/cur/r1/{PERIOD}/asm/r1-1.csv.gz"], "asm")
    (delivery,) = find_deliveries(locate(str(tmp_path))).values()
    assert delivery.files == (str(tmp_path / "cur" / "r1" / PERIOD / "asm" / "r1-1.csv.gz"),)


def test_a_data_exports_manifest_naming_another_export_or_bucket_fails(tmp_path):
    data = tmp_path / "exports" / "e1" / "data" / "BILLING_PERIOD=2026-01"
    write_parquet(data / "e1-00001.snappy.parquet", {"x": [1]})
    other = tmp_path / "exports" / "e2" / "data" / "BILLING_PERIOD=2026-01" / "e2-00001.snappy.parquet"
    write_parquet(other, {"x": [1]})
    manifest = tmp_path / "exports" / "e1" / "metadata" / "BILLING_PERIOD=2026-01" / "e1-Manifest.json"
    for key, problem in [
        (f"s3://{BUCKET}/exports/e2/data/BILLING_PERIOD=2026-01/e2-00001.snappy.parquet", "outside the manifest's report"),
        ("s3://other-bucket/private/data.parquet", "names bucket 'other-bucket'.* does not exist below"),
    ]:
        write_export_manifest(manifest, "e1", [key])
        with pytest.raises(CurFormatError, match=re.escape(f"{manifest}: report key {key!r}") + ".*" + problem):
            find_deliveries(locate(str(tmp_path / "exports")))


# -- on S3 (the local moto server) -----------------------------------------------------------------------------


@pytest.fixture
def buckets(aws):
    client = boto3.client("s3")
    for bucket in (BUCKET, "other-bucket"):
        client.create_bucket(Bucket=bucket)
    yield client
    for obj in client.list_objects_v2(Bucket="other-bucket").get("Contents", []):
        client.delete_object(Bucket="other-bucket", Key=obj["Key"])
    client.delete_bucket(Bucket="other-bucket")


def _upload(client, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, path.relative_to(root).as_posix())


def test_the_issue_attack_on_s3_a_key_in_another_bucket_is_refused(buckets, tmp_path):
    """A manifest under s3://cur-bucket/cur whose reportKeys name s3://other-bucket/private/... is not loaded,
    although the foreign object exists and is readable with the pipeline's credentials."""
    buckets.put_object(Bucket="other-bucket", Key="private/secret.csv.gz", Body=b"someone else's data")
    key = "s3://other-bucket/private/secret.csv.gz"
    legacy_report(tmp_path, [f"cur/r1/{PERIOD}/asm/r1-1.csv.gz", key])
    _upload(buckets, tmp_path)
    manifest = f"s3://{BUCKET}/cur/r1/{PERIOD}/r1-Manifest.json"
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(f"s3://{BUCKET}/cur"))
    assert str(error.value) == (
        f"{manifest}: report key {key!r} (it names bucket 'other-bucket'; only its copy in the manifest's own "
        f"bucket {BUCKET!r} is read) lies outside the manifest's report s3://{BUCKET}/cur/r1")


def test_on_s3_a_key_of_another_report_in_the_same_bucket_is_refused(buckets, tmp_path):
    key = f"cur/r2/{PERIOD}/asm/r2-1.csv.gz"
    legacy_report(tmp_path, [key])
    legacy_report(tmp_path, [key], report="r2")
    _upload(buckets, tmp_path)
    manifest = f"s3://{BUCKET}/cur/r1/{PERIOD}/r1-Manifest.json"
    with pytest.raises(CurFormatError, match=re.escape(f"{manifest}: report key {key!r} lies outside the manifest's "
                                                       f"report s3://{BUCKET}/cur/r1")):
        find_deliveries(locate(f"s3://{BUCKET}/cur"))


def test_on_s3_keys_inside_the_report_load(buckets, tmp_path):
    legacy_report(tmp_path, [f"s3://{BUCKET}/cur/r1/{PERIOD}/asm/r1-1.csv.gz"])
    _upload(buckets, tmp_path)
    (delivery,) = find_deliveries(locate(f"s3://{BUCKET}/cur")).values()
    assert delivery.files == (f"{BUCKET}/cur/r1/{PERIOD}/asm/r1-1.csv.gz",)


def test_on_s3_a_key_with_a_nul_is_refused_not_read_as_the_key_before_it(buckets, tmp_path):
    """The S3 client ends a key at a NUL: `<key>\\x00.csv.gz` was a second file of the delivery, read as `<key>`,
    so the month's line items counted twice (caught only where the lines carry a line item id)."""
    key = f"cur/r1/{PERIOD}/asm/r1-1.csv.gz"
    legacy_report(tmp_path, [key, key + "\x00.csv.gz"])
    _upload(buckets, tmp_path)
    manifest = f"s3://{BUCKET}/cur/r1/{PERIOD}/r1-Manifest.json"
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(f"s3://{BUCKET}/cur"))
    assert str(error.value) == f"{manifest}: report key {key + chr(0) + '.csv.gz'!r} holds a NUL character: not a key"
