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
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from billing_pipeline.resources.warehouse import warehouse_ddl
from billing_pipeline.storage import Location, write_whole

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


ARROW_TYPES = {
    exp.DataType.Type.VARCHAR: pa.string(),
    exp.DataType.Type.TEXT: pa.string(),
    exp.DataType.Type.DATE: pa.date32(),
    exp.DataType.Type.BOOLEAN: pa.bool_(),
    exp.DataType.Type.INT: pa.int32(),
    exp.DataType.Type.BIGINT: pa.int64(),
    exp.DataType.Type.DOUBLE: pa.float64(),
    exp.DataType.Type.TIMESTAMP: pa.timestamp("us"),
    exp.DataType.Type.TIMESTAMPNTZ: pa.timestamp("us"),  # how sqlglot reads DuckDB's TIMESTAMP
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a warehouse table, from its CREATE TABLE (warehouse*.sql): money stays DECIMAL."""
    for statement in sqlglot.parse(warehouse_ddl(), read="duckdb"):
        if isinstance(statement, exp.Create) and isinstance(statement.this, exp.Schema) \
                and statement.this.this.name == table:
            fields = []
            for column in statement.this.expressions:
                if not isinstance(column, exp.ColumnDef):
                    continue
                kind = column.args["kind"]
                if kind.this == exp.DataType.Type.DECIMAL:
                    precision, scale = (int(e.name) for e in kind.expressions)
                    fields.append(pa.field(column.name, pa.decimal128(precision, scale)))
                else:
                    fields.append(pa.field(column.name, ARROW_TYPES[kind.this]))
            return pa.schema(fields)
    raise KeyError(f"no table {table} in the warehouse DDL")


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
    if value is None:
        return ""
    if text:
        return safe_text(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


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
