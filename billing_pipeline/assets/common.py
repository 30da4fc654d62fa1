"""What every stage shares: its SQL file, the month it works on, and readable metadata."""


import datetime as dt
from decimal import Decimal

import duckdb
from dagster import AssetExecutionContext, MetadataValue

from billing_pipeline.formatting import markdown_table, money, percent, quantity, text
from billing_pipeline.sql import read_sql


PREVIEW_ROWS = 20


def stage_sql(name: str) -> str:
    """The SQL of a stage, kept beside its module as `<name>.sql`."""
    return read_sql("billing_pipeline.assets", f"{name}.sql")


def month_of(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The partition's billing period and the first day of the month after it (its time window, in UTC)."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


MONEY_NAMES = ("actual", "estimated", "forecast", "low", "high")  # month_to_date's sums


def cell_format(column: str):
    """How a summary column reads (formatting.py): money when its name says cost (in the row's currency), a
    percentage for *_pct, any other number as a quantity; text and dates as they are, NULL as —."""
    if "cost" in column or column in MONEY_NAMES:
        return lambda row: money(row[column], row.get("currency"))
    if column.endswith("_pct"):
        return lambda row: percent(row[column], signed=True)
    return lambda row: (quantity(row[column]) if isinstance(row[column], (int, float, Decimal))
                        and not isinstance(row[column], bool) else text(row[column]))


def markdown(con: duckdb.DuckDBPyConnection, sql: str, params=None, limit: int = PREVIEW_ROWS) -> MetadataValue:
    """A query's first rows as a markdown table for the Dagster UI, in the one number format (fetched as Decimals:
    pandas would turn money into floats and NULL into nan)."""
    result = con.execute(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", params or {})
    description = getattr(result, "description", None)  # DuckDB; a Spark result carries its frame's columns
    columns = [d[0] for d in description] if description else list(result.frame.columns)
    rows = result.fetchall()
    numeric = {c for i, c in enumerate(columns)
               if any(isinstance(r[i], (int, float, Decimal)) and not isinstance(r[i], bool) for r in rows)}
    return MetadataValue.md(markdown_table(columns, rows, {c: cell_format(c) for c in columns}, right=numeric))


def as_float(value: Decimal | None) -> float:
    """Numeric metadata for Dagster's plots (the exact value is in the table and the markdown)."""
    return float(value or 0)


def cur_is_final(con, period: dt.date) -> bool:
    """Whether the month's CUR in the warehouse is final (AWS has put an invoice id on it)."""
    ((is_final,),) = con.execute(
        "SELECT coalesce(bool_or(invoice_id IS NOT NULL), false) FROM cur_line_items WHERE billing_period = ?", [period]
    ).fetchall()
    return bool(is_final)
