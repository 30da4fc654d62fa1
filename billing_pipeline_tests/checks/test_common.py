"""checks/common.py: the no-duplicates checks every stage shares."""

from __future__ import annotations

import datetime as dt

import duckdb

from billing_pipeline.checks.common import written_once_check
from billing_pipeline.engines.duckdb_engine import DuckDBEngine

JANUARY = dt.date(2026, 1, 1)


def test_written_once_passes_for_a_replaced_month_and_fails_for_a_doubled_one():
    engine = DuckDBEngine(duckdb.connect())
    engine.execute("CREATE TABLE facts (billing_period DATE, x INTEGER)")
    month = "SELECT DATE '2026-01-01' AS billing_period, range AS x FROM range(3)"
    for _ in range(2):  # a re-run replaces the month
        written = engine.replace_month_with_query("facts", JANUARY, month)
    assert written == 3
    check = written_once_check(engine, "facts", JANUARY, written, ["x"])
    assert check.passed and check.metadata["rows_held"].value == 3

    engine.execute(f"INSERT INTO facts {month}")  # what a broken replace would leave behind
    check = written_once_check(engine, "facts", JANUARY, written, ["x"])
    assert not check.passed
    assert (check.metadata["rows_written"].value, check.metadata["rows_held"].value) == (3, 6)
    assert check.metadata["duplicate_keys"].value.splitlines()[2:] == [
        "| 0   | 2        |", "| 1   | 2        |", "| 2   | 2        |"]
