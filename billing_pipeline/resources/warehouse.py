"""The warehouse, as a resource per engine: a DuckDB file (the embedded default, `DuckDBWarehouse`) or Parquet
datasets written by Spark (`SparkWarehouse`). definitions.py chooses one by BILLING_ENGINE and binds it to the key
`warehouse`; every asset takes it as `BillingWarehouse` and sees only the engine interface of engines/.

DuckDB takes one writer at a time: runs that write the warehouse share the Dagster concurrency pool
`duckdb_warehouse` (limit 1, see README), and the connection is opened through dagster-duckdb, which also retries
while another process holds DuckDB's file lock.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager
from typing import ClassVar, Iterator

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from dagster import ConfigurableResource, get_dagster_logger
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from billing_pipeline.engines import Engine
from billing_pipeline.engines.duckdb_engine import DuckDBEngine, duckdb_limits
from billing_pipeline.sql import warehouse_ddl
from billing_pipeline.settings import SettingsError, require_valid_settings
from billing_pipeline.storage import locate

WAREHOUSE_POOL = "duckdb_warehouse"
# Log lines marking when a step holds the DuckDB file (the run's log shows who waited for whom, and for how long)
WAREHOUSE_OPENED = "Opened the warehouse"
WAREHOUSE_CLOSED = "Closed the warehouse"
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_SPARK_WAREHOUSE = "data/spark-warehouse"


class BillingWarehouse(ConfigurableResource):
    """What every asset, check and schedule uses of the warehouse, whichever engine holds it: `connect()` (the
    engine interface, every table created once per run), `lock_anchor()` and `month_is_final()`."""

    ENGINE: ClassVar[str] = ""
    SETTINGS: ClassVar[tuple[str, ...]] = ()  # the BILLING_* variables this engine reads

    def setup_for_execution(self, context) -> None:
        """Before any step: the engine's settings checked, each mistake named (see settings.py), and BILLING_ENGINE
        still naming this engine (set after the definitions were loaded, it would otherwise be ignored)."""
        require_valid_settings(("BILLING_ENGINE", *self.SETTINGS), self.setting_overrides(), unknown=False)
        engine = os.environ.get("BILLING_ENGINE", "")
        if engine and engine.strip().lower() != self.ENGINE:
            raise SettingsError([f"BILLING_ENGINE={engine!r} (set): the definitions chose the {self.ENGINE} "
                                 "warehouse when they loaded; load them again with it set (restart dagster dev)"])

    def setting_overrides(self) -> dict[str, str | None]:
        return {}

    def engine_name(self) -> str:
        return self.ENGINE

    def connect(self):
        """The warehouse, every table created, behind the engine interface of billing_pipeline.engines."""
        raise NotImplementedError

    def lock_anchor(self) -> str:
        """Where locks that guard the warehouse's writers live beside."""
        raise NotImplementedError

    def month_is_final(self, billing_period: dt.date) -> bool:
        """Whether the warehouse holds the month's final CUR (an invoice id); read-only, without opening the
        engine (the schedule asks it)."""
        raise NotImplementedError


class DuckDBWarehouse(BillingWarehouse):
    """The DuckDB file (BILLING_WAREHOUSE) and how much of the machine DuckDB may use, opened through
    dagster-duckdb's DuckDBResource."""

    ENGINE: ClassVar[str] = "duckdb"
    SETTINGS: ClassVar[tuple[str, ...]] = ("BILLING_WAREHOUSE", "BILLING_DUCKDB_MEMORY_LIMIT", "BILLING_DUCKDB_THREADS")

    database: str | None = Field(default=None, description="DuckDB file. Env: BILLING_WAREHOUSE")
    memory_limit: str | None = Field(default=None, description="DuckDB memory_limit, e.g. '2GB'. Env: BILLING_DUCKDB_MEMORY_LIMIT")
    threads: int | None = Field(default=None, description="DuckDB threads. Env: BILLING_DUCKDB_THREADS")

    # Dagster gives every step of a run the same resource object (a fresh one per run): what is built here is
    # built once per run, not per step.
    _duckdb: dict = PrivateAttr(default_factory=dict)  # (path, settings) -> dagster-duckdb's DuckDBResource
    _created: set = PrivateAttr(default_factory=set)  # DuckDB files whose tables this run has created

    def setting_overrides(self) -> dict[str, str | None]:
        return {"BILLING_WAREHOUSE": self.database, "BILLING_DUCKDB_MEMORY_LIMIT": self.memory_limit,
                "BILLING_DUCKDB_THREADS": None if self.threads is None else str(self.threads)}

    def path(self) -> str:
        return self.database or os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE

    def lock_anchor(self) -> str:
        return self.path()

    def month_is_final(self, billing_period: dt.date) -> bool:
        return month_is_final(self.path(), billing_period)

    @contextmanager
    def connect(self) -> Iterator[Engine]:
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


