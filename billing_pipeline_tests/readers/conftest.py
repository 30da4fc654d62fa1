"""Fixtures of the reader tests."""

from __future__ import annotations

import boto3
import pytest

from billing_pipeline_tests.readers.cur_builders import BUCKET


@pytest.fixture
def s3(aws):
    """A bucket on the local S3-compatible server (conftest's `aws` fixture empties it after each test)."""
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client
