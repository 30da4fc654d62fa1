"""read_usage_evidence over CloudWatch Logs exports: every accepted line shape, with hand-computed quantities."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import pyarrow as pa
import pytest

from billing_pipeline.assets.common import stage_sql
from billing_pipeline.assets.tenant_costs import stage_cost_allocations
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.pricing import Pricing
from billing_pipeline.readers.usage_logs import USAGE_SCHEMA, read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.usage_builders import (
    JANUARY,
    ROLE,
    of_service,
    quantities,
    read_january,
    report,
    s3_access_line,
    text_app_line,
    write_access_log,
    write_export,
)


def test_lambda_reports_text_and_json_joined_to_their_owner(tmp_path):
    write_export(
        tmp_path,
        "2026/01/05/[$LATEST]aaa",
        [
            "2026-01-05T10:00:00.000Z START RequestId: r1 Version: $LATEST",
            text_app_line("2026-01-05T10:00:00.100Z", "r1", json.dumps({"accountant_id": "acc-a", "action": "x"})),
            "2026-01-05T10:00:00.200Z END RequestId: r1",
            report("2026-01-05T10:00:00.200Z", "r1", billed_ms=16, memory_mb=128),  # no Init Duration
            # Lambda JSON log format app line, then a REPORT with Init Duration (billed already includes init)
            '2026-01-05T10:20:00.000Z {"timestamp": "2026-01-05T10:20:00.000Z", "level": "INFO", '
            '"message": "computed", "requestId": "r2", "accountant_id": "acc-b"}',
            report("2026-01-05T10:20:01.000Z", "r2", billed_ms=1000, memory_mb=1024, init_ms="130.49"),
            # Powertools-style: the fields inside a `message` object, request id as function_request_id
            '2026-01-05T11:05:00.000Z {"level": "INFO", "function_request_id": "r3", '
            '"message": {"accountant_id": "acc-a", "step": "done"}}',
            '2026-01-05T11:05:00.300Z {"time": "2026-01-05T11:05:00.300Z", "type": "platform.report", '
            '"record": {"requestId": "r3", "metrics": {"durationMs": 100.5, "billedDurationMs": 101, '
            '"memorySizeMB": 512, "maxMemoryUsedMB": 80, "initDurationMs": 200.1}, "status": "success"}}',
            '2026-01-05T11:05:00.300Z {"time": "2026-01-05T11:05:00.300Z", "type": "platform.start", '
            '"record": {"requestId": "r3"}}',
            # nobody names r4
            report("2026-01-05T11:30:00.000Z", "r4", billed_ms=250, memory_mb=1024),
        ],
    )
    evidence = read_january(tmp_path)

    assert evidence.usage.schema == USAGE_SCHEMA
    assert of_service(evidence, "AWSLambda") == {
        # 16 ms x 128 MB = 0.016 s x 0.125 GB; 1000 ms x 1024 MB = 1 GB-s
        ("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-a"): D("0.002"),
        ("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-b"): D("1"),
        ("2026-01-05 10", "AWSLambda", "requests", "", "acc-a"): D("1"),
        ("2026-01-05 10", "AWSLambda", "requests", "", "acc-b"): D("1"),
        # 0.101 s x 0.5 GB; 0.25 s x 1 GB
        ("2026-01-05 11", "AWSLambda", "gb_seconds", "", "acc-a"): D("0.0505"),
        ("2026-01-05 11", "AWSLambda", "gb_seconds", "", "unattributed"): D("0.25"),
        ("2026-01-05 11", "AWSLambda", "requests", "", "acc-a"): D("1"),
        ("2026-01-05 11", "AWSLambda", "requests", "", "unattributed"): D("1"),
    }
    assert evidence.problems == {"report_without_owner": 1}
    assert evidence.lines_read == 10
    assert evidence.files_read == 1


def test_gb_seconds_are_exact_for_odd_memory_sizes(tmp_path):
    # 1 ms x 129 MB = 129 / 1,024,000 GB-s = 0.0001259765625 (13 places): summed exactly, rounded once.
    lines = []
    for i in range(8):
        lines.append(text_app_line("2026-01-07T08:00:00.000Z", f"q{i}", '{"accountant_id": "acc-a"}'))
        lines.append(report("2026-01-07T08:00:01.000Z", f"q{i}", billed_ms=1, memory_mb=129))
    write_export(tmp_path, "s", lines)
    got = of_service(read_january(tmp_path), "AWSLambda")
    assert got[("2026-01-07 08", "AWSLambda", "gb_seconds", "", "acc-a")] == D("0.0010078125")  # 8 x exact
    assert got[("2026-01-07 08", "AWSLambda", "requests", "", "acc-a")] == D("8")


def test_malformed_and_unrecognized_lines_are_counted_not_fatal(tmp_path):
    write_export(
        tmp_path,
        "s",
        [
            '2026-01-05T10:00:00.000Z {"accountant_id": "acc-a", "requestId": "r1"',  # truncated JSON
            text_app_line("2026-01-05T10:00:01.000Z", "r2", '{"accountant_id": "acc-a",'),  # malformed payload
            text_app_line("2026-01-05T10:00:02.000Z", "r2", "Processing the request"),  # plain text message
            "a line without a timestamp",
            '2026-01-05T10:00:03.000Z {"accountant_id": "acc-a", "msg": "no request id"}',
            '2026-01-05T10:00:04.000Z {"level": "INFO", "requestId": "r5", "message": "no tenant"}',
            "2026-01-05T10:00:05.000Z REPORT RequestId: r6\tDuration: 1.00 ms",  # cut short
            "",
        ],
    )
    evidence = read_january(tmp_path)
    assert quantities(evidence) == {}  # (every timestamped line still counts its bytes for CloudWatch Logs)
    assert evidence.problems == {
        "malformed_json": 2,
        "unrecognized_line": 3,
        "missing_request_id": 1,
        "malformed_report": 1,
    }


def test_dynamodb_consumed_capacity_object_and_list(tmp_path):
    write_export(
        tmp_path,
        "s",
        [
            # object, bare CapacityUnits, read operation
            '2026-01-05T10:00:00Z {"accountant_id": "acc-a", "requestId": "r1", "operation": "GetItem", '
            '"ConsumedCapacity": {"TableName": "returns", "CapacityUnits": 0.5}}',
            # list (batch), explicit read/write units; one table named by ARN
            '2026-01-05T10:01:00Z {"accountant_id": "acc-a", "requestId": "r2", "operation": "TransactWriteItems", '
            '"ConsumedCapacity": [{"TableName": "returns", "CapacityUnits": 6, "ReadCapacityUnits": 2, '
            '"WriteCapacityUnits": 4}, {"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/ledger", '
            '"CapacityUnits": 3, "WriteCapacityUnits": 3}]}',
            # Operation (capitalized) says write
            '2026-01-05T10:02:00Z {"accountant_id": "acc-b", "requestId": "r3", "Operation": "PutItem", '
            '"ConsumedCapacity": {"TableName": "returns", "CapacityUnits": 2}}',
            # no operation: counted as write, and as ambiguous
            '2026-01-05T10:03:00Z {"accountant_id": "acc-b", "requestId": "r4", '
            '"ConsumedCapacity": {"TableName": "returns", "CapacityUnits": 1.5}}',
            # no accountant on the line, but its request id is acc-b's (text format line below)
            text_app_line("2026-01-05T10:04:00Z", "r5", '{"accountant_id": "acc-b"}'),
            text_app_line("2026-01-05T10:04:01Z", "r5", '{"operation": "Query", '
                          '"ConsumedCapacity": {"TableName": "returns", "CapacityUnits": 4}}'),
            # no owner at all
            '2026-01-05T11:00:00Z {"requestId": "r6", "operation": "Scan", '
            '"ConsumedCapacity": {"TableName": "returns", "CapacityUnits": 10}}',
            '2026-01-05T11:00:01Z {"accountant_id": "acc-a", "requestId": "r7", "ConsumedCapacity": "lots"}',
        ],
    )
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonDynamoDB") == {
        ("2026-01-05 10", "AmazonDynamoDB", "read_units", "returns", "acc-a"): D("2.5"),
        ("2026-01-05 10", "AmazonDynamoDB", "write_units", "returns", "acc-a"): D("4"),
        ("2026-01-05 10", "AmazonDynamoDB", "write_units", "ledger", "acc-a"): D("3"),
        ("2026-01-05 10", "AmazonDynamoDB", "write_units", "returns", "acc-b"): D("3.5"),
        ("2026-01-05 10", "AmazonDynamoDB", "read_units", "returns", "acc-b"): D("4"),
        ("2026-01-05 11", "AmazonDynamoDB", "read_units", "returns", "unattributed"): D("10"),
    }
    assert evidence.problems == {
        "ambiguous_capacity_units": 1,
        "missing_accountant_id": 1,
        "malformed_consumed_capacity": 1,
    }


def test_agentcore_sessions_tool_calls_and_session_usage(tmp_path):
    write_export(
        tmp_path,
        "agent",
        [
            # a session started last month: its tool call counts, the session does not count again
            '2025-12-31T23:50:00Z {"event": "session_start", "session_id": "s0", "accountant_id": "acc-b"}',
            '2026-01-01T00:10:00Z {"event": "tool_call", "session_id": "s0", "accountant_id": "acc-b", "tool": "x"}',
            '2026-01-05T12:00:00Z {"event": "session_start", "session_id": "s1", "accountant_id": "acc-a"}',
            '2026-01-05T12:00:30Z {"event": "SessionStart", "session_id": "s1", "accountant_id": "acc-a"}',  # again
            '2026-01-05T12:01:00Z {"event": "tool_call", "session_id": "s1", "accountant_id": "acc-a"}',
            '2026-01-05T12:02:00Z {"event": "tool-call", "session_id": "s1"}',  # owner from the session
            '2026-01-05T12:30:00Z {"session_id": "s1", "vcpu_hours": 0.25, "gb_hours": 0.5}',
            '2026-01-05T13:00:00Z {"session.id": "s1", "agent.runtime.vcpu.hours.used": 0.125, '
            '"agent.runtime.memory.gb_hours.used": 0.25}',
            # the agent's user_id names the tenant
            '2026-01-05T13:00:00Z {"event_type": "session_start", "session_id": "s2", "user_id": "acc-b"}',
            # nobody owns s3
            '2026-01-05T14:00:00Z {"event": "session_start", "session_id": "s3"}',
        ],
    )
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonBedrockAgentCore") == {
        ("2026-01-01 00", "AmazonBedrockAgentCore", "tool_calls", "", "acc-b"): D("1"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "sessions", "", "acc-a"): D("1"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "tool_calls", "", "acc-a"): D("2"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.25"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("0.5"),
        ("2026-01-05 13", "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.125"),
        ("2026-01-05 13", "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("0.25"),
        ("2026-01-05 13", "AmazonBedrockAgentCore", "sessions", "", "acc-b"): D("1"),
        ("2026-01-05 14", "AmazonBedrockAgentCore", "sessions", "", "unattributed"): D("1"),
    }
    assert evidence.problems == {"session_without_owner": 1}


def agentcore_usage_record(session_id: str, vcpu_hours: float, gb_hours: float, epoch_ms: int) -> str:
    """An AgentCore Runtime USAGE_LOGS record as AWS vends it (one per session and second): its fields nested under
    `attributes` and `metrics`, its time in `event_timestamp` (epoch milliseconds)."""
    runtime = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/tax_agent-AbC123"
    return json.dumps({
        "resource_arn": runtime,
        "event_timestamp": epoch_ms,
        "resource": {"cloud.provider": "aws", "service.name": "AgentCore.Runtime", "cloud.region": "us-east-1"},
        "attributes": {"account.id": "123456789012", "time_elapsed_seconds": 1.0, "agent.name": "tax_agent",
                       "region": "us-east-1", "session.id": session_id,
                       "resource.id": f"{runtime}/runtime-endpoint/DEFAULT"},
        "metrics": {"agent.runtime.memory.gb_hours.used": gb_hours, "agent.runtime.vcpu.hours.used": vcpu_hours},
    })


def test_agentcore_vended_usage_logs_nest_session_and_usage(tmp_path):
    # AWS's USAGE_LOGS records carry `attributes.session.id` and `metrics.agent.runtime.*`: read flat, every record
    # was an unrecognized line, and the Runtime's vCPU/GB-hour lines went by sessions (a heavy and a light session
    # paid alike).
    write_export(tmp_path, "agent", [
        '2026-01-05T12:00:00.000Z {"event": "session_start", "session_id": "s-a", "accountant_id": "acc-a"}',
        '2026-01-05T12:00:00.000Z {"event": "session_start", "session_id": "s-b", "accountant_id": "acc-b"}',
    ])
    write_export(tmp_path, "usage", [
        f"2026-01-05T12:30:00.000Z {agentcore_usage_record('s-a', 0.5, 2.0, 1767616200000)}",
        f"2026-01-05T12:30:01.000Z {agentcore_usage_record('s-b', 0.000001925, 0.000275552058724, 1767616201000)}",
    ], task="task-0002")
    # delivered to S3 instead: bare JSON lines, the time only in `event_timestamp` (2026-01-05T13:00:00Z)
    delivered = tmp_path / "AWSLogs" / "usage.log"
    delivered.parent.mkdir()
    delivered.write_text(agentcore_usage_record("s-a", 0.25, 1.0, 1767618000000) + "\n")

    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonBedrockAgentCore") == {
        ("2026-01-05 12", "AmazonBedrockAgentCore", "sessions", "", "acc-a"): D("1"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "sessions", "", "acc-b"): D("1"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.5"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("2"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-b"): D("0.0000019250"),
        ("2026-01-05 12", "AmazonBedrockAgentCore", "gb_hours", "", "acc-b"): D("0.0002755521"),
        ("2026-01-05 13", "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.25"),
        ("2026-01-05 13", "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("1"),
    }
    assert evidence.problems == {}


def test_agentcore_memory_code_interpreter_and_browser_are_their_own_drivers(tmp_path):
    write_export(
        tmp_path,
        "agent",
        [
            '2026-01-06T09:00:00Z {"event": "session_start", "session_id": "s1", "accountant_id": "acc-a"}',
            '2026-01-06T09:05:00Z {"session_id": "s1", "tool_type": "code_interpreter", "vcpu_hours": 0.5, '
            '"gb_hours": 1}',
            '2026-01-06T09:06:00Z {"session_id": "s1", "tool_type": "Browser", "vcpu_hours": 0.25, "gb_hours": 0.75}',
            '2026-01-06T09:07:00Z {"session_id": "s1", "vcpu_hours": 0.125, "gb_hours": 0.25}',  # the runtime's
            '2026-01-06T09:08:00Z {"event": "CreateEvent", "session_id": "s1"}',  # owner from the session
            '2026-01-06T09:09:00Z {"event": "memory_event", "session_id": "s2", "accountant_id": "acc-b"}',
            '2026-01-06T09:10:00Z {"event": "memory_record_created", "session_id": "s2", "accountant_id": "acc-b"}',
        ],
    )
    got = of_service(read_january(tmp_path), "AmazonBedrockAgentCore")
    hour = "2026-01-06 09"
    assert {k[2]: v for k, v in got.items() if k[4] == "acc-a" and k[0] == hour} == {
        "sessions": D("1"),
        "code_interpreter_vcpu_hours": D("0.5"), "code_interpreter_gb_hours": D("1"),
        "browser_vcpu_hours": D("0.25"), "browser_gb_hours": D("0.75"),
        "vcpu_hours": D("0.125"), "gb_hours": D("0.25"),
        "memory_events": D("1"),
    }
    assert {k[2]: v for k, v in got.items() if k[4] == "acc-b"} == {"memory_events": D("1"), "memory_records": D("1")}


def test_cloudwatch_log_bytes_per_tenant_and_log_group(tmp_path):
    root = tmp_path / "exports" / "aws" / "lambda" / "tax-api"  # the export prefix names the log group
    lines = [
        "2026-01-08T10:00:00Z START RequestId: r1 Version: $LATEST",  # 36 bytes: r1's owner, acc-a
        '2026-01-08T10:00:01Z {"requestId": "r1", "accountant_id": "acc-a"}',  # 45
        "2026-01-08T10:00:02Z END RequestId: r1",  # 17
        "2026-01-08T10:00:03Z REPORT RequestId: r1\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB",
        "2026-01-08T10:00:04Z Processing something",  # 20: nobody's
        "a line without a timestamp",  # not an event of a log group: no bytes
    ]
    write_export(root, "s", lines)
    got = {k[3:]: v for k, v in quantities(read_january(tmp_path), log_bytes=True).items() if k[2] == "log_bytes"}
    report_bytes = len("REPORT RequestId: r1\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB")
    assert report_bytes == 80
    # each event: its message's UTF-8 bytes + 26
    assert got == {("/aws/lambda/tax-api", "acc-a"): D(36 + 45 + 17 + 80 + 4 * 26),
                   ("/aws/lambda/tax-api", "unattributed"): D(20 + 26)}


def test_bedrock_invocation_tokens(tmp_path):
    def invocation(at, accountant, input_tokens, output_tokens, cache=None, model="anthropic.claude-3-haiku"):
        record = {
            "schemaType": "ModelInvocationLog",
            "schemaVersion": "1.0",
            "timestamp": at,
            "accountId": "123456789012",
            "region": "us-east-1",
            "requestId": "b-" + at,
            "operation": "Converse",
            "modelId": model,
            "input": {"inputContentType": "application/json", "inputTokenCount": input_tokens},
            "output": {"outputContentType": "application/json", "outputTokenCount": output_tokens},
        }
        if accountant:
            record["requestMetadata"] = {"accountant_id": accountant}
        if cache:
            record["input"].update(cacheReadInputTokenCount=cache[0], cacheWriteInputTokenCount=cache[1])
        return json.dumps(record)

    write_export(
        tmp_path,
        "bedrock",
        [
            f"2026-01-05T13:00:00Z {invocation('2026-01-05T13:00:00Z', 'acc-a', 100, 50)}",
            f"2026-01-05T13:10:00Z {invocation('2026-01-05T13:10:00Z', 'acc-a', 20, 5, cache=(300, 40))}",
            f"2026-01-05T13:20:00Z {invocation('2026-01-05T13:20:00Z', None, 7, 3)}",
        ],
    )
    # Invocation logs delivered to S3 are bare JSON lines, their time in `timestamp`.
    bare = tmp_path / "AWSLogs" / "bedrock.json"
    bare.parent.mkdir()
    bare.write_text(invocation("2026-01-05T14:00:00Z", "acc-b", 1000, 2000, model="amazon.nova-lite-v1:0") + "\n")

    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonBedrock") == {
        ("2026-01-05 13", "AmazonBedrock", "input_tokens", "anthropic.claude-3-haiku", "acc-a"): D("120"),
        ("2026-01-05 13", "AmazonBedrock", "output_tokens", "anthropic.claude-3-haiku", "acc-a"): D("55"),
        ("2026-01-05 13", "AmazonBedrock", "cache_read_tokens", "anthropic.claude-3-haiku", "acc-a"): D("300"),
        ("2026-01-05 13", "AmazonBedrock", "cache_write_tokens", "anthropic.claude-3-haiku", "acc-a"): D("40"),
        ("2026-01-05 13", "AmazonBedrock", "input_tokens", "anthropic.claude-3-haiku", "unattributed"): D("7"),
        ("2026-01-05 13", "AmazonBedrock", "output_tokens", "anthropic.claude-3-haiku", "unattributed"): D("3"),
        ("2026-01-05 14", "AmazonBedrock", "input_tokens", "amazon.nova-lite-v1:0", "acc-b"): D("1000"),
        ("2026-01-05 14", "AmazonBedrock", "output_tokens", "amazon.nova-lite-v1:0", "acc-b"): D("2000"),
    }
    assert evidence.problems == {"missing_accountant_id": 1}
    assert evidence.files_read == 2


def test_s3_server_access_log_requests(tmp_path):
    def access(time, operation, key, uri):
        return (
            f"79a59df900b949e55d96a1e698fbaced tax-demo-docs [{time}] 192.0.2.3 "
            f"arn:aws:sts::123456789012:assumed-role/app/x 3E57427F3EXAMPLE {operation} {key} "
            f'"{uri}" 200 - 113 113 7 6 "-" "aws-sdk" - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 '
            "AuthHeader tax-demo-docs.s3.us-east-1.amazonaws.com TLSv1.2 - -"
        )

    path = tmp_path / "s3-access" / "2026-01-05-15-00-00-ABCDEF"
    path.parent.mkdir()
    path.write_text(
        "\n".join(
            [
                access("05/Jan/2026:15:00:01 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf",
                       "PUT /clients/acc-a/w2.pdf HTTP/1.1"),
                access("05/Jan/2026:15:00:02 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf",
                       "GET /clients/acc-a/w2.pdf HTTP/1.1"),
                access("05/Jan/2026:15:00:03 +0000", "REST.HEAD.OBJECT", "clients%2Facc-b%2Fa%20b.pdf",
                       "HEAD /clients/acc-b/a%20b.pdf HTTP/1.1"),
                access("05/Jan/2026:15:00:04 +0000", "REST.GET.BUCKET", "-",
                       "GET /?list-type=2&prefix=clients%2Facc-b%2F HTTP/1.1"),
                access("05/Jan/2026:15:00:05 +0000", "REST.DELETE.OBJECT", "clients/acc-a/old.pdf",
                       "DELETE /clients/acc-a/old.pdf HTTP/1.1"),  # free: no driver
                access("05/Jan/2026:16:59:59 +0100", "REST.GET.OBJECT", "assets/logo.png",
                       "GET /assets/logo.png HTTP/1.1"),  # no client: nobody's request, never the tenants'
            ]
        )
    )
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-b"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "unattributed"): D("1"),
    }
    assert evidence.problems == {"s3_request_outside_clients": 1}


def test_only_the_billing_month_counts(tmp_path):
    write_export(
        tmp_path,
        "s",
        [
            # the app line is December's, the REPORT January's: attributed, in January's first hour
            text_app_line("2025-12-31T23:59:59.900Z", "r1", '{"accountant_id": "acc-a"}'),
            report("2026-01-01T00:00:00.500Z", "r1", billed_ms=1000, memory_mb=2048),
            # wholly December / February: neither evidence nor problems
            text_app_line("2025-12-31T22:00:00.000Z", "r0", '{"accountant_id": "acc-a"}'),
            report("2025-12-31T22:00:01.000Z", "r0", billed_ms=5000, memory_mb=1024),
            report("2025-12-31T22:00:02.000Z", "r-unowned", billed_ms=5000, memory_mb=1024),
            "2025-12-31T22:00:03.000Z {not json",
            text_app_line("2026-02-01T00:00:00.000Z", "r9", '{"accountant_id": "acc-a"}'),
            report("2026-02-01T00:00:00.000Z", "r9", billed_ms=5000, memory_mb=1024),
            # the last instant of January is January's
            text_app_line("2026-01-31T23:59:59.999Z", "r8", '{"accountant_id": "acc-b"}'),
            report("2026-01-31T23:59:59.999Z", "r8", billed_ms=500, memory_mb=1024),
        ],
    )
    evidence = read_january(tmp_path)
    assert quantities(evidence) == {
        ("2026-01-01 00", "AWSLambda", "gb_seconds", "", "acc-a"): D("2"),
        ("2026-01-01 00", "AWSLambda", "requests", "", "acc-a"): D("1"),
        ("2026-01-31 23", "AWSLambda", "gb_seconds", "", "acc-b"): D("0.5"),
        ("2026-01-31 23", "AWSLambda", "requests", "", "acc-b"): D("1"),
    }
    assert evidence.problems == {}


def test_timestamps_with_offsets_become_utc(tmp_path):
    write_export(
        tmp_path,
        "s",
        [
            text_app_line("2026-01-05T12:30:00+02:00", "r1", '{"accountant_id": "acc-a"}'),
            report("2026-01-05T12:30:00+02:00", "r1", billed_ms=1000, memory_mb=1024),
        ],
    )
    assert quantities(read_january(tmp_path))[("2026-01-05 10", "AWSLambda", "requests", "", "acc-a")] == D("1")


def test_files_in_many_exports_and_depths_are_summed(tmp_path):
    write_export(tmp_path / "prefix-a", "2026/01/05/[$LATEST]one", [
        text_app_line("2026-01-05T10:00:00Z", "r1", '{"accountant_id": "acc-a"}'),
        report("2026-01-05T10:00:01Z", "r1", billed_ms=1000, memory_mb=1024),
    ])
    write_export(tmp_path / "prefix-b" / "deeper", "2026/01/05/[2]two", [
        text_app_line("2026-01-05T10:10:00Z", "r2", '{"accountant_id": "acc-a"}'),
        report("2026-01-05T10:10:01Z", "r2", billed_ms=3000, memory_mb=1024),
    ], task="task-0002")
    (tmp_path / "prefix-a" / "aws-logs-write-test").write_text("Permission Check Successful")
    evidence = read_january(tmp_path)
    assert quantities(evidence) == {
        ("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-a"): D("4"),
        ("2026-01-05 10", "AWSLambda", "requests", "", "acc-a"): D("2"),
    }
    assert evidence.files_read == 2
    assert evidence.problems == {}



def test_files_read_in_batches_give_the_same_evidence(tmp_path, monkeypatch):
    """The logs are parsed a batch of files at a time (memory stays flat however large the month): a request's
    application line and its REPORT in different batches still meet, line numbers stay unique, nothing doubles."""
    from billing_pipeline.readers import usage_logs

    write_export(tmp_path, "2026/01/05/[$LATEST]app", [
        text_app_line("2026-01-05T10:00:00Z", "r1", '{"accountant_id": "acc-a"}'),
        "2026-01-05T10:00:00Z not a line of any known shape",
    ])
    write_export(tmp_path, "2026/01/05/[$LATEST]reports", [
        report("2026-01-05T10:00:01Z", "r1", billed_ms=2000, memory_mb=512),
        "2026-01-05T10:00:02Z {broken json",
    ])
    whole = read_january(tmp_path)
    monkeypatch.setattr(usage_logs, "LOG_BATCH_BYTES", 1)  # one file a batch
    batched = read_january(tmp_path)
    assert quantities(batched) == quantities(whole) == {
        ("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-a"): D("1"),
        ("2026-01-05 10", "AWSLambda", "requests", "", "acc-a"): D("1"),
    }
    assert batched.problems == whole.problems == {"malformed_json": 1, "unrecognized_line": 1}
    assert (batched.lines_read, batched.files_read) == (whole.lines_read, whole.files_read) == (4, 2)

def test_corrupt_gzip_names_the_file(tmp_path):
    good = write_export(tmp_path, "ok", [report("2026-01-05T10:00:01Z", "r1", 1, 128)])
    bad = good.parent.parent / "broken" / "000000.gz"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[:-12])  # truncated
    with pytest.raises(ValueError, match=r"broken/000000\.gz"):
        read_january(tmp_path)


def test_no_locations_or_empty_folders_give_no_rows(tmp_path):
    for evidence in (
        read_usage_evidence(None, None, JANUARY),
        read_january(tmp_path / "missing", tmp_path / "also-missing"),
        read_january(tmp_path),
    ):
        assert evidence.usage.num_rows == 0
        assert evidence.usage.schema == USAGE_SCHEMA
        assert (evidence.problems, evidence.lines_read, evidence.files_read) == ({}, 0, 0)
    assert isinstance(read_usage_evidence(locate(str(tmp_path)), None, JANUARY).usage, pa.Table)


def test_sample_export_with_every_shape():
    """billing_pipeline_tests/data/logs/2026-01-all-shapes: one readable (uncompressed) export of every shape."""
    from pathlib import Path

    sample = Path(__file__).parent.parent / "data" / "logs" / "2026-01-all-shapes"
    evidence = read_january(sample)
    hour10, hour11 = "2026-01-05 10", "2026-01-05 11"
    assert quantities(evidence) == {
        (hour10, "AWSLambda", "gb_seconds", "", "acc-a"): D("0.002"),
        (hour10, "AWSLambda", "gb_seconds", "", "acc-b"): D("1"),
        (hour10, "AWSLambda", "gb_seconds", "", "unattributed"): D("0.05"),
        (hour10, "AWSLambda", "requests", "", "acc-a"): D("1"),
        (hour10, "AWSLambda", "requests", "", "acc-b"): D("1"),
        (hour10, "AWSLambda", "requests", "", "unattributed"): D("1"),
        (hour10, "AmazonDynamoDB", "read_units", "tax-returns", "acc-a"): D("0.5"),
        (hour10, "AmazonDynamoDB", "write_units", "tax-returns", "acc-b"): D("2"),
        (hour11, "AmazonBedrockAgentCore", "sessions", "", "acc-a"): D("1"),
        (hour11, "AmazonBedrockAgentCore", "tool_calls", "", "acc-a"): D("1"),
        (hour11, "AmazonBedrockAgentCore", "vcpu_hours", "", "acc-a"): D("0.25"),
        (hour11, "AmazonBedrockAgentCore", "gb_hours", "", "acc-a"): D("0.5"),
        (hour11, "AmazonBedrock", "input_tokens", "anthropic.claude-3-haiku-20240307-v1:0", "acc-a"): D("1200"),
        (hour11, "AmazonBedrock", "output_tokens", "anthropic.claude-3-haiku-20240307-v1:0", "acc-a"): D("300"),
        (hour11, "AmazonBedrock", "cache_read_tokens", "anthropic.claude-3-haiku-20240307-v1:0", "acc-a"): D("800"),
    }
    assert evidence.problems == {"report_without_owner": 1, "malformed_json": 1}
    assert (evidence.lines_read, evidence.files_read) == (12, 1)


def test_a_quantity_that_is_no_usage_is_a_counted_bad_line_never_a_failed_month(tmp_path):
    """Two lines of 9e21 read units overflowed the month's sum: the run failed with `Overflow in HUGEINT addition`,
    naming no file. A negative quantity lowered its tenant's usage, and one of text was dropped, both silently."""
    at = "2026-01-10T00:00:00.000Z "
    def capacity(units):
        return at + json.dumps({"accountant_id": "acc-a", "ConsumedCapacity": {"TableName": "t", **units}})
    def tokens(count):
        return json.dumps({"schemaType": "ModelInvocationLog", "timestamp": "2026-01-10T00:00:00Z", "modelId": "m",
                           "requestMetadata": {"accountant_id": "acc-b"}, "input": {"inputTokenCount": count},
                           "output": {"outputTokenCount": 7}})
    write_export(tmp_path, "s1", [
        capacity({"ReadCapacityUnits": "9e21"}), capacity({"ReadCapacityUnits": "9e21"}),
        capacity({"ReadCapacityUnits": -8, "WriteCapacityUnits": 2}), capacity({"ReadCapacityUnits": 3}),
        tokens("9e21"), tokens(-100), tokens("abc"), tokens(10),
        at + json.dumps({"session_id": "s", "accountant_id": "acc-c", "vcpu_hours": "9e21"}),
        at + json.dumps({"session_id": "s", "accountant_id": "acc-c", "vcpu_hours": "0.5", "gb_hours": "-1"}),
    ])
    evidence = read_january(logs=tmp_path)
    rows = {k[1:]: v for k, v in quantities(evidence).items() if v}
    assert rows == {
        ("AmazonDynamoDB", "read_units", "t", "acc-a"): D("3"),
        ("AmazonDynamoDB", "write_units", "t", "acc-a"): D("2"),
        ("AmazonBedrock", "input_tokens", "m", "acc-b"): D("10"),
        ("AmazonBedrock", "output_tokens", "m", "acc-b"): D("28"),
        ("AmazonBedrockAgentCore", "vcpu_hours", "", "acc-c"): D("0.5"),
    }
    assert evidence.problems["malformed_quantity"] == 8