class SparkWarehouse(BillingWarehouse):
    """The Spark cluster (BILLING_SPARK_MASTER, or Spark Connect: BILLING_SPARK_REMOTE) and the URI of its Parquet
    warehouse (BILLING_SPARK_WAREHOUSE); the session comes from dagster-pyspark's LazyPySparkResource, so a run
    that never connects (the schedule's finality check) starts no Spark."""

    ENGINE: ClassVar[str] = "spark"
    SETTINGS: ClassVar[tuple[str, ...]] = ("BILLING_SPARK_MASTER", "BILLING_SPARK_REMOTE", "BILLING_SPARK_WAREHOUSE")

    spark_master: str | None = Field(default=None, description="Spark master, e.g. local[*] or yarn. Env: BILLING_SPARK_MASTER")
    spark_remote: str | None = Field(default=None, description="Spark Connect URL, e.g. sc://host:15002. Env: BILLING_SPARK_REMOTE")
    spark_warehouse: str | None = Field(default=None, description="Folder or s3:// URI of the Parquet tables. Env: BILLING_SPARK_WAREHOUSE")

    _engines: dict = PrivateAttr(default_factory=dict)  # Spark warehouse URI -> SparkEngine (tables and views defined)

    def setting_overrides(self) -> dict[str, str | None]:
        return {"BILLING_SPARK_MASTER": self.spark_master, "BILLING_SPARK_REMOTE": self.spark_remote,
                "BILLING_SPARK_WAREHOUSE": self.spark_warehouse}

    def spark_warehouse_uri(self) -> str:
        uri = self.spark_warehouse or os.environ.get("BILLING_SPARK_WAREHOUSE") or DEFAULT_SPARK_WAREHOUSE
        return uri if "://" in uri else os.path.abspath(uri)

    def lock_anchor(self) -> str:
        return self.spark_warehouse_uri()

    def month_is_final(self, billing_period: dt.date) -> bool:
        return spark_month_is_final(self.spark_warehouse_uri(), billing_period)

    @contextmanager
    def connect(self) -> Iterator[Engine]:
        uri = self.spark_warehouse_uri()
        if uri not in self._engines:
            from dagster_pyspark import LazyPySparkResource

            from billing_pipeline.engines.spark_engine import SparkEngine, configured, spark_config

            pyspark = LazyPySparkResource(spark_config=spark_config(
                master=self.spark_master or os.environ.get("BILLING_SPARK_MASTER"),
                remote=self.spark_remote or os.environ.get("BILLING_SPARK_REMOTE"),
            ))
            self._engines[uri] = SparkEngine(configured(pyspark.spark_session), uri, warehouse_ddl())
        yield self._engines[uri]


def replace_month_with_rows(engine: Engine, table: str, billing_period: dt.date, rows: pa.Table) -> int:
    """Replace the month of `table` by rows computed in Python (an Arrow table in the table's shape): delete-then-
    insert in one transaction on DuckDB, dynamic partition overwrite on Spark; never append."""
    staged = f"staged_{table}"
    engine.register(staged, rows)
    try:
        return engine.replace_month(table, billing_period, staged)
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
