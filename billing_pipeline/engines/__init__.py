"""Where the stage SQL runs: DuckDB on one machine (the default) or Apache Spark when a month outgrows it.

Every stage's logic is written once, in DuckDB's SQL dialect (assets/<stage>.sql and the queries of the asset
modules). The DuckDB engine runs it as is; the Spark engine transpiles it with sqlglot. Both engines offer the same
small interface, which is all the assets use:

    execute(sql, params)          run a query; .fetchall() / .df() on the result
    register(name, arrow_table)   an input the readers produced, as a relation for the SQL
    stage(name, sql, params)      a temporary relation holding a query's rows (drop(name) removes it)
    replace_month(table, period, staged, verify=fn)   the month's rows of `table` become those of `staged`
    replace_month_with_query(table, period, sql, params)   ... those of a query (no staging copy on DuckDB)
    replace_month_with_slices(table, period, sql, [params, ...])   ... those of one query run once per slice
        of the month (on DuckDB each slice is its own INSERT in the one transaction, so a month too large to
        aggregate in the memory limit is aggregated a slice at a time; Spark takes their union in one job)
        All three take `verify=fn`: fn(relation) runs before the month is committed, on a relation holding the new
        rows (DuckDB: the table inside the transaction; Spark: the staged union); what it raises keeps the month.
    replace_hours_from(table, period, since, sql, params, verify=fn)   the month's hours from `since` on become
        those of the query (the hourly real-time refresh); the earlier hours stay
    shadow(table, query) / unshadow(table)   the table as a query over it (`$source`) under its own name: the
        backtest's replays cut a month as a delivery of that day would have held it
    replace_month_with_cur(table, period, location, delivery, validate)   ... the CUR delivery's line items, read
        by the engine's own CUR reader (readers/cur_staging.py, readers/cur_spark.py); validate(relation) sees the
        new rows before they replace the month
    read_usage_evidence(logs, inventory, billing_period)   the month's usage evidence (readers/usage_logs.py);
        on Spark read and parsed by the executors, only the aggregated evidence reaching the driver
    register_estimates(name, source, billing_period)   the month's usage-table items as a relation (on Spark
        read and parsed by the executors, never collected)

Nothing else of DuckDB or Spark is handed out: an asset that needs more adds it here, for both engines. The engine
comes from the `warehouse` resource's connect() (resources/warehouse.py: DuckDBWarehouse or SparkWarehouse, which
definitions.py binds by BILLING_ENGINE).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Protocol

import pyarrow as pa

class Result(Protocol):
    def fetchall(self) -> list[tuple]: ...

    def df(self) -> Any: ...


class Engine(Protocol):
    name: str

    def execute(self, sql: str, params: Any = None) -> Result: ...

    def register(self, name: str, table: pa.Table) -> None: ...

    def unregister(self, name: str) -> None: ...

    def stage(self, name: str, sql: str, params: Any = None) -> None: ...

    def drop(self, name: str) -> None: ...

    def replace_month(self, table: str, billing_period: dt.date, staged: str, verify: Any = None) -> int: ...

    def replace_month_with_query(self, table: str, billing_period: dt.date, sql: str, params: Any = None,
                                 verify: Any = None) -> int: ...

    def replace_month_with_slices(self, table: str, billing_period: dt.date, sql: str, slices: list[Any],
                                  verify: Any = None) -> int: ...

    def replace_hours_from(self, table: str, billing_period: dt.date, since: dt.datetime, sql: str, params: dict,
                           verify: Any = None) -> int: ...

    def shadow(self, table: str, query: str) -> None: ...

    def unshadow(self, table: str) -> None: ...

    def replace_month_with_cur(self, table: str, billing_period: dt.date, location: Any, delivery: Any,
                               validate: Callable[[str], None]) -> int: ...

    def read_usage_evidence(self, logs: Any, inventory: Any, billing_period: dt.date,
                            since: dt.datetime | None = None) -> Any: ...

    def register_estimates(self, name: str, source: Any, billing_period: dt.date,
                           paths: list[str] | None = None) -> None: ...
