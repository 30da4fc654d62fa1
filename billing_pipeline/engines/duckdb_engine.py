"""The embedded default: the stage SQL runs as written, on one DuckDB connection to the warehouse file."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import Any, Callable

import duckdb
import pyarrow as pa


def duckdb_limits(memory_limit: str | None = None, threads: int | str | None = None) -> dict:
    """DuckDB settings bounding its share of the machine: BILLING_DUCKDB_MEMORY_LIMIT / BILLING_DUCKDB_THREADS
    unless given; DuckDB's own defaults where neither is set."""
    config: dict = {}
    memory_limit = memory_limit or os.environ.get("BILLING_DUCKDB_MEMORY_LIMIT")
    if memory_limit:
        config["memory_limit"] = memory_limit
    threads = threads or os.environ.get("BILLING_DUCKDB_THREADS")
    if threads:
        config["threads"] = int(threads)
    return config


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for the readers' parsing, bounded like the warehouse and spilling to the system's
    temporary folder, so reading a month's logs cannot take more memory than the warehouse may."""
    con = duckdb.connect(config={**duckdb_limits(), "temp_directory": os.path.join(tempfile.gettempdir(), "billing_pipeline_duckdb")})
    con.execute("SET TimeZone = 'UTC'")
    return con


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, sql: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def stage(self, name: str, sql: str, params: Any = None) -> None:
        self.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params)

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def replace_month(self, table: str, billing_period: dt.date, staged: str,
                      verify: Callable[[str], Any] | None = None) -> int:
        return self.replace_month_with_query(table, billing_period, f"SELECT * FROM {staged}", verify=verify)

    def replace_month_with_query(self, table: str, billing_period: dt.date, sql: str, params: Any = None,
                                 verify: Callable[[str], Any] | None = None) -> int:
        return self.replace_month_with_slices(table, billing_period, sql, [params], verify)

    def replace_month_with_slices(self, table: str, billing_period: dt.date, sql: str, slices: list[Any],
                                  verify: Callable[[str], Any] | None = None) -> int:
        """The month's rows become those of `sql` run once per parameter set, each an INSERT of its own inside the
        one replacing transaction: straight into the table, no staging copy of a month that may hold millions of
        rows. Returns the rows the INSERTs wrote (not a recount of the month), so that a check can compare the two.
        `verify(relation)` runs before the commit on a relation holding the month's new rows (here the table
        itself, inside the transaction): whatever it raises rolls the month back."""
        inserted = []

        def insert() -> None:
            for params in slices:
                ((rows,),) = self.execute(f"INSERT INTO {table} BY NAME {sql}", params).fetchall()
                inserted.append(rows)
            if verify:
                verify(table)

        self.replace_month_with(table, billing_period, insert)
        return sum(inserted)

    def replace_hours_from(self, table: str, billing_period: dt.date, since: dt.datetime, sql: str,
                           params: dict, verify: Callable[[str], Any] | None = None) -> int:
        """The month's rows of `table` from `since` on become those `sql` gives from `since` on; the earlier hours
        stay (the hourly refresh of the real-time figures). One transaction: delete those hours, insert,
        `verify(table)`, commit; whatever fails rolls back. Returns the month's rows."""
        fresh = f"SELECT * FROM ({sql}) AS fresh WHERE usage_hour >= $since"
        used = {k: v for k, v in {**params, "since": since}.items() if f"${k}" in fresh}
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {table} WHERE billing_period = $billing_period AND usage_hour >= $since",
                        {"billing_period": billing_period, "since": since})
            con.execute(f"INSERT INTO {table} BY NAME {fresh}", used)
            if verify:
                verify(table)
            ((rows,),) = con.execute(f"SELECT count(*) FROM {table} WHERE billing_period = ?",
                                     [billing_period]).fetchall()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return rows

    def shadow(self, table: str, query: str) -> None:
        """`table` as `query` (a SELECT reading the stored table as `$source`) under its own name, so that stage SQL
        reads the cut unchanged (a temporary view: temp shadows main), until unshadow(table). `query` is SQL we
        format."""
        (database,) = self.con.execute("SELECT current_database()").fetchall()[0]
        source = f'"{database}".main.{table}'
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {query.replace('$source', source)}")

    def unshadow(self, table: str) -> None:
        self.con.execute(f"DROP VIEW IF EXISTS temp.main.{table}")

    def replace_month_with_cur(self, table: str, billing_period: dt.date, location, delivery,
                               validate: Callable[[str], None]) -> int:
        """The month's rows become the CUR delivery's line items: the CUR reader streams the files straight into
        the table inside the replacing transaction; `validate(table)` sees them before the commit."""
        from billing_pipeline.readers.cur_staging import insert_line_items

        def insert() -> None:
            insert_line_items(self.con, location, delivery, table)
            validate(table)

        return self.replace_month_with(table, billing_period, insert)

    def read_usage_evidence(self, logs, inventory, billing_period: dt.date, since: dt.datetime | None = None):
        """The month's usage evidence (with `since`: of the hours from then on), parsed here in a bounded scratch
        DuckDB (readers/usage_logs.py)."""
        from billing_pipeline.readers.usage_logs import read_usage_evidence

        return read_usage_evidence(logs, inventory, billing_period, since=since)

    def register_estimates(self, name: str, source, billing_period: dt.date, paths: list[str] | None = None) -> None:
        from billing_pipeline.readers.estimates import read_estimates

        self.register(name, read_estimates(source, billing_period, paths))

    def replace_month_with(self, table: str, billing_period: dt.date, insert: Callable[[], Any]) -> int:
        """Delete-then-insert in one transaction: a restated month replaces, a repeated run gives the same rows,
        and on any error (in `insert` too) the month's previous rows stay as they were."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {table} WHERE billing_period = ?", [billing_period])
            insert()
            ((rows,),) = con.execute(f"SELECT count(*) FROM {table} WHERE billing_period = ?", [billing_period]).fetchall()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return rows
