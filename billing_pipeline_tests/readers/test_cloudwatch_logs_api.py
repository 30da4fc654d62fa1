"""Usage evidence read through the CloudWatch Logs API (Logs Insights and FilterLogEvents) from a local
moto_server over HTTP: the same events give exactly the evidence that an export of them gives.

The local server (like CloudWatch Logs) only accepts events from the last 14 days up to 2 hours ahead, so the
events are placed in a recent month: `ANCHOR` is a midnight 3 to 13 days ago whose day before and two days after
are in its month (so even day 2's last event lies before today, at whatever hour the tests run).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import boto3
import duckdb
import pytest

from billing_pipeline.readers import cloudwatch_logs_api
from billing_pipeline.readers.cloudwatch_logs_api import (
    CloudWatchLogsSource,
    parse_cloudwatch_uri,
)
from billing_pipeline.readers.usage_logs import USAGE_SCHEMA, read_usage_evidence
from billing_pipeline_tests.readers.logs_api_support import (
    ANCHOR,
    EXPECTED,
    EXPECTED_PROBLEMS,
    LAMBDA_GROUP,
    PERIOD,
    STREAMS,
    TABLE,
    at,
    export_of,
    groups_uri,
    log_bytes_by_tenant,
    ms,
    put_streams,
    source,
)
from billing_pipeline_tests.readers.usage_builders import quantities


@pytest.mark.parametrize(
    "uri, changes",
    [
        (groups_uri(), {}),  # Insights, one-day windows
        (groups_uri("?api=insights&window_hours=48"), {"insights_limit": 5}),  # full windows split again
        (groups_uri("?api=filter"), {}),
        (groups_uri("?api=filter&page_size=2"), {}),  # many pages
    ],
    ids=["insights", "insights-split", "filter", "filter-pages"],
)
def test_api_reads_give_exactly_the_exports_evidence(aws, tmp_path, uri, changes):
    put_streams()
    exported = export_of(tmp_path)
    evidence = read_usage_evidence(source(uri, **changes), None, PERIOD)

    assert quantities(exported) == EXPECTED
    assert exported.problems == EXPECTED_PROBLEMS
    assert evidence.usage.schema == USAGE_SCHEMA
    assert quantities(evidence) == EXPECTED
    # CloudWatch Logs bytes: the same per tenant (an export path names only Lambda's log groups, the API every group)
    assert log_bytes_by_tenant(evidence) == log_bytes_by_tenant(exported)
    assert evidence.problems == EXPECTED_PROBLEMS
    assert evidence.lines_read == exported.lines_read == 19  # 18 events, one with a line break
    assert evidence.files_read == 0 and exported.files_read == 3


def test_insights_splits_a_full_window_and_reads_every_event_once(aws, monkeypatch):
    put_streams()
    windows = []
    run_query = CloudWatchLogsSource._run_query

    def spy(self, client, groups, start_ms, end_ms):
        rows = run_query(self, client, groups, start_ms, end_ms)
        windows.append((start_ms, end_ms, len(rows)))
        return rows

    monkeypatch.setattr(CloudWatchLogsSource, "_run_query", spy)
    lines = source(groups_uri("?window_hours=744&margin_minutes=0"), insights_limit=5, workers=1).read_log_lines(
        dt.datetime.combine(PERIOD, dt.time()), dt.datetime.combine(PERIOD, dt.time()) + dt.timedelta(days=31))
    events = sum(len(v) for g in STREAMS.values() for v in g.values())
    assert len(windows) > 3 and all(n <= 5 for *_, n in windows)  # (at most 4 events share a second)
    assert lines.num_rows == events + 1  # the traceback's line break
    assert sorted(lines.column("line").to_pylist()) == sorted(
        part for g in STREAMS.values() for v in g.values() for line in v for part in line.split("\n"))


def test_more_events_in_one_second_than_insights_returns_is_an_error(aws):
    second = at(0, "10:00:00")
    put_streams({LAMBDA_GROUP: {"s": [f"{second}.{i:03d} START RequestId: r{i}" for i in range(5)]}})
    with pytest.raises(ValueError, match=r"cloudwatch:///aws/lambda/tax-agent: more than 3 events within the second"
                                         r".*api=filter"):
        read_usage_evidence(source(f"cloudwatch://{LAMBDA_GROUP}", insights_limit=3), None, PERIOD)


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "Timeout"])
def test_an_insights_query_that_does_not_complete_is_an_error(aws, monkeypatch, status):
    put_streams()
    calls = []

    def statuses(parsed, **_):
        calls.append(parsed.get("status"))
        parsed["status"] = "Running" if len(calls) == 1 else status  # one poll, then the end state

    def client():
        logs = boto3.client("logs")
        logs.meta.events.register("after-call.cloudwatch-logs.GetQueryResults", statuses)
        return logs

    monkeypatch.setattr(cloudwatch_logs_api, "logs_client", client)
    with pytest.raises(ValueError, match=rf"cloudwatch:///aws/lambda/tax-agent,.*Logs Insights query for "
                                         rf"\[.*\): query [0-9a-f-]+ ended with status {status}"):
        read_usage_evidence(source(groups_uri(), workers=1), None, PERIOD)
    assert calls[:2] == ["Complete", "Complete"]  # moto's answers, rewritten to Running, then the end state


def test_a_query_that_is_still_running_is_polled_until_complete(aws, monkeypatch):
    put_streams()
    polls = []

    def first_running(parsed, **_):
        polls.append(parsed["status"])
        if len(polls) <= 2:
            parsed["status"], parsed["results"] = "Running", []

    def client():
        logs = boto3.client("logs")
        logs.meta.events.register("after-call.cloudwatch-logs.GetQueryResults", first_running)
        return logs

    monkeypatch.setattr(cloudwatch_logs_api, "logs_client", client)
    evidence = read_usage_evidence(source(groups_uri("?window_hours=744"), workers=1), None, PERIOD)
    assert quantities(evidence) == EXPECTED


@pytest.mark.parametrize("api", ["insights", "filter"])
def test_unknown_log_group_is_an_error_naming_it(aws, api):
    put_streams()
    with pytest.raises(ValueError, match=r"cloudwatch://.*/aws/lambda/no-such-function.*log group not found"):
        read_usage_evidence(source(f"cloudwatch:///aws/lambda/no-such-function?api={api}"), None, PERIOD)


def test_uri_forms():
    parsed = parse_cloudwatch_uri("cloudwatch:///aws/lambda/a,/aws/lambda/b%23x?api=filter&margin_minutes=15")
    assert (parsed.log_groups, parsed.api, parsed.margin_minutes) == (("/aws/lambda/a", "/aws/lambda/b#x"), "filter", 15)
    assert parse_cloudwatch_uri("cloudwatch://app-logs").api == "insights"
    # Insights' @timestamp: AWS writes 'YYYY-MM-DD HH:MM:SS.mmm' (UTC), moto epoch milliseconds
    assert cloudwatch_logs_api._parse_time("2026-01-05 10:00:00.100", "q") == ms("2026-01-05T10:00:00.100Z")
    assert cloudwatch_logs_api._parse_time("1767607200100", "q") == ms("2026-01-05T10:00:00.100Z")
    assert cloudwatch_logs_api._iso(ms("2026-01-05T10:00:00.100Z")) == "2026-01-05T10:00:00.100Z"
    for bad, problem in [("cloudwatch://", "names no log group"), ("cloudwatch://g?api=athena", "api='athena'"),
                         ("cloudwatch://g?limit=5", "unknown option"), ("cloudwatch://g?page_size=0", "page_size")]:
        with pytest.raises(ValueError, match=problem):
            parse_cloudwatch_uri(bad)


# -- Through the real Definitions: BILLING_LOGS_URI=cloudwatch://..., BILLING_USAGE_URI=dynamodb://... ----------

def test_usage_shares_and_estimated_usage_from_the_apis(aws, tmp_path, monkeypatch):
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    put_streams()
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "accountant_id", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("accountant_id", "timestamp", "month")],
        GlobalSecondaryIndexes=[{"IndexName": "month-index", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "month", "KeyType": "HASH"},
                                               {"AttributeName": "timestamp", "KeyType": "RANGE"}]}],
    )
    month = PERIOD.strftime("%Y-%m")
    for accountant, timestamp, resource_type, quantity, unit_cost, cost in [
        ("acc-a", at(0, "10:00:00.100"), "lambda", D("0.002"), D("0.0000166667"), D("0.0000000333334")),
        ("acc-b", at(0, "10:20:00.000"), "lambda", D("1"), D("0.0000166667"), D("0.0000166667")),
        ("acc-a", at(0, "11:05:00.000"), "dynamodb", D("1.5"), D("0.00000125"), D("0.000001875")),
        ("acc-a", at(0, "12:00:00.000"), "agentcore", D("1"), D("0.003"), D("0.003")),
    ]:
        table.put_item(Item={"accountant_id": accountant, "timestamp": timestamp, "month": month,
                             "operation": "compute_tax", "resource_type": resource_type, "quantity": quantity,
                             "unit_cost": unit_cost, "estimated_cost": cost})
    (tmp_path / "inventory").mkdir()
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("BILLING_LOGS_URI", groups_uri())
    monkeypatch.setenv("BILLING_USAGE_URI", f"dynamodb://{TABLE}?page_size=2")
    monkeypatch.setenv("BILLING_S3_INVENTORY_URI", str(tmp_path / "inventory"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(warehouse))

    result = materialize(
        [*defs.assets, *defs.asset_checks], selection=["usage_shares", "estimated_usage"], resources=defs.resources,
        partition_key=PERIOD.isoformat(), instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        shares = con.execute(
            """SELECT strftime(usage_hour, '%Y-%m-%d %H'), service, driver, scope, accountant_id, quantity
               FROM usage_shares WHERE billing_period = ? ORDER BY ALL""", [PERIOD]).fetchall()
        estimates = con.execute(
            """SELECT accountant_id, resource_type, operation, usage_date, quantity, estimated_cost, records
               FROM estimated_usage WHERE billing_period = ? ORDER BY ALL""", [PERIOD]).fetchall()
    assert {row[:5]: row[5] for row in shares if row[2] != "log_bytes"} == EXPECTED
    day = ANCHOR.date()
    assert estimates == [
        ("acc-a", "agentcore", "compute_tax", day, D("1"), D("0.003"), 1),
        ("acc-a", "dynamodb", "compute_tax", day, D("1.5"), D("0.000001875"), 1),
        ("acc-a", "lambda", "compute_tax", day, D("0.002"), D("0.0000000333"), 1),
        ("acc-b", "lambda", "compute_tax", day, D("1"), D("0.0000166667"), 1),
    ]
    materialization = result.asset_materializations_for_node("usage_shares")[0]
    assert materialization.metadata["problems/unrecognized_line"].value == 3
