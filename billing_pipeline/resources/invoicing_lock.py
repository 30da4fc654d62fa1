"""One invoicing run at a time, across processes: the lock around every list-then-create sequence in Stripe.

Two `invoices` runs that overlap (a one-off `dagster asset materialize` beside the schedule, two runs that slipped
through the SQLite pool) would each list a tenant's items, each see the charge missing and each add it. Stripe's
idempotency keys only help when both runs send the very same request within 24 h (and localstripe does not replay
them at all), so the runs are serialized instead:

- Dagster instance storage on Postgres (runs may execute on several hosts): a session-level `pg_advisory_lock` on
  the instance's own database. Postgres releases it when the holder's connection ends, so a killed run never
  leaves it behind.
- Otherwise (SQLite storage, the ephemeral instance of `dagster asset materialize` without DAGSTER_HOME): an OS
  file lock (`filelock`, flock/LockFileEx, released by the OS when the holder dies) beside the DuckDB warehouse,
  which every writer of the month shares whatever DAGSTER_HOME it uses; a Spark warehouse on S3 has no local file
  beside it, so the lock goes into DAGSTER_HOME (one host; use Postgres storage for several).

The lock is global, not per month: the tenants' customers are shared by all months, and invoicing takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from filelock import FileLock, Timeout

LOCK_NAME = "billing_pipeline.invoices.stripe"
LOCK_FILE = "billing_pipeline_invoices.lock"
DEFAULT_WAIT_SECONDS = 600
# pg_advisory_lock takes a bigint: the lock name's first 8 hash bytes, signed
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)


class InvoicingLockTimeout(Exception):
    """Another invoicing run held the lock for longer than we wait."""


def postgres_url_of(instance) -> str | None:
    """The instance's Postgres URL when its run storage is dagster-postgres, else None."""
    storage = getattr(instance, "run_storage", None) if instance is not None else None
    return getattr(storage, "postgres_url", None)


def lock_file_path(warehouse_path: str | None, instance_root: str | None) -> str:
    if warehouse_path and warehouse_path != ":memory:" and "://" not in warehouse_path:
        return os.path.abspath(warehouse_path) + ".invoices.lock"
    directory = instance_root or os.environ.get("DAGSTER_HOME") or tempfile.gettempdir()
    return os.path.join(directory, LOCK_FILE)


@contextmanager
def invoicing_lock(instance, warehouse_path: str | None, log=None,
                   wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[str]:
    """Hold the invoicing lock; yields a description of the lock held (for the run's log and metadata)."""
    asked = time.monotonic()
    postgres_url = postgres_url_of(instance)
    if postgres_url:
        with _advisory_lock(postgres_url, wait_seconds):
            held = f"pg_advisory_lock({ADVISORY_KEY}) on the Dagster instance's Postgres database"
            if log:
                log.info(f"Holding {held} (waited {time.monotonic() - asked:.1f} s)")
            yield held
        return
    path = lock_file_path(warehouse_path, getattr(instance, "root_directory", None))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with FileLock(path, timeout=wait_seconds):
            held = f"file lock {path}"
            if log:
                log.info(f"Holding the {held} (waited {time.monotonic() - asked:.1f} s)")
            yield held
    except Timeout:
        raise InvoicingLockTimeout(f"Another invoicing run held {path} for over {wait_seconds:g} s: nothing "
                                   "was charged; re-run the month when it has finished") from None


@contextmanager
def _advisory_lock(postgres_url: str, wait_seconds: float) -> Iterator[None]:
    import sqlalchemy as db
    from sqlalchemy.pool import NullPool

    if postgres_url.startswith("postgresql://"):
        # the driver dagster-postgres installs (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)
        postgres_url = "postgresql+psycopg2://" + postgres_url[len("postgresql://"):]
    # A dedicated connection (autocommit, no pool): the session lock lives exactly as long as this connection
    engine = db.create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(db.text(f"SET lock_timeout = '{int(wait_seconds * 1000)}ms'"))
            try:
                con.execute(db.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            except db.exc.OperationalError as error:
                if "lock timeout" in str(error).lower():
                    raise InvoicingLockTimeout(
                        f"Another invoicing run held pg_advisory_lock({ADVISORY_KEY}) for over {wait_seconds:g} s:"
                        " nothing was charged; re-run the month when it has finished") from None
                raise
            try:
                yield
            finally:
                con.execute(db.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    finally:
        engine.dispose()
