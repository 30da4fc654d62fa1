"""Every SQL file that runs on Spark transpiles to Spark's dialect: checked in seconds, without Java.

The Spark suite proves the translated SQL runs, but takes minutes; this catches a non-portable construct (a DuckDB
type, a lambda, a function Spark does not have) as soon as it is written. New .sql files are covered without being
listed; the files that never run on Spark are listed below with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pyspark.sql.functions as spark_functions
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from billing_pipeline.engines.spark_engine import _spark_function
from billing_pipeline.sql import read_sql

PACKAGE = Path(__file__).resolve().parents[2] / "billing_pipeline"
NOT_ON_SPARK = {
    # read by the API's own in-memory DuckDB, never by an engine
    "api/queries.sql": "DuckDB only (the billing API)",
    # run by a DuckDB inside each Spark executor (readers/evidence_spark.py); only its request_owners and
    # agent_sessions run on Spark itself, transpiled (test_cross_line_statements_transpile below)
    "readers/usage_logs.sql": "DuckDB inside the executors",
}
# Spark SQL functions with no Python wrapper of the same name in pyspark.sql.functions
SPARK_ONLY_SQL_FUNCTIONS = {"raise_error", "try_cast"}
# HUGEINT is INT128 to sqlglot; Spark has neither 128-bit integers nor DuckDB's LIST/ARRAY literals in our SQL
DUCKDB_ONLY_TYPES = {exp.DataType.Type.INT128, exp.DataType.Type.UINT128, exp.DataType.Type.LIST}
# templates the readers fill in before running a file
TEMPLATE_VALUES = {"{table}": "staged_rows", "{source}": "SELECT * FROM projected_file"}


def spark_sql_files() -> list[str]:
    files = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.sql"))
    return [f for f in files if f not in NOT_ON_SPARK]


def statements(relative: str) -> list[exp.Expr]:
    # through the one SQL loader, as the engines get it (its `-- include:` fragments in place)
    folder, _, name = relative.rpartition("/")
    text = read_sql(".".join(["billing_pipeline", *folder.split("/")]) if folder else "billing_pipeline", name)
    for template, value in TEMPLATE_VALUES.items():
        text = text.replace(template, value)
    return [s for s in sqlglot.parse(text, read="duckdb") if s is not None]


def spark_function_names() -> set[str]:
    return {n.lower() for n in dir(spark_functions) if not n.startswith("_")} | SPARK_ONLY_SQL_FUNCTIONS


@pytest.mark.parametrize("relative", spark_sql_files())
def test_every_statement_transpiles_to_spark(relative):
    known = spark_function_names()
    parsed = statements(relative)
    assert parsed, f"{relative}: no SQL statement"
    for statement in parsed:
        # sqlglot keeps what it cannot parse as an opaque Command, which it would pass to Spark untranslated
        assert not isinstance(statement, exp.Command), f"{relative}: not parsed: {statement.sql()[:80]}"
        if any(t.this in DUCKDB_ONLY_TYPES for t in statement.find_all(exp.DataType)):
            pytest.fail(f"{relative}: a DuckDB-only type ({statement.sql(dialect='duckdb')[:80]}...)")
        assert not list(statement.find_all(exp.Lambda)), f"{relative}: a lambda (no portable form)"
        spark_sql = statement.transform(_spark_function).sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
        reparsed = sqlglot.parse_one(spark_sql, read="spark")
        unknown = sorted({f.name.lower() for f in reparsed.find_all(exp.Anonymous)} - known)
        assert not unknown, f"{relative}: functions Spark does not have: {unknown}"


def test_the_files_kept_off_spark_exist_and_the_check_sees_a_non_portable_construct():
    for relative in NOT_ON_SPARK:
        assert (PACKAGE / relative).is_file(), f"{relative} listed in NOT_ON_SPARK but gone"
    lambda_sql = sqlglot.parse_one("SELECT list_transform(xs, x -> x + 1) FROM t", read="duckdb")
    assert list(lambda_sql.find_all(exp.Lambda))
    hugeint = sqlglot.parse_one("SELECT CAST(a AS HUGEINT) FROM t", read="duckdb")
    assert any(t.this in DUCKDB_ONLY_TYPES for t in hugeint.find_all(exp.DataType))
    made_up = sqlglot.parse_one("SELECT duckdb_only_thing(a) FROM t", read="duckdb").sql(dialect="spark")
    assert {f.name.lower() for f in sqlglot.parse_one(made_up, read="spark").find_all(exp.Anonymous)} - \
        spark_function_names() == {"duckdb_only_thing"}


def test_cross_line_statements_transpile():
    """usage_logs.sql's statements that Spark runs itself over every line (readers/evidence_spark.py)."""
    from billing_pipeline.readers.evidence_spark import spark_statement

    for name in ("request_owners", "agent_sessions"):
        sql = spark_statement(name)
        assert sql.startswith("SELECT session_id" if name == "agent_sessions" else "SELECT request_id"), sql
        assert "MIN_BY(line_no, event_time) FILTER(WHERE" in sql or name == "request_owners"
