"""The distributed engine: the same stage SQL, transpiled from DuckDB's dialect by sqlglot, on Apache Spark.

The warehouse is a folder of Parquet datasets, one per table of warehouse.sql, partitioned by `billing_period`
(`<root>/<table>/billing_period=2026-01-01/`). A month is replaced with dynamic partition overwrite, so a restated
month replaces its partition and never doubles. Money stays exact: Spark runs with
`spark.sql.decimalOperations.allowPrecisionLoss=false`, in which DECIMAL arithmetic keeps every digit (or fails)
instead of silently rounding to 6 places.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from billing_pipeline.storage import locate

SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
}


def to_spark_sql(sql: str) -> str:
    """DuckDB-dialect SQL as Spark SQL (`$name` parameters become `:name`)."""
    statements = sqlglot.transpile(sql, read="duckdb", write="spark")
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, got {len(statements)}")
    return statements[0]


def table_schemas(ddl: str) -> dict[str, list[tuple[str, str]]]:
    """Each CREATE TABLE of the warehouse DDL as [(column, Spark type)], in declaration order."""
    schemas = {}
    for statement in sqlglot.parse(ddl, read="duckdb"):
        if isinstance(statement, exp.Create) and isinstance(statement.this, exp.Schema):
            columns = [
                (column.name, column.args["kind"].sql(dialect="spark"))
                for column in statement.this.expressions
                if isinstance(column, exp.ColumnDef)
            ]
            schemas[statement.this.this.name] = columns
    return schemas


def view_queries(ddl: str) -> dict[str, str]:
    """Each CREATE VIEW of the warehouse DDL as its query (DuckDB dialect)."""
    return {
        statement.this.name: statement.expression.sql(dialect="duckdb")
        for statement in sqlglot.parse(ddl, read="duckdb")
        if isinstance(statement, exp.Create) and statement.kind == "VIEW"
    }


def spark_session(master: str | None = None, remote: str | None = None):
    """A Spark session: Spark Connect when `remote` (sc://host:15002) is given, else `master` (local[*], yarn...)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("billing_pipeline")
    builder = builder.remote(remote) if remote else builder.master(master or "local[*]")
    for key, value in SPARK_SETTINGS.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in SPARK_SETTINGS.items():
        if not key.startswith("spark.ui"):
            session.conf.set(key, value)
    return session


class SparkResult:
    def __init__(self, frame):
        self.frame = frame

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self.frame.collect()]

    def df(self):
        return self.frame.toPandas()


class SparkEngine:
    name = "spark"

    def __init__(self, session, warehouse_uri: str, ddl: str):
        self.session = session
        self.warehouse_uri = warehouse_uri.rstrip("/")
        self.schemas = table_schemas(ddl)
        for table in self.schemas:
            self._refresh(table)
        for name, query in view_queries(ddl).items():
            self.session.sql(to_spark_sql(query)).createOrReplaceTempView(name)

    # -- the Engine interface -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Any = None) -> SparkResult:
        return SparkResult(self._frame(sql, params))

    def register(self, name: str, table: pa.Table) -> None:
        self.session.createDataFrame(table).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.session.catalog.dropTempView(name)

    def register_batches(self, name: str, batches: pa.RecordBatchReader) -> None:
        """A large input as a relation: written as Parquet under the warehouse's `_staging/` folder and read by
        Spark itself, so its rows never pass through the driver's memory (unlike `register`)."""
        location = locate(f"{self.warehouse_uri}/_staging/{name}")
        location.filesystem.create_dir(location.path, recursive=True)
        location.filesystem.delete_dir_contents(location.path, missing_dir_ok=True)
        with pq.ParquetWriter(f"{location.path}/part-0.parquet", batches.schema, filesystem=location.filesystem) as out:
            for batch in batches:
                out.write_batch(batch)
        self.session.read.parquet(self._spark_uri(f"{self.warehouse_uri}/_staging/{name}")).createOrReplaceTempView(name)

    def stage(self, name: str, sql: str, params: Any = None) -> None:
        # Materialized once, so the checks and the write that follow do not recompute it.
        self._frame(sql, params).localCheckpoint(eager=True).createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        self.session.catalog.dropTempView(name)

    def replace_month_with_query(self, table: str, billing_period: dt.date, sql: str, params: Any = None) -> int:
        staged = f"staged_{table}"
        self.stage(staged, sql, params)
        try:
            return self.replace_month(table, billing_period, staged)
        finally:
            self.drop(staged)

    def replace_month(self, table: str, billing_period: dt.date, staged: str) -> int:
        columns = self.schemas[table]
        present = set(self.session.table(staged).columns)
        frame = self.session.table(staged).selectExpr(
            *[f"CAST({c} AS {t}) AS {c}" if c in present else f"CAST(NULL AS {t}) AS {c}" for c, t in columns]
        )
        rows = frame.count()
        foreign = frame.where(f"billing_period <> DATE '{billing_period.isoformat()}'").count()
        if foreign:
            raise ValueError(f"{staged}: {foreign} rows are not of billing period {billing_period}")
        if rows:
            frame.write.mode("overwrite").partitionBy("billing_period").parquet(self._path(table))
        else:
            # dynamic overwrite only touches partitions it writes: an emptied month is removed explicitly
            partition = locate(self._local_uri(table) + f"/billing_period={billing_period.isoformat()}")
            partition.filesystem.delete_dir_contents(partition.path, missing_dir_ok=True)
        self._refresh(table)
        return rows

    # -- helpers ------------------------------------------------------------------------------------------
    def _frame(self, sql: str, params: Any = None):
        if isinstance(params, dict):
            return self.session.sql(to_spark_sql(sql), args=params)
        if params:
            return self.session.sql(to_spark_sql(sql), args=list(params))
        return self.session.sql(to_spark_sql(sql))

    def _path(self, table: str) -> str:
        return self._spark_uri(f"{self.warehouse_uri}/{table}")

    @staticmethod
    def _spark_uri(uri: str) -> str:
        return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri

    def _local_uri(self, table: str) -> str:
        return f"{self.warehouse_uri}/{table}"

    def _refresh(self, table: str) -> None:
        """(Re)define the table as a view over its Parquet dataset, or as an empty relation before the first write."""
        schema = ", ".join(f"{c} {t}" for c, t in self.schemas[table])
        location = locate(self._local_uri(table))
        if location.filesystem.get_file_info(location.path).type == pafs.FileType.Directory:
            # partition columns come back last: keep the order of warehouse.sql
            frame = self.session.read.schema(schema).parquet(self._path(table)).select(*[c for c, _ in self.schemas[table]])
        else:
            frame = self.session.createDataFrame([], schema)
        frame.createOrReplaceTempView(table)
