"""The README's first command: generate sample months, run the whole asset chain on them, print the report.

    python -m billing_pipeline.demo [--month 2026-01] [--months-before 1] [--tenants 5] [--rows 20000] [--out data/sample]

Writes the sample bucket layout under --out (the month before --month final, --month itself provisional),
materializes every asset of `billing_month_job` for each month into the DuckDB warehouse (BILLING_WAREHOUSE,
default data/warehouse.duckdb), then prints the reconciliation report of --month.

The runs are recorded in the Dagster instance of DAGSTER_HOME, by default the repository's `dagster_home/`, so
`DAGSTER_HOME=$PWD/dagster_home dagster dev` shows them; the partitions start at the demo's first month
(BILLING_FIRST_MONTH), so the UI does not list years of empty months.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from billing_pipeline.formatting import money, percent
from billing_pipeline.resources.warehouse import DEFAULT_WAREHOUSE
from billing_pipeline.settings import check_settings

DEFAULT_DAGSTER_HOME = "dagster_home"


def run_month(partition_key: str) -> bool:
    """Materialize the whole chain for one month with the real Definitions, recorded in DAGSTER_HOME's instance."""
    from billing_pipeline.definitions import defs

    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("billing_month_job").execute_in_process(
            partition_key=partition_key, instance=instance, raise_on_error=False
        )
    return result.success


def format_report(warehouse: str, billing_period: dt.date) -> str:
    """The month's reconciliation report: amounts in the one number format (formatting.py), each tenant's total in
    its statement's cents (largest remainder), the flagged tenants (one definition: checks.reconciliation_report)
    and a warning for known tenants with no data this month."""
    from billing_pipeline.assets.reconciliation_report import accountants_without_data, statement_cents
    from billing_pipeline.checks.reconciliation_report import flagged_accountants

    with duckdb.connect(warehouse, read_only=True) as con:
        rows = con.execute(
            """SELECT accountant_id, resource_type, currency, estimated_cost, actual_cost, variance_pct, flagged, is_final
               FROM reconciliation_report WHERE billing_period = ?
               ORDER BY accountant_id, resource_type = 'total', resource_type""",
            [billing_period],
        ).fetchall()
        flagged = flagged_accountants(con, billing_period) if rows else []
        without_data = accountants_without_data(con, billing_period) if rows else []
    if not rows:
        return f"No reconciliation report for {billing_period:%Y-%m} in {warehouse}."
    cents = statement_cents({(r[0], r[2]): r[4] for r in rows if r[1] == "total"})
    status = "final" if rows[0][7] else "provisional"
    lines = [
        f"Reconciliation report {billing_period:%Y-%m} ({status}), warehouse {warehouse}",
        f"{'accountant_id':<16} {'resource_type':<13} {'estimated':>16} {'actual':>16} {'variance':>11}  flag",
    ]
    for accountant, resource_type, currency, estimated, actual, pct, is_flagged, _ in rows:
        actual_shown = cents[(accountant, currency)] if resource_type == "total" else actual
        lines.append(
            f"{accountant:<16} {resource_type:<13} {money(estimated, currency):>16} {money(actual_shown, currency):>16} "
            f"{percent(pct, signed=True):>11}  {'FLAG' if is_flagged else ''}".rstrip()
        )
    for currency in sorted({c for _a, c in cents}):
        lines.append(f"in-scope total ({currency}, the statements' cents): "
                     f"{money(sum(v for (_a, c), v in cents.items() if c == currency), currency)}")
    lines.append(f"flagged tenants ({len(flagged)}): {', '.join(flagged) or 'none'}")
    if without_data:
        lines.append(f"warning: no estimate and no cost in {billing_period:%Y-%m} for {', '.join(without_data)}")
    return "\n".join(lines)


