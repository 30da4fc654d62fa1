"""The warehouse: a DuckDB file (the embedded default) or Parquet datasets written by Spark (BILLING_ENGINE=spark).

DuckDB takes one writer at a time: runs that write the warehouse share the Dagster concurrency pool
`duckdb_warehouse` (limit 1, see README), and the connection is opened through dagster-duckdb, which also retries
while another process holds DuckDB's file lock. Either way the assets see one small interface (engines/).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from dagster import ConfigurableResource, get_dagster_logger
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from billing_pipeline.engines import ENGINES, Engine
from billing_pipeline.engines.duckdb_engine import DuckDBEngine, duckdb_limits
from billing_pipeline.sql import warehouse_ddl
from billing_pipeline.settings import require_valid_settings
from billing_pipeline.storage import locate

WAREHOUSE_POOL = "duckdb_warehouse"
# Log lines marking when a step holds the DuckDB file (the run's log shows who waited for whom, and for how long)
WAREHOUSE_OPENED = "Opened the warehouse"
WAREHOUSE_CLOSED = "Closed the warehouse"
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_SPARK_WAREHOUSE = "data/spark-warehouse"


class BillingWarehouse(ConfigurableResource):
    """The engine (BILLING_ENGINE), the DuckDB file (BILLING_WAREHOUSE) and how much of the machine DuckDB may
    use, or the Spark cluster and the URI of its Parquet warehouse."""

    engine: str | None = Field(default=None, description="duckdb | spark. Env: BILLING_ENGINE")
    spark_master: str | None = Field(default=None, description="Spark master, e.g. local[*] or yarn. Env: BILLING_SPARK_MASTER")
    spark_remote: str | None = Field(default=None, description="Spark Connect URL, e.g. sc://host:15002. Env: BILLING_SPARK_REMOTE")
    spark_warehouse: str | None = Field(default=None, description="Folder or s3:// URI of the Parquet tables. Env: BILLING_SPARK_WAREHOUSE")

    database: str | None = Field(default=None, description="DuckDB file. Env: BILLING_WAREHOUSE")
    memory_limit: str | None = Field(default=None, description="DuckDB memory_limit, e.g. '2GB'. Env: BILLING_DUCKDB_MEMORY_LIMIT")
    threads: int | None = Field(default=None, description="DuckDB threads. Env: BILLING_DUCKDB_THREADS")

    # Dagster gives every step of a run the same resource object (a fresh one per run): what is built here is
    # built once per run, not per step.
    _duckdb: dict = PrivateAttr(default_factory=dict)  # (path, settings) -> dagster-duckdb's DuckDBResource
    _created: set = PrivateAttr(default_factory=set)  # DuckDB files whose tables this run has created
    _spark: dict = PrivateAttr(default_factory=dict)  # Spark warehouse URI -> SparkEngine (tables and views defined)

    def setup_for_execution(self, context) -> None:
        """Before any step: the engine and warehouse settings checked, each mistake named (see settings.py)."""
        require_valid_settings(
            ("BILLING_WAREHOUSE", "BILLING_DUCKDB_MEMORY_LIMIT", "BILLING_DUCKDB_THREADS", "BILLING_ENGINE",
             "BILLING_SPARK_MASTER", "BILLING_SPARK_REMOTE", "BILLING_SPARK_WAREHOUSE"),
            {"BILLING_WAREHOUSE": self.database, "BILLING_DUCKDB_MEMORY_LIMIT": self.memory_limit,
             "BILLING_DUCKDB_THREADS": None if self.threads is None else str(self.threads),
             "BILLING_ENGINE": self.engine, "BILLING_SPARK_MASTER": self.spark_master,
             "BILLING_SPARK_REMOTE": self.spark_remote, "BILLING_SPARK_WAREHOUSE": self.spark_warehouse},
            unknown=False,
        )

    def path(self) -> str:
        return self.database or os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE

    def engine_name(self) -> str:
        name = (self.engine or os.environ.get("BILLING_ENGINE") or "duckdb").strip().lower()
        if name not in ENGINES:
            raise ValueError(f"BILLING_ENGINE={name!r}: expected one of {', '.join(ENGINES)}")
        return name

    def spark_warehouse_uri(self) -> str:
        uri = self.spark_warehouse or os.environ.get("BILLING_SPARK_WAREHOUSE") or DEFAULT_SPARK_WAREHOUSE
        return uri if "://" in uri else os.path.abspath(uri)

    def lock_anchor(self) -> str:
        """Where locks that guard the warehouse's writers live beside: the DuckDB file, or the Spark warehouse."""
        return self.spark_warehouse_uri() if self.engine_name() == "spark" else self.path()

    def month_is_final(self, billing_period: dt.date) -> bool:
        """Whether the warehouse holds the month's final CUR (an invoice id): the DuckDB file, or the Parquet
        dataset of cur_line_items under the Spark warehouse. Read-only and without a Spark session."""
        if self.engine_name() == "spark":
            return spark_month_is_final(self.spark_warehouse_uri(), billing_period)
        return month_is_final(self.path(), billing_period)

    @contextmanager
    def connect(self) -> Iterator[Engine]:
        """The warehouse, every table created, behind the engine interface of billing_pipeline.engines."""
        if self.engine_name() == "spark":
            from billing_pipeline.engines.spark_engine import SparkEngine, spark_session

            uri = self.spark_warehouse_uri()
            if uri not in self._spark:
                session = spark_session(
                    master=self.spark_master or os.environ.get("BILLING_SPARK_MASTER"),
                    remote=self.spark_remote or os.environ.get("BILLING_SPARK_REMOTE"),
                )
                self._spark[uri] = SparkEngine(session, uri, warehouse_ddl())
            yield self._spark[uri]
            return
        path = self.path()
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config = duckdb_limits(self.memory_limit, self.threads)
        if path != ":memory:":
            # Spill to a folder beside the warehouse, so a month larger than memory still runs.
            config["temp_directory"] = os.path.abspath(path) + ".tmp"
        log = get_dagster_logger()
        asked = time.monotonic()
        key = (path, tuple(sorted(config.items())))
        if key not in self._duckdb:
            self._duckdb[key] = DuckDBResource(database=path, connection_config=config)
        # the tables once per run (an in-memory database is new at every connection; a deleted file is new too)
        create = path == ":memory:" or path not in self._created or not os.path.exists(path)
        # DuckDB allows one writing process per file; dagster-duckdb retries while another run holds it
        with self._duckdb[key].get_connection() as con:
            log.info(f"{WAREHOUSE_OPENED} {path} (waited {time.monotonic() - asked:.1f} s for its lock)")
            # dagster-duckdb closes the connection only when the block succeeds: a failed step must release the
            # file too, or the next run in this process cannot open it
            try:
                con.execute("SET TimeZone = 'UTC'")
                if create:
                    con.execute(warehouse_ddl())
                    self._created.add(path)
                yield DuckDBEngine(con)
            finally:
                con.close()
                log.info(f"{WAREHOUSE_CLOSED} {path}")


