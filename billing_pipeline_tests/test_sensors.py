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


def test_a_sensor_run_loads_the_delivery_its_tag_names_or_fails(tmp_path, monkeypatch):
    """The run key and tag name a delivery; if AWS replaced it before the run, cur_line_items loads nothing and
    says which delivery it was asked for and which one is current (the sensor asks for the new one next tick)."""
    from billing_pipeline.assets.cur_line_items import cur_line_items
    from billing_pipeline.resources.warehouse import DuckDBWarehouse

    first = generate_month(tmp_path / "first", JAN, tenants=2, rows=300, seed=1)
    restated = generate_month(tmp_path / "restated", JAN, tenants=2, rows=350, seed=2)
    context = build_sensor_context(resources={"billing_config": BillingConfig(cur_uri=first.cur_uri)})
    (request,) = cur_delivery_sensor(context).run_requests
    assert request.tags["billing/delivery_id"] == assembly_id(Path(first.cur_uri))
    warehouse = tmp_path / "warehouse.duckdb"

    def run(cur_uri):
        return materialize([cur_line_items], partition_key="2026-01-01", tags=request.tags,
                           resources={"billing_config": BillingConfig(cur_uri=cur_uri),
                                      "warehouse": DuckDBWarehouse(database=str(warehouse))},
                           instance=DagsterInstance.ephemeral(), raise_on_error=False)

    assert run(first.cur_uri).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        before = con.execute("SELECT delivery_id, count(*) FROM cur_line_items GROUP BY ALL").fetchall()
    assert [delivery for delivery, _ in before] == [assembly_id(Path(first.cur_uri))]

    result = run(restated.cur_uri)  # AWS restated the month after the sensor's tick
    assert not result.success
    error = str(next(e for e in result.all_events if e.is_step_failure).event_specific_data.error)
    assert (f"This run is for CUR delivery {assembly_id(Path(first.cur_uri))} of 2026-01 (billing/delivery_id), "
            f"but the current delivery under {restated.cur_uri} is {assembly_id(Path(restated.cur_uri))}") in error
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT delivery_id, count(*) FROM cur_line_items GROUP BY ALL").fetchall() == before


