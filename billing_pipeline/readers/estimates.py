"""The application's own cost estimates: the usage table (DynamoDB `tax-agent-usage`), DESIGN.md Inputs 5.

Accepted files under the location (any depth):

- JSON Lines (`*.jsonl`, `*.ndjson`, `*.json`, each optionally `.gz`), one item per line:
      {"accountant_id": "acc-1", "timestamp": "2026-01-05T10:00:00Z", "month": "2026-01", "operation": "compute_tax",
       "resource_type": "lambda", "quantity": 1.5, "unit_cost": 0.0000166667, "estimated_cost": 0.000025}
- DynamoDB exports (ExportTableToPointInTime, DYNAMODB_JSON): `.../AWSDynamoDB/<export id>/data/*.json.gz`, lines
      {"Item": {"accountant_id": {"S": "acc-1"}, "quantity": {"N": "1.5"}, ...}}
  The export's manifest files are not items. When a folder holds several full exports of one table (a daily
  export job), only the newest (`exportTime` of its `manifest-summary.json`) is read, so items are not counted
  once per export; incremental exports are skipped (they are changes, not items). AWS writes the summary
  last: an export folder without one (still running) is never read, only counted (`unfinished_exports`), and
  is an error when no finished full export lies beside it.
- One copy of the table: items carry no key to tell a copy from a second item, so two copies under one location
  fail the run naming both, never summed: JSON Lines files beside a full export that is read (a JSONL copy of
  the table left beside its export; an incremental or unfinished export, not read, is no copy), and a file
  beside its compressed copy (`x.jsonl` and `x.jsonl.gz`, also an export's `data/*.json` beside its `.json.gz`).
- The live table, `dynamodb://<table>[?index=<gsi>|none&page_size=<n>]`: Query on a `month` GSI or Scan
  (`usage_table_dynamodb.py`); its items take the same SQL as an export's lines.

Fields: `accountant_id` (required), `timestamp` (required: ISO-8601, UTC when no offset, or epoch seconds/ms),
`month` (`YYYY-MM`; from the timestamp when absent), `operation`, `resource_type`, `quantity`, `unit_cost`,
`estimated_cost` (required, or quantity x unit_cost when absent). Numbers may be JSON numbers or strings; they
become DECIMAL(38, 10). An item belongs to the month of its timestamp in UTC (the billing month its cost is in),
whatever its `month` says; items of another month are skipped. A line that is not a JSON object, lacks a required
field, has a number that does not read (`NaN`, `abc`) or a month that is not `YYYY-MM` (`2026-1`) makes the file
malformed, and so does invalid UTF-8 (ids and money are not guessed): ValueError naming the file and the line.
"""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa

from billing_pipeline.readers.s3_inventory import month_bounds
from billing_pipeline.engines.duckdb_engine import scratch_connection
from billing_pipeline.readers.usage_files import read_lines_of_files
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable
from billing_pipeline.sql import named_statements
from billing_pipeline.storage import Location, optional_text, read_manifest_json

