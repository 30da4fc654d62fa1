"""The production profile: Dagster's instance storage on a real PostgreSQL server (dagster_home/postgres/dagster.yaml),
started here from the Debian package's binaries. Concurrent runs queue on the `duckdb_warehouse` pool and never
hold the warehouse at once, and the invoicing lock is a pg_advisory_lock on the instance's database."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from billing_pipeline.resources.output_lock import ADVISORY_KEY
from billing_pipeline.resources.warehouse import WAREHOUSE_CLOSED, WAREHOUSE_OPENED, WAREHOUSE_POOL
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests import postgres_server
from billing_pipeline_tests.stripe_support import assert_one_set, run_together

REPO = Path(__file__).resolve().parents[1]
MONTHS = [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
# three assets of the chain and their checks: 9 steps a run, each of which takes the warehouse; the whole chain
# (16 assets) would queue a few minutes longer and show nothing more
QUEUED_ASSETS = ["cur_line_items", "hourly_cost_facts", "estimated_usage"]

pytestmark = pytest.mark.skipif(not postgres_server.available(),
                                reason=f"PostgreSQL server binaries not found in {postgres_server.PG_BIN}")


@pytest.fixture(scope="module")
def postgres():
    folder = postgres_server.new_folder()
    server, stop = postgres_server.start(folder)
    yield server
    stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_home(postgres, tmp_path, monkeypatch):
    """A DAGSTER_HOME with the documented Postgres dagster.yaml, on a database of its own."""
    database = postgres_server.create_database(postgres, f"dagster_{uuid.uuid4().hex[:12]}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    variables = postgres_server.instance_environment(database)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return home, variables


def test_documented_yaml_gives_postgres_storage_with_the_pool(pg_home):
    home, _ = pg_home
    instance = DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.run_storage.postgres_url.startswith("postgresql+psycopg2://")
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()


def test_concurrent_runs_queue_on_the_pool_on_postgres(pg_home, tmp_path):
    home, variables = pg_home
    for index, month in enumerate(MONTHS):
        generate_month(tmp_path / "all", month, tenants=3, rows=400, seed=40 + index)
    warehouse = tmp_path / "warehouse.duckdb"
    environment = {**os.environ, **variables, "DAGSTER_HOME": str(home), "BILLING_WAREHOUSE": str(warehouse),
                   "PYTHONPATH": str(REPO), "BILLING_CUR_URI": str(tmp_path / "all" / "cur"),
                   "BILLING_LOGS_URI": str(tmp_path / "all" / "logs"),
                   "BILLING_S3_INVENTORY_URI": str(tmp_path / "all" / "inventory"),
                   "BILLING_USAGE_URI": str(tmp_path / "all" / "usage")}
    dagster = str(Path(sys.executable).with_name("dagster"))
    # the documented setup step (docs/postgres.md): the schema, and the pool's row, before runs race to create it
    # (runs that start together otherwise collide on concurrency_limits' unique key on Postgres)
    subprocess.run([dagster, "instance", "concurrency", "set", WAREHOUSE_POOL, "1"], env=environment, check=True,
                   capture_output=True, timeout=120)
    processes = [subprocess.Popen([dagster, "asset", "materialize", "-m", "billing_pipeline.definitions",
                                   "--select", ",".join(QUEUED_ASSETS), "--partition", month.isoformat()],
                                  cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
                 for month in MONTHS]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    instance = DagsterInstance.from_config(str(home))
    try:
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        runs = instance.get_runs()
        assert len(runs) == 3
        # What must hold is that no two runs hold the warehouse file at once. The pool alone does not promise it
        # on Postgres either: dagster-postgres runs the slot claim's SELECT ... FOR UPDATE in autocommit, so the
        # row lock ends with the statement (see dagster-io/dagster#34092's review); DuckDB's file lock, which
        # dagster-duckdb waits on, closes that gap, as on SQLite. Each step logs when it opened and closed it.
        holds = []
        for run in runs:
            opened = None
            for entry in instance.all_logs(run.run_id):
                if entry.user_message.startswith(WAREHOUSE_OPENED):
                    assert opened is None, "a step opened the warehouse twice"
                    opened = entry.timestamp
                elif entry.user_message.startswith(WAREHOUSE_CLOSED):
                    holds.append((opened, entry.timestamp, run.run_id))
                    opened = None
        # every run's steps ran: one hold per asset of the chain at least (its asset checks' steps open it too)
        assert {r.run_id: sum(1 for *_, h in holds if h == r.run_id) >= len(QUEUED_ASSETS) for r in runs} == \
            {r.run_id: True for r in runs}
        holds.sort()
        for (_, closed, run), (opened, _, next_run) in zip(holds, holds[1:]):
            assert run == next_run or opened >= closed, "two runs held the warehouse at the same time"
    finally:
        instance.dispose()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        months = con.execute("SELECT DISTINCT billing_period FROM cur_line_items ORDER BY 1").fetchall()
    assert [m for (m,) in months] == MONTHS


def test_invoicing_lock_is_a_postgres_advisory_lock(pg_home, env, tmp_path):
    """Three runs of one month at once on the Postgres instance, without the pool (a yaml with storage only): the
    advisory lock alone keeps Stripe at one set of items and one customer per tenant."""
    home, variables = pg_home
    (home / "dagster.yaml").write_text("\n".join(
        line for line in (REPO / "dagster_home" / "postgres" / "dagster.yaml").read_text().splitlines()
        if not line.startswith(("concurrency", "  pools", "    default_limit"))))
    DagsterInstance.from_config(str(home)).dispose()
    sample, warehouse, stripe_api = env
    outputs = run_together(extra_env={**variables, "DAGSTER_HOME": str(home)}, instance="home")
    assert_one_set(sample, warehouse, stripe_api)
    assert all(f"Holding the pg_advisory_lock({ADVISORY_KEY}) on the Dagster instance's Postgres database and the "
               f"file lock {warehouse}.invoices.lock" in output for output in outputs)


def test_a_run_on_the_postgres_instance_also_waits_for_a_one_off_run_beside_the_warehouse(pg_home, tmp_path):
    """A one-off `dagster asset materialize` on an ephemeral instance takes only the file lock beside the warehouse;
    a run of the Postgres-backed instance must wait for it too (it took only the advisory lock before, so both
    invoiced at once)."""
    from billing_pipeline.resources.output_lock import OutputLockTimeout, invoicing_lock

    home, _ = pg_home
    warehouse = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from billing_pipeline.resources.output_lock import invoicing_lock\n"
        "with invoicing_lock(None, sys.argv[1]):\n    print('held', flush=True); time.sleep(30)\n"), str(warehouse)],
        stdout=subprocess.PIPE, text=True)
    instance = DagsterInstance.from_config(str(home))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockTimeout, match=f"held {warehouse}.invoices.lock for over 0.5 s"):
            with invoicing_lock(instance, str(warehouse), wait_seconds=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()
        instance.dispose()


def test_advisory_lock_waits_and_gives_up_clearly(pg_home):
    """While another session holds the advisory lock, a run waits, then fails naming the lock; when that session
    ends (a killed run), the lock is free again."""
    import sqlalchemy as db

    from billing_pipeline.resources.output_lock import OutputLockTimeout, invoicing_lock

    home, _ = pg_home
    instance = DagsterInstance.from_config(str(home))
    holder = db.create_engine(instance.run_storage.postgres_url, isolation_level="AUTOCOMMIT",
                              poolclass=db.pool.NullPool)  # closing the connection ends the session
    try:
        with holder.connect() as other:
            other.execute(db.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            with pytest.raises(OutputLockTimeout) as error:
                with invoicing_lock(instance, None, wait_seconds=0.5):
                    pass
            assert str(error.value) == (f"Another invoicing run held pg_advisory_lock({ADVISORY_KEY}) for over 0.5 s:"
                                        " nothing was charged; re-run the month when it has finished")
        with invoicing_lock(instance, None, wait_seconds=5) as held:  # the holder's connection ended
            assert held.startswith(f"pg_advisory_lock({ADVISORY_KEY})")
    finally:
        holder.dispose()
        instance.dispose()
