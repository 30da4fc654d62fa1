"""The published snapshots, held in an in-memory DuckDB: the API never opens the warehouse.

At most every BILLING_API_REFRESH_SECONDS (default 1) a request lists the pointer files (one listing of
`<BILLING_PUBLISH_URI>/current/`); a month whose pointer changed has its new snapshot read (pyarrow, local or S3)
and swapped in, in one DuckDB transaction that deletes the month's old rows and inserts the new ones. A request
reads in one transaction too, so it sees the month before the swap or after it, never a mix: a restated month is
served whole or not at all. Only one request refreshes at a time; the others go on with what is loaded (the very
first ones wait for the first load). A pointer or snapshot that cannot be read, or whose tables lack a column the
API reads or hold it as another kind of value (money as text, a date as a number), is logged naming the file and the
month keeps the previous one: a broken publication never turns into errors for every request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import duckdb
import pyarrow as pa

from billing_pipeline.publishing import (PublishedError, Pointer, pointer_stamps, publish_location, read_pointer,
                                         read_snapshot)

log = logging.getLogger("billing_pipeline.api")
DEFAULT_REFRESH_SECONDS = 1.0
SETTLED_NS = 5 * 10**9  # a pointer read this long after its modification time cannot have changed unseen
# the columns the API reads of each snapshot table (a snapshot may carry more)
COLUMNS = {
    "statements": ["billing_period", "accountant_id", "line", "currency", "cost_metric", "cost", "amount", "is_final"],
    "reconciliation_report": ["billing_period", "accountant_id", "resource_type", "currency", "estimated_cost",
                              "actual_cost", "variance", "variance_pct", "flagged", "variance_amount"],
    "estimated_lines": ["billing_period", "accountant_id", "line", "estimated_cost", "amount"],
    "estimates": ["billing_period", "accountant_id", "resource_type", "operation", "quantity", "estimated_cost",
                  "records"],
    "drivers": ["billing_period", "accountant_id", "resource_type", "driver", "quantity", "cost"],
    "usage_lines": ["billing_period", "accountant_id", "resource_type", "service", "usage_type", "line_item_type",
                    "part", "currency", "quantity", "unit", "unit_cost", "cost", "amount"],
    "usage_days": ["billing_period", "accountant_id", "resource_type", "service", "usage_type", "line_item_type",
                   "part", "usage_date", "quantity", "cost", "amount"],
    "daily": ["billing_period", "accountant_id", "resource_type", "usage_date", "cost", "amount"],
    "cost_parts": ["billing_period", "accountant_id", "part", "cost", "amount"],
    "month_to_date": ["billing_period", "accountant_id", "currency", "actual_cost", "actual_cost_amount",
                      "estimated_cost", "estimated_cost_amount", "cost_to_date", "cost_to_date_amount",
                      "forecast_cost", "forecast_cost_amount", "forecast_low", "forecast_low_amount",
                      "forecast_high", "forecast_high_amount", "covered_through", "as_of"],
}


class NothingPublished(Exception):
    """No month has been published (or none could be read) yet."""


def _fits(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Whether a snapshot column of type `found` loads into the API's column of type `wanted` as the same values:
    money only as a decimal whose digits all fit (no text cast, no silent rounding), dates as dates, and so on."""
    if pa.types.is_decimal(wanted):
        return (pa.types.is_decimal(found) and found.scale <= wanted.scale
                and found.precision - found.scale <= wanted.precision - wanted.scale)
    kinds = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    if any(kind(wanted) for kind in kinds):
        return any(kind(found) for kind in kinds)
    for kind in (pa.types.is_date, pa.types.is_timestamp, pa.types.is_boolean, pa.types.is_integer):
        if kind(wanted):
            return kind(found)
    return found == wanted


