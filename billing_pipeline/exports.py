"""Exports for people and other systems: a month's table as CSV and Parquet under BILLING_EXPORT_URI.

File names are fixed per table and month, `<export>/<table>/<table>-YYYY-MM.csv` and `.parquet`, so a re-run
(or a restated month) overwrites the same two files. Local files are written beside the target and renamed into
place; an S3 object is written with one PutObject, so it appears whole.

CSV is opened by spreadsheets, which run a cell starting with `=`, `+`, `-`, `@`, tab or carriage return as a
formula (CSV/formula injection, OWASP). Text cells that start so get a leading single quote. Numeric columns
(money, quantities, percentages) are written as plain decimal numbers and never prefixed: a credit stays `-1.25`.
Parquet keeps the exact types (DECIMAL money, DATE, BOOLEAN) and the text as it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing_pipeline.formatting import csv_value
from billing_pipeline.sql import arrow_schema  # noqa: F401  (the outputs' schemas, re-exported for the assets)
from billing_pipeline.storage import Location, write_whole

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def month_table(con, table: str, billing_period: dt.date, order_by: str) -> pa.Table:
    """The month's rows of a warehouse table as Arrow, exact types (through the engine interface: fetchall)."""
    schema = arrow_schema(table)
    columns = ", ".join(f'"{name}"' for name in schema.names)
    rows = con.execute(f"SELECT {columns} FROM {table} WHERE billing_period = ? ORDER BY {order_by}",
                       [billing_period]).fetchall()
    return pa.Table.from_pylist([dict(zip(schema.names, row)) for row in rows], schema=schema)


def safe_text(value: str) -> str:
    """A text cell that no spreadsheet evaluates as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _cell(value: Any, text: bool) -> str:
    """A text cell made safe; any other through formatting.csv_value (exact plain decimals, '' for NULL or NaN)."""
    if text and value is not None:
        return safe_text(str(value))
    return csv_value(value)


def to_csv(table: pa.Table) -> bytes:
    """The table as CSV (header row, RFC 4180 quoting, UTF-8), safe against formula injection."""
    text_columns = [_is_text(field.type) for field in table.schema]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_text(name) for name in table.column_names])
    for row in zip(*(column.to_pylist() for column in table.columns)):
        writer.writerow([_cell(value, text) for value, text in zip(row, text_columns)])
    return out.getvalue().encode("utf-8")


def to_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def export_paths(location: Location, name: str, billing_period: dt.date) -> dict[str, str]:
    """The deterministic paths of a table's month: {'csv': ..., 'parquet': ...} inside the location's filesystem."""
    stem = location.join(name, f"{name}-{billing_period:%Y-%m}")
    return {"csv": stem + ".csv", "parquet": stem + ".parquet"}


def write_exports(location: Location, name: str, billing_period: dt.date, table: pa.Table) -> list[str]:
    """Write the month's rows of `name` as CSV and Parquet, replacing earlier files; returns the URIs written."""
    paths = export_paths(location, name, billing_period)
    write_whole(location, paths["csv"], to_csv(table))
    write_whole(location, paths["parquet"], to_parquet(table))
    return [location.display(paths["csv"]), location.display(paths["parquet"])]
