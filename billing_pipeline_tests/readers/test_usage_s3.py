"""The usage readers over S3 (a local moto server): the same evidence as from a local folder."""

from __future__ import annotations

import gzip
import re
import json
from decimal import Decimal as D

import boto3
import pytest

from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.usage_builders import JANUARY, quantities, report, text_app_line


@pytest.fixture
def s3(aws):
    """A bucket on the local S3-compatible server (conftest's `aws` fixture empties it after each test)."""
    client = boto3.client("s3")
    client.create_bucket(Bucket="billing")
    return client


def test_logs_and_inventory_read_from_s3(s3):
    lines = [
        text_app_line("2026-01-05T10:00:00Z", "r1", '{"accountant_id": "acc-a"}'),
        report("2026-01-05T10:00:01Z", "r1", billed_ms=1000, memory_mb=1024),
    ]
    s3.put_object(Bucket="billing", Key="logs/export/task-1/2026/01/05/[$LATEST]x/000000.gz",
                  Body=gzip.compress("\n".join(lines).encode()))
    csv_gz = gzip.compress(f'"tax-demo-docs","clients/acc-a/x.pdf","{2**30 * 744}","2026-01-01"\n'.encode())
    s3.put_object(Bucket="billing", Key="inv/tax-demo-docs/daily/data/a.csv.gz", Body=csv_gz)
    s3.put_object(Bucket="billing", Key="inv/tax-demo-docs/daily/2026-01-05T00-00Z/manifest.json", Body=json.dumps({
        "sourceBucket": "tax-demo-docs", "destinationBucket": "arn:aws:s3:::billing", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": "inv/tax-demo-docs/daily/data/a.csv.gz", "size": len(csv_gz), "MD5checksum": "0"}],
    }))

    evidence = read_usage_evidence(locate("s3://billing/logs"), locate("s3://billing/inv"), JANUARY)
    rows = quantities(evidence)
    assert rows[("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-a")] == D("1")
    assert rows[("2026-01-05 10", "AmazonS3", "gb_months", "tax-demo-docs", "acc-a")] == D("1")
    assert sum(v for k, v in rows.items() if k[2] == "gb_months") == D("24")
    assert evidence.files_read == 3


def test_an_inventory_data_file_only_the_named_destination_bucket_holds_is_not_read(s3):
    """The manifest names `private` as its destination and a data key that exists only there: the pipeline reads
    the inventory folder it was pointed at, never another bucket, and says which file is missing."""
    s3.create_bucket(Bucket="private")
    s3.put_object(Bucket="private", Key="secrets/a.csv.gz",
                  Body=gzip.compress(b'"tax-demo-docs","clients/acc-a/x.pdf","1073741824","2026-01-01"\n'))
    s3.put_object(Bucket="billing", Key="inv/tax-demo-docs/daily/2026-01-05T00-00Z/manifest.json", Body=json.dumps({
        "sourceBucket": "tax-demo-docs", "destinationBucket": "arn:aws:s3:::private", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": "secrets/a.csv.gz", "size": 10, "MD5checksum": "0"}],
    }))
    with pytest.raises(ValueError) as error:
        read_usage_evidence(locate("s3://billing/logs"), locate("s3://billing/inv"), JANUARY)
    assert str(error.value) == (
        "s3://billing/inv/tax-demo-docs/daily/2026-01-05T00-00Z/manifest.json: lists data file 'secrets/a.csv.gz', "
        "which is missing (looked for s3://billing/inv/secrets/a.csv.gz)")


@pytest.mark.parametrize("suffix", ["\x00", "\x00.csv.gz"])
def test_an_inventory_data_key_with_a_nul_is_refused_not_counted_twice(s3, suffix):
    """The S3 client ends a key at a NUL: `<key>\\x00` was read as `<key>` once more, its bytes counted twice."""
    csv_gz = gzip.compress(b'"tax-demo-docs","clients/acc-a/x.pdf","1073741824","2026-01-01"\n')
    s3.put_object(Bucket="billing", Key="inv/tax-demo-docs/daily/data/a.csv.gz", Body=csv_gz)
    key = "inv/tax-demo-docs/daily/data/a.csv.gz"
    manifest = "inv/tax-demo-docs/daily/2026-01-05T00-00Z/manifest.json"
    s3.put_object(Bucket="billing", Key=manifest, Body=json.dumps({
        "sourceBucket": "tax-demo-docs", "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": key}, {"key": key + suffix}],
    }))
    with pytest.raises(ValueError) as error:
        read_usage_evidence(None, locate("s3://billing/inv"), JANUARY)
    assert str(error.value) == f"s3://billing/{manifest}: lists data file {key + suffix!r}, which holds a NUL character: not a key"


@pytest.mark.parametrize("key", ["inv/tax-demo-docs/daily//data/a.csv.gz", "s3://other/a.csv.gz"])
def test_an_inventory_data_key_that_is_no_path_fails_naming_the_manifest(s3, key):
    """pyarrow refuses such a path with a bare ArrowInvalid that named neither the manifest nor the key."""
    manifest = "inv/tax-demo-docs/daily/2026-01-05T00-00Z/manifest.json"
    s3.put_object(Bucket="billing", Key=manifest, Body=json.dumps({
        "sourceBucket": "tax-demo-docs", "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": key}],
    }))
    with pytest.raises(ValueError, match=re.escape(f"s3://billing/{manifest}: lists data file {key!r}, which is "
                                                   "not a path (")):
        read_usage_evidence(None, locate("s3://billing/inv"), JANUARY)
