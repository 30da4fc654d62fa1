"""A backfill's runs write one DuckDB file at once: the `duckdb_warehouse` pool must queue them, never fail them.

Three `dagster asset materialize` processes (one per month) start together against one DAGSTER_HOME configured
like dagster_home/dagster.yaml; all must succeed, no two pooled steps of different runs may overlap in time, and
each month must hold exactly its own delivery.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from dagster import DagsterEventType, DagsterInstance

from billing_pipeline.definitions import defs
from billing_pipeline.sample_data import generate_month

REPO = Path(__file__).resolve().parents[1]
MONTHS = [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]


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
        subprocess.Popen([dagster, "asset", "materialize", "-m", "billing_pipeline.definitions", "--select", "*",
                          "--partition", month.isoformat()],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for month in MONTHS
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    instance = DagsterInstance.from_config(str(home))
    steps = {}
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
            steps.setdefault((run.run_id, entry.step_key), {})[entry.dagster_event_type] = entry.timestamp
    spans = sorted((s[DagsterEventType.STEP_START], s[DagsterEventType.STEP_SUCCESS], run)
                   for (run, _), s in steps.items())
    assets_per_run = len(defs.resolve_asset_graph().get_all_asset_keys())
    assert len({run for *_, run in spans}) == 3 and len(spans) == 3 * assets_per_run
    for (_, end, run), (start, _, next_run) in zip(spans, spans[1:]):
        assert start >= end, "two warehouse steps ran at the same time"

    with duckdb.connect(str(warehouse), read_only=True) as con:
        months = con.execute("""SELECT billing_period, count(*), sum(unblended_cost) FROM cur_line_items
                                GROUP BY ALL ORDER BY ALL""").fetchall()
    assert months == [(s.billing_period, s.line_items, s.bill_total) for s in samples]
