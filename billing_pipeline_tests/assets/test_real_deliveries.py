"""Real AWS deliveries nobody on this project wrote (../shared/samples/delivery-layouts: real CUR rows laid out as
AWS delivers them, each folder a bucket's root), served by the local S3 server and read by `cur_line_items` and
`hourly_cost_facts` through the interface contract (BILLING_CUR_URI = the bucket). Every number comes from the
fixtures' own expected.json, not from this pipeline."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import boto3
import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline_tests.conftest import SAMPLES

LAYOUTS = SAMPLES / "delivery-layouts"
pytestmark = pytest.mark.skipif(not (LAYOUTS / "expected.json").is_file(), reason="shared samples not present")


@pytest.fixture(scope="module")
def expected():
    return json.loads((LAYOUTS / "expected.json").read_text())


def deliver(bucket: str, fixture: str) -> None:
    """The bucket's content becomes the fixture's (what a later delivery does to the same keys)."""
    s3 = boto3.resource("s3")
    s3.Bucket(bucket).objects.all().delete()
    for path in sorted(p for p in (LAYOUTS / fixture).rglob("*") if p.is_file()):
        s3.Bucket(bucket).upload_file(str(path), path.relative_to(LAYOUTS / fixture).as_posix())


def run(tmp_path, monkeypatch, bucket: str, month: str):
    (tmp_path / "none").mkdir(exist_ok=True)  # no logs, inventory or estimates
    for name, value in {"BILLING_CUR_URI": f"s3://{bucket}", "BILLING_LOGS_URI": str(tmp_path / "none"),
                        "BILLING_S3_INVENTORY_URI": str(tmp_path / "none"),
                        "BILLING_USAGE_URI": str(tmp_path / "none"),
                        "BILLING_WAREHOUSE": str(tmp_path / "w.duckdb")}.items():
        monkeypatch.setenv(name, value)
    selected = [a for a in defs.assets if a.key.to_user_string() in {"cur_line_items", "hourly_cost_facts"}]
    return materialize(selected, resources=defs.resources, partition_key=f"{month}-01",
                       instance=DagsterInstance.ephemeral(), raise_on_error=False)


def failure(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.step_failure_data.error.cause.message


def query(tmp_path, sql: str):
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def sums_by(tmp_path, column: str) -> dict:
    return {k: (n, s) for k, n, s in query(
        tmp_path, f"SELECT {column}, count(*), sum(unblended_cost) FROM cur_line_items GROUP BY 1")}


def test_legacy_csv_new_report_version_then_a_corrupt_and_an_incomplete_delivery_keep_it(
        aws, tmp_path, monkeypatch, expected):
    good = expected["cur1-csv"]
    bucket = good["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    deliver(bucket, "cur1-csv")
    assert run(tmp_path, monkeypatch, bucket, good["billing_period"]).success

    def loaded():
        return (sums_by(tmp_path, "source_file"), sums_by(tmp_path, "service"), sums_by(tmp_path, "line_item_type"),
                query(tmp_path, "SELECT DISTINCT delivery_id, billing_period::VARCHAR, currency FROM cur_line_items"),
                query(tmp_path, "SELECT min(usage_start), max(usage_start), count(*), sum(unblended_cost) "
                                "FROM cur_line_items"),
                query(tmp_path, "SELECT count(*), sum(unblended_cost) FROM hourly_cost_facts"))

    first = loaded()
    by_file, by_service, by_type, delivery, span, facts = first
    # only the assembly the top-level manifest names; the older one (costs x1000) is never read
    assert by_file == {f"s3://{bucket}/{k['key']}": (k["rows"], Decimal(k["unblended_cost_sum_10dp"]))
                       for k in good["per_report_key"]}
    assert by_service == {s: (v["rows"], Decimal(v["unblended_cost_sum_10dp"]))
                          for s, v in good["by_product_code"].items()}
    assert by_type == {t: (v["rows"], Decimal(v["unblended_cost_sum_10dp"]))
                       for t, v in good["by_line_item_type"].items()}
    assert delivery == [(good["assembly_id"], "2022-10-01", good["currency"])]
    assert [t.isoformat() + "Z" for t in span[0][:2]] == [good["usage_start_min"], good["usage_start_max"]]
    assert span[0][2:] == (good["rows"], Decimal(good["unblended_cost_sum_10dp"]))
    assert facts[0][1] == Decimal(good["unblended_cost_sum_10dp"])  # the facts add up to the bill exactly

    # the same report delivered again with one file truncated, then with a manifest naming a missing key: each run
    # fails naming the file, and the month keeps the last good delivery's rows (nothing partial from the others)
    for fixture in ("cur1-csv-corrupt", "cur1-csv-missing-key"):
        deliver(bucket, fixture)
        result = run(tmp_path, monkeypatch, bucket, good["billing_period"])
        assert not result.success
        assert f"s3://{bucket}/{expected[fixture]['error_file_key']}" in failure(result)
        assert loaded() == first


def test_cur2_data_export_parquet_with_a_tag_map(aws, tmp_path, monkeypatch, expected):
    good = expected["cur2-parquet"]
    bucket = good["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    deliver(bucket, "cur2-parquet")
    assert run(tmp_path, monkeypatch, bucket, good["billing_period"]).success

    # every row from one of the export's data files, each file's rows kept
    assert sorted(sums_by(tmp_path, "source_file")) == [f"s3://{bucket}/{key}" for key in good["data_files"]]
    assert query(tmp_path, "SELECT count(*), sum(unblended_cost) FROM cur_line_items") == [
        (good["rows"], Decimal(good["unblended_cost_sum_10dp"]))]
    assert sums_by(tmp_path, "line_item_type") == {t: (v["rows"], Decimal(v["unblended_cost_sum_10dp"]))
                                                   for t, v in good["by_line_item_type"].items()}
    # the cost_center tag comes from the resource_tags map (key user_cost_center)
    by_cost_center = sums_by(tmp_path, "cost_center")
    untagged = good["user_cost_center_untagged"]
    assert by_cost_center == {
        **{c: (v["rows"], Decimal(v["unblended_cost_sum_10dp"])) for c, v in good["by_user_cost_center"].items()},
        None: (untagged["rows"], Decimal(untagged["unblended_cost_sum_10dp"]))}
    assert sorted(a for (a,) in query(tmp_path, "SELECT DISTINCT usage_account_id FROM cur_line_items")) \
        == good["usage_accounts"]
    assert [a for (a,) in query(tmp_path, "SELECT DISTINCT payer_account_id FROM cur_line_items")] \
        == good["payer_account"]
    assert query(tmp_path, "SELECT sum(unblended_cost) FROM hourly_cost_facts") == [
        (Decimal(good["unblended_cost_sum_10dp"]),)]


def test_the_fixtures_are_the_ones_described(expected):
    """expected.json and the folders agree on what is there (so a fixture silently missing is not a pass)."""
    for name in ("cur1-csv", "cur2-parquet", "cur1-csv-corrupt", "cur1-csv-missing-key"):
        root = LAYOUTS / name
        assert root.is_dir() and (root / expected[name]["manifest_key"]).is_file(), name
    assert all((LAYOUTS / "cur2-parquet" / key).is_file() for key in expected["cur2-parquet"]["data_files"])


def test_the_month_job_on_a_real_bill_without_the_application_succeeds_and_warns(
        aws, tmp_path, monkeypatch, expected):
    """A real delivery none of whose line items carries the application tag (BILLING_APPLICATION left at its
    default): the whole billing_month_job succeeds with nothing attributed and publishes the month (no tenant owes
    anything), and the application_in_scope check warns, naming the tag values the bill holds."""
    good = expected["cur2-parquet"]
    bucket = good["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    deliver(bucket, "cur2-parquet")
    run(tmp_path, monkeypatch, bucket, good["billing_period"])  # sets the environment (and loads the month)
    monkeypatch.setenv("BILLING_EXPORT_URI", str(tmp_path / "exports"))
    result = defs.resolve_job_def("billing_month_job").execute_in_process(
        partition_key=f"{good['billing_period']}-01", instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    warnings = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(warnings) == {"application_in_scope"}
    warning = warnings["application_in_scope"]
    assert (warning.severity.value, warning.metadata["facts_in_scope"].value) == ("WARN", 0)
    assert "(untagged)" in str(warning.metadata["application_tag_values"].value)
    assert query(tmp_path, "SELECT count(*) FROM tenant_costs") == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM statements") == [(0,)]
    published = result.asset_materializations_for_node("published_billing")
    assert published and published[0].partition == f"{good['billing_period']}-01"


def test_a_delivery_of_header_only_files_keeps_the_month_and_says_it_is_empty(aws, tmp_path, monkeypatch, expected):
    """The same report delivered again with every file a header and no line items (a month with no charges yet):
    the run fails saying the delivery holds no line items (it failed check one_delivery with "0 deliveries"), and
    the month keeps the last good delivery's rows instead of being emptied."""
    good = expected["cur1-csv"]
    bucket = good["bucket"]
    boto3.client("s3").create_bucket(Bucket=bucket)
    deliver(bucket, "cur1-csv")
    assert run(tmp_path, monkeypatch, bucket, good["billing_period"]).success
    before = query(tmp_path, "SELECT count(*), sum(unblended_cost) FROM cur_line_items")
    assert before == [(good["rows"], Decimal(good["unblended_cost_sum_10dp"]))]

    s3 = boto3.client("s3")
    keys = [k["key"] for k in good["per_report_key"]]
    for key in keys:
        header = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).split(b"\n", 1)[0]
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(header + b"\n"))
    result = run(tmp_path, monkeypatch, bucket, good["billing_period"])
    assert not result.success
    message = failure(result)
    assert f"CurFormatError: s3://{bucket}/cur/lab7/20221001-20221101/lab7-Manifest.json: " in message
    assert (f"the delivery {good['assembly_id']} for 2022-10 holds no line items ({len(keys)} file(s), headers "
            "only): nothing loaded, the month keeps its last load") in message
    assert query(tmp_path, "SELECT count(*), sum(unblended_cost) FROM cur_line_items") == before
