"""A January month run through the real Definitions, shared by the month-integrity, commit-guard and hostile-output
tests: the assets to run, the run itself, its failure text, the warehouse and export snapshots, a re-delivery."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
    materialize,
)

from billing_pipeline.checks.month_lineage import month_from_one_delivery
from billing_pipeline.definitions import defs

JAN = dt.date(2026, 1, 1)
TABLES = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
          "reconciliation_report", "pricing_feedback", "statements"]
ASSETS = {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
          "reconciliation_report", "pricing_feedback", "statements", "published_billing"}


def point_at(monkeypatch, sample, root: Path, cur: Path | None = None, logs: Path | None = None) -> Path:
    """The environment of a run on the generated `sample` (its CUR or logs replaced by a copy a test changes), with
    the warehouse (returned) and the exports under `root`."""
    env = {"BILLING_CUR_URI": str(cur or sample.cur_uri), "BILLING_LOGS_URI": str(logs or sample.logs_uri),
           "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
           "BILLING_WAREHOUSE": str(root / "w.duckdb"), "BILLING_EXPORT_URI": str(root / "exports")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return root / "w.duckdb"


def run(names):
    return materialize([a for a in defs.assets if a.key.to_user_string() in names], resources=defs.resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral(), raise_on_error=False)


def run_check():
    """Only the month_from_one_delivery check, for January (no asset is materialized; the partition is given as
    the run's tag, since Dagster cannot infer a partitioned run from a selection of checks alone)."""
    job = define_asset_job("lineage_check", selection=AssetSelection.checks(month_from_one_delivery))
    checks = Definitions(assets=list(defs.assets), asset_checks=[month_from_one_delivery], jobs=[job],
                         resources=defs.resources)
    result = checks.resolve_job_def("lineage_check").execute_in_process(
        tags={"dagster/partition": "2026-01-01"}, instance=DagsterInstance.ephemeral(), raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def failure_message(result) -> str:
    return "\n".join(str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure)


def snapshot(warehouse: Path) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def exports_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def redeliver(cur: Path, assembly_id: str) -> None:
    """The same files under a new assemblyId: AWS's next delivery of the month."""
    (manifest,) = [p for p in cur.rglob("*-Manifest.json") if p.parent.name == "20260101-20260201"]
    content = json.loads(manifest.read_text())
    content["assemblyId"] = assembly_id
    manifest.write_text(json.dumps(content))
