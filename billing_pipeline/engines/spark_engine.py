"""The distributed engine: the same stage SQL, transpiled from DuckDB's dialect by sqlglot, on Apache Spark.

The warehouse is a folder of Parquet datasets, one per table of warehouse.sql, partitioned by `billing_period`
(`<root>/<table>/billing_period=2026-01-01/`). A month is replaced with dynamic partition overwrite, so a restated
month replaces its partition and never doubles. Money stays exact: Spark runs with
`spark.sql.decimalOperations.allowPrecisionLoss=false`, in which DECIMAL arithmetic keeps every digit (or fails)
instead of silently rounding to 6 places.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import sqlglot
from sqlglot import exp

from billing_pipeline.sql import table_columns
from billing_pipeline.storage import locate

SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # A CSV row with too few or too many fields fails the read (mode FAILFAST), as in the DuckDB path: Spark
    # counts a row's fields only when it parses all of them.
    "spark.sql.csv.parser.columnPruning.enabled": "false",
    "spark.ui.enabled": "false",
}


@functools.lru_cache(maxsize=512)
def to_spark_sql(sql: str) -> str:
    """DuckDB-dialect SQL as Spark SQL (`$name` parameters become `:name`)."""
    return _spark_statement(sql).sql(dialect="spark")


def _spark_statement(sql: str) -> exp.Expr:
    """The one statement of DuckDB-dialect `sql`, its functions spelled as Spark spells them."""
    statements = sqlglot.parse(sql, read="duckdb")
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, got {len(statements)}")
    return statements[0].transform(_spark_function)


def shared_ctes(sql: str) -> tuple[list[tuple[str, str]], str]:
    """DuckDB-dialect SQL as Spark SQL with every CTE its query reads more than once taken out as a query of its
    own: ([(key, its Spark SQL)], the Spark SQL of the rest), each reading the ones before it as `{key}`
    (pyspark's DataFrame references; the SQL's own braces doubled). DuckDB computes such a CTE once (it
    materializes CTEs read more than once); Spark 4 inlines every reference, so a stage's CTEs, read by several
    others, were computed again for each (cost_allocations.sql: about 200 shuffles a pass where 80 do). A WITH
    inside a subquery is taken apart the same way unless it reads a CTE of an enclosing WITH; a recursive one is
    left as it is. Nothing to take out: ([], to_spark_sql(sql))."""
    queries, rest = _shared_ctes(sql)
    return list(queries), rest


# A run sends the same SQL text many times (a query per slice of the month, the same stage on each month and
# replay day, the checks on each run): it is transpiled once per process (cost_allocations.sql: 0.8 s a time).
@functools.lru_cache(maxsize=512)
def _shared_ctes(sql: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """The cached transpilation behind shared_ctes (tuples: nothing cached can be changed)."""
    statement = _spark_statement(sql)
    queries: list[tuple[str, exp.Expr]] = []
    # innermost first: a CTE taken out of a nested WITH is then read by its key in whatever copies its query
    for depth, with_ in reversed(list(enumerate(statement.find_all(exp.With)))):
        query = with_.parent
        if with_.args.get("recursive") or query is None:
            continue
        enclosing = {cte.alias for outer in _enclosing_withs(query) for cte in outer.expressions}
        if enclosing and any(t.name in enclosing and not t.args.get("db") for t in query.find_all(exp.Table)):
            continue
        names = [cte.alias for cte in with_.expressions]
        reads = {name: 0 for name in names}
        for table in query.find_all(exp.Table):
            if table.name in reads and not table.args.get("db"):
                reads[table.name] += 1
        keys = {name: f"shared_cte_{depth}_{i}_{name}" for i, name in enumerate(names) if reads[name] > 1}
        if not keys:
            continue
        for table in list(query.find_all(exp.Table)):
            # `FROM facts f` -> `FROM shared_cte_0_3_facts AS f`, `FROM facts` -> `... AS facts`: columns keep
            # their qualifiers
            if table.name in keys and not table.args.get("db"):
                table.replace(exp.Table(this=exp.to_identifier(keys[table.name]),
                                        alias=exp.TableAlias(this=exp.to_identifier(table.alias or table.name))))
        inlined = []
        for cte in with_.expressions:
            if cte.alias not in keys:
                inlined.append(cte)
                continue
            body = cte.this.copy()
            if cte.args["alias"].columns:  # `name(a, b) AS (VALUES ...)`: the column names are the alias's
                body = exp.select("*").from_(exp.Subquery(this=body, alias=cte.args["alias"].copy()))
            if inlined:  # the CTEs read once that come before it, as a WITH of its own (Spark drops unused ones)
                own = body.args.get("with_")
                body.set("with_", exp.With(expressions=[c.copy() for c in inlined] + (own.expressions if own else [])))
            queries.append((keys[cte.alias], body))
        if inlined:
            with_.set("expressions", inlined)
        else:
            query.set("with_", None)
    if not queries:
        return (), statement.sql(dialect="spark")
    all_keys = [key for key, _ in queries]

    def spark_text(tree: exp.Expr) -> str:
        text = tree.sql(dialect="spark")
        if any(key in text for key in all_keys):
            text = text.replace("{", "{{").replace("}", "}}")
            for key in all_keys:
                text = re.sub(rf"\b{key}\b", "{" + key + "}", text)
        return text

    return tuple((key, spark_text(tree)) for key, tree in queries), spark_text(statement)



def _enclosing_withs(query: exp.Expr) -> Iterator[exp.With]:
    parent = query.parent
    while parent is not None:
        if isinstance(parent.args.get("with_"), exp.With):
            yield parent.args["with_"]
        parent = parent.parent


def _spark_function(node: exp.Expr) -> exp.Expr:
    """The DuckDB functions sqlglot leaves as they are (or drops) although Spark spells them differently."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "error":
        # error(message) fails the query with the message: Spark's raise_error
        return exp.Anonymous(this="RAISE_ERROR", expressions=node.expressions)
    if isinstance(node, exp.Try) and isinstance(node.this, exp.Decode):
        # try(decode(blob)): the text, or NULL where the bytes are not UTF-8 (sqlglot drops TRY, and Spark's
        # DECODE then fails with a message naming no column)
        blob = node.this.this
        valid = exp.Anonymous(this="IS_VALID_UTF8", expressions=[exp.cast(blob.copy(), "STRING")])
        return exp.Case(ifs=[exp.If(this=valid, true=node.this.copy())])
    replacement = node.args.get("replacement") if isinstance(node, exp.RegexpReplace) else None
    if isinstance(replacement, exp.Literal) and replacement.is_string:
        # a group in the replacement: \1 in DuckDB (RE2), $1 in Spark (Java), where a literal $ is \$
        text = re.sub(r"\\(\d)", r"$\1", replacement.this.replace("$", "\\$"))
        # in place (the tree is transform()'s copy): a new node would hide the regexp_replace calls inside it
        node.set("replacement", exp.Literal.string(text))
    return node


