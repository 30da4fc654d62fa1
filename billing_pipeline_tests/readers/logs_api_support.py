"""CloudWatch Logs streams with hand-computed expected evidence, put on the local AWS server, and sources over them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal as D

import boto3

from billing_pipeline.readers.cloudwatch_logs_api import (
    CloudWatchLogsSource,
    parse_cloudwatch_uri,
)
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.usage_builders import (
    quantities,
    report,
    text_app_line,
    write_export,
)

LAMBDA_GROUP = "/aws/lambda/tax-agent"
AGENT_GROUP = "/aws/bedrock-agentcore/runtimes/tax-agent"
TABLE = "tax-agent-usage"


def _anchor() -> dt.datetime:
    """The first day of the streams' three days (day 0 to day 2, all of them in one month).

    CloudWatch Logs takes events from the last 14 days up to 2 hours ahead only, so every event must lie in
    that window whatever the time of day the tests run: day 2 ends before today begins (back >= 3) and day 0
    begins after 14 days ago (back <= 13). The windows [anchor - 1, anchor + 2] of those eleven anchors cover
    14 days, which one month boundary cannot split into pieces shorter than 4 days both, so one always fits."""
    today = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    for back in range(3, 14):
        day = today - dt.timedelta(days=back)
        if (day - dt.timedelta(days=1)).month == day.month == (day + dt.timedelta(days=2)).month:
            return day
    raise AssertionError("no anchor day")


ANCHOR = _anchor()
PERIOD = ANCHOR.date().replace(day=1)


def at(day: int, clock: str) -> str:
    """ISO-8601 UTC timestamp `day` days after the anchor, at `clock` (HH:MM:SS.mmm)."""
    return (ANCHOR + dt.timedelta(days=day)).strftime("%Y-%m-%dT") + clock + "Z"


def hour(day: int, h: int) -> str:
    return (ANCHOR + dt.timedelta(days=day, hours=h)).strftime("%Y-%m-%d %H")


def ms(iso: str) -> int:
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def event(line: str) -> dict:
    """An exported line '<timestamp> <message>' as the event it came from."""
    timestamp, message = line.split(" ", 1)
    return {"timestamp": ms(timestamp), "message": message}


# {log group: {log stream: exported lines}}: every shape the readers know, over three days (so over several
# Insights windows), with a malformed line, an unrecognized one and a message with a line break.
STREAMS = {
    LAMBDA_GROUP: {
        "2026/01/01/[$LATEST]aaa": [
            f"{at(0, '10:00:00.000')} START RequestId: r1 Version: $LATEST",
            text_app_line(at(0, "10:00:00.100"), "r1", json.dumps({"accountant_id": "acc-a", "action": "x"})),
            f"{at(0, '10:00:00.200')} END RequestId: r1",
            report(at(0, "10:00:00.200"), "r1", billed_ms=16, memory_mb=128),
            f'{at(0, "10:20:00.000")} {{"timestamp": "{at(0, "10:20:00.000")}", "level": "INFO", '
            '"message": "computed", "requestId": "r2", "accountant_id": "acc-b"}',
            report(at(0, "10:20:01.000"), "r2", billed_ms=1000, memory_mb=1024, init_ms="130.49"),
            # DynamoDB: bare CapacityUnits of a write, and a batch with read/write units
            f'{at(0, "11:05:00.000")} {{"accountant_id": "acc-a", "requestId": "r3", "operation": "PutItem", '
            f'"ConsumedCapacity": {{"TableName": "{TABLE}", "CapacityUnits": 1.5}}}}',
            f'{at(0, "11:06:00.000")} {{"accountant_id": "acc-b", "requestId": "r5", "operation": "BatchGetItem", '
            f'"ConsumedCapacity": [{{"TableName": "{TABLE}", "ReadCapacityUnits": 0.5}}, '
            '{"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/other", "ReadCapacityUnits": 2}]}',
        ],
        "2026/01/02/[$LATEST]bbb": [
            report(at(1, "09:00:00.000"), "r4", billed_ms=250, memory_mb=1024),  # nobody names r4
            f'{at(1, "09:10:00.000")} {{"accountant_id": "acc-a", ',  # malformed JSON
            f"{at(1, '09:11:00.000')} just a print statement",
            f"{at(1, '09:12:00.000')} [ERROR]\tTraceback (most recent call last):\n  File \"handler.py\", line 3",
            text_app_line(at(2, "08:00:00.000"), "r6", json.dumps({"accountant_id": "acc-b"})),
            report(at(2, "08:00:00.500"), "r6", billed_ms=100, memory_mb=512),
        ],
    },
    AGENT_GROUP: {
        "runtime-logs": [
            f'{at(0, "12:00:00.000")} {{"event": "session_start", "session_id": "s-1", "accountant_id": "acc-a"}}',
            f'{at(0, "12:01:00.000")} {{"event": "tool_call", "session_id": "s-1", "accountant_id": "acc-a", '
            '"tool": "lookup"}',
            f'{at(1, "14:00:00.000")} {{"event_type": "ToolCall", "session_id": "s-1", "tool": "file"}}',
            f'{at(1, "14:30:00.000")} {{"session_id": "s-1", "vcpu_hours": 0.25, "gb_hours": 0.5}}',
        ],
    },
}

EXPECTED = {
    # Lambda's usage is scoped to the function its log group (or the export prefix) names.
    # 16 ms x 128 MB; 1000 ms x 1024 MB; 250 ms x 1024 MB (unattributed); 100 ms x 512 MB
    (hour(0, 10), "AWSLambda", "gb_seconds", "tax-agent", "acc-a"): D("0.002"),
    (hour(0, 10), "AWSLambda", "gb_seconds", "tax-agent", "acc-b"): D("1"),
    (hour(0, 10), "AWSLambda", "requests", "tax-agent", "acc-a"): D("1"),
    (hour(0, 10), "AWSLambda", "requests", "tax-agent", "acc-b"): D("1"),
    (hour(1, 9), "AWSLambda", "gb_seconds", "tax-agent", "unattributed"): D("0.25"),
    (hour(1, 9), "AWSLambda", "requests", "tax-agent", "unattributed"): D("1"),
    (hour(2, 8), "AWSLambda", "gb_seconds", "tax-agent", "acc-b"): D("0.05"),
    (hour(2, 8), "AWSLambda", "requests", "tax-agent", "acc-b"): D("1"),
    (hour(0, 11), "AmazonDynamoDB", "write_units", TABLE, "acc-a"): D("1.5"),
    (hour(0, 11), "AmazonDynamoDB", "read_units", TABLE, "acc-b"): D("0.5"),
    (hour(0, 11), "AmazonDynamoDB", "read_units", "other", "acc-b"): D("2"),
    (hour(0, 12), "AmazonBedrockAgentCore", "sessions", "", "acc-a"): D("1"),
    (hour(0, 12), "AmazonBedrockAgentCore", "tool_calls", "", "acc-a"): D("1"),
    (hour(1, 14), "AmazonBedrockAgentCore", "tool_calls", "", "acc-a"): D("1"),
    (hour(1, 14), "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.25"),
    (hour(1, 14), "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("0.5"),
}
# the malformed JSON; the print and the traceback's two lines; r4's REPORT
EXPECTED_PROBLEMS = {"malformed_json": 1, "unrecognized_line": 3, "report_without_owner": 1}


def put_streams(streams: dict = STREAMS) -> None:
    client = boto3.client("logs")
    for group, by_stream in streams.items():
        client.create_log_group(logGroupName=group)
        for stream, lines in by_stream.items():
            client.create_log_stream(logGroupName=group, logStreamName=stream)
            answer = client.put_log_events(logGroupName=group, logStreamName=stream,
                                           logEvents=[event(line) for line in lines])
            assert not answer.get("rejectedLogEventsInfo"), answer


def export_of(tmp_path, streams: dict = STREAMS):
    """The same events as a CloudWatch Logs export (one task per log group, under a prefix naming the group),
    read by the file reader."""
    for task, (group, by_stream) in enumerate(streams.items()):
        for stream, lines in by_stream.items():
            write_export(tmp_path / "export" / group.strip("/"), stream, lines, task=f"task-{task}")
    return read_usage_evidence(locate(str(tmp_path / "export")), None, PERIOD)


def log_bytes_by_tenant(evidence) -> dict[str, D]:
    totals: dict[str, D] = {}
    for (_, _, driver, _, tenant), quantity in quantities(evidence, log_bytes=True).items():
        if driver == "log_bytes":
            totals[tenant] = totals.get(tenant, D(0)) + quantity
    return totals


def source(uri: str, **changes) -> CloudWatchLogsSource:
    return dataclasses.replace(parse_cloudwatch_uri(uri), poll_seconds=0.01, **changes)


def groups_uri(query: str = "") -> str:
    return f"cloudwatch://{LAMBDA_GROUP},{AGENT_GROUP}{query}"