def test_one_months_broken_delivery_neither_stops_the_others_nor_loses_its_last_load(tmp_path, aws):
    """December and January under one bucket; January's manifest then names a file that is not there. The sensor
    still requests December's run, and one run for January's problem (the same run key every tick, which Dagster
    runs once); December loads, January's run fails naming the missing file and keeps January's last load."""
    from billing_pipeline.assets.cur_line_items import cur_line_items
    from billing_pipeline.resources.warehouse import DuckDBWarehouse

    dec = generate_month(tmp_path / "all", dt.date(2025, 12, 1), tenants=2, rows=300, seed=3)
    jan = generate_month(tmp_path / "all", JAN, tenants=2, rows=300, seed=4)
    bucket = json.loads(next(Path(jan.cur_uri).rglob("*-Manifest.json")).read_text())["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    cur_uri = f"s3://{bucket}/"
    warehouse = tmp_path / "warehouse.duckdb"

    def load(month: str):
        return materialize([cur_line_items], partition_key=month,
                           resources={"billing_config": BillingConfig(cur_uri=cur_uri),
                                      "warehouse": DuckDBWarehouse(database=str(warehouse))},
                           instance=DagsterInstance.ephemeral(), raise_on_error=False)

    def loaded():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute("SELECT billing_period, delivery_id, count(*), sum(unblended_cost) FROM cur_line_items "
                               "GROUP BY ALL ORDER BY ALL").fetchall()

    upload(Path(jan.cur_uri), bucket)
    assert load("2026-01-01").success
    january = loaded()

    def top_manifest(period_folder: str) -> Path:
        return next(p for p in Path(jan.cur_uri).rglob("*-Manifest.json") if p.parent.name == period_folder)

    manifest_path = top_manifest("20260101-20260201")
    manifest = json.loads(manifest_path.read_text())
    missing = manifest["reportKeys"][0].replace("-00001.", "-00009.")
    manifest["reportKeys"].append(missing)
    manifest_path.write_text(json.dumps(manifest))
    upload(Path(jan.cur_uri), bucket)
    assert dec.billing_period == dt.date(2025, 12, 1)

    requests, cursor = tick(None, cur_uri)
    dec_id = json.loads(top_manifest("20251201-20260101").read_text())["assemblyId"]
    (problem_run,) = [key for month, key in requests if month == "2026-01-01"]
    assert requests == [("2026-01-01", problem_run), ("2025-12-01", f"2025-12-01:{dec_id}")]
    assert problem_run.startswith("2026-01-01:unreadable:")
    assert json.loads(cursor) == {"2025-12-01": dec_id}
    assert tick(cursor, cur_uri) == ([("2026-01-01", problem_run)], cursor)  # same key: Dagster runs it once

    assert load("2025-12-01").success
    failed = load("2026-01-01")
    assert not failed.success
    error = next(e for e in failed.all_events if e.is_step_failure).event_specific_data.error.message
    assert f"report key {missing!r} is missing: s3://{bucket}/{missing} does not exist (an incomplete delivery)" in error
    assert [row for row in loaded() if row[0] == JAN] == january
    assert [row[:2] for row in loaded()] == [(dt.date(2025, 12, 1), dec_id), (JAN, january[0][1])]


def test_a_month_aws_is_still_writing_gets_no_run_until_it_is_ready(tmp_path):
    """Athena-layout months with no manifest while cost_and_usage_data_status says UPDATING: no run for the two
    newest (a failed run for AWS's own refresh would alert for nothing, and reading one could load half the month);
    READY: one run each."""
    from billing_pipeline_tests.readers.cur_builders import athena_table, write_parquet

    report = tmp_path / "cur" / "rep"
    for year, month in ((2025, 11), (2025, 12), (2026, 1)):
        write_parquet(report / "rep" / f"year={year}" / f"month={month}" / "rep-1.snappy.parquet", athena_table(["a"]))
    status = report / "cost_and_usage_data_status" / "cost_and_usage_data_status.parquet"
    write_parquet(status, {"status": ["UPDATING"]})
    # the two newest months are AWS's to rewrite; November is closed and loads (a backfill is not held by a refresh)
    requests, cursor = tick(None, str(tmp_path / "cur"))
    assert [partition for partition, _ in requests] == ["2025-11-01"] and list(json.loads(cursor)) == ["2025-11-01"]
    write_parquet(status, {"status": ["READY"]})
    requests, cursor = tick(cursor, str(tmp_path / "cur"))
    assert [partition for partition, _ in requests] == ["2025-12-01", "2026-01-01"]


def test_a_delivery_outside_the_partitions_gets_no_run_and_a_warning_saying_which_side(tmp_path, capfd):
    """A month before BILLING_FIRST_MONTH and one dated after the current month (a manifest of 2099-01): no run,
    no cursor entry, and a warning that says which (2099-01 was blamed on BILLING_FIRST_MONTH)."""
    from billing_pipeline_tests.test_schedules import cur_of

    billing_config = cur_of(tmp_path / "bucket", dt.date(2017, 12, 1), JAN, dt.date(2099, 1, 1))
    context = build_sensor_context(resources={"billing_config": billing_config})
    result = cur_delivery_sensor(context)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("2026-01-01", "2026-01-01:a1")]
    assert json.loads(result.cursor) == {"2026-01-01": "a1"}
    current = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    warnings = [line.split(" - WARNING - ", 1)[1] for line in capfd.readouterr().err.splitlines()
                if "outside the partitions" in line]
    assert warnings == [
        "CUR delivery for 2017-12 is outside the partitions, before BILLING_FIRST_MONTH (2018-01): not loaded",
        f"CUR delivery for 2099-01 is outside the partitions, after the current month ({current}, UTC): a delivery "
        "dated in the future: not loaded"]