def table_schemas(ddl: str) -> dict[str, list[tuple[str, str]]]:
    """Each table of the warehouse DDL as [(column, Spark type)], in declaration order (DuckDB reads the DDL)."""
    return {table: [(name, exp.DataType.build(data_type, dialect="duckdb").sql(dialect="spark"))
                    for name, data_type, _ in columns]
            for table, columns in table_columns(ddl).items()}


def required_columns(ddl: str) -> dict[str, list[str]]:
    """Each table's NOT NULL columns: Spark's Parquet tables do not enforce them, the engine does."""
    return {table: [name for name, _, nullable in columns if not nullable]
            for table, columns in table_columns(ddl).items()}


def view_queries(ddl: str) -> dict[str, str]:
    """Each CREATE VIEW of the warehouse DDL as its query (DuckDB dialect)."""
    return {
        statement.this.name: statement.expression.sql(dialect="duckdb")
        for statement in sqlglot.parse(ddl, read="duckdb")
        if isinstance(statement, exp.Create) and statement.kind == "VIEW"
    }


def spark_config(master: str | None = None, remote: str | None = None) -> dict[str, str]:
    """The session's configuration (dagster-pyspark's `spark_config`): Spark Connect when `remote`
    (sc://host:15002) is given, else `master` (local[*], yarn...), and SPARK_SETTINGS."""
    where = {"spark.remote": remote} if remote else {"spark.master": master or "local[*]"}
    if not remote:
        # the executors' Python workers parse the usage evidence (readers/evidence_spark.py): this interpreter,
        # which has the pipeline's packages, unless PYSPARK_PYTHON names the cluster's (pyspark reads only it)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return {"spark.app.name": "billing_pipeline", **where, **SPARK_SETTINGS}


