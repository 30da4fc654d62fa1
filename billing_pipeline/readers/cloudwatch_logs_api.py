"""Usage evidence read straight from CloudWatch Logs log groups, for teams that do not export their logs.

`BILLING_LOGS_URI=cloudwatch://<log-group>[,<log-group>...][?option=value&...]`, for example
`cloudwatch:///aws/lambda/tax-agent,/aws/bedrock-agentcore/runtimes/tax-agent?api=filter` (a log group name that
starts with `/` gives three slashes; names may be percent-encoded). Options:

- `api=insights` (default): Logs Insights `StartQuery` with `fields @timestamp, @message | sort @timestamp asc |
  limit 10000`, polled with `GetQueryResults` until `Complete` (`Failed`, `Cancelled`, `Timeout`, `Unknown` ->
  ValueError naming the log groups, the window and the query id). Insights returns at most 10,000 rows per query,
  so the month is read in windows (`window_hours`, default 24) and a window that comes back full is split: its
  complete seconds are kept and the rest of it is queried again from the last second returned. More than 10,000
  events within one second cannot be split further and is an error (use `api=filter`).
- `api=filter`: `FilterLogEvents`, every page (nextToken), one log group at a time.
- `margin_minutes` (default 60): also read this long before and after the month, so that a Lambda REPORT just
  after midnight of the 1st still finds the application line naming its tenant (the same as an export that
  contains lines of neighbouring days). Lines outside the month are never evidence themselves.
- `page_size` (api=filter: events per page, at most 10,000), `window_hours` (api=insights).

The query only asks for `@timestamp` and `@message`: all recognition and aggregation happen in the pipeline's SQL
(`usage_logs.sql`). Each event is rendered exactly as a CloudWatch Logs export writes it,
`<YYYY-MM-DDTHH:MM:SS.mmmZ> <message>` (a message with line breaks gives several lines, as in an export), and
split by the same function as exported files, so an API read and an export of the same events give identical
evidence. Credentials, region and endpoint (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`) come from the
standard AWS environment; `AWS_REGION` is honoured.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

import boto3
import numpy as np
import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from billing_pipeline.readers.usage_files import split_lines

SCHEME = "cloudwatch://"
APIS = ("insights", "filter")
INSIGHTS_MAX_ROWS = 10_000
INSIGHTS_MAX_GROUPS = 50  # StartQuery accepts at most 50 log groups
QUERY = "fields @timestamp, @message | sort @timestamp asc | limit {limit}"
DONE_OK = "Complete"
DONE_BAD = ("Failed", "Cancelled", "Timeout", "Unknown")
EPOCH = dt.datetime(1970, 1, 1)


def is_cloudwatch_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


@dataclass(frozen=True)
class CloudWatchLogsSource:
    """Log groups read through the CloudWatch Logs API (see the module docstring)."""

    log_groups: tuple[str, ...]
    api: str = "insights"
    margin_minutes: int = 60
    window_hours: int = 24
    page_size: int | None = None
    insights_limit: int = INSIGHTS_MAX_ROWS
    poll_seconds: float = 0.2  # first poll interval; doubles up to 2 s
    query_timeout_seconds: float = 900.0
    workers: int = 4  # Insights queries in flight at once (the account's limit is 30)
    uri: str = ""

    def display(self) -> str:
        return self.uri or SCHEME + ",".join(self.log_groups)

    def read_log_lines(self, period_start: dt.datetime, period_end: dt.datetime) -> pa.Table:
        """The events of [period_start - margin, period_end + margin) as export lines, in the table shape of
        `usage_files.read_lines_of_files` (`line`, `line_no`, `file_index` = log group, `line_in_file`)."""
        jobs = self.slices(period_start, period_end, split_filter=False)
        client = logs_client()
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(jobs)))) as pool:
            futures = [pool.submit(self.read_slice, job, client) for job in jobs]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:  # the first error ends the read: no more queries
                    future.cancel()
                raise
        return self.as_lines([event for events in results for event in events])

    def slices(self, period_start: dt.datetime, period_end: dt.datetime,
               split_filter: bool = True) -> list[tuple[int, int, int]]:
        """The read split into independent jobs `(group batch or group index, start_ms, end_ms)`: Insights windows
        of `window_hours` per batch of at most 50 groups; FilterLogEvents one per group, or per group and window
        when `split_filter` (Spark's executors read them in parallel)."""
        margin = dt.timedelta(minutes=self.margin_minutes)
        start_ms, end_ms = _ms(period_start - margin), _ms(period_end + margin)
        step = self.window_hours * 3_600_000
        windows = [(a, min(a + step, end_ms)) for a in range(start_ms, end_ms, step)]
        if self.api == "filter":
            return [(g, *w) for g in range(len(self.log_groups)) for w in (windows if split_filter else [(start_ms, end_ms)])]
        batches = range(0, -(-len(self.log_groups) // INSIGHTS_MAX_GROUPS))
        return [(b, *w) for b in batches for w in windows]

    def read_slice(self, job: tuple[int, int, int], client=None) -> list[tuple[int, tuple[int, str]]]:
        """One job of `slices`: its events as (group index, (timestamp ms, message))."""
        client = client or logs_client()
        index, start_ms, end_ms = job
        if self.api == "filter":
            return [(index, e) for e in self._filter(client, self.log_groups[index], start_ms, end_ms)]
        groups = self.log_groups[index * INSIGHTS_MAX_GROUPS : (index + 1) * INSIGHTS_MAX_GROUPS]
        # Insights does not say which group an event came from unless asked; the SQL does not need it.
        return [(0, e) for e in self._insights_window(client, groups, start_ms, end_ms)]

    def as_lines(self, events: list[tuple[int, tuple[int, str]]]) -> pa.Table:
        return _as_lines(events, len(self.log_groups))

    # FilterLogEvents -------------------------------------------------------------------------------------------

    def _filter(self, client, group: str, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
        pages = client.get_paginator("filter_log_events").paginate(
            logGroupName=group, startTime=start_ms, endTime=end_ms - 1,  # endTime is inclusive
            PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
        )
        events = []
        try:
            for page in pages:
                events.extend((e["timestamp"], e["message"]) for e in page.get("events", []))
        except (ClientError, BotoCoreError) as exc:
            raise _error(f"{SCHEME}{group}", exc, "FilterLogEvents") from exc
        return [(t, m) for t, m in events if start_ms <= t < end_ms]

    # Logs Insights ---------------------------------------------------------------------------------------------

    def _insights_window(self, client, groups: tuple[str, ...], start_ms: int, end_ms: int) -> list[tuple[int, str]]:
        """Every event of [start_ms, end_ms) (whole seconds): one query, and when it comes back full, the seconds
        it completed are kept and the rest of the window is queried again (a full window is split)."""
        events: list[tuple[int, str]] = []
        while start_ms < end_ms:
            rows = self._run_query(client, groups, start_ms, end_ms)
            got = sorted((t, m) for t, m in rows if start_ms <= t < end_ms)
            if len(rows) < self.insights_limit:
                events.extend(got)
                break
            # Full: the rows are the earliest `limit` events, so every second before the last one is complete.
            last_second = max(t for t, _ in rows) // 1000 * 1000
            if last_second <= start_ms:
                raise ValueError(
                    f"{SCHEME}{','.join(groups)}: more than {self.insights_limit} events within the second "
                    f"{_iso(start_ms)}: Logs Insights cannot return them all; use ?api=filter"
                )
            events.extend((t, m) for t, m in got if t < last_second)
            start_ms = last_second
        return events

    def _run_query(self, client, groups: tuple[str, ...], start_ms: int, end_ms: int) -> list[tuple[int, str]]:
        where = f"{SCHEME}{','.join(groups)}: Logs Insights query for [{_iso(start_ms)}, {_iso(end_ms)})"
        try:
            query_id = client.start_query(
                logGroupNames=list(groups), startTime=start_ms // 1000, endTime=-(-end_ms // 1000),
                queryString=QUERY.format(limit=self.insights_limit),
            )["queryId"]
            deadline = time.monotonic() + self.query_timeout_seconds
            pause = self.poll_seconds
            while True:
                answer = client.get_query_results(queryId=query_id)
                status = answer.get("status")
                if status == DONE_OK:
                    break
                if status in DONE_BAD:
                    raise ValueError(f"{where}: query {query_id} ended with status {status}")
                if time.monotonic() > deadline:
                    client.stop_query(queryId=query_id)
                    raise ValueError(f"{where}: query {query_id} still {status} after {self.query_timeout_seconds:.0f} s")
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        except (ClientError, BotoCoreError) as exc:
            raise _error(f"{SCHEME}{','.join(groups)}", exc, "Logs Insights") from exc
        rows = []
        for result in answer.get("results", []):
            fields = {f.get("field"): f.get("value") for f in result}
            if fields.get("@timestamp") is None:
                raise ValueError(f"{where}: query {query_id} returned a row without @timestamp: {fields}")
            rows.append((_parse_time(fields["@timestamp"], where), fields.get("@message") or ""))
        return rows


def parse_cloudwatch_uri(uri: str) -> CloudWatchLogsSource:
    """`cloudwatch://<group>[,<group>...][?api=insights|filter&margin_minutes=..&window_hours=..&page_size=..]`."""
    if not is_cloudwatch_uri(uri):
        raise ValueError(f"{uri!r}: not a {SCHEME} URI")
    body, _, query = uri[len(SCHEME) :].partition("?")
    groups = tuple(unquote(g) for g in body.split(",") if g)
    if not groups:
        raise ValueError(f"{uri!r}: names no log group (expected {SCHEME}<log-group>[,<log-group>...])")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"api", "margin_minutes", "window_hours", "page_size"}
    if unknown:
        raise ValueError(f"{uri!r}: unknown option(s) {', '.join(sorted(unknown))} "
                         "(known: api, margin_minutes, window_hours, page_size)")
    api = options.get("api", "insights").lower()
    if api not in APIS:
        raise ValueError(f"{uri!r}: api={api!r}: expected one of {', '.join(APIS)}")

    def number(name: str, default, low: int, high: int):
        if name not in options:
            return default
        try:
            value = int(options[name])
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ValueError(f"{uri!r}: {name}={options[name]!r}: expected a whole number from {low} to {high}")
        return value

    return CloudWatchLogsSource(
        log_groups=groups,
        api=api,
        margin_minutes=number("margin_minutes", 60, 0, 7 * 24 * 60),
        window_hours=number("window_hours", 24, 1, 24 * 31),
        page_size=number("page_size", None, 1, 10_000),
        uri=uri,
    )


def logs_client():
    """A CloudWatch Logs client from the standard AWS environment (endpoint override, region, credentials)."""
    session = boto3.session.Session()
    region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
    return session.client("logs", region_name=region,
                           config=Config(retries={"mode": "standard", "max_attempts": 8}))


def _as_lines(events: list[tuple[int, tuple[int, str]]], groups: int) -> pa.Table:
    """Events rendered as export lines: '<timestamp> <message>' per event, split like an exported file."""
    events = sorted(events)
    chunks, indexes = [], []
    for group in range(groups):
        text = "".join(f"{_iso(t)} {m}\n" for g, (t, m) in events if g == group)
        lines = split_lines(text.encode("utf-8"))
        chunks.append(lines)
        indexes.append(group)
    sizes = [len(c) for c in chunks]
    return pa.table(
        {
            "line": pa.chunked_array(chunks, pa.large_string()),
            "line_no": pa.array(np.arange(sum(sizes), dtype=np.int64)),
            "file_index": pa.array(np.repeat(np.array(indexes, dtype=np.int32), sizes)),
            "line_in_file": pa.array(
                np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in sizes] or [np.array([], np.int64)])
            ),
        }
    )


def _ms(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(milliseconds=1)


def _iso(ms: int) -> str:
    """The timestamp as a CloudWatch Logs export writes it: 2026-01-05T10:00:00.100Z."""
    moment = EPOCH + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str, where: str) -> int:
    """Insights' @timestamp: 'YYYY-MM-DD HH:MM:SS.mmm' (UTC) from AWS, epoch milliseconds from some stand-ins."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: unreadable @timestamp {value!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return _ms(moment)


def _error(source: str, exc: Exception, api: str) -> ValueError:
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code == "ResourceNotFoundException":
        return ValueError(f"{source}: log group not found ({api}: {exc})")
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return ValueError(f"{source}: not allowed to read the log group ({api}: {exc})")
    return ValueError(f"{source}: {api} call failed ({exc})")
