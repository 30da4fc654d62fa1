"""The usage evidence read and parsed on Spark's executors (readers/evidence_spark.py): for every source (log
exports local and on S3, the CloudWatch Logs API, S3 Inventory, the usage table as files and live on DynamoDB)
exactly the rows, problems and counts of the DuckDB path, and the driver neither reads nor parses a line."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal as D
from pathlib import Path

import boto3
import pytest

from billing_pipeline.engines.spark_engine import SparkEngine, spark_session
from billing_pipeline.readers import evidence_spark, log_streams, usage_files
from billing_pipeline.readers.estimates import read_estimates
from billing_pipeline.readers.evidence_spark import log_evidence_spark
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.readers.usage_table_dynamodb import parse_dynamodb_uri
from billing_pipeline.sample_data import generate_month
from billing_pipeline.sql import warehouse_ddl
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.logs_api_support import (
    EXPECTED,
    EXPECTED_PROBLEMS,
    PERIOD,
    groups_uri,
    put_streams,
    source,
)
from billing_pipeline_tests.readers.usage_builders import quantities

pytestmark = [pytest.mark.xdist_group("spark"), pytest.mark.slow]  # one Spark JVM per test run; minutes

JAN = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    # The executors' own credentials (never sent with a task): the local AWS server's dummy ones. Python workers
    # take the context's environment when they start.
    session.sparkContext.environment.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                             "AWS_EC2_METADATA_DISABLED": "true"})
    return session


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("evidence") / "sample", JAN, tenants=3, rows=1500, seed=5,
                          final=True)


def engine(spark, tmp_path: Path) -> SparkEngine:
    return SparkEngine(spark, str(tmp_path / "spark-warehouse"), warehouse_ddl())


def spark_estimates(engine: SparkEngine, usage, period) -> list[dict]:
    engine.register_estimates("estimates_read", usage, period)
    try:
        return sorted(engine.execute("SELECT * FROM estimates_read").df().to_dict("records"), key=repr)
    finally:
        engine.drop("estimates_read")


def duckdb_estimates(usage, period) -> list[dict]:
    import duckdb

    return sorted(duckdb.from_arrow(read_estimates(usage, period)).df().to_dict("records"), key=repr)


def assert_same_evidence(on_spark, on_duckdb) -> None:
    assert on_spark.usage.equals(on_duckdb.usage)
    assert (on_spark.problems, on_spark.lines_read, on_spark.files_read) == (
        on_duckdb.problems, on_duckdb.lines_read, on_duckdb.files_read)


def refuse(*_, **__):
    raise AssertionError("the driver read or parsed evidence")


def test_generated_month_parsed_on_the_executors_gives_duckdbs_rows(spark, sample, tmp_path, monkeypatch):
    logs, inventory, usage = locate(sample.logs_uri), locate(sample.inventory_uri), locate(sample.usage_uri)
    # a limit some of the sample's lines exceed: the executors drop and count them as the driver does
    monkeypatch.setenv("BILLING_MAX_LOG_LINE_BYTES", "300")
    on_duckdb = read_usage_evidence(logs, inventory, JAN)
    estimates = duckdb_estimates(usage, JAN)
    assert on_duckdb.problems["line_too_long"] > 0 and on_duckdb.usage.num_rows > 1000 and len(estimates) > 1000

    # Nothing on the driver may read a log or inventory data file, split lines or parse them: these fail when
    # called here (the executors' Python workers import their own, untouched, modules).
    for module, name in [(log_streams, "decompressed_chunks"), (log_streams, "file_line_chunks"),
                         (usage_files, "split_lines"), (evidence_spark, "log_line_tables"),
                         (evidence_spark, "read_data_file"), (evidence_spark, "estimate_items"),
                         (evidence_spark, "read_lines_of_files")]:
        monkeypatch.setattr(module, name, refuse)
    on_spark = engine(spark, tmp_path).read_usage_evidence(logs, inventory, JAN)
    assert_same_evidence(on_spark, on_duckdb)
    assert spark_estimates(engine(spark, tmp_path), usage, JAN) == estimates

    # the lines were parsed by Python worker processes, not this one
    start, end = dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)
    *_, workers = log_evidence_spark(spark, logs, start, end, evidence_spark.task_settings())
    assert workers and all(int(worker.rsplit(":", 1)[1]) != os.getpid() for worker in workers)

    # a corrupt file found on an executor fails the read naming the file, as on DuckDB
    (tmp_path / "bad" / "task").mkdir(parents=True)
    (tmp_path / "bad" / "task" / "000000.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    with pytest.raises(ValueError, match=r"bad/task/000000\.gz: not a readable gzip file"):
        engine(spark, tmp_path).read_usage_evidence(locate(str(tmp_path / "bad")), None, JAN)


def upload(s3, folder: Path, bucket: str, prefix: str) -> str:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}"


def test_evidence_on_s3_read_by_the_executors(spark, sample, tmp_path, aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="billing")
    uris = {name: upload(s3, Path(getattr(sample, f"{name}_uri")), "billing", name)
            for name in ("logs", "inventory", "usage")}
    logs, inventory, usage = (locate(uris[n]) for n in ("logs", "inventory", "usage"))
    on_duckdb = read_usage_evidence(logs, inventory, JAN)
    assert on_duckdb.usage.equals(read_usage_evidence(locate(sample.logs_uri), locate(sample.inventory_uri),
                                                      JAN).usage)
    assert_same_evidence(engine(spark, tmp_path).read_usage_evidence(logs, inventory, JAN), on_duckdb)
    assert spark_estimates(engine(spark, tmp_path), usage, JAN) == duckdb_estimates(usage, JAN)


@pytest.mark.parametrize("uri, changes", [(groups_uri(), {}),  # Insights windows
                                          (groups_uri("?api=filter&page_size=2"), {})],  # many pages
                         ids=["insights", "filter"])
def test_logs_api_read_by_the_executors(spark, tmp_path, aws, uri, changes):
    put_streams()
    api = source(uri, **changes)
    on_spark = engine(spark, tmp_path).read_usage_evidence(api, None, PERIOD)
    assert quantities(on_spark) == EXPECTED and on_spark.problems == EXPECTED_PROBLEMS
    assert_same_evidence(on_spark, read_usage_evidence(api, None, PERIOD))


def test_usage_table_on_dynamodb_read_in_scan_segments_by_the_executors(spark, tmp_path, usage_table):
    for n in range(20):  # beside the fixture's two items: the month's, and another month's actual cost
        usage_table.put_item(Item={"accountant_id": f"acc-{n % 3}", "timestamp": f"2026-01-{n + 1:02d}T08:00:00Z",
                                   "month": "2026-01", "operation": "compute_tax", "resource_type": "lambda",
                                   "quantity": D(n + 1), "unit_cost": D("0.0000166667")})
    table = parse_dynamodb_uri("dynamodb://tax-agent-usage")
    assert table.plan("2026-01", evidence_spark.SCAN_SEGMENTS)[1][-1][1]["TotalSegments"] == 8
    rows = spark_estimates(engine(spark, tmp_path), table, JAN)
    assert rows == duckdb_estimates(table, JAN) and len(rows) == 21