def test_java_json_log_format_names_the_request_as_AWSRequestId(tmp_path):
    """Java's JSON log format (LambdaLogger, aws-lambda-java-log4j2) writes the request id as `AWSRequestId`
    (aws-lambda-java-libs, JsonLogFormatter: `msg.AWSRequestId = lambdaContext.getAwsRequestId()`); the JSON
    field names are case-sensitive, so `awsRequestId` did not match it and the REPORT went unattributed."""
    write_export(tmp_path, "2026/01/05/[$LATEST]java", [
        '2026-01-05T10:00:00.100Z {"timestamp":"2026-01-05T10:00:00.100Z","message":"{\\"accountant_id\\": \\"acc-a\\"}",'
        '"level":"INFO","AWSRequestId":"79b4f56e-95b1-4643-9700-2807f4e68189"}',
        '2026-01-05T10:00:01.000Z {"time":"2026-01-05T10:00:01.000Z","type":"platform.report","record":'
        '{"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","metrics":{"durationMs":999.5,"billedDurationMs":1000,'
        '"memorySizeMB":512,"maxMemoryUsedMB":180},"status":"success"}}',
    ])
    evidence = read_january(tmp_path)
    assert quantities(evidence) == {
        ("2026-01-05 10", "AWSLambda", "gb_seconds", "", "acc-a"): D("0.5"),
        ("2026-01-05 10", "AWSLambda", "requests", "", "acc-a"): D("1"),
    }
    assert evidence.problems == {}


