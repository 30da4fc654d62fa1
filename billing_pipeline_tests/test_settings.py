"""Settings are checked before any step runs, and each mistake is said in one line naming the variable, the value
and what was expected."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.settings import SettingsError, check_settings


def test_defaults_are_valid_with_nothing_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/sample/cur").mkdir(parents=True)
    assert check_settings(environ={}) == []


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("BILLING_COST_METRIC", "amortised",
         "BILLING_COST_METRIC='amortised' (set): not one of them (did you mean 'amortized'?); "
         "expected one of unblended, amortized, net_amortized"),
        ("BILLING_ENGINE", "sprak",
         "BILLING_ENGINE='sprak' (set): not one of them (did you mean 'spark'?); expected one of duckdb, spark"),
        ("BILLING_FIRST_MONTH", "2026-13", "BILLING_FIRST_MONTH='2026-13' (set): not a month; expected a month as YYYY-MM"),
        ("BILLING_DUCKDB_MEMORY_LIMIT", "lots",
         "BILLING_DUCKDB_MEMORY_LIMIT='lots' (set): not an amount of memory; expected an amount such as 2GB or 512MB"),
        ("BILLING_DUCKDB_THREADS", "0",
         "BILLING_DUCKDB_THREADS='0' (set): not a positive whole number; expected a positive whole number"),
        ("BILLING_APPLICATION", "  ",
         "BILLING_APPLICATION='  ' (set): empty; expected the application tag value (not empty)"),
        ("BILLING_CUR_URI", "s3://Bad_Bucket/cur",
         "BILLING_CUR_URI='s3://Bad_Bucket/cur' (set): not a valid s3://bucket/prefix URI; "
         "expected an existing folder or s3://bucket/prefix"),
        ("BILLING_LOGS_URI", "gs://logs",
         "BILLING_LOGS_URI='gs://logs' (set): unknown scheme 'gs'; "
         "expected an existing folder, s3://bucket/prefix or cloudwatch://<log-group>[,...]"),
        ("BILLING_COST_EXPLORER_TOLERANCE", "-1",
         "BILLING_COST_EXPLORER_TOLERANCE='-1' (set): negative; expected a non-negative amount"),
        ("BILLING_API_PORT", "http",
         "BILLING_API_PORT='http' (set): not a port number; expected a port number"),
        ("BILLING_SPARK_REMOTE", "http://host:15002",
         "BILLING_SPARK_REMOTE='http://host:15002' (set): not a Spark Connect URL; expected sc://host:port"),
    ],
)
def test_a_wrong_value_names_the_variable_the_value_and_what_was_expected(tmp_path, variable, value, message):
    (tmp_path / "cur").mkdir()
    environ = {"BILLING_CUR_URI": str(tmp_path / "cur"), variable: value}
    assert check_settings(environ=environ) == [message]


def test_a_missing_or_wrong_kind_of_path_is_said_so(tmp_path):
    (tmp_path / "a-file.txt").write_text("x")
    (tmp_path / "pricing.json").write_text("{not json")
    environ = {
        "BILLING_CUR_URI": str(tmp_path / "no-such-folder"),
        "BILLING_S3_INVENTORY_URI": str(tmp_path / "a-file.txt"),
        "BILLING_PRICING": str(tmp_path / "pricing.json"),
        "BILLING_WAREHOUSE": str(tmp_path),
    }
    problems = check_settings(environ=environ)
    assert problems[0] == (f"BILLING_CUR_URI={str(tmp_path / 'no-such-folder')!r} (set): the folder "
                           f"{tmp_path / 'no-such-folder'} does not exist; expected an existing folder or "
                           f"s3://bucket/prefix")
    assert problems[1] == (f"BILLING_S3_INVENTORY_URI={str(tmp_path / 'a-file.txt')!r} (set): "
                           f"{tmp_path / 'a-file.txt'} is a file, not a folder; expected an existing folder or "
                           f"s3://bucket/prefix")
    assert problems[2] == (f"BILLING_WAREHOUSE={str(tmp_path)!r} (set): {tmp_path} is a folder, not a file; "
                           f"expected a DuckDB file path (created if missing)")
    assert problems[3].startswith(f"BILLING_PRICING={str(tmp_path / 'pricing.json')!r} (set): "
                                  f"{tmp_path / 'pricing.json'} is not JSON (")
    assert len(problems) == 4


def test_an_empty_variable_is_the_default_and_absent_default_inputs_are_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/sample here: unset inputs are simply not there (and said when needed)
    assert check_settings(environ={"BILLING_CUR_URI": "", "BILLING_LOGS_URI": ""}) == []


def test_no_cur_under_the_default_folder_names_the_variable_and_the_missing_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BILLING_CUR_URI", raising=False)
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    cur_line_items = next(a for a in defs.assets if a.key.to_user_string() == "cur_line_items")
    result = materialize([cur_line_items], resources=defs.resources, partition_key="2026-01-01",
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.event_specific_data.error.message.strip().endswith(
        f"No CUR delivery for 2026-01 under BILLING_CUR_URI=data/sample/cur: the folder "
        f"{tmp_path / 'data/sample/cur'} does not exist")


def test_a_misspelt_variable_is_named_with_the_one_meant(tmp_path):
    (tmp_path / "cur").mkdir()
    environ = {"BILLING_CUR_URI": str(tmp_path / "cur"), "BILLING_COST_METRICS": "amortized",
               "BILLING_NOTHING_LIKE_IT": "1"}
    assert check_settings(environ=environ) == [
        "BILLING_COST_METRICS is not a setting of this pipeline (did you mean BILLING_COST_METRIC?)",
        "BILLING_NOTHING_LIKE_IT is not a setting of this pipeline (see the README's Configuration table)",
    ]


def test_a_usage_export_may_be_one_file_and_uris_of_other_kinds_pass(tmp_path):
    (tmp_path / "cur").mkdir()
    (tmp_path / "usage.jsonl").write_text("")
    environ = {"BILLING_CUR_URI": str(tmp_path / "cur"), "BILLING_USAGE_URI": str(tmp_path / "usage.jsonl"),
               "BILLING_LOGS_URI": "cloudwatch:///aws/lambda/tax-agent?api=filter",
               "BILLING_S3_INVENTORY_URI": "s3://inventory-bucket/tax-agent-documents",
               "BILLING_SPARK_MASTER": "local[2]"}
    assert check_settings(environ=environ) == []
    assert check_settings(environ={**environ, "BILLING_USAGE_URI": "dynamodb://"}) == [
        "BILLING_USAGE_URI='dynamodb://' (set): no table named; expected an existing folder or file (JSON Lines, "
        "DynamoDB export), s3://bucket/prefix or dynamodb://<table>"
    ]


def test_a_run_with_a_wrong_setting_fails_before_any_step(tmp_path, monkeypatch):
    (tmp_path / "cur").mkdir()
    monkeypatch.setenv("BILLING_CUR_URI", str(tmp_path / "cur"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("BILLING_COST_METRIC", "amortised")
    result = materialize(list(defs.assets), resources=defs.resources, partition_key="2026-01-01",
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert result.get_step_success_events() == []
    assert not (tmp_path / "warehouse.duckdb").exists()
    failures = [e for e in result.all_events if e.is_failure]
    assert "BILLING_COST_METRIC='amortised' (set): not one of them (did you mean 'amortized'?)" in str(
        failures[0].event_specific_data.error)


def test_run_config_on_a_resource_is_checked_as_the_value_in_force(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_CUR_URI", str(tmp_path / "gone"))
    from billing_pipeline.resources.billing_config import BillingConfig

    with pytest.raises(SettingsError) as error:
        BillingConfig(cur_uri=str(tmp_path / "also-gone")).setup_for_execution(None)
    assert str(error.value) == (
        "Settings are not valid:\n"
        f"- BILLING_CUR_URI={str(tmp_path / 'also-gone')!r} (run config): the folder {tmp_path / 'also-gone'} "
        "does not exist; expected an existing folder or s3://bucket/prefix"
    )


def test_the_settings_command_prints_every_setting_and_fails_on_a_mistake(tmp_path):
    (tmp_path / "cur").mkdir()
    env = {"PATH": "/usr/bin:/bin", "BILLING_CUR_URI": str(tmp_path / "cur"), "BILLING_ENGINE": "duck"}
    done = subprocess.run([sys.executable, "-m", "billing_pipeline.settings"], env={**env, **_pythonpath()},
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1
    assert f"ok  BILLING_CUR_URI={str(tmp_path / 'cur')!r}" in done.stdout.splitlines()
    assert ("BAD BILLING_ENGINE='duck'  <- not one of them (did you mean 'duckdb'?); expected one of duckdb, spark"
            in done.stdout.splitlines())
    assert "Traceback" not in done.stdout + done.stderr


def _pythonpath() -> dict:
    import os

    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


def test_the_usage_table_export_as_one_jsonl_file_is_read(tmp_path):
    import datetime as dt

    from billing_pipeline.readers.estimates import read_estimates
    from billing_pipeline.storage import locate

    item = {"accountant_id": "acct-1", "timestamp": "2026-01-05T10:00:00Z", "month": "2026-01",
            "operation": "LambdaCompute", "resource_type": "lambda", "quantity": "3", "unit_cost": "0.5",
            "estimated_cost": "1.5"}
    (tmp_path / "tax-agent-usage.jsonl").write_text(json.dumps(item) + "\n")
    table = read_estimates(locate(str(tmp_path / "tax-agent-usage.jsonl")), dt.date(2026, 1, 1))
    assert table.num_rows == 1
    assert table.column("accountant_id").to_pylist() == ["acct-1"]
    assert str(table.column("estimated_cost")[0].as_py()).rstrip("0") == "1.5"


def test_the_sensor_names_a_wrong_cur_folder_instead_of_finding_no_months(tmp_path):
    from dagster import build_sensor_context

    from billing_pipeline.resources.billing_config import BillingConfig
    from billing_pipeline.sensors import cur_delivery_sensor

    missing = tmp_path / "cur-typo"
    with pytest.raises(Exception) as error:
        with build_sensor_context(resources={"billing_config": BillingConfig(cur_uri=str(missing))}) as context:
            cur_delivery_sensor(context)
    cause = error.value if isinstance(error.value, SettingsError) else error.value.__cause__
    assert isinstance(cause, SettingsError)
    assert cause.problems == [f"BILLING_CUR_URI={str(missing)!r} (run config): the folder {missing} does not exist; "
                              "expected an existing folder or s3://bucket/prefix"]
