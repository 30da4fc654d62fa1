"""What every stage's checks share: the month they check, the warehouse they read, a check that is one query of
the month (given a setting or not), and the no-duplicates checks."""

import datetime as dt
import warnings
from typing import Any, Callable

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    asset_check,
)

from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse

# The offending rows named in a failing check's metadata (enough to find them, bounded for the UI)
OFFENDING_ROWS = 10


def month_check(table: str, *, description: str, blocking: bool = True, name: str | None = None):
    """`@asset_check` on a month of `table`: partitioned like the assets, in the warehouse's pool (it opens the
    DuckDB file), blocking by default so a failing check stops the assets downstream of the table."""
    def decorate(fn):
        # A partitioned check is a Dagster preview (1.13, pinned): its results are kept per month, like the assets'.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
            return asset_check(asset=table, name=name, description=description, blocking=blocking,
                               partitions_def=billing_month_partitions, pool=WAREHOUSE_POOL)(fn)

    return decorate


def checked_month(context: AssetCheckExecutionContext) -> dt.date:
    return context.partition_time_window.start.date()


def query_check(table: str, name: str, query: Callable[..., AssetCheckResult], *, description: str):
    """A blocking month check of `table` that is one query of the warehouse: query(engine, month)."""
    @month_check(table, name=name, description=description)
    def check(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
        with warehouse.connect() as con:
            return query(con, checked_month(context))

    return check


def configured_check(table: str, name: str, query: Callable[..., AssetCheckResult],
                     setting: Callable[[BillingConfig], Any], *, description: str, blocking: bool = False):
    """A month check of `table` (a warning by default) that is one query of the warehouse given a setting of
    BillingConfig: query(engine, month, setting(billing_config))."""
    @month_check(table, name=name, description=description, blocking=blocking)
    def check(context: AssetCheckExecutionContext, billing_config: BillingConfig,
              warehouse: BillingWarehouse) -> AssetCheckResult:
        with warehouse.connect() as con:
            return query(con, checked_month(context), setting(billing_config))

    return check


def written_once(table: str, name: str, keys: list[str], *, description: str):
    """A blocking month check that `table` holds exactly the rows its materialization of the month wrote
    (written_once_check; `keys` name doubled rows)."""
    @month_check(table, name=name, description=description)
    def check(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
        with warehouse.connect() as con:
            return written_once_check(con, table, checked_month(context), rows_written(context, table), keys)

    return check


def rows_table(frame) -> MetadataValue:
    """Offending rows as a markdown table (or 'none'), every value as stored (money exact, not as a float)."""
    if frame.empty:
        return MetadataValue.md("none")
    exact = frame.astype(object).map(lambda value: "" if value is None or value != value else str(value))
    return MetadataValue.md(exact.to_markdown(index=False, disable_numparse=True))


def duplicate_check(con, table: str, keys: list[str], period: dt.date, check_name: str | None = None) -> AssetCheckResult:
    """No two rows of the month share the table's grain: a replaced month must never double. (`check_name` for an
    asset that reports the check itself, as invoices does beside its Stripe check.)"""
    key_list = ", ".join(keys)
    duplicates = con.execute(
        f"""SELECT {key_list}, count(*) AS copies FROM {table} WHERE billing_period = ?
            GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        [period],
    ).df()
    return AssetCheckResult(check_name=check_name, passed=duplicates.empty, severity=AssetCheckSeverity.ERROR,
                            metadata={"duplicate_keys": rows_table(duplicates)})


def rows_written(context: AssetCheckExecutionContext, table: str) -> int | None:
    """The row count the table's latest materialization of this month reported (None if this Dagster instance has
    none)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(table), asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        return None
    count = records[0].asset_materialization.metadata.get("dagster/row_count")
    return None if count is None else int(count.value)


def written_once_check(con, table: str, period: dt.date, written: int | None, keys: list[str]) -> AssetCheckResult:
    """For a table as large as the month's line items: the month holds exactly the rows its replacing statement
    wrote, so it was not written twice. The same guarantee as `duplicate_check` at the cost of a count; only when
    the counts differ are the doubled rows looked up (by `keys`) to name them."""
    ((held,),) = con.execute(f"SELECT count(*) FROM {table} WHERE billing_period = ?", [period]).fetchall()
    metadata = {"rows_held": MetadataValue.int(held)}
    if written is None:
        metadata["rows_written"] = "unknown: no materialization of this month in this Dagster instance"
        return AssetCheckResult(passed=True, metadata=metadata)
    metadata["rows_written"] = MetadataValue.int(written)
    if held == written:
        return AssetCheckResult(passed=True, metadata=metadata)
    doubled = duplicate_check(con, table, keys, period)
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR,
                            metadata={**metadata, **doubled.metadata})