ESTIMATES_SCHEMA = pa.schema(
    [
        ("accountant_id", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("month", pa.string()),
        ("operation", pa.string()),
        ("resource_type", pa.string()),
        ("quantity", pa.decimal128(38, 10)),
        ("unit_cost", pa.decimal128(38, 10)),
        ("estimated_cost", pa.decimal128(38, 10)),
    ]
)

ITEM_FILE = re.compile(r"\.(jsonl|ndjson|json)(\.gz)?$")
DYNAMODB_EXPORT = re.compile(r"^(.*/AWSDynamoDB/[^/]+)/(.*)$")

ESTIMATES_SQL = """
-- One item per non-empty line: a plain JSON object, or a DynamoDB-JSON {"Item": {field: {"S"|"N": ...}}}.
CREATE OR REPLACE TEMP MACRO field(plain, typed) AS coalesce(typed.S, typed.N, plain);
CREATE OR REPLACE TEMP MACRO epoch_or_iso(text) AS CASE
    WHEN regexp_full_match(text, '[0-9]+(\\.[0-9]+)?')
        THEN timezone('UTC', to_timestamp(CASE WHEN text::DOUBLE > 1e11 THEN text::DOUBLE / 1000 ELSE text::DOUBLE END))
    ELSE timezone('UTC', try_cast(text AS TIMESTAMPTZ))
END;
CREATE OR REPLACE TEMP TABLE estimate_items AS
WITH lines AS (
    SELECT file_index, line_in_file, trim(line) AS line FROM estimate_lines WHERE trim(line) <> ''
),
documents AS (
    SELECT file_index, line_in_file, starts_with(line, '{') AND json_valid(line) AS valid,
           CASE WHEN starts_with(line, '{') AND json_valid(line) THEN json_transform(line, '{
               "accountant_id": "VARCHAR", "timestamp": "VARCHAR", "month": "VARCHAR", "operation": "VARCHAR",
               "resource_type": "VARCHAR", "quantity": "VARCHAR", "unit_cost": "VARCHAR", "estimated_cost": "VARCHAR",
               "source": "VARCHAR",
               "Item": {
                   "source": {"S": "VARCHAR"},
                   "accountant_id": {"S": "VARCHAR", "N": "VARCHAR"}, "timestamp": {"S": "VARCHAR", "N": "VARCHAR"},
                   "month": {"S": "VARCHAR", "N": "VARCHAR"}, "operation": {"S": "VARCHAR", "N": "VARCHAR"},
                   "resource_type": {"S": "VARCHAR", "N": "VARCHAR"}, "quantity": {"S": "VARCHAR", "N": "VARCHAR"},
                   "unit_cost": {"S": "VARCHAR", "N": "VARCHAR"}, "estimated_cost": {"S": "VARCHAR", "N": "VARCHAR"}}
           }') END AS d
    FROM lines
),
fields AS (
    SELECT
        file_index,
        line_in_file,
        valid,
        field(d.accountant_id, d.Item.accountant_id) AS accountant_id,
        field(d.timestamp, d.Item.timestamp) AS timestamp_text,
        field(d.month, d.Item.month) AS month_text,
        field(d.operation, d.Item.operation) AS operation,
        field(d.resource_type, d.Item.resource_type) AS resource_type,
        field(d.quantity, d.Item.quantity) AS quantity_text,
        field(d.unit_cost, d.Item.unit_cost) AS unit_cost_text,
        field(d.estimated_cost, d.Item.estimated_cost) AS estimated_cost_text,
        coalesce(d.Item.source.S, d.source) AS source
    FROM documents
)
SELECT
    *,
    epoch_or_iso(timestamp_text) AS timestamp,
    try_cast(quantity_text AS DECIMAL(38, 10)) AS quantity,
    try_cast(unit_cost_text AS DECIMAL(38, 10)) AS unit_cost,
    -- quantity x unit_cost only when there is no estimated_cost: one that does not read ('NaN') is a bad line
    CASE WHEN estimated_cost_text IS NULL
         THEN CAST(try_cast(quantity_text AS DECIMAL(38, 10)) * try_cast(unit_cost_text AS DECIMAL(38, 10))
                   AS DECIMAL(38, 10))
         ELSE try_cast(estimated_cost_text AS DECIMAL(38, 10)) END AS estimated_cost
FROM fields
-- the actual costs this pipeline writes back into the same table are not estimates
WHERE coalesce(source, '') <> 'cur';

-- name: first_bad_line
SELECT file_index, line_in_file,
    CASE WHEN NOT valid THEN 'not a JSON object'
         WHEN coalesce(accountant_id, '') = '' THEN 'no accountant_id'
         WHEN timestamp IS NULL THEN 'no readable timestamp'
         WHEN month_text IS NOT NULL AND NOT regexp_full_match(month_text, '[0-9]{4}-(0[1-9]|1[0-2])')
             THEN 'month is not YYYY-MM'
         WHEN quantity_text IS NOT NULL AND quantity IS NULL THEN 'quantity is not a number'
         WHEN unit_cost_text IS NOT NULL AND unit_cost IS NULL THEN 'unit_cost is not a number'
         WHEN estimated_cost_text IS NOT NULL AND estimated_cost IS NULL THEN 'estimated_cost is not a number'
         WHEN estimated_cost IS NULL THEN 'no estimated_cost (nor quantity and unit_cost)'
    END AS problem
FROM estimate_items
WHERE problem IS NOT NULL
ORDER BY file_index, line_in_file
LIMIT 1;

-- name: month_items
SELECT
    accountant_id,
    timestamp,
    coalesce(left(month_text, 7), strftime(timestamp, '%Y-%m')) AS month,
    operation,
    resource_type,
    quantity,
    unit_cost,
    estimated_cost
FROM estimate_items
-- the month of the item's instant in UTC, as the CUR dates the cost (estimated_usage keeps the same hours): an
-- item whose `month` says otherwise (the application's local month, `2026-01-31T20:00:00-08:00` in '2026-01')
-- was read for its `month` and then dropped there by its timestamp, and so counted in no month at all
WHERE strftime(timestamp, '%Y-%m') = $month
ORDER BY timestamp, accountant_id, file_index, line_in_file;
"""


def read_estimates(location: Location | DynamoDBUsageTable, billing_period: dt.date,
                   paths: list[str] | None = None) -> pa.Table:
    """The application's usage-table items for the month (ESTIMATES_SCHEMA); see the module docstring. `location`
    is a folder / S3 prefix of files, or the live table (`usage_table_dynamodb.DynamoDBUsageTable`), whose items
    take the same SQL as an export's lines. `paths`: the folder's item files as the caller listed them
    (usage_table_files), so that what it reports as left out is what was not read; default: listed here."""
    period_start, _ = month_bounds(billing_period)
    if isinstance(location, DynamoDBUsageTable):
        items, how = location.read_item_lines(period_start.strftime("%Y-%m"))
        lines = pa.table({"line": pa.array(items, pa.large_string()),
                          "file_index": pa.array([0] * len(items), pa.int32()),
                          "line_in_file": pa.array(range(1, len(items) + 1), pa.int64())})
        where = lambda _, n: f"{location.display()}: item {n} read by {how} {items[n - 1][:300]}"  # noqa: E731
    else:
        paths = item_files(location) if paths is None else paths
        lines = read_lines_of_files(location, paths, strict_utf8=True)  # ids and money as written, or an error
        where = lambda i, n: f"{location.display(paths[i])}: line {n}"  # noqa: E731
    month_items, bad = estimate_items(lines, period_start.strftime("%Y-%m"))
    if bad:
        file_index, line_in_file, problem = bad
        raise ValueError(f"{where(file_index, line_in_file)}: {problem}")
    return month_items


def estimate_items(lines: pa.Table, month: str) -> tuple[pa.Table, tuple[int, int, str] | None]:
    """ESTIMATES_SQL over `lines` (`line`, `file_index`, `line_in_file`): the items of `month` (ESTIMATES_SCHEMA)
    and the first bad line as (file_index, line_in_file, problem), or None. On the driver for DuckDB, on Spark's
    executors for their share of the files (readers/evidence_spark.py)."""
    statements = dict(named_statements(ESTIMATES_SQL, preamble="items"))
    con = scratch_connection()
    try:
        con.register("estimate_lines", lines)
        con.execute(statements["items"])
        bad = con.execute(statements["first_bad_line"]).fetchall()
        items = con.sql(statements["month_items"], params={"month": month}).to_arrow_table()
    finally:
        con.close()
    return items.cast(ESTIMATES_SCHEMA), (bad[0] if bad else None)


def item_files(location: Location) -> list[str]:
    """The files holding items: JSON Lines anywhere, and the data files of the newest full export per table."""
    return usage_table_files(location)[0]


def usage_table_files(location: Location) -> tuple[list[str], list[str]]:
    """(item files, unfinished exports). AWS writes an export's `manifest-summary.json` last, so a folder without
    one is an export still running (or one that failed): its data files are some of the table's items, never read.
    It is left out when a finished full export lies beside it (same folder above `AWSDynamoDB/`; the summary is
    what names the table); with none, nothing says which items are complete: ValueError naming the folder.
    Two copies of the same items are a ValueError naming both: item files beside a full export that is read, and
    a file beside its compressed copy (`x.jsonl` and `x.jsonl.gz`)."""
    files = [info.path for info in location.list_files()]
    plain, exports = [], {}
    for path in files:
        export = DYNAMODB_EXPORT.match(path)
        if export:
            exports.setdefault(export.group(1), []).append(export.group(2))
        elif ITEM_FILE.search(path):
            plain.append(path)

    newest: dict[str, tuple[tuple[dt.datetime, str], str]] = {}  # table -> ((export time, folder), export folder)
    finished_under: set[str] = set()  # folders holding AWSDynamoDB/ with a finished full export
    unfinished = []
    for folder, names in exports.items():
        if "manifest-summary.json" not in names:
            unfinished.append(folder)
            continue
        summary_path = f"{folder}/manifest-summary.json"
        try:
            summary = read_manifest_json(location, summary_path)
        except ValueError as exc:
            raise ValueError(f"{location.display(summary_path)}: not a readable export manifest ({exc})") from exc
        if summary.get("exportType", "FULL_EXPORT") != "FULL_EXPORT":
            continue
        finished_under.add(_export_prefix(folder))
        name = location.display(summary_path)
        table = optional_text(summary, "tableArn", name) or folder
        # the newest by time, not by text ('10:00:00.500Z' sorts before '10:00:00Z'); ties: the later export id
        exported_at = (_export_time(summary, name) or dt.datetime.min.replace(tzinfo=dt.timezone.utc), folder)
        if table not in newest or exported_at > newest[table][0]:
            newest[table] = (exported_at, folder)
    alone = [folder for folder in unfinished if _export_prefix(folder) not in finished_under]
    if alone:
        raise ValueError(f"{location.display(alone[0])}: DynamoDB export without manifest-summary.json (AWS writes it "
                         "last: the export is still running, or failed) and no finished full export beside it: "
                         "its items may be incomplete; wait for the export to finish, or remove the folder")
    chosen = []
    for _, folder in newest.values():
        chosen.extend(f"{folder}/{n}" for n in exports[folder] if n.startswith("data/") and ITEM_FILE.search(n))
    # Items carry no key to tell a copy from a second item: two copies of the table under one location are an
    # error naming both, never summed (as two reports of one month are for the CUR)
    if plain and newest:
        more = f" (and {len(plain) - 1} more item file{'s' if len(plain) > 2 else ''})" if len(plain) > 1 else ""
        raise ValueError(f"{location.display(plain[0])}{more} and the DynamoDB export "
                         f"{location.display(min(folder for _, folder in newest.values()))}: two sources of the "
                         "usage table under one location, whose items would count twice; keep one of them")
    files = sorted(plain + chosen)
    compressed = {path.removesuffix(".gz"): path for path in files if path.endswith(".gz")}
    for path in files:
        if path in compressed:  # `x.jsonl` left beside `x.jsonl.gz`: the same items
            raise ValueError(f"{location.display(path)} and {location.display(compressed[path])}: the same file, "
                             "plain and compressed: its items would count twice; remove one of them")
    return files, sorted(unfinished)


def _export_time(summary: dict, name: str) -> dt.datetime | None:
    """A summary's `exportTime` (else `endTime`) as an instant: AWS writes ISO 8601 in UTC
    ('2026-01-20T10:00:00.000Z'); a time without a zone is read as UTC; one that does not read fails naming the
    summary (which export is the newest decides which items are read)."""
    for field in ("exportTime", "endTime"):
        text = optional_text(summary, field, name)
        if text:
            try:
                at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(f"{name}: {field} {text!r} is not an ISO 8601 time") from None
            return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
    return None


def _export_prefix(folder: str) -> str:
    """`<prefix>/AWSDynamoDB/<export id>` -> `<prefix>`, where an export job writes every export of its table."""
    return folder.rsplit("/AWSDynamoDB/", 1)[0]