def configured(session):
    """The session with SPARK_SETTINGS in force even if it existed before (getOrCreate returns it as it is)."""
    for key, value in SPARK_SETTINGS.items():
        if not key.startswith("spark.ui"):
            session.conf.set(key, value)
    return session


def spark_session(master: str | None = None, remote: str | None = None):
    """A Spark session as the warehouse's (resources/warehouse.py) gets it, outside of Dagster."""
    from dagster_pyspark.resources import spark_session_from_config

    return configured(spark_session_from_config(spark_config(master, remote)))


class SparkResult:
    def __init__(self, frame):
        self.frame = frame

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self.frame.collect()]

    def df(self):
        # through DuckDB's own conversion, so that a frame (DECIMAL as float64, DATE, NULL as NaN) and the metadata
        # shown from it are the same on both engines
        return duckdb.from_arrow(self.frame.toArrow()).df()


class SparkEngine:
    name = "spark"

    def __init__(self, session, warehouse_uri: str, ddl: str):
        self.session = session
        self.warehouse_uri = warehouse_uri.rstrip("/")
        self.schemas = table_schemas(ddl)
        self.required = required_columns(ddl)
        for table in self.schemas:
            self._refresh(table)
        for name, query in view_queries(ddl).items():
            self.session.sql(to_spark_sql(query)).createOrReplaceTempView(name)

    # -- the Engine interface -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Any = None) -> SparkResult:
        return SparkResult(self._frame(sql, params))

    def register(self, name: str, table: pa.Table) -> None:
        if table.num_rows:
            frame = self.session.createDataFrame(table)
        else:  # no rows to infer a schema from (Spark Connect refuses): the table's own, converted
            from pyspark.sql.pandas.types import from_arrow_schema

            frame = self.session.createDataFrame([], schema=from_arrow_schema(table.schema))
        frame.createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.session.catalog.dropTempView(name)

    def stage(self, name: str, sql: str, params: Any = None) -> None:
        # Materialized once, so the checks and the write that follow do not recompute it.
        self._frame(sql, params).localCheckpoint(eager=True).createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        self.session.catalog.dropTempView(name)

    def replace_month_with_query(self, table: str, billing_period: dt.date, sql: str, params: Any = None,
                                 verify=None) -> int:
        return self.replace_month_with_slices(table, billing_period, sql, [params], verify)

    def replace_hours_from(self, table: str, billing_period: dt.date, since: dt.datetime, sql: str,
                           params: dict, verify=None) -> int:
        """The month's rows of `table` from `since` on become those `sql` gives from `since` on; the earlier hours
        stay. The month's partition is overwritten with the kept rows and the new ones (staged first, so the
        overwrite never reads what it replaces); `verify` sees them before."""
        return self.replace_month_with_query(
            table, billing_period,
            f"SELECT * FROM {table} WHERE billing_period = $billing_period AND usage_hour < $since "
            f"UNION ALL SELECT * FROM ({sql}) AS fresh WHERE usage_hour >= $since",
            {**params, "since": since}, verify)

    def shadow(self, table: str, query: str) -> None:
        """`table` as `query` (a SELECT reading it as `$source`) under its own name (the tables are temporary views
        over their Parquet already: the cut, materialized, replaces the view) until unshadow(table)."""
        self.stage(table, query.replace("$source", table))

    def unshadow(self, table: str) -> None:
        self._refresh(table)  # the view over the table's stored Parquet again

    def replace_month_with_slices(self, table: str, billing_period: dt.date, sql: str, slices: list[Any],
                                  verify=None) -> int:
        # Spark aggregates out of core across the cluster: the slices are one job, their union, materialized once
        # so that the checks and the write that follow do not recompute it
        staged = f"staged_{table}"
        frames = [self._frame(sql, params) for params in slices]
        union = frames[0]
        for frame in frames[1:]:
            union = union.unionByName(frame)
        union.localCheckpoint(eager=True).createOrReplaceTempView(staged)
        try:
            if verify:
                verify(staged)  # before the partition is overwritten: what it raises leaves the month as it was
            return self.replace_month(table, billing_period, staged)
        finally:
            self.drop(staged)

    def replace_month_with_cur(self, table: str, billing_period: dt.date, location, delivery, validate) -> int:
        """The month's rows become the CUR delivery's line items, read and normalized by Spark itself
        (readers/cur_spark.py) into a staged view that `validate(view)` sees before the month is replaced."""
        from billing_pipeline.readers.cur_spark import stage_line_items

        staged = f"delivery_{table}"
        stage_line_items(self, location, delivery, staged)
        try:
            validate(staged)
            return self.replace_month(table, billing_period, staged)
        finally:
            self.drop(staged)

    def read_usage_evidence(self, logs, inventory, billing_period: dt.date, since: dt.datetime | None = None):
        """The month's usage evidence (with `since`: of the hours from then on, from the files that can hold
        them), read and parsed on the executors (readers/evidence_spark.py): only the aggregated evidence comes
        back to the driver."""
        from billing_pipeline.readers.evidence_spark import read_usage_evidence_spark

        return read_usage_evidence_spark(self.session, logs, inventory, billing_period, since)

    def register_estimates(self, name: str, source, billing_period: dt.date, paths: list[str] | None = None) -> None:
        """The view `name`: the month's usage-table items, read and parsed on the executors, never collected."""
        from billing_pipeline.readers.evidence_spark import estimates_frame_spark

        estimates_frame_spark(self.session, source, billing_period, paths).createOrReplaceTempView(name)

    def replace_month(self, table: str, billing_period: dt.date, staged: str, verify=None) -> int:
        if verify:
            verify(staged)  # before the partition is overwritten: what it raises leaves the month as it was
        columns = self.schemas[table]
        present = set(self.session.table(staged).columns)
        frame = self.session.table(staged).selectExpr(
            *[f"CAST({c} AS {t}) AS {c}" if c in present else f"CAST(NULL AS {t}) AS {c}" for c, t in columns]
        )
        # one pass for the row count, rows of another month and NOT NULL columns (DuckDB checks those itself)
        required = self.required.get(table, [])
        rows, foreign, *nulls = frame.selectExpr(
            "count(*)", f"count_if(billing_period <> DATE '{billing_period.isoformat()}')",
            *[f"count_if({c} IS NULL)" for c in required],
        ).collect()[0]
        if foreign:
            raise ValueError(f"{staged}: {foreign} rows are not of billing period {billing_period}")
        missing = [f"{c} ({n} rows)" for c, n in zip(required, nulls) if n]
        if missing:
            raise ValueError(f"{staged}: NOT NULL constraint failed: {table}: NULL in {', '.join(missing)}")
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
        if isinstance(params, (list, tuple)) and params:
            # positional `?` parameters are counted over the whole text: such a query is not split
            return self.session.sql(to_spark_sql(sql), args=list(params))
        # each CTE read more than once computed once, as DuckDB does (shared_ctes), and handed to the queries that
        # read it as a DataFrame (pyspark names it for the query, on Spark Connect too)
        queries, rest = shared_ctes(sql)
        frames: dict[str, Any] = {}
        for key, text in queries:
            frames[key] = self._spark_sql(text, params, frames).localCheckpoint(eager=True)
        frame = self._spark_sql(rest, params, frames)
        if frames:
            # On Spark Connect a checkpointed DataFrame is released on the server when its Python object goes:
            # the shared CTEs live as long as the frame that reads them
            frame._shared_cte_frames = list(frames.values())
        return frame

    def _spark_sql(self, text: str, params: dict | None, frames: dict[str, Any]):
        """Spark SQL text (shared_ctes') with the frames of the `{key}`s it reads."""
        used = {key: frame for key, frame in frames.items() if "{" + key + "}" in text}
        return self.session.sql(text, args=params or None, **used)

    def _path(self, table: str) -> str:
        return self.spark_uri(f"{self.warehouse_uri}/{table}")

    @staticmethod
    def spark_uri(uri: str) -> str:
        """A local path or s3:// URI as Spark's Hadoop file systems name it (s3a://)."""
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
