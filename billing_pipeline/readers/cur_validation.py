"""Checks a month of line items must pass before it replaces the month: run inside the replacing transaction
(DuckDB) or on the staged delivery before the partition is overwritten (Spark), so that a month that cannot be
summed fails naming its file and line item and leaves every table as it was.

Why sums of absolute values: every later stage sums subsets of the month (facts per hour, tenant costs per day,
totals per currency). If the month's sum of |x| fits DECIMAL(38, 10), every subset sum fits too, so no later
stage can overflow on the line items' money; one that does not fit is a bad delivery (two line items of 9.99e27
already overflow), not an error to meet halfway through the chain.
"""

from __future__ import annotations

import datetime as dt

from billing_pipeline.readers.cur_types import CurFormatError

# The numeric columns later stages sum.
SUMMED = ("unblended_cost", "amortized_cost", "net_amortized_cost", "usage_amount")
LIMIT = 1e28  # DECIMAL(38, 10) holds |x| < 1e28
# Summed as DOUBLE (which cannot overflow, and an exact sum that did would abort the transaction before we could
# say where): a margin far above the double's rounding keeps every exact sum below LIMIT.
MARGIN = 0.999


def validate_line_items(engine, table: str, period: dt.date) -> None:
    """CurFormatError naming the file and the line item when the month's numbers cannot be summed exactly."""
    doubles = ", ".join(f"sum(abs(CAST({c} AS DOUBLE)))" for c in SUMMED)
    totals = engine.execute(f"SELECT {doubles} FROM {table} WHERE billing_period = ?", [period]).fetchall()[0]
    column, total = max(zip(SUMMED, totals), key=lambda pair: pair[1] or 0)
    if (total or 0) < LIMIT * MARGIN:
        return
    source_file, line_item_id, usage_start, value = engine.execute(
        f"""SELECT source_file, line_item_id, usage_start, CAST({column} AS VARCHAR) FROM {table}
            WHERE billing_period = ? ORDER BY abs(CAST({column} AS DOUBLE)) DESC, source_file, line_item_id LIMIT 1""",
        [period],
    ).fetchall()[0]
    raise CurFormatError(
        f"{source_file}: line item {line_item_id or '(no identity/LineItemId)'} starting {usage_start} has "
        f"{column} {value}; the {period:%Y-%m} line items' {column} add up to about {total:.4g}, beyond what "
        f"DECIMAL(38, 10) holds (1e28), so the month cannot be summed (nothing was replaced)")
