"""One run at a time, across processes, for each output that leaves the warehouse and is read back to decide what
to write next: invoicing (Stripe) and the usage-table write-back (DynamoDB). The lock is held from reading the
month to recording what the output holds.

Two `invoices` runs that overlap (a one-off `dagster asset materialize` beside the schedule, two runs that slipped
through the SQLite pool) would each list a tenant's items, each see the charge missing and each add it. Stripe's
idempotency keys only help when both runs send the very same request within 24 h (and localstripe does not replay
them at all). Two write-back runs of different deliveries (a restatement between them) would each delete what the
other wrote as stale and leave the older one's amounts. So the runs of one output are serialized, by two locks
taken in this order:

- Always, an OS file lock (`filelock`, flock/LockFileEx, released by the OS when the holder dies) beside the DuckDB
  warehouse (its real path, so a link to it is the same lock; `<warehouse>.<output>.lock`), which every run writing
  that output from that warehouse shares whatever Dagster instance it runs under (a one-off run on an ephemeral
  instance beside the Postgres-backed schedule included). A warehouse with no local file (Spark on S3) gets one
  lock file per output and warehouse URI in the host's temporary folder: runs on one host, whatever their instance.
- And when the Dagster instance's storage is Postgres (runs may execute on several hosts): a session-level
  `pg_advisory_lock` on the instance's own database. Postgres releases it when the holder's connection ends, so a
  killed run never leaves it behind. Several hosts writing one output from one warehouse need this storage.

Each lock is global to its output, not per month: the tenants' customers are shared by all months, and invoicing
takes seconds. An asset takes only its own output's lock, before the warehouse: no run holds one lock waiting for
another.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

from filelock import FileLock, Timeout

DEFAULT_WAIT_SECONDS = 600
# output -> (lock name, the run that holds it, what a run that gives up has not done)
OUTPUTS = {
    "invoices": ("billing_pipeline.invoices.stripe", "invoicing run", "nothing was charged"),
    "usage_table_writeback": ("billing_pipeline.usage_table_writeback.dynamodb", "write-back run",
                              "nothing was written back"),
}


def advisory_key(output: str) -> int:
    """pg_advisory_lock takes a bigint: the output's lock name's first 8 hash bytes, signed."""
    return int.from_bytes(hashlib.sha256(OUTPUTS[output][0].encode()).digest()[:8], "big", signed=True)


ADVISORY_KEY = advisory_key("invoices")


class OutputLockTimeout(Exception):
    """Another run writing the same output held its lock for longer than we wait."""


def postgres_url_of(instance) -> str | None:
    """The instance's Postgres URL when its run storage is dagster-postgres, else None."""
    storage = getattr(instance, "run_storage", None) if instance is not None else None
    return getattr(storage, "postgres_url", None)


def lock_file_path(warehouse_path: str | None, output: str = "invoices") -> str:
    if warehouse_path and warehouse_path != ":memory:" and "://" not in warehouse_path:
        return os.path.realpath(warehouse_path) + f".{output}.lock"
    digest = hashlib.sha256((warehouse_path or "").encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"billing_pipeline_{output}-{digest}.lock")


def invoicing_lock(instance, warehouse_path: str | None, log=None, wait_seconds: float = DEFAULT_WAIT_SECONDS):
    """Hold the invoicing lock (Stripe); yields a description of the lock held."""
    return output_lock("invoices", instance, warehouse_path, log, wait_seconds)


def writeback_lock(instance, warehouse_path: str | None, log=None, wait_seconds: float = DEFAULT_WAIT_SECONDS):
    """Hold the usage-table write-back lock (DynamoDB); yields a description of the lock held."""
    return output_lock("usage_table_writeback", instance, warehouse_path, log, wait_seconds)


@contextmanager
def output_lock(output: str, instance, warehouse_path: str | None, log=None,
                wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[str]:
    """Hold `output`'s lock (OUTPUTS); yields a description of the lock held (for the run's log and metadata)."""
    _name, holder, not_done = OUTPUTS[output]
    asked = time.monotonic()
    path = lock_file_path(warehouse_path, output)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with ExitStack() as held_locks:
        try:
            held_locks.enter_context(FileLock(path, timeout=wait_seconds))
        except Timeout:
            raise OutputLockTimeout(f"Another {holder} held {path} for over {wait_seconds:g} s: {not_done}; re-run "
                                    "the month when it has finished") from None
        held = f"file lock {path}"
        postgres_url = postgres_url_of(instance)
        if postgres_url:
            left = max(0.001, wait_seconds - (time.monotonic() - asked))
            held_locks.enter_context(_advisory_lock(postgres_url, output, left, wait_seconds))
            held = f"pg_advisory_lock({advisory_key(output)}) on the Dagster instance's Postgres database and the {held}"
        if log:
            log.info(f"Holding the {held} (waited {time.monotonic() - asked:.1f} s)")
        yield held


@contextmanager
def _advisory_lock(postgres_url: str, output: str, wait_seconds: float, said_seconds: float) -> Iterator[None]:
    import sqlalchemy as db
    from sqlalchemy.pool import NullPool

    _name, holder, not_done = OUTPUTS[output]
    key = advisory_key(output)
    if postgres_url.startswith("postgresql://"):
        # the driver dagster-postgres installs (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)
        postgres_url = "postgresql+psycopg2://" + postgres_url[len("postgresql://"):]
    # A dedicated connection (autocommit, no pool): the session lock lives exactly as long as this connection
    engine = db.create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(db.text(f"SET lock_timeout = '{int(wait_seconds * 1000)}ms'"))
            try:
                con.execute(db.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except db.exc.OperationalError as error:
                if "lock timeout" in str(error).lower():
                    raise OutputLockTimeout(
                        f"Another {holder} held pg_advisory_lock({key}) for over {said_seconds:g} s: {not_done}; "
                        "re-run the month when it has finished") from None
                raise
            try:
                yield
            finally:
                con.execute(db.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()
