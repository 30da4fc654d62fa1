"""The one SQL loader: the package's SQL files, their `-- name:` statements, and the warehouse's tables as DuckDB
itself reads their DDL (duckdb_columns()), so that no code parses SQL text by hand."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources as package_files

import duckdb
import pyarrow as pa

NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
INCLUDE_LINE = re.compile(r"^[ \t]*-- include: (\w+)[ \t]*$", re.MULTILINE)


def sql_string(text: str) -> str:
    """`text` as a SQL string literal (quotes doubled), the same on DuckDB and Spark: for text written into SQL
    that is not a parameter (view bodies, a statement's fixed branches)."""
    return "'" + text.replace("'", "''") + "'"


def read_sql(package: str, filename: str) -> str:
    """A SQL file shipped in `package` (e.g. billing_pipeline.assets, statements.sql), each `-- include: <name>`
    line replaced by the package's `<name>.sql` (one fragment, e.g. the largest-remainder split, used by several
    files)."""
    text = package_files.files(package).joinpath(filename).read_text(encoding="utf-8")
    return INCLUDE_LINE.sub(lambda m: read_sql(package, f"{m.group(1)}.sql").strip(), text)


def named_statements(text: str, preamble: str | None = None) -> list[tuple[str, str]]:
    """The statements of a SQL text in order, as (name, SQL), each starting at a `-- name: <name>` line. The text
    before the first such line is a statement named `preamble` if given, else only comments and dropped."""
    parts = NAME_LINE.split(text)
    statements = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts), 2)]
    return ([(preamble, parts[0].strip())] if preamble else []) + statements


def warehouse_ddl() -> str:
    """The core tables (warehouse.sql, the interface contract), those of the outputs (warehouse_*.sql) and the
    catalog's views (catalog.py)."""
    from billing_pipeline.catalog import catalog_views_sql

    package = package_files.files("billing_pipeline")
    extra = sorted(p.name for p in package.iterdir() if p.name.startswith("warehouse_") and p.name.endswith(".sql"))
    files = [read_sql("billing_pipeline", name) for name in ["warehouse.sql", *extra]]
    return "\n".join([*files, catalog_views_sql()])


@lru_cache(maxsize=4)
def _declared(ddl: str) -> tuple[dict[str, list[tuple[str, str, bool]]], dict[str, pa.Schema]]:
    with duckdb.connect() as con:
        con.execute(ddl)
        rows = con.execute(
            """SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns()
               WHERE table_name IN (SELECT table_name FROM duckdb_tables()) ORDER BY table_name, column_index"""
        ).fetchall()
        columns: dict[str, list[tuple[str, str, bool]]] = {}
        for table, column, data_type, nullable in rows:
            columns.setdefault(table, []).append((column, data_type, nullable))
        schemas = {table: con.sql(f'SELECT * FROM "{table}" LIMIT 0').to_arrow_table().schema for table in columns}
    return columns, schemas


def table_columns(ddl: str | None = None) -> dict[str, list[tuple[str, str, bool]]]:
    """Each table of the DDL (default: the warehouse's) as [(column, DuckDB type, nullable)], in declaration
    order."""
    return _declared(ddl or warehouse_ddl())[0]


def column_definitions(table: str) -> str:
    """A warehouse table's columns as a CREATE TABLE body (types and NOT NULL), for a staging table that must not
    drift from it."""
    return ", ".join(f'"{name}" {data_type}{"" if nullable else " NOT NULL"}'
                     for name, data_type, nullable in table_columns()[table])


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a warehouse table, as DuckDB exports it: money stays DECIMAL."""
    schemas = _declared(warehouse_ddl())[1]
    if table not in schemas:
        raise KeyError(f"no table {table} in the warehouse DDL")
    return schemas[table]
