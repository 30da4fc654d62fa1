"""Usage evidence for shared resources: who used how much of each shared cost driver, per hour.

Sources (DESIGN.md, Inputs 4; driver names from docs/attribution-rules.md):

- CloudWatch Logs exports under `BILLING_LOGS_URI`: `<export prefix>/<task id>/<log stream>/000000.gz`, any
  number of files at any depth, each line `<ISO-8601 UTC timestamp> <message>`. Files without the prefix are read
  too when their lines are bare JSON records (S3-delivered Bedrock invocation logs, which carry `timestamp`) or S3
  server access log lines. Messages are recognized by their content, never by file path:

  Lambda REPORT (AWSLambda: `gb_seconds` = Billed Duration ms / 1000 x Memory Size MB / 1024; `requests` = 1;
  scope = the function its log group `/aws/lambda/<function>` names, or its export file's path when the export
  prefix names it the same way (`.../aws/lambda/<function>/<task>/...`); '' when neither does)
    text: `REPORT RequestId: <id>\\tDuration: 15.74 ms\\tBilled Duration: 16 ms\\tMemory Size: 128 MB\\t
          Max Memory Used: 56 MB[\\tInit Duration: 130.49 ms]` (Billed Duration already includes init)
    JSON: `{"time": "...", "type": "platform.report", "record": {"requestId": "<id>",
           "metrics": {"durationMs": .., "billedDurationMs": 16, "memorySizeMB": 128, ...}}}`
    The owner is the accountant an application line names for the same request id (read over all lines, so an
    invocation straddling the 1st still finds it); none -> 'unattributed', problems['report_without_owner'].
  Application lines: a JSON object, alone (Lambda JSON log format) or as the message of Lambda's text format
    `[LEVEL]\\t<timestamp>\\t<requestId>\\t{...}` (Python) or `<timestamp>\\t<requestId>\\t<LEVEL>\\t{...}` (Node.js).
    Fields may sit at the top level or inside `message` (an object, or a string holding one, as Powertools and
    JSON-format runtimes write them):
      accountant_id                 the tenant
      requestId | request_id | aws_request_id | function_request_id | awsRequestId   (text format: the prefix;
      Java's JSON format: top-level `AWSRequestId`)
  DynamoDB (AmazonDynamoDB: `read_units`, `write_units`, scope = TableName; a table ARN counts as its name):
      "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.5, "ReadCapacityUnits": .., "WriteCapacityUnits": ..}
      or a list of such objects (batch / transaction calls). Read/Write units are used when given; bare
      CapacityUnits go by `operation` / `Operation`: GetItem, Query, Scan, BatchGetItem, TransactGetItems -> read;
      PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems -> write; anything else -> write and
      problems['ambiguous_capacity_units']. No accountant_id on the line (nor via its request id) ->
      'unattributed' and problems['missing_accountant_id'].
  AgentCore (AmazonBedrockAgentCore, scope ''):
      {"event": "session_start", "session_id": "s-1", "accountant_id": "a"}   -> `sessions` 1 per distinct
          session, at its first start (a session first started last month is not counted again)
      {"event": "tool_call", "session_id": "s-1", "accountant_id": "a", "tool": "..."} -> `tool_calls` 1 each
      {"session_id": "s-1", "vcpu_hours": 0.25, "gb_hours": 0.5}   (per-session usage lines)
          -> `vcpu_hours`, `gb_hours` at the line's hour; with "tool_type": "code_interpreter" | "browser" the
          built-in tool's own `code_interpreter_vcpu_hours` / `_gb_hours`, `browser_vcpu_hours` / `_gb_hours`
      {"event": "CreateEvent" | "memory_event", "session_id": ..} -> `memory_events` 1 (AgentCore Memory);
      {"event": "memory_record" | "memory_record_created", ..} -> `memory_records` 1
      `event` may be `event_type`, any case and separators (`SessionStart`, `tool-call`); `session_id` may be
      `sessionId` or `session.id`; usage may be `agent.runtime.vcpu.hours.used` /
      `agent.runtime.memory.gb_hours.used`, at the top level or as AWS's vended USAGE_LOGS records nest them
      (`{"event_timestamp": <epoch ms>, "attributes": {"session.id": ..}, "metrics": {"agent.runtime.vcpu.hours.used":
      .., "agent.runtime.memory.gb_hours.used": ..}}`; delivered to S3 their time is `event_timestamp`), and the
      built-in tools' vended records as the tool's drivers (`metrics`: `codeInterpreter.vcpu.hours.used`,
      `codeInterpreter.memory.gb_hours.used`, `browser.vcpu.hours.used`, `browser.memory.gb_hours.used`); the owner
      may be `user_id` (the agent's user), and lines without one
      take their session's owner (else 'unattributed', problems['session_without_owner']).
  Bedrock model invocation log (AmazonBedrock, scope = modelId): `{"schemaType": "ModelInvocationLog",
      "timestamp": .., "modelId": .., "requestMetadata": {"accountant_id": ..}, "input": {"inputTokenCount": ..,
      "cacheReadInputTokenCount": .., "cacheWriteInputTokenCount": ..}, "output": {"outputTokenCount": ..}}`
      -> `input_tokens`, `output_tokens`, `cache_read_tokens`, `cache_write_tokens`. A failed call's record
      (`errorCode`) counts the token counts it carries, if any (AWS documents neither which failures are logged nor
      whether their tokens are billed); one that carries some -> problems['bedrock_failed_invocation_tokens'].
  S3 server access log lines (AmazonS3, scope = bucket), by S3's price list: REST PUT/COPY/POST and LIST
      (GET.BUCKET, ...) -> `tier1_requests`; every other REST request but DELETE (free) -> `tier2_requests`: GET,
      HEAD, SELECT (a POST), a CORS preflight (OPTIONS), and a copy's second record, the GET of its source
      (REST.COPY.OBJECT_GET / PART_GET: the copy is one COPY); for the client in the key (or LIST prefix)
      `clients/<accountant_id>/`; other keys -> `unattributed` (nobody's request: never the tenants') and
      problems['s3_request_outside_clients']. The Key field is URL-encoded twice for REST and WEBSITE requests,
      once for BATCH.DELETE.OBJECT and S3.* (docs/attribution-rules.md); a LIST's prefix once, in its Request-URI.
      Requests AWS does not bill
      are none: HTTP 5XX; from 2024-05-13 the 3XX/4XX error codes S3's ErrorCodeBilling page lists, and
      AccessDenied to an unauthenticated request (Requester `-`) (`s3_request_unbilled` in usage_logs.sql).

  CloudWatch Logs (AmazonCloudWatch: `log_bytes`, scope = the log group): every line with a timestamp prefix (an
      event of a log group) counts its message's UTF-8 bytes + 26 for its owner: the line's accountant_id, else
      its request's owner, else its session's, else its user_id, else 'unattributed' (no problem is counted).

- S3 Inventory reports under `BILLING_S3_INVENTORY_URI`: see `s3_inventory.py` (`gb_months` per storage class).

- Or the log groups themselves through the CloudWatch Logs API (`BILLING_LOGS_URI=cloudwatch://<group>,...`,
  Logs Insights or FilterLogEvents): `cloudwatch_logs_api.py` renders the events as the export's lines, which take
  the same SQL below (`read_log_lines`).

Problems (reason -> lines, for the month; lines with no readable time always count): 'unrecognized_line'
(nothing usable, e.g. plain-text prints, JSON without tenant or usage), 'malformed_json', 'malformed_report',
'missing_timestamp', 'missing_request_id' (names a tenant, but no request or session to tie it to),
'report_without_owner', 'report_with_conflicting_owners' (attributed to the first id), 'missing_accountant_id',
'ambiguous_capacity_units', 'malformed_consumed_capacity', 'bedrock_failed_invocation_tokens' (counted, see above),
'malformed_quantity' (a DynamoDB unit count, AgentCore hours or Bedrock token count that is not a number in
[0, 1e12): never evidence), 'session_without_owner',
's3_request_outside_clients', 'inventory_key_outside_clients' (objects), 'inventory_hours_overlapping_configurations'
(bucket-hours that several inventory configurations stand for, counted at the largest: s3_inventory.py),
'invalid_accountant_id' (a tenant id that is never a tenant: non-string JSON, `unattributed`/`total`, control
characters; its usage is 'unattributed', and objects under such a client folder), 'line_too_long' (over
BILLING_MAX_LOG_LINE_BYTES, dropped while streaming: see log_streams.py). Tenant ids are trimmed of spaces;
empty = no owner. START/END/INIT_START/... platform lines and lines of other months are expected and not counted.
A corrupt gzip file, or one expanding beyond BILLING_MAX_EXPANSION, raises ValueError naming it.

Parsing runs in DuckDB (`usage_logs.sql`) over Arrow lines: one pass, no per-line Python. The export files are
streamed (log_streams.py): memory holds one batch of lines, never a whole file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from billing_pipeline.engines.duckdb_engine import scratch_connection
from billing_pipeline.readers.log_streams import Limits, LineCounts, log_line_tables
from billing_pipeline.readers.s3_inventory import month_bounds, read_inventory_usage
from billing_pipeline.readers.usage_files import is_log_file, read_lines_of_files
from billing_pipeline.sql import named_statements, read_sql
from billing_pipeline.storage import Location

USAGE_SCHEMA = pa.schema(
    [
        ("usage_hour", pa.timestamp("us")),
        ("service", pa.string()),
        ("driver", pa.string()),
        ("scope", pa.string()),
        ("accountant_id", pa.string()),
        ("quantity", pa.decimal128(38, 10)),
    ]
)



@dataclass
class UsageEvidence:
    usage: pa.Table  # USAGE_SCHEMA, summed per (usage_hour, service, driver, scope, accountant_id)
    problems: dict[str, int] = field(default_factory=dict)  # reason -> lines counted and skipped/unattributed
    lines_read: int = 0  # log lines + inventory object rows
    files_read: int = 0  # log files + inventory manifests and data files


def read_usage_evidence(logs, inventory: Location | None, billing_period: dt.date,
                        since: dt.datetime | None = None) -> UsageEvidence:
    """All usage evidence for the month [billing_period, next month) from the logs (a Location of CloudWatch Logs
    exports, or an API source such as `cloudwatch_logs_api.CloudWatchLogsSource`) and S3 Inventory reports under
    `inventory` (either may be None or an empty/missing folder -> no rows).

    With `since` (UTC), only the evidence of the hours from `since` on, and only the files that can hold it: log
    files last modified at or after `since` (a file holds no line written after it was last modified, and a line
    is written after the usage it records), the API's events from `since`, the inventory snapshots that stand for
    hours from `since`. The month_to_date refresh reads the hours the CUR has not covered this way."""
    period_start, period_end = month_bounds(billing_period)
    storage = read_inventory_usage(inventory, billing_period, since)

    con = scratch_connection()
    lines_read = log_files = 0
    try:
        con.register("inventory_usage", storage.usage)
        params = {"period_start": period_start, "period_end": period_end}
        start_parsing(con)
        # The per-line statement runs batch by batch, appending to log_events (spilled by DuckDB under its limit),
        # so at most one batch of raw lines is held in memory however large the month's logs are.
        dropped = LineCounts()
        for index, (lines, files) in enumerate(log_line_batches(logs, since or period_start, period_end, dropped,
                                                                modified_since=since)):
            parse_lines(con, lines, append=index > 0)
            lines_read, log_files = lines_read + lines.num_rows, log_files + files
        run_statements(con, ["request_owners", "agent_sessions", *ATTRIBUTION], params)
        usage = run_statements(con, ["evidence"], params)
        problems = dict(con.execute("SELECT problem, lines FROM log_problems ORDER BY problem").fetchall())
    finally:
        con.close()

    for reason, count in [*storage.problems.items(), *dropped.problems.items()]:
        problems[reason] = problems.get(reason, 0) + count
    return UsageEvidence(
        usage=hours_from(usage.cast(USAGE_SCHEMA), since),
        problems=problems,
        lines_read=lines_read + sum(dropped.problems.values()) + storage.rows_read,
        files_read=log_files + storage.files_read,
    )


# Log text held at once while parsing (decompressed bytes of one batch of lines; files are streamed in chunks).
LOG_BATCH_BYTES = 32 * 2**20


def log_line_batches(logs, period_start: dt.datetime, period_end: dt.datetime, counts: LineCounts | None = None,
                     modified_since: dt.datetime | None = None):
    """The log lines the SQL parses, as (`read_lines_of_files`' table, files read) batches with line numbers
    unique across them; always at least one batch. `logs` is None, a Location of exports (streamed, see
    log_streams.py: bounded memory, over-long lines counted in `counts`), or an API source with
    `read_log_lines(period_start, period_end)` that renders its events as the export's lines, so that both take
    the one parsing path."""
    if logs is None:
        yield with_log_groups(read_lines_of_files(None, []), []), 0
        return
    if not isinstance(logs, Location):
        yield with_log_groups(logs.read_log_lines(period_start, period_end), list(getattr(logs, "log_groups", ())),
                              exported=False), 0
        return
    infos = files_modified_since([i for i in logs.list_files() if is_log_file(i.path)], modified_since)
    paths = [i.path for i in infos]  # file_index in the tables is the position here: it names the log group
    for lines, files in log_line_tables(logs, infos, Limits.from_env(), counts if counts is not None else LineCounts(),
                                        LOG_BATCH_BYTES):
        yield with_log_groups(lines, paths), files


def hours_from(usage: pa.Table, since: dt.datetime | None) -> pa.Table:
    """The evidence of the hours from `since` on (None: all): a file read for its new lines holds older ones too."""
    if since is None:
        return usage
    return usage.filter(pc.greater_equal(usage["usage_hour"], pa.scalar(since, pa.timestamp("us"))))


def files_modified_since(infos: list, since: dt.datetime | None) -> list:
    """The files last modified at or after `since` (UTC; None: all). A file holds no line written after it was last
    modified, and a line is written after the usage it records, so an older file holds only older hours: the
    refresh after the CUR's coverage does not open it. A file whose time is unknown is kept."""
    if since is None:
        return infos
    since_ns = int(since.replace(tzinfo=dt.timezone.utc).timestamp()) * 10**9
    return [i for i in infos if i.mtime_ns is None or i.mtime_ns >= since_ns]


# A Lambda function's log group is /aws/lambda/<function>; an export prefix may name it the same way.
LAMBDA_GROUP_IN_PATH = re.compile(r"(?:^|/)aws/lambda/([^/]+)")


def with_log_groups(lines: pa.Table, sources: list[str], first_file_index: int = 0, exported: bool = True) -> pa.Table:
    """`lines` with the column `log_group`: the log group each line was read from (`sources[file_index -
    first_file_index]`), or for exported files the Lambda log group `/aws/lambda/<function>` their path names
    (`.../aws/lambda/<function>/<task>/...`); '' when not known."""
    if exported:
        sources = [f"/aws/lambda/{m.group(1)}" if (m := LAMBDA_GROUP_IN_PATH.search(s)) else "" for s in sources]
    if not sources or not any(sources):
        return lines.append_column("log_group", pa.array([""] * lines.num_rows, pa.string()))
    positions = pc.subtract(lines["file_index"], pa.scalar(first_file_index, pa.int32()))
    return lines.append_column("log_group", pc.take(pa.array(sources, pa.string()), positions))


# The statements that turn log_events (with request_owners and agent_sessions) into usage and problems: on Spark
# each executor runs them over its share of the lines (readers/evidence_spark.py).
ATTRIBUTION = ["usage_events", "log_problems", "hourly_usage"]


def start_parsing(con) -> None:
    """The macros of usage_logs.sql on `con`, before any parsing."""
    name, sql = sql_statements()[0]
    assert name == "fields_macros", "usage_logs.sql: the macros come first"
    con.execute(sql)


def parse_lines(con, lines: pa.Table, append: bool = False) -> None:
    """usage_logs.sql's per-line statement over `lines` (`line`, `line_no`, `log_group`): the temp table
    `log_events` holds their events (appended to it when `append`)."""
    name, sql = sql_statements()[1]
    assert name == "log_events", "usage_logs.sql: the per-line statement must follow the macros"
    if append:
        sql = re.sub(r"^CREATE OR REPLACE TEMP TABLE log_events AS", "INSERT INTO log_events", sql, count=1, flags=re.M)
    con.register("log_lines", lines)
    try:
        con.execute(sql)
    finally:
        con.unregister("log_lines")


def run_statements(con, names: list[str], params: dict):
    """The named statements of usage_logs.sql, in order, with the parameters each uses; the last one's rows as
    Arrow when it is a query (`evidence`)."""
    statements = dict(sql_statements())
    result = None
    for name in names:
        sql = statements[name]
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        result = con.sql(sql, params=used).to_arrow_table() if name == "evidence" else con.execute(sql, used)
    return result


@lru_cache(maxsize=1)
def sql_statements() -> list[tuple[str, str]]:
    """The SQL file's statements in order, as (name, text), split at its `-- name:` lines."""
    return named_statements(read_sql("billing_pipeline.readers", "usage_logs.sql"))