def test_nodejs_text_format_lines_name_their_request(tmp_path):
    """Node.js's text log format is `<timestamp>\\t<requestId>\\t<LEVEL>\\t<message>` (Lambda Developer Guide, "Log
    and monitor Node.js Lambda functions": `2019-06-07T19:11:20.562Z\tc793869b-ee49-115b-a5b6-4fd21e8dedac\tINFO\t
    ENVIRONMENT VARIABLES`), not Python's `[LEVEL]\\t<timestamp>\\t<requestId>\\t...`: its lines were unrecognized and
    every REPORT of a Node.js function went unattributed."""
    rid = "c793869b-ee49-115b-a5b6-4fd21e8dedac"
    write_export(tmp_path, "2026/01/05/[$LATEST]node", [
        f"2026-01-05T19:11:20.000Z START RequestId: {rid} Version: $LATEST",
        f'2026-01-05T19:11:20.562Z 2026-01-05T19:11:20.562Z\t{rid}\tINFO\t{{"accountant_id":"acc-b","step":"filed"}}',
        f"2026-01-05T19:11:20.564Z 2026-01-05T19:11:20.564Z\t{rid}\tWARN\tEvent not processed.",
        f"2026-01-05T19:11:20.600Z END RequestId: {rid}",
        f"2026-01-05T19:11:20.600Z REPORT RequestId: {rid}\tDuration: 127.10 ms\tBilled Duration: 128 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 74 MB\tInit Duration: 160.44 ms\t",
    ])
    evidence = read_january(tmp_path)
    assert quantities(evidence) == {
        ("2026-01-05 19", "AWSLambda", "gb_seconds", "", "acc-b"): D("0.128"),
        ("2026-01-05 19", "AWSLambda", "requests", "", "acc-b"): D("1"),
    }
    assert evidence.problems == {"unrecognized_line": 1}  # the plain-text WARN line, as for Python's format


