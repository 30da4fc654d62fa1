"""The DuckDB warehouse: one file, one writer at a time, a month replaced atomically.

Runs that write the warehouse share the Dagster concurrency pool `duckdb_warehouse` (limit 1, see README); the
connection is opened through dagster-duckdb, which also retries while another process holds DuckDB's file lock.
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from importlib import resources as package_files
from typing import Iterator

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

WAREHOUSE_POOL = "duckdb_warehouse"
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"


def warehouse_ddl() -> str:
    """The core tables (warehouse.sql, the interface contract) and those of the outputs (warehouse_*.sql)."""
    package = package_files.files("billing_pipeline")
    extra = sorted(p.name for p in package.iterdir() if p.name.startswith("warehouse_") and p.name.endswith(".sql"))
    return "\n".join(package.joinpath(name).read_text(encoding="utf-8") for name in ["warehouse.sql", *extra])


class BillingWarehouse(ConfigurableResource):
    """The DuckDB file (BILLING_WAREHOUSE) and how much of the machine DuckDB may use."""

    database: str | None = Field(default=None, description="DuckDB file. Env: BILLING_WAREHOUSE")
    memory_limit: str | None = Field(default=None, description="DuckDB memory_limit, e.g. '2GB'. Env: BILLING_DUCKDB_MEMORY_LIMIT")
    threads: int | None = Field(default=None, description="DuckDB threads. Env: BILLING_DUCKDB_THREADS")

    def path(self) -> str:
        return self.database or os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with every warehouse table created."""
        path = self.path()
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config: dict = {}
        memory_limit = self.memory_limit or os.environ.get("BILLING_DUCKDB_MEMORY_LIMIT")
        if memory_limit:
            config["memory_limit"] = memory_limit
        threads = self.threads or os.environ.get("BILLING_DUCKDB_THREADS")
        if threads:
            config["threads"] = int(threads)
        if path != ":memory:":
            # Spill to a folder beside the warehouse, so a month larger than memory still runs.
            config["temp_directory"] = os.path.abspath(path) + ".tmp"
        with DuckDBResource(database=path, connection_config=config).get_connection() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(warehouse_ddl())
            yield con


def replace_month(con: duckdb.DuckDBPyConnection, table: str, billing_period: dt.date, staged: str) -> int:
    """Replace `table`'s rows of the month by the rows of the relation `staged`, in one transaction.

    Delete-then-insert, never append: a restated month replaces, a repeated run gives the same rows, and on any
    error the month's previous rows stay as they were.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {table} WHERE billing_period = ?", [billing_period])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {staged}")
        (rows,) = con.execute(f"SELECT count(*) FROM {table} WHERE billing_period = ?", [billing_period]).fetchall()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def month_is_final(database: str, billing_period: dt.date) -> bool:
    """Whether the warehouse holds the month's final CUR (an invoice id). Read-only and forgiving: a missing file
    or a warehouse busy with a writer answers False, so the month is simply refreshed once more."""
    if not os.path.exists(database):
        return False
    try:
        with duckdb.connect(database, read_only=True) as con:
            row = con.execute(
                "SELECT bool_or(invoice_id IS NOT NULL) FROM cur_line_items WHERE billing_period = ?", [billing_period]
            ).fetchall()[0]
    except (duckdb.IOException, duckdb.CatalogException):
        return False
    return bool(row[0])
