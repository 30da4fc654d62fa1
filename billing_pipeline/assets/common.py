"""What every stage shares: its SQL file, the month it works on, and readable metadata."""


import datetime as dt
from decimal import Decimal

import duckdb
from dagster import AssetExecutionContext, MetadataValue

from billing_pipeline.sql import read_sql


PREVIEW_ROWS = 20


def stage_sql(name: str) -> str:
    """The SQL of a stage, kept beside its module as `<name>.sql`."""
    return read_sql("billing_pipeline.assets", f"{name}.sql")


def month_of(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The partition's billing period and the first day of the month after it (its time window, in UTC)."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def markdown(con: duckdb.DuckDBPyConnection, sql: str, params=None, limit: int = PREVIEW_ROWS) -> MetadataValue:
    """A query's first rows as a markdown table for the Dagster UI (money shown exactly, as stored)."""
    frame = con.execute(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", params or {}).df()
    if frame.empty:
        return MetadataValue.md("_no rows_")
    return MetadataValue.md(frame.to_markdown(index=False, floatfmt=".6f"))


def as_float(value: Decimal | None) -> float:
    """Numeric metadata for Dagster's plots (the exact value is in the table and the markdown)."""
    return float(value or 0)


def cur_is_final(con, period: dt.date) -> bool:
    """Whether the month's CUR in the warehouse is final (AWS has put an invoice id on it)."""
    ((is_final,),) = con.execute(
        "SELECT coalesce(bool_or(invoice_id IS NOT NULL), false) FROM cur_line_items WHERE billing_period = ?", [period]
    ).fetchall()
    return bool(is_final)
