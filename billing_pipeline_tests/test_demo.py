"""The README's first command: sample months in, report out, and the runs visible to `dagster dev`."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter


def test_demo_runs_two_months_into_the_repositorys_dagster_home(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "DAGSTER_HOME"))}
    done = subprocess.run([sys.executable, "-m", "billing_pipeline.demo", "--rows", "1500", "--tenants", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Sample month 2025-12 (final)" in out and "Sample month 2026-01 (provisional)" in out
    assert "Reconciliation report 2026-01 (provisional), warehouse data/warehouse.duckdb" in out
    home = tmp_path / "dagster_home"
    assert (f"DAGSTER_HOME={home} BILLING_FIRST_MONTH=2025-12 .venv/bin/dagster dev") in out

    # the same instance `dagster dev` opens with that DAGSTER_HOME holds both runs
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="billing_month_job"))
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["2025-12-01", "2026-01-01"]
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}


def test_demo_with_a_wrong_setting_says_so_in_one_line_per_problem(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "DAGSTER_HOME"))}
    env["BILLING_COST_METRIC"] = "blended"
    done = subprocess.run([sys.executable, "-m", "billing_pipeline.demo", "--rows", "500", "--tenants", "1",
                           "--months-before", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "Settings are not valid:",
        "- BILLING_COST_METRIC='blended' (set): not one of them (did you mean 'unblended'?); "
        "expected one of unblended, amortized, net_amortized",
    ]
