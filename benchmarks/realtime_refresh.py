"""The real-time refresh measured (issue 17 item 3): on a month of `benchmarks.generate`, the full chain through
month_to_date, then the hourly refresh (`month_to_date_job`: usage_shares from the evidence after the CUR's
coverage, month_to_date, and the month republished for the API) and the lag from a new usage record to a live figure through `usage_evidence_sensor`.

    python -m benchmarks.realtime_refresh --data data/bench/10m --rows 10000000 \
        --covered-through 2026-01-30T18 2026-01-20T18

Setup, not timed: the CUR is cut where a delivery would have stopped (`--covered-through`, latest first: the
facts after it are
deleted and tenant_costs rebuilt, as the backtest's replays cut them), and every log file and inventory manifest
gets the modification time it would have had if exported at the end of its stream's day / when its snapshot was
taken (the generator writes them all now). The refresh then opens only the files that can hold hours after the
coverage. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

from dagster import AssetSelection

from benchmarks.generate import generate

REPO = Path(__file__).resolve().parents[1]
# every asset that month_to_date_job's republishing (published_billing) reads must hold the month
CHAIN = AssetSelection.groups("billing")
# what a new CUR delivery recomputes after the facts (the cut is made in the facts)
AFTER_FACTS = AssetSelection.assets("tenant_costs").downstream()


def deliver_at_end_of_day(data: dict) -> int:
    """Log files as exported at the end of their stream's day, manifests when their snapshot was taken."""
    touched = 0
    for path in Path(data["logs_uri"]).rglob("*.gz"):
        found = re.search(r"/(\d{4})/(\d{2})/(\d{2})/", str(path))
        if found:
            at = dt.datetime(*map(int, found.groups()), tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
            os.utime(path, (at.timestamp(), at.timestamp()))
            touched += 1
    for path in Path(data["inventory_uri"]).rglob("manifest.json"):
        found = re.search(r"/(\d{4})-(\d{2})-(\d{2})T", str(path))
        if found:
            at = dt.datetime(*map(int, found.groups()), tzinfo=dt.timezone.utc)
            os.utime(path, (at.timestamp(), at.timestamp()))
    return touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a generated month (generated if absent)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="CUR line items when generating")
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--covered-through", nargs="+", default=["2026-01-30T18", "2026-01-20T18"],
                        help="where the CUR delivery stops (UTC), one refresh measured per value, latest first")
    parser.add_argument("--work", type=Path, default=None, help="warehouse folder (default: <data>/realtime)")
    args = parser.parse_args(argv)

    info_file = args.data / "generated.json"
    data = json.loads(info_file.read_text()) if info_file.exists() else generate(args.data, args.rows,
                                                                                   tenants=args.tenants)
    work = args.work or args.data / "realtime"
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "warehouse.duckdb"
    for leftover in (warehouse, Path(str(warehouse) + ".wal")):
        leftover.unlink(missing_ok=True)
    os.environ.update({
        "BILLING_CUR_URI": data["cur_uri"], "BILLING_LOGS_URI": data["logs_uri"],
        "BILLING_S3_INVENTORY_URI": data["inventory_uri"], "BILLING_USAGE_URI": data["usage_uri"],
        "BILLING_WAREHOUSE": str(warehouse),
    })
    import duckdb
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs
    from billing_pipeline.resources.billing_config import BillingConfig
    from billing_pipeline.sensors import evidence_fingerprint

    partition = f"{data['month'][:7]}-01"
    period = dt.date.fromisoformat(partition)
    cuts = sorted((dt.datetime.fromisoformat(c) for c in args.covered_through), reverse=True)
    out: dict = {"line_items": data["rows"], "log_lines": data["log_lines"], "tenants": data["tenants"],
                 "refreshes": []}

    with DagsterInstance.ephemeral() as instance:
        began = time.perf_counter()
        assert materialize(defs.assets, selection=CHAIN, resources=defs.resources, partition_key=partition,
                           instance=instance).success
        out["full_chain_seconds"] = round(time.perf_counter() - began, 1)

        out["log_files_dated"] = deliver_at_end_of_day(data)
        out["month_log_files"] = sum(1 for _ in Path(data["logs_uri"]).rglob("*.gz"))
        for covered in cuts:
            # the CUR delivery cut at `covered` (setup)
            with duckdb.connect(str(warehouse)) as con:
                con.execute("""DELETE FROM hourly_cost_facts WHERE billing_period = ?
                               AND usage_hour + to_hours(span_hours) > ?""", [period, covered])
            assert materialize(defs.assets, selection=AFTER_FACTS, resources=defs.resources, partition_key=partition,
                               instance=instance).success

            job = defs.resolve_job_def("month_to_date_job")
            cpu, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            result = job.execute_in_process(partition_key=partition, instance=instance)
            seconds, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
            assert result.success
            metadata = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
                        for e in result.get_asset_materialization_events()}
            shares = metadata["usage_shares"]
            out["refreshes"].append({
                "covered_through": str(covered), "seconds": round(seconds, 1),
                "cpu_seconds": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
                "read_from": shares["read_from"].value, "files_read": shares["files_read"].value,
                "log_lines_read": shares["log_lines_read"].value,
                "hours_estimated": metadata["month_to_date"]["hours_estimated"].value,
                "step_seconds": {e.step_key: round(e.event_specific_data.duration_ms / 1000, 1)
                                 for e in result.get_step_success_events()},
            })

        # against re-reading the whole month's evidence (what the refresh did before), at the last cut
        shares_and_mtd = [a for a in defs.assets if a.key.to_user_string() in ("usage_shares", "month_to_date")]
        cpu, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        assert materialize(shares_and_mtd, resources=defs.resources, partition_key=partition, instance=instance).success
        after = resource.getrusage(resource.RUSAGE_SELF)
        out["whole_month_reread"] = {"seconds": round(time.perf_counter() - began, 1), "cpu_seconds": round(
            after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1)}

        # the lag: a new export file appears; the sensor's tick notices it and requests one refresh run
        config = BillingConfig(logs_uri=data["logs_uri"], s3_inventory_uri=data["inventory_uri"])
        began = time.perf_counter()
        evidence_fingerprint(config)
        out["sensor_tick_seconds"] = round(time.perf_counter() - began, 2)
        sensor = defs.resolve_sensor_def("usage_evidence_sensor")
        out["sensor_interval_seconds"] = sensor.minimum_interval_seconds
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
