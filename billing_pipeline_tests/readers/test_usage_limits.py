"""No valid log line can fail a month: Lambda REPORT lines at AWS's limits, read and attributed exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import pyarrow as pa

from billing_pipeline.assets.common import stage_sql
from billing_pipeline_tests.readers.test_usage_support import (
    JANUARY,
    of_service,
    read_january,
    report,
    text_app_line,
    write_export,
)

TAB = "\t"


def snapstart_report(at: str, request_id: str, billed_ms: int, memory_mb: int) -> str:
    """A SnapStart function's REPORT: restore figures after the usual ones (the restore is billed separately)."""
    return (f"{at} REPORT RequestId: {request_id}{TAB}Duration: {billed_ms - 0.5} ms"
            f"{TAB}Billed Duration: {billed_ms} ms"
            f"{TAB}Memory Size: {memory_mb} MB{TAB}Max Memory Used: 900 MB{TAB}Restore Duration: 412.77 ms"
            f"{TAB}Billed Restore Duration: 413 ms{TAB}")


def limit_lines() -> list[str]:
    lines = []
    for rid, tenant in (("r1", "acc-a"), ("r2", "acc-b"), ("r3", "acc-b"), ("r4", "acc-c"), ("r5", "acc-c")):
        lines.append(text_app_line("2026-01-09T03:00:00.000Z", rid, json.dumps({"accountant_id": tenant})))
    lines += [
        report("2026-01-09T03:15:00.000Z", "r1", billed_ms=900_000, memory_mb=10_240),  # 15 min at 10 GB: 9000 GB-s
        report("2026-01-09T03:16:40.000Z", "r2", billed_ms=100_000, memory_mb=1_024),   # 100 s at 1 GB: 100 GB-s
        # a provisioned-concurrency invocation reports the same way (no Init Duration): 15 min at 128 MB
        report("2026-01-09T03:30:00.000Z", "r3", billed_ms=900_000, memory_mb=128),     # 112.5 GB-s
        snapstart_report("2026-01-09T03:31:00.000Z", "r4", billed_ms=10_000, memory_mb=10_240),  # 100 GB-s
        '2026-01-09T03:45:00.000Z {"time": "2026-01-09T03:45:00.000Z", "type": "platform.report", "record": '
        '{"requestId": "r5", "metrics": {"durationMs": 899999.1, "billedDurationMs": 900000, "memorySizeMB": 10240}}}',
        # beyond any Lambda limit: counted as malformed, never fatal
        report("2026-01-09T03:50:00.000Z", "r5", billed_ms=10**13, memory_mb=10_240),
    ]
    return lines


def test_reports_at_the_limits_are_exact_gb_seconds(tmp_path):
    write_export(tmp_path, "2026/01/09/[$LATEST]big", limit_lines())
    evidence = read_january(tmp_path)
    got = of_service(evidence, "AWSLambda")
    assert {k[4]: v for k, v in got.items() if k[2] == "gb_seconds"} == {
        "acc-a": D("9000"), "acc-b": D("212.5"), "acc-c": D("9100")}
    assert {k[4]: v for k, v in got.items() if k[2] == "requests"} == {"acc-a": D(1), "acc-b": D(2), "acc-c": D(2)}
    assert evidence.problems == {"malformed_report": 1}


def test_reports_at_the_limits_go_through_usage_shares_and_the_split(tmp_path, warehouse_con):
    con = warehouse_con
    write_export(tmp_path, "2026/01/09/[$LATEST]big", limit_lines())
    con.register("usage_evidence", read_january(tmp_path).usage)
    con.execute(f"INSERT INTO usage_shares BY NAME ({stage_sql('usage_shares')})",
                {"billing_period": JANUARY, "next_period": dt.date(2026, 2, 1)})
    # the hour's GB-second line: 18,312.5 GB-s billed at $0.01
    con.execute(
        """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id, line_item_type,
               service, usage_type, operation, resource_id, accountant_id, application, currency, in_scope,
               usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
           VALUES (?, ?, 1, '1', 'Usage', 'AWSLambda', 'USE1-Lambda-GB-Second', 'Invoke', '', NULL, 'tax-demo',
                   'USD', true, 18312.5, 183.125, 183.125, NULL, 1)""",
        [JANUARY, dt.datetime(2026, 1, 9, 3)])
    con.register("driver_prices", pa.table({"service": ["AWSLambda"], "driver": ["gb_seconds"],
                                            "unit_price": pa.array([D("0.01")], pa.decimal128(38, 10))}))
    rows = con.execute(f"SELECT accountant_id, allocation, cost FROM ({stage_sql('cost_allocations')}) ORDER BY 1",
                       {"billing_period": JANUARY, "cost_metric": "unblended"}).fetchall()
    assert rows == [("acc-a", "shared_hour", D("90")), ("acc-b", "shared_hour", D("2.125")),
                    ("acc-c", "shared_hour", D("91"))]
