"""The usage evidence read and parsed by Spark's executors (BILLING_ENGINE=spark), for logs beyond one machine.

The driver only lists: the export files, the Logs API's (log group, time window) slices, the S3 Inventory
manifests, the usage table's requests. Each list becomes a DataFrame of tasks, and every task is read and parsed
on an executor (`mapInArrow`, a Python worker process) by the SAME functions the DuckDB path runs on the driver:
log_streams.py (bounded memory: chunked gzip with the expansion limit, the line-length limit), usage_logs.sql in
an executor-local DuckDB, s3_inventory.client_bytes, estimates.estimate_items. One definition of each parser.

Logs, in three steps, so that only aggregated evidence reaches the driver:
1. per task (a group of files or one API slice): lines -> usage_logs.sql `log_events` (one row per line, kept on
   the executors: checkpointed);
2. the statements that need every line, `request_owners` and `agent_sessions` (a Lambda REPORT's owner is named by
   another line of the same request, maybe in another file), run by Spark itself, transpiled from usage_logs.sql,
   and joined back to each line by request and session id;
3. per batch of joined lines: `usage_events`, `log_problems`, `hourly_usage` in an executor-local DuckDB, whose
   partial sums (hour x service x driver x scope x tenant, full precision) Spark adds up. The driver runs only
   `evidence` (the one rounding) over those sums and the inventory's hourly rows.
A session's own row (`sessions`) is emitted by the batch holding its start line only, so it counts once.

The executors reach S3, CloudWatch Logs and DynamoDB with the endpoint and region the driver's settings name
(AWS_ENDPOINT_URL*, AWS_REGION), sent with each task; credentials are the executors' own (their role or
environment), never shipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from contextlib import contextmanager
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import sqlglot

from billing_pipeline.readers.cloudwatch_logs_api import CloudWatchLogsSource
from billing_pipeline.readers.estimates import ESTIMATES_SCHEMA, estimate_items, item_files
from billing_pipeline.readers.log_streams import Limits, LineCounts, log_line_tables
from billing_pipeline.readers.s3_inventory import (
    CLIENT_BYTES_SCHEMA,
    InventoryUsage,
    USAGE_SCHEMA as INVENTORY_SCHEMA,
    client_bytes,
    month_bounds,
    plan_inventory,
    read_data_file,
)
from billing_pipeline.readers.usage_files import is_log_file, read_lines_of_files
from billing_pipeline.readers.usage_logs import (
    ATTRIBUTION,
    LOG_BATCH_BYTES,
    USAGE_SCHEMA,
    UsageEvidence,
    files_modified_since,
    hours_from,
    parse_lines,
    run_statements,
    sql_statements,
    start_parsing,
    with_log_groups,
)
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable
from billing_pipeline.storage import Location, locate

# The settings a task carries to its executor: where the AWS services are (not who may use them), and the
# bounded-memory limits of the input (log_streams.Limits), which the executors apply as the driver would.
TASK_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
                 "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "BILLING_MAX_LOG_LINE_BYTES", "BILLING_MAX_EXPANSION")
TASK_BYTES = 64 * 2**20  # compressed log bytes per task at most (a file larger than this is a task of its own)
MIN_TASKS = 8  # the files are spread over at least this many tasks (when there are as many)
SCAN_SEGMENTS = 8  # a Scan of the usage table is read in this many parallel segments
LINE_NO_BITS = 40  # a line's number: task id << 40 | its number within the task (unique across tasks)
STATS = "#read"  # the kind of the one row per task that carries what it read (not a log line)
TASKS_SCHEMA = "task_id INT, payload STRING"

USAGE_PARTS_SCHEMA = pa.schema([("usage_hour", pa.timestamp("us")), ("service", pa.string()),
                                ("driver", pa.string()), ("scope", pa.string()), ("accountant_id", pa.string()),
                                ("quantity", pa.decimal128(38, 16)), ("problem", pa.string()),
                                ("lines", pa.int64())])
HOURLY_SCHEMA = pa.schema(list(USAGE_PARTS_SCHEMA)[:6])  # usage_logs.sql `hourly_usage`
ESTIMATE_PARTS_SCHEMA = pa.schema([*ESTIMATES_SCHEMA, ("file_index", pa.int64()), ("line_in_file", pa.int64()),
                                   ("bad", pa.string())])


# -- the driver -----------------------------------------------------------------------------------------------

def read_usage_evidence_spark(session, logs, inventory: Location | None, billing_period: dt.date,
                              since: dt.datetime | None = None) -> UsageEvidence:
    """`usage_logs.read_usage_evidence` with the reading and parsing on Spark's executors: the same rows. With
    `since`, as there: only the hours from `since` on, from the files that can hold them (log files modified at or
    after it, the API's events from it, the inventory snapshots that stand for those hours)."""
    period_start, period_end = month_bounds(billing_period)
    settings = task_settings()
    storage = inventory_usage_spark(session, inventory, billing_period, settings, since)
    hourly, problems, lines_read, files_read, _ = log_evidence_spark(session, logs, period_start, period_end,
                                                                     settings, since)
    from billing_pipeline.engines.duckdb_engine import scratch_connection

    con = scratch_connection()
    try:  # the one rounding, over aggregated rows only
        con.register("hourly_usage", hourly)
        con.register("inventory_usage", storage.usage)
        usage = run_statements(con, ["evidence"], {})
    finally:
        con.close()
    for reason, count in storage.problems.items():
        problems[reason] = problems.get(reason, 0) + count
    return UsageEvidence(usage=hours_from(usage.cast(USAGE_SCHEMA), since), problems=dict(sorted(problems.items())),
                         lines_read=lines_read + storage.rows_read, files_read=files_read + storage.files_read)


def log_evidence_spark(session, logs, period_start: dt.datetime, period_end: dt.datetime, settings: dict,
                       since: dt.datetime | None = None):
    """The logs' hourly usage (usage_logs.sql `hourly_usage`, summed), problems, lines and files read, and the
    worker processes ('host:pid') that parsed them; with `since`, of the files and API events that can hold hours
    from `since` on (the attribution still sees the month's bounds, as on DuckDB)."""
    from pyspark.sql import functions as F

    tasks = log_tasks(logs, since or period_start, period_end, settings, modified_since=since)
    with input_errors():
        events = (session.createDataFrame(tasks, TASKS_SCHEMA).repartition(_partitions(session, tasks))
                  .mapInArrow(parse_log_tasks, spark_schema(events_schema()))
                  .localCheckpoint(eager=True))  # read once: the three uses below do not read the files again
    stats = events.where(f"kind = '{STATS}' OR kind LIKE '{STATS}:%'").select("kind", "line_no", "log_bytes",
                                                                              "log_group").collect()
    lines = events.where(f"kind NOT LIKE '{STATS}%'")
    lines.createOrReplaceTempView("log_events")
    try:
        owners = session.sql(spark_statement("request_owners")).select(
            "request_id", F.col("accountant_id").alias("o_accountant_id"), F.col("owners").alias("o_owners"))
        sessions = session.sql(spark_statement("agent_sessions")).select(
            "session_id", F.lit(True).alias("s_known"), F.col("accountant_id").alias("s_accountant_id"),
            F.col("started_at").alias("s_started_at"), F.col("start_line_no").alias("s_start_line_no"))
        joined = lines.join(owners, "request_id", "left").join(sessions, "session_id", "left")
        parts = joined.mapInArrow(_attribution(period_start, period_end), spark_schema(USAGE_PARTS_SCHEMA))
        keys = ["problem", "usage_hour", "service", "driver", "scope", "accountant_id"]
        with input_errors():
            summed = (parts.groupBy(*keys).agg(F.sum("quantity").alias("quantity"),
                                               F.sum("lines").alias("lines")).toArrow())
    finally:
        session.catalog.dropTempView("log_events")
    is_usage = summed["problem"].is_null()
    hourly = summed.filter(is_usage).select(["usage_hour", "service", "driver", "scope", "accountant_id",
                                             "quantity"])
    problems = {r["problem"]: int(r["lines"]) for r in summed.filter(pc.invert(is_usage)).to_pylist()}
    lines_read = files_read = 0
    workers = set()
    for row in stats:
        if row["kind"] == STATS:
            lines_read, files_read = lines_read + row["line_no"], files_read + row["log_bytes"]
            workers.add(row["log_group"])
        else:  # lines dropped while reading (line_too_long): problems, and lines read
            reason = row["kind"].split(":", 1)[1]
            problems[reason] = problems.get(reason, 0) + row["line_no"]
            lines_read += row["line_no"]
    return hourly.cast(HOURLY_SCHEMA), problems, lines_read, files_read, workers


def log_tasks(logs, period_start: dt.datetime, period_end: dt.datetime, settings: dict,
              modified_since: dt.datetime | None = None) -> list[tuple[int, str]]:
    """The reading split into tasks (task id, JSON payload): groups of export files (with `modified_since`, only
    those modified at or after it: usage_logs.files_modified_since), or Logs API slices of [period_start, period_end)."""
    if logs is None:
        return []
    if isinstance(logs, Location):
        infos = files_modified_since([i for i in logs.list_files() if is_log_file(i.path)], modified_since)
        target = min(TASK_BYTES, max(1, sum(i.size or 0 for i in infos) // MIN_TASKS))
        groups, current, size = [], [], 0
        for info in infos:
            if current and size + (info.size or 0) > target:
                groups.append(current)
                current, size = [], 0
            current.append([info.path, info.size])
            size += info.size or 0
        groups += [current] if current else []
        return [(i, json.dumps({"env": settings, "uri": logs.uri, "files": g})) for i, g in enumerate(groups)]
    if isinstance(logs, CloudWatchLogsSource):
        source = dataclasses.asdict(logs)
        return [(i, json.dumps({"env": settings, "api": source, "slice": s}))
                for i, s in enumerate(logs.slices(period_start, period_end))]
    raise TypeError(f"logs: not readable by Spark's executors: {logs!r}")


def inventory_usage_spark(session, inventory: Location | None, billing_period: dt.date,
                          settings: dict, since: dt.datetime | None = None) -> InventoryUsage:
    """`s3_inventory.read_inventory_usage` with the data files read on the executors: manifests on the driver,
    every data file's bytes per (snapshot, client, driver) on an executor, summed by Spark (with `since`, only
    the snapshots that stand for hours from `since` on)."""
    from pyspark.sql import functions as F

    plan = plan_inventory(inventory, billing_period, since)
    if plan is None:
        return InventoryUsage(INVENTORY_SCHEMA.empty_table())
    tasks = [(i, json.dumps({"env": settings, "uri": inventory.uri, "snapshot_id": snapshot_id, "path": path,
                             "format": f.file_format, "schema": f.file_schema, "manifest": f.manifest_name,
                             "url_encoded": f.url_encoded}))
             for i, (snapshot_id, f, path) in enumerate(plan.data_files())]
    if tasks:
        with input_errors():
            summed = (session.createDataFrame(tasks, TASKS_SCHEMA).repartition(_partitions(session, tasks))
                      .mapInArrow(read_inventory_tasks, spark_schema(CLIENT_BYTES_SCHEMA))
                      .groupBy("snapshot_id", "accountant_id", "driver")
                      .agg(*[F.sum(c).alias(c) for c in ("bytes", "objects", "outside_clients", "invalid_clients")])
                      .toArrow())
    else:
        summed = CLIENT_BYTES_SCHEMA.empty_table()
    return plan.usage(summed.cast(CLIENT_BYTES_SCHEMA), billing_period)


def estimates_frame_spark(session, source, billing_period: dt.date, paths: list[str] | None = None):
    """`estimates.read_estimates` as a DataFrame computed on the executors (ESTIMATES_SCHEMA), never collected:
    files (or the table's Scan segments / its Query) read and parsed by estimates.estimate_items in each task.
    A bad item raises ValueError naming its file and line (the first, as on DuckDB) or its table and item.
    `paths`: the folder's item files as the caller listed them (default: listed here)."""
    month = month_bounds(billing_period)[0].strftime("%Y-%m")
    settings = task_settings()
    if isinstance(source, DynamoDBUsageTable):
        how, requests = source.plan(month, SCAN_SEGMENTS)
        tasks = [(i, json.dumps({"env": settings, "table": dataclasses.asdict(source), "request": r, "how": how,
                                 "month": month})) for i, r in enumerate(requests)]
    else:
        paths = item_files(source) if paths is None else paths
        tasks = [(i, json.dumps({"env": settings, "uri": source.uri, "path": p, "month": month}))
                 for i, p in enumerate(paths)]
    if not tasks:
        return session.createDataFrame([], spark_schema(ESTIMATES_SCHEMA))
    with input_errors():
        parts = (session.createDataFrame(tasks, TASKS_SCHEMA).repartition(_partitions(session, tasks))
                 .mapInArrow(read_estimate_tasks, spark_schema(ESTIMATE_PARTS_SCHEMA))
                 .localCheckpoint(eager=True))
    bad = parts.where("bad IS NOT NULL").orderBy("file_index", "line_in_file").limit(1).collect()
    if bad:
        raise ValueError(bad[0]["bad"])
    return parts.select(*ESTIMATES_SCHEMA.names)


@contextmanager
def input_errors():
    """A bad input found on an executor (a readers' ValueError naming the file and the problem) raised here as
    that ValueError, not as Spark's wrapper of the worker's traceback."""
    try:
        yield
    except ValueError:
        raise
    except Exception as error:
        raised = re.findall(r"^ValueError: (.+)$", str(error), flags=re.M)
        if raised:
            raise ValueError(raised[-1].strip()) from None
        raise


def task_settings() -> dict:
    return {k: os.environ[k] for k in TASK_SETTINGS if os.environ.get(k)}


def _partitions(session, tasks: list) -> int:
    """Partitions for the tasks: Spark's default parallelism (when set) or MIN_TASKS, never more than tasks."""
    try:
        wanted = int(session.conf.get("spark.default.parallelism", str(MIN_TASKS)))
    except (ValueError, TypeError):
        wanted = MIN_TASKS
    return max(1, min(len(tasks), max(wanted, MIN_TASKS)))


@lru_cache(maxsize=None)
def spark_statement(name: str) -> str:
    """A `CREATE TEMP TABLE x AS <query>` statement of usage_logs.sql as Spark SQL: its query, transpiled."""
    from billing_pipeline.engines.spark_engine import to_spark_sql

    create = sqlglot.parse_one(dict(sql_statements())[name], read="duckdb")
    return to_spark_sql(create.expression.sql(dialect="duckdb"))


def spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


@lru_cache(maxsize=1)
def events_schema() -> pa.Schema:
    """The columns of usage_logs.sql `log_events`, as DuckDB gives them (its statement over no lines)."""
    from billing_pipeline.engines.duckdb_engine import scratch_connection

    con = scratch_connection()
    try:
        start_parsing(con)
        parse_lines(con, pa.table({"line": pa.array([], pa.large_string()), "line_no": pa.array([], pa.int64()),
                                   "log_group": pa.array([], pa.string())}))
        return con.sql("SELECT * FROM log_events").to_arrow_table().schema
    finally:
        con.close()


# -- the executors (each function runs in a Python worker process, over its tasks' Arrow batches) ------------

@contextmanager
def task_environment(settings: dict):
    """The driver's endpoint, region and limit settings while a task runs (boto3, pyarrow and Limits.from_env
    read them when they are created)."""
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _tasks(batches):
    for batch in batches:
        for row in batch.to_pylist():
            yield row["task_id"], json.loads(row["payload"])


def parse_log_tasks(batches):
    """Step 1: each task's lines (streamed, bounded) through usage_logs.sql `log_events`, one batch at a time;
    then one STATS row: lines read (`line_no`), files read (`log_bytes`), the worker ('host:pid', `log_group`),
    and a `#read:<reason>` row per kind of line dropped while reading."""
    from billing_pipeline.engines.duckdb_engine import scratch_connection

    schema = events_schema()
    for task_id, task in _tasks(batches):
        with task_environment(task["env"]):
            con = scratch_connection()
            try:
                start_parsing(con)
                lines_read = files_read = 0
                dropped = LineCounts()
                for lines, files in _task_lines(task, dropped):
                    offset = pa.scalar(task_id << LINE_NO_BITS, pa.int64())
                    lines = lines.set_column(lines.schema.get_field_index("line_no"), "line_no",
                                             pc.add(lines["line_no"], offset))
                    parse_lines(con, lines)
                    lines_read, files_read = lines_read + lines.num_rows, files_read + files
                    yield from con.sql("SELECT * FROM log_events").to_arrow_table().cast(schema).to_batches()
            finally:
                con.close()
        stats = [(STATS, lines_read, files_read, f"{os.uname().nodename}:{os.getpid()}")]
        stats += [(f"{STATS}:{reason}", count, 0, "") for reason, count in dropped.problems.items()]
        yield _stats_batch(stats, schema)


def _stats_batch(stats: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    columns = {"kind": [s[0] for s in stats], "line_no": [s[1] for s in stats], "log_bytes": [s[2] for s in stats],
               "log_group": [s[3] for s in stats]}
    return pa.RecordBatch.from_arrays(
        [pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(len(stats), f.type) for f in schema],
        schema=schema)


def _task_lines(task: dict, dropped: LineCounts):
    """The task's lines as `log_line_batches` gives them (with `log_group`), and the files each batch started."""
    if "api" in task:
        fields = dict(task["api"])
        fields["log_groups"] = tuple(fields["log_groups"])
        source = CloudWatchLogsSource(**fields)
        lines = source.as_lines(source.read_slice(tuple(task["slice"])))
        yield with_log_groups(lines, list(source.log_groups), exported=False), 0
        return
    location = locate(task["uri"])
    infos = [pafs.FileInfo(path, type=pafs.FileType.File, size=size) for path, size in task["files"]]
    paths = [path for path, _ in task["files"]]
    for lines, files in log_line_tables(location, infos, Limits.from_env(), dropped, LOG_BATCH_BYTES):
        yield with_log_groups(lines, paths), files


def _attribution(period_start: dt.datetime, period_end: dt.datetime):
    def attribute(batches):
        """Step 3: usage_logs.sql's attribution over a batch of lines joined with their request's and session's
        owners; yields the batch's hourly partial sums and its problem counts."""
        from billing_pipeline.engines.duckdb_engine import scratch_connection

        columns = ", ".join(f'"{name}"' for name in events_schema().names)
        params = {"period_start": period_start, "period_end": period_end}
        con = scratch_connection()
        try:
            start_parsing(con)  # the macros the statements use
            for batch in batches:
                if not batch.num_rows:
                    continue
                con.register("joined", batch)
                con.execute(f"CREATE OR REPLACE TEMP TABLE log_events AS SELECT {columns} FROM joined")
                con.execute("""CREATE OR REPLACE TEMP TABLE request_owners AS
                               SELECT DISTINCT request_id, o_accountant_id AS accountant_id, o_owners AS owners
                               FROM joined WHERE o_owners IS NOT NULL""")
                # every session a line names, for its owner; its start (the `sessions` row) only where the start
                # line is in this batch, so that a session counts once however many batches name it
                con.execute("""CREATE OR REPLACE TEMP TABLE agent_sessions AS
                               SELECT DISTINCT session_id, s_accountant_id AS accountant_id,
                                      CASE WHEN s_start_line_no IN (SELECT line_no FROM joined) THEN s_started_at
                                      END AS started_at, s_start_line_no AS start_line_no
                               FROM joined WHERE s_known""")
                run_statements(con, ATTRIBUTION, params)
                con.unregister("joined")
                usage = con.sql("SELECT *, NULL AS problem, NULL AS lines FROM hourly_usage").to_arrow_table()
                problems = con.sql("""SELECT NULL AS usage_hour, NULL AS service, NULL AS driver, NULL AS scope,
                                             NULL AS accountant_id, NULL AS quantity, problem, lines
                                      FROM log_problems""").to_arrow_table()
                for table in (usage, problems):
                    yield from table.cast(USAGE_PARTS_SCHEMA).to_batches()
        finally:
            con.close()

    return attribute


def read_inventory_tasks(batches):
    """An inventory data file's bytes per (snapshot, client, driver): s3_inventory.read_data_file + client_bytes."""
    for _, task in _tasks(batches):
        with task_environment(task["env"]):
            objects = read_data_file(locate(task["uri"]), task["path"], task["format"], task["schema"],
                                     task["manifest"])
        yield from client_bytes(objects, task["snapshot_id"], task["url_encoded"]).to_batches()


def read_estimate_tasks(batches):
    """A usage-table file's (or request's) items of the month: estimates.estimate_items; a bad line as a row
    carrying the error message (the driver raises the first)."""
    for task_id, task in _tasks(batches):
        with task_environment(task["env"]):
            if "table" in task:
                table = DynamoDBUsageTable(**task["table"])
                items = table.read_request(tuple(task["request"]))
                lines = pa.table({"line": pa.array(items, pa.large_string()),
                                  "file_index": pa.array([task_id] * len(items), pa.int32()),
                                  "line_in_file": pa.array(range(1, len(items) + 1), pa.int64())})
            else:
                location = locate(task["uri"])
                lines = read_lines_of_files(location, [task["path"]], first_file_index=task_id, strict_utf8=True)
        month_items, bad = estimate_items(lines, task["month"])
        if bad:
            file_index, number, problem = bad
            if "table" in task:
                segment = task["request"][1].get("Segment")
                where = (f"{table.display()}: item {number}{'' if segment is None else f' of segment {segment}'} "
                         f"read by {task['how']} {items[number - 1][:300]}")
            else:
                where = f"{location.display(task['path'])}: line {number}"
            row = {name: [None] for name in ESTIMATES_SCHEMA.names} | {
                "file_index": [file_index], "line_in_file": [number], "bad": [f"{where}: {problem}"]}
            yield pa.table(row, schema=ESTIMATE_PARTS_SCHEMA).to_batches()[0]
            continue
        extra = {"file_index": pa.nulls(month_items.num_rows, pa.int64()),
                 "line_in_file": pa.nulls(month_items.num_rows, pa.int64()),
                 "bad": pa.nulls(month_items.num_rows, pa.string())}
        for name, column in extra.items():
            month_items = month_items.append_column(name, column)
        yield from month_items.cast(ESTIMATE_PARTS_SCHEMA).to_batches()