class PublishedBilling:
    def __init__(self, uri: str | None = None, refresh_seconds: float | None = None):
        from billing_pipeline.api.queries import sql

        self._uri = uri
        self._refresh_seconds = refresh_seconds
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute(sql("schema"))
        self._schemas = {name: self._con.sql(f"SELECT {', '.join(columns)} FROM {name}").to_arrow_table().schema
                         for name, columns in COLUMNS.items()}
        self._complaints: dict[str, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stamps: dict[str, tuple] = {}
        self._read_at: dict[str, int] = {}
        self._snapshots: dict[str, str] = {}
        self._checked = float("-inf")
        self._loaded_once = False
        self.generation = 0

    def _interval(self) -> float:
        if self._refresh_seconds is not None:
            return self._refresh_seconds
        return float(os.environ.get("BILLING_API_REFRESH_SECONDS") or DEFAULT_REFRESH_SECONDS)

    def refresh_due(self) -> bool:
        return time.monotonic() - self._checked >= self._interval()

    def refresh(self) -> None:
        """Swap in the months whose pointer changed (see the module doc)."""
        if time.monotonic() - self._checked < self._interval():
            return
        if not self._lock.acquire(blocking=not self._loaded_once):
            return  # another request is refreshing: serve what is loaded
        try:
            if time.monotonic() - self._checked < self._interval():
                return
            location = publish_location(self._uri)
            stamps = pointer_stamps(location)
            for month, stamp in sorted(stamps.items()):
                # unchanged (mtime, size), and read well after that mtime: S3 keeps times to the second, so a
                # pointer replaced twice within a second keeps its stamp; until it has settled it is re-read
                settled = stamp[0] is not None and self._read_at.get(month, 0) > stamp[0] + SETTLED_NS
                if self._stamps.get(month) == stamp and settled:
                    continue
                try:
                    read_at = time.time_ns()
                    pointer = read_pointer(location, month, stamp)
                    if pointer is None:
                        continue
                    if pointer.snapshot != self._snapshots.get(month):
                        tables = read_snapshot(location, pointer)
                        self._check(location, pointer, tables)
                        self._swap(pointer, tables)
                    self._stamps[month], self._read_at[month] = stamp, read_at
                    self._complaints.pop(month, None)
                except (PublishedError, OSError, duckdb.Error) as error:  # keep the previous snapshot, try again
                    if self._complaints.get(month) != str(error):  # said once, not at every refresh
                        log.warning(f"published billing of {month} not loaded, still serving what was: {error}")
                    self._complaints[month] = str(error)
            for month in set(self._snapshots) - set(stamps):  # a pointer removed: the month is withdrawn
                self._withdraw(month)
            for month in set(self._complaints) - set(stamps):  # a broken pointer removed: nothing more to say
                del self._complaints[month]
            self._checked = time.monotonic()
            self._loaded_once = True
        finally:
            self._lock.release()

    def _check(self, location, pointer: Pointer, tables: dict[str, pa.Table]) -> None:
        """PublishedError naming the table's file when a column the API reads is missing or of another kind."""
        folder = location.join("months", pointer.month, pointer.snapshot)
        for name, table in tables.items():
            where = location.display(f"{folder}/{name}.parquet")
            for wanted in self._schemas[name]:
                index = table.schema.get_field_index(wanted.name)
                if index < 0:
                    raise PublishedError(f"{where}: no column {wanted.name}")
                found = table.schema.field(index).type
                if not _fits(found, wanted.type):
                    raise PublishedError(f"{where}: column {wanted.name} is {found}, not {wanted.type}")

    def _swap(self, pointer, tables) -> None:
        con = self._con.cursor()
        try:
            for name, table in tables.items():
                con.register(f"new_{name}", table.select(COLUMNS[name]))
            con.execute("BEGIN TRANSACTION")
            for name in COLUMNS:  # a table an older snapshot lacks: the month has none of its rows
                con.execute(f"DELETE FROM {name} WHERE billing_period = ?", [pointer.billing_period])
                if name not in tables:
                    continue
                con.execute(f"INSERT INTO {name} SELECT {', '.join(COLUMNS[name])} FROM new_{name} "
                            "WHERE billing_period = ?", [pointer.billing_period])
            document = pointer.document
            con.execute("DELETE FROM published WHERE billing_period = ?", [pointer.billing_period])
            con.execute("INSERT INTO published VALUES (?, ?, ?, ?, ?, ?)",
                        [pointer.billing_period, pointer.snapshot, document.get("published_at"),
                         document.get("delivery_id"), bool(document.get("is_final")), self.generation + 1])
            con.execute("COMMIT")
            self.generation += 1
            self._snapshots[pointer.month] = pointer.snapshot
            log.info(f"serving {pointer.month} from snapshot {pointer.snapshot}")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # failed before the transaction began
            raise
        finally:
            con.close()

    def _withdraw(self, month: str) -> None:
        con = self._con.cursor()
        try:
            con.execute("BEGIN TRANSACTION")
            for name in [*COLUMNS, "published"]:
                con.execute(f"DELETE FROM {name} WHERE strftime(billing_period, '%Y-%m') = ?", [month])
            con.execute("COMMIT")
        finally:
            con.close()
        self.generation += 1
        self._snapshots.pop(month, None)
        self._stamps.pop(month, None)
        self._read_at.pop(month, None)

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of this thread inside one read transaction: every query of a request sees one state."""
        self.refresh()
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        cursor.execute("BEGIN TRANSACTION")
        try:
            if not cursor.execute("SELECT count(*) FROM published").fetchone()[0]:
                raise NothingPublished("No billing figures have been published yet: run the pipeline first.")
            yield cursor
        finally:
            cursor.execute("ROLLBACK")