def test_s3_requests_answered_with_a_server_error_are_not_billed(tmp_path):
    """Amazon S3 User Guide, "Billing for Amazon S3 error responses": "Bucket owners aren't billed for HTTP 5XX
    server error responses, such as HTTP 503 Slow Down errors." A throttled client's retries were each counted as
    its requests, growing its share of a request bill they did not add to."""
    def access(time, operation, status, error):
        return (
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be tax-demo-docs "
            f"[{time}] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE "
            f'{operation} clients/acc-a/w2.pdf "{operation.split(".")[1]} /clients/acc-a/w2.pdf HTTP/1.1" {status} '
            f'{error} 113 - 7 - "-" "aws-sdk" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/'
            "VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader tax-demo-docs.s3.us-west-1.amazonaws.com TLSV1.2 - -"
        )

    path = tmp_path / "s3-access" / "2026-01-05-15-00-00-ABCDEF"
    path.parent.mkdir()
    path.write_text("\n".join([
        access("05/Jan/2026:15:00:01 +0000", "REST.PUT.OBJECT", "503", "SlowDown"),
        access("05/Jan/2026:15:00:02 +0000", "REST.PUT.OBJECT", "500", "InternalError"),
        access("05/Jan/2026:15:00:03 +0000", "REST.PUT.OBJECT", "200", "-"),
        access("05/Jan/2026:15:00:04 +0000", "REST.GET.OBJECT", "503", "SlowDown"),
        access("05/Jan/2026:15:00:05 +0000", "REST.GET.OBJECT", "404", "NoSuchKey"),  # a 4XX AWS does not list: billed
    ]) + "\n")
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
    }
    assert evidence.problems == {}


