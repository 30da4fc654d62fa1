"""The accountant's detail the publisher computes from CUR rows (assets/published_usage.py), on hand-made rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.assets.published_usage import month_to_date_table, plural, usage_tables, usage_unit
from billing_pipeline.catalog import load_catalog

JAN = dt.date(2026, 1, 1)
D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def test_units_come_from_the_catalog():
    catalog = load_catalog()
    assert usage_unit(catalog, "AWSLambda", "USE1-Lambda-GB-Second") == ("GB-seconds", 1)
    assert usage_unit(catalog, "AWSLambda", "USE1-Request") == ("requests", 1)
    assert usage_unit(catalog, "AmazonS3", "USE1-TimedStorage-ByteHrs") == ("GB-months", 1)
    assert usage_unit(catalog, "AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens") == ("tokens", 1)
    assert usage_unit(catalog, "AmazonCloudWatch", "USE1-DataProcessing-Bytes") == ("bytes", 1073741824)
    assert usage_unit(catalog, "AWSLambda", "USE1-DataTransfer-Out-Bytes") == ("GB", 1)
    assert usage_unit(catalog, "AWSLambda", None) is None
    assert [plural(u) for u in ("GB-second", "GB", "tool call", "bytes")] == ["GB-seconds", "GB", "tool calls", "bytes"]


def test_lines_in_units_at_the_bills_unit_cost_and_cents_from_the_statement():
    # the bill: 3,000 GB-seconds for 0.05 USD (one line a day), and a tax line of 0.30 USD
    bill = [("AWSLambda", "USE1-Lambda-GB-Second", "Usage", "USD", True, D(3000), D("0.05"), D("0.05"), D("0.05")),
            ("AWSLambda", None, "Tax", "USD", False, D(0), D("0.30"), D("0.30"), D("0.30"))]
    # tenant a: 0.02 direct on day 1, 0.005 + 0.005 shared; tax 0.06 proportional
    tenant = [("a", "lambda", "AWSLambda", "USE1-Lambda-GB-Second", "Usage", "direct", D1, "USD", D("0.02"), "amortized"),
              ("a", "lambda", "AWSLambda", "USE1-Lambda-GB-Second", "Usage", "shared_hour", D1, "USD", D("0.005"),
               "amortized"),
              ("a", "lambda", "AWSLambda", "USE1-Lambda-GB-Second", "Usage", "shared_day", D2, "USD", D("0.005"),
               "amortized"),
              ("a", "lambda", "AWSLambda", None, "Tax", "proportional", D2, "USD", D("0.06"), "amortized")]
    statements = [{"accountant_id": "a", "line": "lambda", "currency": "USD", "amount": D("0.09"), "cost": D("0.09")},
                  {"accountant_id": "a", "line": "total", "currency": "USD", "amount": D("0.09"), "cost": D("0.09")}]
    tables = usage_tables(JAN, tenant, bill, statements)
    lines = {(r["line_item_type"], r["part"]): r for r in tables["usage_lines"].to_pylist()}
    direct, shared, tax = lines[("Usage", "direct")], lines[("Usage", "shared")], lines[("Tax", "proportional")]
    # 0.02 USD at 0.05 / 3000 = 0.0000166666... per GB-second: 1,200 GB-seconds
    assert (direct["quantity"], direct["unit"], direct["unit_cost"]) == (
        D("1200.0000000000"), "GB-seconds", D("0.000016666666666667"))
    assert (shared["quantity"], shared["cost"], shared["amount"]) == (D("600.0000000000"), D("0.010"), D("0.01"))
    # 0.06 of a 0.30 tax line: 20 % of it, 0.003 USD per percent
    assert (tax["quantity"], tax["unit"], tax["unit_cost"], tax["amount"]) == (
        D("20.0000000000"), "% of AWSLambda Tax", D("0.003000000000000000"), D("0.06"))
    assert direct["amount"] == D("0.02")
    # the shared line's days: 0.005 each, its one cent to the first by date (a tie)
    days = [(r["usage_date"], r["quantity"], r["amount"]) for r in tables["usage_days"].to_pylist()
            if r["part"] == "shared"]
    assert days == [(D1, D("300.0000000000"), D("0.01")), (D2, D("300.0000000000"), D("0.00"))]
    daily = {(r["resource_type"], r["usage_date"]): (r["cost"], r["amount"]) for r in tables["daily"].to_pylist()}
    assert daily == {("lambda", D1): (D("0.025"), D("0.03")), ("lambda", D2): (D("0.065"), D("0.06")),
                     ("total", D1): (D("0.025"), D("0.03")), ("total", D2): (D("0.065"), D("0.06"))}
    parts = {r["part"]: (r["cost"], r["amount"]) for r in tables["cost_parts"].to_pylist()}
    assert parts == {"direct": (D("0.02"), D("0.02")), "shared": (D("0.010"), D("0.01")),
                     "proportional": (D("0.06"), D("0.06"))}


def test_month_to_date_cents():
    t = dt.datetime(2026, 1, 21, 18)
    rows = [("a", "USD", D("1.004"), D("0.333"), D("1.337"), D("2.005"), D("1.5"), D("2.555"), t, t),
            ("b", "USD", D("1.003"), D("0.333"), D("1.336"), D("2.004"), D("1.5"), D("2.5"), t, t)]
    statements = [{"accountant_id": "a", "line": "total", "currency": "USD", "amount": D("1.01")},
                  {"accountant_id": "b", "line": "total", "currency": "USD", "amount": D("1.00")}]
    out = {r["accountant_id"]: r for r in month_to_date_table(JAN, rows, statements).to_pylist()}
    # to date 2.673 -> 2.67: a 1.34, b 1.33; estimated = to date - the statement's actual cents
    assert (out["a"]["cost_to_date_amount"], out["a"]["actual_cost_amount"], out["a"]["estimated_cost_amount"]) == (
        D("1.34"), D("1.01"), D("0.33"))
    assert (out["b"]["cost_to_date_amount"], out["b"]["estimated_cost_amount"]) == (D("1.33"), D("0.33"))
    # forecast 4.009 -> 4.01: a 2.01 (2.005 floors to 2.00, the larger remainder gets a cent), b 2.00
    assert (out["a"]["forecast_cost_amount"], out["b"]["forecast_cost_amount"]) == (D("2.01"), D("2.00"))
    assert (out["a"]["forecast_high_amount"], out["b"]["forecast_low_amount"]) == (D("2.56"), D("1.50"))