def replace_month_with_rows(engine: Engine, table: str, billing_period: dt.date, rows: pa.Table,
                           verify=None) -> int:
    """Replace the month of `table` by rows computed in Python (an Arrow table in the table's shape): delete-then-
    insert in one transaction on DuckDB, dynamic partition overwrite on Spark; never append. `verify(relation)`
    sees the new rows before the commit (checks/guard.py)."""
    staged = f"staged_{table}"
    engine.register(staged, rows)
    try:
        return engine.replace_month(table, billing_period, staged, verify=verify)
    finally:
        engine.unregister(staged)


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


def spark_month_is_final(warehouse_uri: str, billing_period: dt.date) -> bool:
    """The same for the Spark warehouse: any invoice id in the month's partition of the cur_line_items dataset
    (`<warehouse>/cur_line_items/billing_period=YYYY-MM-DD/`), read with pyarrow, stopping at the first one. A
    missing or unreadable partition (e.g. being rewritten) answers False, as above."""
    partition = locate(f"{warehouse_uri.rstrip('/')}/cur_line_items/billing_period={billing_period.isoformat()}")
    try:
        if partition.filesystem.get_file_info(partition.path).type != pafs.FileType.Directory:
            return False
        dataset = pads.dataset(partition.path, filesystem=partition.filesystem, format="parquet")
        return any(batch.column(0).null_count < batch.num_rows for batch in dataset.to_batches(columns=["invoice_id"]))
    except (OSError, pa.ArrowException):
        return False