TENANTS_OWN_REQUESTS = [
    s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf"),
    s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf"),
    s3_access_line("05/Jan/2026:15:00:03 +0000", "REST.GET.OBJECT", "clients/acc-b/w2.pdf"),
    s3_access_line("05/Jan/2026:15:00:04 +0000", "REST.PUT.OBJECT", "clients/acc-b/w2.pdf"),
]
OWN_SHARES = {
    ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
    ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
    ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-b"): D("1"),
    ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("1"),
}


def test_s3_access_denied_to_anonymous_requests_counts_for_no_one(tmp_path):
    """S3 User Guide, "Billing for Amazon S3 error responses": "For AccessDenied (HTTP 403 Forbidden), S3 doesn't
    charge the bucket owner when the request is initiated outside of the bucket owner's individual AWS account or the
    bucket owner's AWS organization." An unauthenticated request (Requester `-`) comes from no account: someone
    scanning clients/acc-a/ raised acc-a's share of a request bill those requests were not on."""
    scan = [s3_access_line(f"05/Jan/2026:15:{minute:02d}:00 +0000", operation, key, "403", "AccessDenied",
                           requester="-")
            for minute in range(10, 40)
            for operation, key in [("REST.GET.OBJECT", f"clients/acc-a/{minute}.pdf"),
                                   ("REST.PUT.OBJECT", f"clients/acc-a/{minute}.pdf"),
                                   ("REST.HEAD.OBJECT", f"clients/acc-a/{minute}.pdf"),
                                   ("REST.GET.BUCKET", "-")]]
    write_access_log(tmp_path / "scanned", TENANTS_OWN_REQUESTS + scan)
    write_access_log(tmp_path / "quiet", TENANTS_OWN_REQUESTS)

    assert of_service(read_january(tmp_path / "scanned"), "AmazonS3") == OWN_SHARES
    assert of_service(read_january(tmp_path / "quiet"), "AmazonS3") == OWN_SHARES


