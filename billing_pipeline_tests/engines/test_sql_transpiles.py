"""Every SQL file that runs on Spark transpiles to Spark's dialect: checked in seconds, without Java.

The Spark suite proves the translated SQL runs, but takes minutes; this catches a non-portable construct (a DuckDB
type, a lambda, a function Spark does not have) as soon as it is written. New .sql files are covered without being
listed; the files that never run on Spark are listed below with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyspark.sql.functions as spark_functions
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from billing_pipeline.engines.spark_engine import _spark_function, shared_ctes
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
TEMPLATE_VALUES = {"{table}": "staged_rows", "{source}": "SELECT * FROM projected_file", "$source": "hourly_cost_facts",
                   "{service_read_as}": "CASE product_code WHEN 'mp' THEN 'AmazonBedrock' ELSE service END"}


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
        # as the Spark engine runs it: each CTE read more than once a query of its own, read by key
        queries, rest = shared_ctes(statement.sql(dialect="duckdb"))
        for text in [*(text for _, text in queries), rest]:
            sqlglot.parse_one(unformatted(text), read="spark")


def unformatted(text: str) -> str:
    """A shared_ctes text as Spark gets it once pyspark has put a view's name for each `{key}`."""
    return re.sub(r"(?<!{){(shared_cte_\w+)}(?!})", r"\1", text).replace("{{", "{").replace("}}", "}")


def test_a_cte_read_more_than_once_is_its_own_query_and_the_rest_reads_it_by_key():
    sql = """WITH levels(level, max_span) AS (VALUES ('hour', 1), ('day', 24)),
             facts AS (SELECT * FROM hourly_cost_facts WHERE billing_period = $billing_period),
             hourly AS (SELECT f.* FROM facts f JOIN levels l ON f.span_hours <= l.max_span),
             daily AS (SELECT * FROM facts WHERE span_hours = 24)
             SELECT '{x}' AS brace, regexp_extract(usage_type, 'a{2}', 0) AS re FROM hourly JOIN levels USING (level)
             UNION ALL SELECT '{x}', '' FROM daily"""
    queries, rest = shared_ctes(sql)
    assert queries == [
        # the column names of `levels(level, max_span)` kept; read once: inlined where it is read
        ("shared_cte_0_0_levels",
         "SELECT * FROM (SELECT * FROM VALUES ('hour', 1), ('day', 24) AS _values) AS levels(level, max_span)"),
        ("shared_cte_0_1_facts", "SELECT * FROM hourly_cost_facts WHERE billing_period = :billing_period"),
    ]
    assert rest == (
        "WITH hourly AS (SELECT f.* FROM {shared_cte_0_1_facts} AS f JOIN {shared_cte_0_0_levels} AS l "
        "ON f.span_hours <= l.max_span), daily AS (SELECT * FROM {shared_cte_0_1_facts} AS facts WHERE span_hours = 24) "
        "SELECT '{{x}}' AS brace, REGEXP_EXTRACT(usage_type, 'a{{2}}', 0) AS re FROM hourly "
        "JOIN {shared_cte_0_0_levels} AS levels USING (level) UNION ALL SELECT '{{x}}', '' FROM daily")
    # nothing read twice, or a recursive WITH: one query, as to_spark_sql gives it
    assert shared_ctes("WITH a AS (SELECT 1 AS x) SELECT * FROM a") == ([], "WITH a AS (SELECT 1 AS x) SELECT * FROM a")
    recursive = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r JOIN r s USING (n)"
    assert shared_ctes(recursive)[0] == []
    # a WITH inside each side of a union (tenant_costs' two passes): each its own keys
    nested = ("SELECT * FROM (WITH a AS (SELECT 1 AS x) SELECT * FROM a JOIN a b USING (x)) "
              "UNION ALL SELECT * FROM (WITH a AS (SELECT 2 AS x) SELECT * FROM a JOIN a b USING (x))")
    queries, rest = shared_ctes(nested)
    assert queries == [("shared_cte_1_0_a", "SELECT 2 AS x"), ("shared_cte_0_0_a", "SELECT 1 AS x")]
    assert rest == ("SELECT * FROM (SELECT * FROM {shared_cte_0_0_a} AS a JOIN {shared_cte_0_0_a} AS b USING (x)) "
                    "UNION ALL SELECT * FROM (SELECT * FROM {shared_cte_1_0_a} AS a JOIN {shared_cte_1_0_a} AS b USING (x))")
    # a nested WITH that reads a CTE of the enclosing one stays as it is (it would lose what it reads)
    outer = "WITH o AS (SELECT 1 AS x) SELECT * FROM (WITH a AS (SELECT * FROM o) SELECT * FROM a JOIN a b USING (x))"
    assert shared_ctes(outer)[0] == []


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
