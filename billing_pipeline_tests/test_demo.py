"""The README's first command: sample months in, report out, and the runs visible to `dagster dev`."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from billing_pipeline_tests.conftest import DEMO_GROUP


@DEMO_GROUP
def test_demo_runs_two_months_into_the_repositorys_dagster_home(demo_run, monkeypatch):
    root, out = demo_run
    assert "Sample month 2025-12 (final)" in out and "Sample month 2026-01 (provisional)" in out
    assert "Reconciliation report 2026-01 (provisional), warehouse data/warehouse.duckdb" in out
    home = root / "dagster_home"
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


def test_the_printed_report_uses_the_one_number_format(tmp_path):
    import datetime as dt
    from decimal import Decimal as D

    import duckdb

    from billing_pipeline.demo import format_report
    from billing_pipeline.resources.warehouse import warehouse_ddl

    path = str(tmp_path / "w.duckdb")
    jan, dec = dt.date(2026, 1, 1), dt.date(2025, 12, 1)
    with duckdb.connect(path) as con:
        con.execute(warehouse_ddl())
        for period, accountant, resource_type, estimated, actual, pct, flagged in [
                (jan, "acc-1", "lambda", "1000", "1234.5649", "18.9979", True),
                (jan, "acc-1", "total", "1000", "1234.5649", "18.9979", True),
                (jan, "acc-2", "total", "2", "0.0051", "-39115.6863", True),
                (jan, "unattributed", "total", "0", "0.0050", "100.0000", True),
                (dec, "acc-3", "total", "1", "1", "0", False)]:
            con.execute("""INSERT INTO reconciliation_report (billing_period, accountant_id, resource_type, currency,
                           estimated_cost, actual_cost, variance, variance_pct, flagged, is_final)
                           VALUES (?, ?, ?, 'USD', ?, ?, ?, ?, ?, false)""",
                        [period, accountant, resource_type, D(estimated), D(actual), D(actual) - D(estimated),
                         D(pct), flagged])
    # totals 1234.5649 + 0.0051 + 0.0050 = 1234.575 -> 1234.58 in cents: floors 1234.56 + 0.00 + 0.00, two cents
    # missing go to the largest remainders (acc-2's .0051, unattributed's .0050)
    assert format_report(path, jan).splitlines()[1:] == [
        "accountant_id    resource_type        estimated           actual    variance  flag",
        "acc-1            lambda            1,000.00 USD     1,234.56 USD     +19.0 %  FLAG",
        "acc-1            total             1,000.00 USD     1,234.56 USD     +19.0 %  FLAG",
        "acc-2            total                 2.00 USD         0.01 USD -39,115.7 %  FLAG",
        "unattributed     total                 0.00 USD         0.01 USD    +100.0 %  FLAG",
        "in-scope total (USD, the statements' cents): 1,234.58 USD",
        "flagged tenants (3): acc-1, acc-2, unattributed",
        "warning: no estimate and no cost in 2026-01 for acc-3",
    ]
