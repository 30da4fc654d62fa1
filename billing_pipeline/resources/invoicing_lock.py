"""One invoicing run at a time, across processes: the lock around every invoicing run, from reading the month to
recording what was placed in Stripe.

Two `invoices` runs that overlap (a one-off `dagster asset materialize` beside the schedule, two runs that slipped
through the SQLite pool) would each list a tenant's items, each see the charge missing and each add it. Stripe's
idempotency keys only help when both runs send the very same request within 24 h (and localstripe does not replay
them at all), so the runs are serialized instead, by two locks taken in this order:

- Always, an OS file lock (`filelock`, flock/LockFileEx, released by the OS when the holder dies) beside the DuckDB
  warehouse (its real path, so a link to it is the same lock), which every run invoicing from that warehouse shares
  whatever Dagster instance it runs under (a one-off run on an ephemeral instance beside the Postgres-backed
  schedule included). A warehouse with no local file (Spark on S3) gets one lock file per warehouse URI in the
  host's temporary folder: runs on one host, whatever their instance.
- And when the Dagster instance's storage is Postgres (runs may execute on several hosts): a session-level
  `pg_advisory_lock` on the instance's own database. Postgres releases it when the holder's connection ends, so a
  killed run never leaves it behind. Several hosts invoicing from one warehouse need this storage.

The lock is global, not per month: the tenants' customers are shared by all months, and invoicing takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

from filelock import FileLock, Timeout

LOCK_NAME = "billing_pipeline.invoices.stripe"
DEFAULT_WAIT_SECONDS = 600
# pg_advisory_lock takes a bigint: the lock name's first 8 hash bytes, signed
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)


class InvoicingLockTimeout(Exception):
    """Another invoicing run held the lock for longer than we wait."""


def postgres_url_of(instance) -> str | None:
    """The instance's Postgres URL when its run storage is dagster-postgres, else None."""
    storage = getattr(instance, "run_storage", None) if instance is not None else None
    return getattr(storage, "postgres_url", None)


def lock_file_path(warehouse_path: str | None) -> str:
    if warehouse_path and warehouse_path != ":memory:" and "://" not in warehouse_path:
        return os.path.realpath(warehouse_path) + ".invoices.lock"
    digest = hashlib.sha256((warehouse_path or "").encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"billing_pipeline_invoices-{digest}.lock")


@contextmanager
def invoicing_lock(instance, warehouse_path: str | None, log=None,
                   wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[str]:
    """Hold the invoicing lock; yields a description of the lock held (for the run's log and metadata)."""
    asked = time.monotonic()
    path = lock_file_path(warehouse_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with ExitStack() as held_locks:
        try:
            held_locks.enter_context(FileLock(path, timeout=wait_seconds))
        except Timeout:
            raise InvoicingLockTimeout(f"Another invoicing run held {path} for over {wait_seconds:g} s: nothing "
                                       "was charged; re-run the month when it has finished") from None
        held = f"file lock {path}"
        postgres_url = postgres_url_of(instance)
        if postgres_url:
            left = max(0.001, wait_seconds - (time.monotonic() - asked))
            held_locks.enter_context(_advisory_lock(postgres_url, left, wait_seconds))
            held = f"pg_advisory_lock({ADVISORY_KEY}) on the Dagster instance's Postgres database and the {held}"
        if log:
            log.info(f"Holding the {held} (waited {time.monotonic() - asked:.1f} s)")
        yield held


@contextmanager
def _advisory_lock(postgres_url: str, wait_seconds: float, said_seconds: float) -> Iterator[None]:
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
                        f"Another invoicing run held pg_advisory_lock({ADVISORY_KEY}) for over {said_seconds:g} s:"
                        " nothing was charged; re-run the month when it has finished") from None
                raise
            try:
                yield
            finally:
                con.execute(db.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    finally:
        engine.dispose()