def test_s3_access_denied_to_signed_requests_still_counts(tmp_path):
    """A signed request's AccessDenied is free only from outside the bucket owner's account and organization. The
    log names the requester's account (an ARN) or a canonical user id, but not the organization's accounts, and the
    CUR's accounts cannot prove an account outside it (docs/attribution-rules.md): it counts, as AWS bills it to a
    request from inside."""
    write_access_log(tmp_path, [
        s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "403", "AccessDenied"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf", "403", "AccessDenied",
                       requester="arn:aws:iam::210987654321:user/mallory"),
        s3_access_line("05/Jan/2026:15:00:03 +0000", "REST.GET.OBJECT", "clients/acc-b/w2.pdf", "403", "AccessDenied",
                       requester="79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"),
    ])
    assert of_service(read_january(tmp_path), "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("1"),
    }


def test_s3_error_codes_aws_lists_as_unbilled_count_for_no_one_whoever_sent_them(tmp_path):
    """The same page's table: "specific error codes under HTTP 3XX and 4XX status codes that aren't billed", with no
    condition on the requester. Codes it does not list (NoSuchKey) and 2XX/3XX answers without an error count."""
    free = [("307", "TemporaryRedirect"), ("400", "InvalidArgument"), ("400", "ExpiredToken"),
            ("403", "SignatureDoesNotMatch"), ("403", "InvalidAccessKeyId"), ("403", "RequestTimeTooSkewed"),
            ("404", "NoSuchUpload"), ("405", "MethodNotAllowed"), ("409", "OperationAborted"),
            ("411", "MissingContentLength"), ("416", "InvalidRange")]
    write_access_log(tmp_path, [
        *[s3_access_line(f"05/Jan/2026:15:{i:02d}:00 +0000", operation, "clients/acc-a/w2.pdf", status, error,
                         requester=requester)
          for i, (status, error) in enumerate(free)
          for operation in ("REST.GET.OBJECT", "REST.PUT.OBJECT")
          for requester in ("-", ROLE)],
        s3_access_line("05/Jan/2026:16:00:01 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "404", "NoSuchKey"),
        s3_access_line("05/Jan/2026:16:00:02 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "404", "NoSuchKey",
                       requester="-"),
        s3_access_line("05/Jan/2026:16:00:03 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "304", "-"),
        s3_access_line("05/Jan/2026:16:00:04 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "206", "-"),
        s3_access_line("05/Jan/2026:16:00:05 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf", "200", "-",
                       requester="-"),
    ])
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonS3") == {
        ("2026-01-05 16", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 16", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("4"),
    }
    assert evidence.problems == {}


def test_s3_error_responses_before_aws_stopped_billing_them_count(tmp_path):
    """AWS "started deploying" the change on May 13, 2024 (ErrorCodeBilling; What's New, 2024-05-29): a backfilled
    month before it keeps every 4XX billed, as its bill did."""
    write_access_log(tmp_path, [
        s3_access_line("12/May/2024:23:59:59 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "403", "AccessDenied",
                       requester="-"),
        s3_access_line("12/May/2024:23:59:59 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf", "403",
                       "SignatureDoesNotMatch"),
        s3_access_line("13/May/2024:00:00:00 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf", "403", "AccessDenied",
                       requester="-"),
        s3_access_line("13/May/2024:00:00:00 +0000", "REST.PUT.OBJECT", "clients/acc-a/w2.pdf", "403",
                       "SignatureDoesNotMatch"),
        s3_access_line("13/May/2024:00:00:01 +0000", "REST.GET.OBJECT", "clients/acc-a/w2.pdf"),
    ])
    evidence = read_usage_evidence(locate(str(tmp_path)), None, dt.date(2024, 5, 1))
    assert of_service(evidence, "AmazonS3") == {
        ("2024-05-12 23", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2024-05-12 23", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2024-05-13 00", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
    }


def test_s3_website_endpoint_requests_are_billed_as_gets_errors_too(tmp_path):
    """A bucket's website endpoint logs WEBSITE.GET.OBJECT / WEBSITE.HEAD.OBJECT (always anonymous). They were no
    one's requests, so the tenants not on a website had their request share raised by those who are. AWS bills them
    as GETs, and its error-code table does not spare them: "applicable request and other charges will still apply
    when S3 returns a custom error document or for custom redirects" (ErrorCodeBilling). A 5XX is never billed."""
    write_access_log(tmp_path, [
        s3_access_line("05/Jan/2026:15:00:01 +0000", "WEBSITE.GET.OBJECT", "clients/acc-a/index.html",
                       requester="-"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "WEBSITE.HEAD.OBJECT", "clients/acc-a/index.html",
                       requester="-"),
        s3_access_line("05/Jan/2026:15:00:03 +0000", "WEBSITE.GET.OBJECT", "clients/acc-a/gone.html", "404",
                       "NoSuchKey", requester="-"),
        s3_access_line("05/Jan/2026:15:00:04 +0000", "WEBSITE.GET.OBJECT", "clients/acc-a/private.html", "403",
                       "AccessDenied", requester="-"),
        s3_access_line("05/Jan/2026:15:00:05 +0000", "WEBSITE.GET.OBJECT", "clients/acc-a/old.html", "301",
                       "PermanentRedirect", requester="-"),
        s3_access_line("05/Jan/2026:15:00:06 +0000", "WEBSITE.GET.OBJECT", "clients/acc-a/index.html", "503",
                       "SlowDown", requester="-"),
        s3_access_line("05/Jan/2026:15:00:07 +0000", "REST.GET.OBJECT", "clients/acc-b/w2.pdf"),
    ])
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("5"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("1"),
    }
    assert evidence.problems == {}


def s3_request_lines() -> list[str]:
    """An hour of one bucket: acc-a renames a document in its folder (one CopyObject, which S3 logs twice: the COPY
    and the GET of its source) and reads it; acc-b's browser uploads one (a CORS preflight, then the PUT) and reads
    it."""
    return [
        s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.COPY.OBJECT", "clients/acc-a/w2-final.pdf"),
        s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.COPY.OBJECT_GET", "clients/acc-a/w2.pdf"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.GET.OBJECT", "clients/acc-a/w2-final.pdf"),
        s3_access_line("05/Jan/2026:15:00:03 +0000", "REST.OPTIONS.PREFLIGHT", "clients/acc-b/w2.pdf", requester="-"),
        s3_access_line("05/Jan/2026:15:00:04 +0000", "REST.PUT.OBJECT", "clients/acc-b/w2.pdf"),
        s3_access_line("05/Jan/2026:15:00:05 +0000", "REST.GET.OBJECT", "clients/acc-b/w2.pdf"),
    ]


def test_s3_request_classes_are_the_price_lists(tmp_path, warehouse_con):
    """S3 pricing bills "PUT, COPY, POST, LIST requests" (Tier 1) and "GET, SELECT, and all other requests" (Tier 2);
    the usage types say the same ("Requests-Tier2: The number of GET and all other non-Tier1 requests", S3 User
    Guide, usage report). A CORS preflight (REST.OPTIONS.PREFLIGHT) is one of "all other": it counted for no one,
    so the tenants whose browsers upload had their Tier 2 requests paid by the others. A copy is one COPY request,
    logged twice ("A copy operation involves a GET and a PUT. For that reason, we log two records", S3 server
    access log format): both records counted as Tier 1, the copying tenant's COPY twice; the GET record is at most a
    GET (Tier 2)."""
    con = warehouse_con
    write_access_log(tmp_path, s3_request_lines())
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("2"),
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-b"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("2"),
    }
    assert evidence.problems == {}

    # the hour's bill: 2 Tier 1 requests at $0.005 per 1,000 and 4 Tier 2 at $0.0004 per 1,000
    con.register("usage_evidence", evidence.usage)
    con.execute(f"INSERT INTO usage_shares BY NAME ({stage_sql('usage_shares')})",
                {"billing_period": JANUARY, "next_period": dt.date(2026, 2, 1)})
    for usage_type, operation, amount, cost in (("USE1-Requests-Tier1", "PutObject", 2, "0.00001"),
                                                ("USE1-Requests-Tier2", "GetObject", 4, "0.0000016")):
        con.execute(
            """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id,
                   line_item_type, service, usage_type, operation, resource_id, accountant_id, application, currency,
                   in_scope, usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
               VALUES (?, ?, 1, '1', 'Usage', 'AmazonS3', ?, ?, 'tax-demo-docs', NULL, 'tax-demo', 'USD', true, ?,
                       CAST(? AS DECIMAL(38, 10)), CAST(? AS DECIMAL(38, 10)), NULL, 1)""",
            [JANUARY, dt.datetime(2026, 1, 5, 15), usage_type, operation, amount, cost, cost])
    stage_cost_allocations(DuckDBEngine(con), {"billing_period": JANUARY, "cost_metric": "unblended"},
                           Pricing("USD", D(10), {}))
    # before: acc-a 0.0000074667 (2 of 3 Tier 1, 1 of 2 Tier 2), acc-b 0.0000041333
    assert con.execute("SELECT accountant_id, sum(cost) FROM cost_allocations GROUP BY 1 ORDER BY 1").fetchall() == [
        ("acc-a", D("0.0000058")), ("acc-b", D("0.0000058"))]


def test_s3_select_part_copies_and_deletes_by_the_price_list(tmp_path):
    """SELECT is Tier 2 though sent as a POST ("GET, SELECT, and all other requests"); a part copy is one COPY (its
    source's GET record at most a GET); "DELETE and CANCEL requests are free" (an aborted upload too)."""
    write_access_log(tmp_path, [
        s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.POST.SELECT", "clients/acc-a/w2.csv"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.COPY.PART", "clients/acc-b/big.zip"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.COPY.PART_GET", "clients/acc-b/old.zip"),
        s3_access_line("05/Jan/2026:15:00:03 +0000", "REST.DELETE.UPLOAD", "clients/acc-b/big.zip"),
        s3_access_line("05/Jan/2026:15:00:04 +0000", "REST.DELETE.OBJECT", "clients/acc-b/old.zip"),
    ])
    assert of_service(read_january(tmp_path), "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-a"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "acc-b"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "acc-b"): D("1"),
    }


def test_bedrock_failed_invocations_count_the_tokens_they_record_and_say_so(tmp_path):
    """A model invocation log record of a failed call carries `errorCode` (ThrottlingException, ValidationException,
    ModelStreamErrorException, ...). AWS documents neither which failures are logged nor whether tokens a failed
    record carries are billed: a record without token counts adds nothing; one with them (a stream cut off after
    generating) counts them as given, and the run says how many such records it counted
    (`bedrock_failed_invocation_tokens`), so that they can be checked against the bill."""
    def record(at, error=None, tokens=None):
        line = {"schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp": at,
                "accountId": "123456789012", "region": "us-east-1", "requestId": "b-" + at,
                "operation": "ConverseStream", "modelId": "anthropic.claude-3-haiku",
                "requestMetadata": {"accountant_id": "acc-a"},
                "input": {"inputContentType": "application/json"}}
        if error:
            line["errorCode"] = error
        if tokens:
            line["input"]["inputTokenCount"] = tokens[0]
            line["output"] = {"outputContentType": "application/json", "outputTokenCount": tokens[1]}
        return json.dumps(line)

    path = tmp_path / "AWSLogs" / "bedrock.json"
    path.parent.mkdir()
    path.write_text("\n".join([
        record("2026-01-05T13:00:00Z", tokens=(100, 50)),
        record("2026-01-05T13:00:01Z", error="ThrottlingException"),
        record("2026-01-05T13:00:02Z", error="ValidationException"),
        record("2026-01-05T13:00:03Z", error="ModelStreamErrorException", tokens=(30, 7)),
    ]) + "\n")
    evidence = read_january(tmp_path)
    assert of_service(evidence, "AmazonBedrock") == {
        ("2026-01-05 13", "AmazonBedrock", "input_tokens", "anthropic.claude-3-haiku", "acc-a"): D("130"),
        ("2026-01-05 13", "AmazonBedrock", "output_tokens", "anthropic.claude-3-haiku", "acc-a"): D("57"),
    }
    assert evidence.problems == {"bedrock_failed_invocation_tokens": 1}


def test_s3_access_log_keys_are_decoded_as_s3_encodes_them_per_operation(tmp_path):
    # The Key field of most operations is URL-encoded twice, while BATCH.DELETE.OBJECT and S3.EXPIRE.OBJECT encode
    # it once (Yelp Engineering, "S3 server access logs at scale", 2025-09-26, from TiBs of logs a day; the S3 User
    # Guide says only "URL-encoded"): the folder of 'Acme Corp' is `clients/Acme%2520Corp/` in a GET's record. The
    # Request-URI is the request as sent, encoded once (a LIST's prefix is read from it).
    write_access_log(tmp_path, [
        s3_access_line("05/Jan/2026:15:00:01 +0000", "REST.PUT.OBJECT", "clients/Acme%2520Corp/2025%2520W-2.pdf",
                       request_key="clients/Acme%20Corp/2025%20W-2.pdf"),
        s3_access_line("05/Jan/2026:15:00:02 +0000", "REST.GET.OBJECT", "clients/M%25C3%25BCller%252BS%25C3%25B6hne/a.pdf",
                       request_key="clients/M%C3%BCller%2BS%C3%B6hne/a.pdf"),
        s3_access_line("05/Jan/2026:15:00:03 +0000", "WEBSITE.GET.OBJECT", "clients/Acme%2520Corp/index.html",
                       request_key="clients/Acme%20Corp/index.html", requester="-"),
        s3_access_line("05/Jan/2026:15:00:04 +0000", "REST.GET.BUCKET", "-",
                       request_key="?list-type=2&prefix=clients%2FAcme%20Corp%2F&encoding-type=url"),
        # a tenant whose id holds '%25' literally: its GET's key is encoded twice, '%252525'
        s3_access_line("05/Jan/2026:15:00:05 +0000", "REST.HEAD.OBJECT", "clients/ten%252525/a.pdf",
                       request_key="clients/ten%2525/a.pdf"),
        # encoded once (no driver: free), and never read as another tenant's
        s3_access_line("05/Jan/2026:15:00:06 +0000", "BATCH.DELETE.OBJECT", "clients/Acme%20Corp/old.pdf",
                       request_key="?delete"),
    ])
    assert of_service(read_january(tmp_path), "AmazonS3") == {
        ("2026-01-05 15", "AmazonS3", "tier1_requests", "tax-demo-docs", "Acme Corp"): D("2"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "Acme Corp"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "Müller+Söhne"): D("1"),
        ("2026-01-05 15", "AmazonS3", "tier2_requests", "tax-demo-docs", "ten%25"): D("1"),
    }


def agentcore_tool_usage_record(tool: str, session_id: str, vcpu_hours: float, gb_hours: float, epoch_ms: int) -> str:
    """A built-in tool's USAGE_LOGS record (AgentCore Developer Guide, "AgentCore generated built-in tools
    observability data": `codeInterpreter.vcpu.hours.used`, `codeInterpreter.memory.gb_hours.used`, `browser.*`),
    nested as the Runtime's records are."""
    kind, service = {"codeInterpreter": ("code-interpreter", "CodeInterpreter"), "browser": ("browser", "Browser")}[tool]
    arn = f"arn:aws:bedrock-agentcore:us-east-1:123456789012:{kind}/tax_tool-AbC123"
    return json.dumps({
        "resource_arn": arn,
        "event_timestamp": epoch_ms,
        "resource": {"cloud.provider": "aws", "service.name": f"AgentCore.{service}", "cloud.region": "us-east-1"},
        "attributes": {"account.id": "123456789012", "time_elapsed_seconds": 1.0, "region": "us-east-1",
                       "session.id": session_id, "resource.id": arn},
        "metrics": {f"{tool}.vcpu.hours.used": vcpu_hours, f"{tool}.memory.gb_hours.used": gb_hours},
    })


def test_agentcore_built_in_tools_vended_usage_logs_are_their_own_drivers(tmp_path):
    # The Code Interpreter's and Browser's USAGE_LOGS name their usage `codeInterpreter.vcpu.hours.used`, ...,
    # `browser.memory.gb_hours.used`: read only under the Runtime's names, every record was an unrecognized line and
    # the tools' vCPU- and GB-hours were nobody's.
    write_export(tmp_path, "agent", [
        '2026-01-06T09:00:00.000Z {"event": "session_start", "session_id": "ci-1", "accountant_id": "acc-a"}',
        '2026-01-06T09:00:00.000Z {"event": "session_start", "session_id": "br-1", "accountant_id": "acc-b"}',
    ])
    write_export(tmp_path, "usage", [
        "2026-01-06T09:30:00.000Z "
        + agentcore_tool_usage_record("codeInterpreter", "ci-1", 0.000277778, 0.000555556, 1767691800000),
        "2026-01-06T09:30:01.000Z " + agentcore_tool_usage_record("browser", "br-1", 0.5, 2.0, 1767691801000),
    ], task="task-0002")
    evidence = read_january(tmp_path)
    hour = "2026-01-06 09"
    assert of_service(evidence, "AmazonBedrockAgentCore") == {
        (hour, "AmazonBedrockAgentCore", "sessions", "", "acc-a"): D("1"),
        (hour, "AmazonBedrockAgentCore", "sessions", "", "acc-b"): D("1"),
        (hour, "AmazonBedrockAgentCore", "code_interpreter_vcpu_hours", "", "acc-a"): D("0.000277778"),
        (hour, "AmazonBedrockAgentCore", "code_interpreter_gb_hours", "", "acc-a"): D("0.000555556"),
        (hour, "AmazonBedrockAgentCore", "browser_vcpu_hours", "", "acc-b"): D("0.5"),
        (hour, "AmazonBedrockAgentCore", "browser_gb_hours", "", "acc-b"): D("2"),
    }
    assert evidence.problems == {}
