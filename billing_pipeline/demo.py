"""The README's first command: generate a sample month, run the whole asset chain on it, print the report.

    python -m billing_pipeline.demo [--month 2026-01] [--tenants 5] [--rows 20000] [--out data/sample]

Writes the sample bucket layout under --out, materializes every asset of `billing_month_job` for the month into
the DuckDB warehouse (BILLING_WAREHOUSE, default data/warehouse.duckdb), then prints the reconciliation report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.resources.warehouse import DEFAULT_WAREHOUSE

_CENT4 = Decimal("0.0001")


def run_month(partition_key: str) -> bool:
    """Materialize the whole chain for one month with the real Definitions (DAGSTER_HOME's instance if set)."""
    from billing_pipeline.definitions import defs

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    result = defs.resolve_job_def("billing_month_job").execute_in_process(
        partition_key=partition_key, instance=instance, raise_on_error=False
    )
    return result.success


def format_report(warehouse: str, billing_period: dt.date) -> str:
    """The month's reconciliation report and per-tenant totals, money in cents (largest remainder)."""
    with duckdb.connect(warehouse, read_only=True) as con:
        rows = con.execute(
            """SELECT accountant_id, resource_type, currency, estimated_cost, actual_cost, variance_pct, flagged, is_final
               FROM reconciliation_report WHERE billing_period = ?
               ORDER BY accountant_id, resource_type = 'total', resource_type""",
            [billing_period],
        ).fetchall()
    if not rows:
        return f"No reconciliation report for {billing_period:%Y-%m} in {warehouse}."
    totals = {(r[0], r[2]): r[4] for r in rows if r[1] == "total"}
    cents = largest_remainder_cents(totals)
    status = "final" if rows[0][7] else "provisional"
    lines = [
        f"Reconciliation report {billing_period:%Y-%m} ({status}), warehouse {warehouse}",
        f"{'accountant_id':<16} {'resource_type':<13} {'estimated':>14} {'actual':>14} {'variance %':>11}  flag",
    ]
    for accountant, resource_type, currency, estimated, actual, pct, flagged, _ in rows:
        actual_shown = cents[(accountant, currency)] if resource_type == "total" else actual.quantize(_CENT4)
        lines.append(
            f"{accountant:<16} {resource_type:<13} {estimated.quantize(_CENT4):>14} {actual_shown:>14} "
            f"{'' if pct is None else f'{pct:.2f}':>11}  {'FLAG' if flagged else ''}"
        )
    lines.append(f"in-scope total (cents): {sum(cents.values())} {rows[0][2]}")
    return "\n".join(lines)





def main(argv: list[str] | None = None) -> int:
    from billing_pipeline.sample_data import generate_month

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", default="2026-01", help="billing month, YYYY-MM")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="data/sample")
    args = parser.parse_args(argv)

    billing_period = dt.date.fromisoformat(args.month[:7] + "-01")
    sample = generate_month(Path(args.out), billing_period, tenants=args.tenants, rows=args.rows, seed=args.seed)
    # The run reads exactly the sample just written.
    os.environ.update(
        {
            "BILLING_CUR_URI": sample.cur_uri,
            "BILLING_LOGS_URI": sample.logs_uri,
            "BILLING_S3_INVENTORY_URI": sample.inventory_uri,
            "BILLING_USAGE_URI": sample.usage_uri,
        }
    )
    warehouse = os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE
    print(f"Sample month {args.month}: {sample.line_items} CUR line items under {args.out}", flush=True)
    if not run_month(billing_period.isoformat()):
        print("The run failed; see the log above.", file=sys.stderr)
        return 1
    print(format_report(warehouse, billing_period))
    return 0


if __name__ == "__main__":
    sys.exit(main())