def format_month_to_date(warehouse: str, billing_period: dt.date) -> str:
    """The month so far per tenant: actual through the CUR's coverage, estimated after it, the month-end forecast."""
    with duckdb.connect(warehouse, read_only=True) as con:
        rows = con.execute(
            """SELECT accountant_id, currency, sum(actual_cost), sum(estimated_cost), sum(cost_to_date),
                      sum(forecast_cost), sum(forecast_low), sum(forecast_high), max(covered_through), max(as_of)
               FROM month_to_date WHERE billing_period = ? GROUP BY accountant_id, currency ORDER BY ALL""",
            [billing_period],
        ).fetchall()
    if not rows:
        return f"No month-to-date figures for {billing_period:%Y-%m}."
    lines = [
        f"\nMonth to date {billing_period:%Y-%m}: actual through {rows[0][8]:%Y-%m-%d %H:%M} UTC, "
        f"estimated through {rows[0][9]:%Y-%m-%d %H:%M} UTC",
        f"{'accountant_id':<16} {'actual':>14} {'estimated':>14} {'to date':>14} {'forecast':>14}  interval",
    ]
    for accountant, cur, actual, estimated, to_date, forecast, low, high, _c, _a in rows:
        q = [money(v, cur) for v in (actual, estimated, to_date, forecast)]
        lines.append(f"{accountant:<16} {q[0]:>14} {q[1]:>14} {q[2]:>14} {q[3]:>14}  "
                     f"{money(low, None)} .. {money(high, cur)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from billing_pipeline.sample_data import generate_month

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--month", default="2026-01", help="billing month, YYYY-MM (provisional)")
    parser.add_argument("--months-before", type=int, default=1,
                        help="also generate and run this many final months before --month (default 1)")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="data/sample")
    args = parser.parse_args(argv)

    try:
        billing_period = dt.date.fromisoformat(args.month[:7] + "-01")
    except ValueError:
        parser.error(f"--month {args.month!r}: expected YYYY-MM")
    months = [billing_period]
    for _ in range(max(args.months_before, 0)):
        months.insert(0, (months[0] - dt.timedelta(days=1)).replace(day=1))
    for month in months:
        # the provisional month's CUR stops on day 21 at 18:00 UTC while its logs go on: month_to_date estimates
        # the hours after that (AWS delivers the CUR 6 to 24 hours behind, more around month end)
        cur_through = None if month != billing_period else dt.datetime.combine(month, dt.time()) + dt.timedelta(
            days=20, hours=18)
        sample = generate_month(Path(args.out), month, tenants=args.tenants, rows=args.rows, seed=args.seed,
                                final=month != billing_period, cur_through=cur_through)
        print(f"Sample month {month:%Y-%m} ({'provisional' if month == billing_period else 'final'}): "
              f"{sample.line_items} CUR line items under {args.out}", flush=True)
    # The runs read exactly the samples just written, and are recorded where `dagster dev` will look.
    os.environ.update(
        {
            "BILLING_CUR_URI": sample.cur_uri,
            "BILLING_LOGS_URI": sample.logs_uri,
            "BILLING_S3_INVENTORY_URI": sample.inventory_uri,
            "BILLING_USAGE_URI": sample.usage_uri,
            "BILLING_FIRST_MONTH": os.environ.get("BILLING_FIRST_MONTH") or f"{months[0]:%Y-%m}",
        }
    )
    os.environ.setdefault("DAGSTER_HOME", os.path.abspath(DEFAULT_DAGSTER_HOME))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    problems = check_settings()
    if problems:
        print("\n".join(["Settings are not valid:", *(f"- {p}" for p in problems)]), file=sys.stderr)
        return 2
    warehouse = os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE
    for month in months:
        if not run_month(month.isoformat()):
            print(f"The run of {month:%Y-%m} failed; see the log above.", file=sys.stderr)
            return 1
    print(format_report(warehouse, billing_period))
    print(format_month_to_date(warehouse, billing_period))
    print(f"\nRuns recorded in DAGSTER_HOME={os.environ['DAGSTER_HOME']}. See them in the UI with:\n"
          f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} BILLING_FIRST_MONTH={os.environ['BILLING_FIRST_MONTH']} "
          f".venv/bin/dagster dev")
    return 0


if __name__ == "__main__":
    sys.exit(main())
