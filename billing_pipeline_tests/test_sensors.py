"""The CUR sensor against a local folder and against S3 over HTTP (the local server): one run per changed
delivery, none for an unchanged month, and a restated month replacing the old rows when materialized."""

import datetime as dt
import json
from pathlib import Path

import boto3
import duckdb
from dagster import DagsterInstance, build_sensor_context, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.sample_data import generate_month
from billing_pipeline.sensors import cur_delivery_sensor

JAN = dt.date(2026, 1, 1)


def tick(cursor, cur_uri):
    context = build_sensor_context(cursor=cursor, resources={"billing_config": BillingConfig(cur_uri=cur_uri)})
    result = cur_delivery_sensor(context)
    return [(r.partition_key, r.run_key) for r in result.run_requests], result.cursor


def assembly_id(cur_folder: Path) -> str:
    return json.loads(next(cur_folder.rglob("*-Manifest.json")).read_text())["assemblyId"]


def upload(folder: Path, bucket: str) -> None:
    s3 = boto3.client("s3")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, path.relative_to(folder).as_posix())


def test_local_folder_new_then_unchanged(tmp_path):
    sample = generate_month(tmp_path / "sample", JAN, tenants=2, rows=500, seed=1)
    requests, cursor = tick(None, sample.cur_uri)
    run_key = f"2026-01-01:{assembly_id(Path(sample.cur_uri))}"
    assert requests == [("2026-01-01", run_key)]
    assert json.loads(cursor) == {"2026-01-01": assembly_id(Path(sample.cur_uri))}
    assert tick(cursor, sample.cur_uri) == ([], cursor)


def test_s3_delivery_restatement_and_unchanged_month(tmp_path, aws, monkeypatch):
    first = generate_month(tmp_path / "first", JAN, tenants=3, rows=800, seed=1)
    restated = generate_month(tmp_path / "restated", JAN, tenants=3, rows=900, seed=2, final=True)
    manifest = json.loads(next(Path(first.cur_uri).rglob("*-Manifest.json")).read_text())
    bucket = manifest["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    upload(Path(first.cur_uri), bucket)
    cur_uri = f"s3://{bucket}/"
    for name, value in {"BILLING_CUR_URI": cur_uri, "BILLING_LOGS_URI": first.logs_uri,
                        "BILLING_S3_INVENTORY_URI": first.inventory_uri, "BILLING_USAGE_URI": first.usage_uri,
                        "BILLING_WAREHOUSE": str(tmp_path / "warehouse.duckdb")}.items():
        monkeypatch.setenv(name, value)

    requests, cursor = tick(None, cur_uri)
    assert requests == [("2026-01-01", f"2026-01-01:{manifest['assemblyId']}")]
    assert materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, partition_key="2026-01-01",
                       instance=DagsterInstance.ephemeral()).success
    assert tick(cursor, cur_uri) == ([], cursor)

    upload(Path(restated.cur_uri), bucket)  # AWS rewrites the month: new assembly, same keys
    requests, cursor = tick(cursor, cur_uri)
    assert requests == [("2026-01-01", f"2026-01-01:{assembly_id(Path(restated.cur_uri))}")]
    assert materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, partition_key="2026-01-01",
                       instance=DagsterInstance.ephemeral()).success
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows, bill, final, deliveries = con.execute(
            """SELECT count(*), sum(unblended_cost), bool_and(invoice_id IS NOT NULL), count(DISTINCT delivery_id)
               FROM cur_line_items WHERE billing_period = DATE '2026-01-01'""").fetchone()
        (report_final,) = con.execute("SELECT bool_and(is_final) FROM reconciliation_report").fetchone()
    assert (rows, bill, final, deliveries) == (restated.line_items, restated.bill_total, True, 1)
    assert report_final is True
    assert tick(cursor, cur_uri) == ([], cursor)
