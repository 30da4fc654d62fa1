"""A backfill's runs write one DuckDB file at once: the `duckdb_warehouse` pool must queue them, never fail them.

Three `dagster asset materialize` processes (one per month) start together against one DAGSTER_HOME configured
like dagster_home/dagster.yaml; all must succeed, no two runs may hold the warehouse file at the same time, and
each month must hold exactly its own delivery.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from billing_pipeline.resources.warehouse import WAREHOUSE_CLOSED, WAREHOUSE_OPENED, WAREHOUSE_POOL
from billing_pipeline.sample_data import generate_month

REPO = Path(__file__).resolve().parents[1]
MONTHS = [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
# three assets of the chain and their checks: 9 steps a run, each of which takes the warehouse; the whole chain
# (16 assets) would queue a few minutes longer and show nothing more
QUEUED_ASSETS = ["cur_line_items", "hourly_cost_facts", "estimated_usage"]


def test_concurrent_runs_queue_on_the_warehouse_pool(tmp_path):
    # three months under one bucket-like tree, as AWS delivers them
    samples = [generate_month(tmp_path / "all", month, tenants=3, rows=600, seed=20 + index)
               for index, month in enumerate(MONTHS)]
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    # create the instance's storage once, as `dagster dev` would, before the runs race for it
    DagsterInstance.from_config(str(home)).dispose()
    warehouse = tmp_path / "warehouse.duckdb"
    env = {**os.environ, "DAGSTER_HOME": str(home), "BILLING_WAREHOUSE": str(warehouse),
           "BILLING_CUR_URI": str(tmp_path / "all" / "cur"), "BILLING_LOGS_URI": str(tmp_path / "all" / "logs"),
           "BILLING_S3_INVENTORY_URI": str(tmp_path / "all" / "inventory"),
           "BILLING_USAGE_URI": str(tmp_path / "all" / "usage")}
    dagster = str(Path(sys.executable).with_name("dagster"))
    processes = [
        subprocess.Popen([dagster, "asset", "materialize", "-m", "billing_pipeline.definitions",
                          "--select", ",".join(QUEUED_ASSETS), "--partition", month.isoformat()],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for month in MONTHS
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    instance = DagsterInstance.from_config(str(home))
    # The pool queues the steps (limit 1): most of the time one step of the three runs runs at a time.
    assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
    # What must hold every time is that no two runs hold the warehouse file at once. The pool alone does not
    # promise it on the default SQLite instance storage: its slot claim selects a free slot `FOR UPDATE`, which
    # SQLite ignores, and two processes can take the same slot (Dagster's sql_event_log._claim_concurrency_slot;
    # seen here once in ~20 runs, as two steps overlapping by under a second). DuckDB's one-writer file lock,
    # which dagster-duckdb waits on, closes that gap: the steps' "Opened/Closed the warehouse" lines show it.
    holds = []
    for run in instance.get_runs():
        opened = None
        for entry in instance.all_logs(run.run_id):
            if entry.user_message.startswith(WAREHOUSE_OPENED):
                assert opened is None, "a step opened the warehouse twice"
                opened = entry.timestamp
            elif entry.user_message.startswith(WAREHOUSE_CLOSED):
                holds.append((opened, entry.timestamp, run.run_id))
                opened = None
    # every run's steps ran, each holding the warehouse
    assert {run: sum(1 for *_, r in holds if r == run) >= len(QUEUED_ASSETS) for run in {r for *_, r in holds}} == \
        {run.run_id: True for run in instance.get_runs()}
    assert len(instance.get_runs()) == 3
    holds.sort()
    for (_, closed, run), (opened, _, next_run) in zip(holds, holds[1:]):
        assert run == next_run or opened >= closed, "two runs held the warehouse at the same time"

    with duckdb.connect(str(warehouse), read_only=True) as con:
        months = con.execute("""SELECT billing_period, count(*), sum(unblended_cost) FROM cur_line_items
                                GROUP BY ALL ORDER BY ALL""").fetchall()
    assert months == [(s.billing_period, s.line_items, s.bill_total) for s in samples]


def test_a_killed_run_does_not_hold_the_warehouse_pool_forever(tmp_path, monkeypatch):
    """A run process killed outright (the kernel's OOM killer, a lost host) while a step holds the pool's one slot:
    the run stays STARTED and the slot claimed, and every later run of every month waits for it, without failing,
    for ever (Dagster frees a finished run's slots only with run_monitoring's free_slots_after_run_end_seconds, and
    the default run launcher cannot see a dead run worker: only max_runtime_seconds ends the run). The instance's
    dagster.yaml lets the daemon's monitoring fail the run after max_runtime_seconds and free its slot."""
    import logging
    import signal
    from types import SimpleNamespace

    from dagster import DagsterRunStatus
    from dagster._daemon.monitoring import concurrency as slot_monitoring
    from dagster._daemon.monitoring import run_monitoring

    sample = generate_month(tmp_path / "all", MONTHS[0], tenants=2, rows=300, seed=20)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    DagsterInstance.from_config(str(home)).dispose()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BILLING_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
           "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri}
    dagster = str(Path(sys.executable).with_name("dagster"))
    run = subprocess.Popen([dagster, "asset", "materialize", "-m", "billing_pipeline.definitions", "--select",
                            ",".join(QUEUED_ASSETS), "--partition", MONTHS[0].isoformat()],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in run.stdout:
        if "STEP_START" in line and "hourly_cost_facts" in line:  # the step holds the pool's slot
            run.send_signal(signal.SIGKILL)
            break
    run.communicate(timeout=60)

    instance = DagsterInstance.from_config(str(home))
    (killed,) = instance.get_run_records()
    assert killed.dagster_run.status == DagsterRunStatus.STARTED
    claimed = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    assert [(slot.run_id, slot.step_key) for slot in claimed] == [(killed.dagster_run.run_id, "hourly_cost_facts")]

    # the daemon's monitoring, as `dagster dev` runs it, max_runtime_seconds after the run started (the default
    # run launcher has no code location to ask, so no workspace is needed)
    assert instance.run_monitoring_enabled
    later = killed.start_time + instance.run_monitoring_max_runtime_seconds + 1
    monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: later)
    daemon = SimpleNamespace(instance=instance, create_request_context=lambda: None)
    log = logging.getLogger("run_monitoring")
    list(run_monitoring.execute_run_monitoring_iteration(daemon, log))  # STARTED past its time: failed
    assert instance.get_run_by_id(killed.dagster_run.run_id).status == DagsterRunStatus.FAILURE
    ended = instance.get_run_record_by_id(killed.dagster_run.run_id).end_time
    freed_after = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
    monkeypatch.setattr(slot_monitoring, "get_current_datetime",
                        lambda: dt.datetime.fromtimestamp(ended + freed_after + 1, dt.timezone.utc))
    list(slot_monitoring.execute_concurrency_slots_iteration(daemon, log))
    assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots == []

    # and the next run takes the warehouse instead of waiting for ever
    done = subprocess.run([dagster, "asset", "materialize", "-m", "billing_pipeline.definitions", "--select",
                           ",".join(QUEUED_ASSETS), "--partition", MONTHS[0].isoformat()],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
