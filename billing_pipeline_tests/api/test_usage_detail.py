"""The accountant's detail behind a statement, as published and served: usage lines in human units with the bill's
own unit costs, their days, each resource type's days, the direct / shared / proportional parts, the month to date,
and the CSV of a month or a range. Expected values from the generator's oracle (its allocations, daily costs and
the bill's quantities), never from the code under test."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from billing_pipeline import sample_data_oracle as oracle
from billing_pipeline.catalog import load_catalog

from .conftest import DEC, JAN

A, B = "acct-0001", "acct-0002"
PARTS = {"direct": "direct", "shared_hour": "shared", "shared_day": "shared", "shared_month": "shared",
         "proportional": "proportional", "unattributed": "unattributed"}
# the catalog's unit of each driver, as an accountant reads it (plural)
UNITS = {"gb_seconds": "GB-seconds", "requests": "requests", "read_units": "read request units",
         "write_units": "write request units", "gb_months": "GB-months", "tool_calls": "tool calls",
         "vcpu_hours": "vCPU-hours", "gb_hours": "GB-hours", "log_bytes": "bytes", "tier1_requests": "requests",
         "tier2_requests": "requests", "sessions": "sessions", "input_tokens": "tokens", "output_tokens": "tokens"}


def auth(built, accountant):
    return {"Authorization": f"Bearer {built.tokens[accountant]}"}


def money(amount: D, cents: D) -> dict:
    return {"exact": f"{amount:f}", "rounded": f"{cents:f}", "cents": int(cents * 100)}


def expected_lines(sample, accountant):
    """(resource_type, service, usage_type, line_item_type, part) -> exact cost, from the oracle's allocations."""
    types = {name: s.resource_type for name, s in load_catalog().services.items()}
    out: dict[tuple, D] = defaultdict(D)
    for row in sample.allocations:
        if row.accountant_id == accountant:
            key = (types.get(row.service, "other"), row.service, row.usage_type or None, row.line_item_type,
                   PARTS[row.allocation])
            out[key] += row.cost
    return dict(out)


def statement(client, built, accountant, month="2026-01"):
    response = client.get("/billing", params={"month": month}, headers=auth(built, accountant))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("accountant", [A, B])
def test_usage_lines_are_in_units_at_the_bills_unit_cost(client, built, accountant):
    sample = built.months[JAN]
    doc = statement(client, built, accountant)
    lines = {(x["resource_type"], x["service"], x["usage_type"], x["line_item_type"], x["part"]): x
             for x in doc["usage_lines"]}
    expected = expected_lines(sample, accountant)
    assert set(lines) == set(expected)
    bill = sample.bill_quantities
    checked = 0
    for key, line in lines.items():
        _rtype, service, usage_type, line_type, _part = key
        assert D(line["cost"]["exact"]) == expected[key]
        assert line["quantity"] and line["unit"], line  # never an empty quantity or unit
        assert line["currency"] == "USD"
        drivers = oracle.drivers_for(service, usage_type or "")
        if line_type == "Usage" and drivers and (service, drivers[0]) in bill:
            amount, units = bill[(service, drivers[0])]
            cost = oracle.units_to_decimal(units)
            assert line["unit"] == UNITS[drivers[0]]
            assert D(line["unit_cost"]) == oracle.implied_unit_cost(units, amount)
            assert D(line["quantity"]) == (expected[key] * amount / cost).quantize(D("1e-10"), ROUND_HALF_UP)
            checked += 1
        elif line_type == "Usage" and "DataTransfer" in (usage_type or ""):
            assert line["unit"] == "GB"
        else:  # tax, credits: the tenant's percent of the bill's line
            assert line["unit"].startswith("% of " + service), line
    assert checked >= 5
    # the lines' cents add up to their statement line's, each type's to the statement
    for rtype, usage in doc["usage_by_type"].items():
        assert sum(x["cost"]["cents"] for x in doc["usage_lines"] if x["resource_type"] == rtype) == \
            usage["cost"]["cents"]
    # the application's own records are no longer shown as the unit
    assert not any(line["unit"] in {"LambdaCompute", "LambdaRequests", "S3Storage"} for line in lines.values())


def test_a_lambda_line_exactly(client, built):
    """One line by hand: acct-0001's Lambda GB-seconds, priced by the bill (0.0000166667 per GB-second)."""
    sample = built.months[JAN]
    doc = statement(client, built, A)
    amount, units = sample.bill_quantities[("AWSLambda", "gb_seconds")]
    for line in doc["usage_lines"]:
        if line["usage_type"] == "USE1-Lambda-GB-Second" and line["line_item_type"] == "Usage":
            assert line["unit"] == "GB-seconds"
            assert D(line["unit_cost"]).quantize(D("1e-10"), ROUND_HALF_UP) == D("0.0000166667")
            assert D(line["unit_cost"]) == oracle.implied_unit_cost(units, amount)


@pytest.mark.parametrize("accountant", [A, B])
def test_days_of_each_type_and_of_the_month(client, built, accountant):
    sample = built.months[JAN]
    types = {name: s.resource_type for name, s in load_catalog().services.items()}
    expected: dict[str, dict[str, D]] = defaultdict(lambda: defaultdict(D))
    for (who, service, day), cost in sample.expected_daily_costs.items():
        if who == accountant:
            expected[types.get(service, "other")][day.isoformat()] += cost
            expected["total"][day.isoformat()] += cost
    doc = statement(client, built, accountant)
    daily = doc["daily"]
    assert set(daily) == set(expected)
    for rtype, days in daily.items():
        assert {d["date"]: D(d["cost"]["exact"]) for d in days} == {k: v for k, v in expected[rtype].items()}
        target = doc["total_cost"] if rtype == "total" else doc["usage_by_type"][rtype]["cost"]
        assert sum(d["cost"]["cents"] for d in days) == target["cents"]
    for line in doc["usage_lines"]:
        assert sum(D(d["cost"]["exact"]) for d in line["days"]) == D(line["cost"]["exact"])
        assert sum(d["cost"]["cents"] for d in line["days"]) == line["cost"]["cents"]


@pytest.mark.parametrize("accountant", [A, B])
def test_direct_shared_and_proportional_parts(client, built, accountant):
    sample = built.months[JAN]
    expected: dict[str, D] = {"direct": D(0), "shared": D(0), "proportional": D(0)}
    for row in sample.allocations:
        if row.accountant_id == accountant:
            expected[PARTS[row.allocation]] += row.cost
    doc = statement(client, built, accountant)
    assert {part: D(m["exact"]) for part, m in doc["parts"].items()} == expected
    assert sum(m["cents"] for m in doc["parts"].values()) == doc["total_cost"]["cents"]
    assert sum(expected.values()) == built.total(JAN, accountant)


def test_month_to_date_of_a_month_the_cur_covers_whole(client, built):
    """The API's January: its CUR covers the whole month, so the month to date is all actual."""
    doc = statement(client, built, A)
    total = money(built.total(JAN, A), built.cents(JAN)[A])
    zero = {"exact": "0E-10", "rounded": "0.00", "cents": 0}
    mtd = doc["month_to_date"]
    assert mtd["actual_cost"] == mtd["cost_to_date"] == mtd["forecast_cost"] == total
    assert mtd["estimated_cost"]["cents"] == 0 and D(mtd["estimated_cost"]["exact"]) == 0, zero
    assert mtd["forecast_low"]["cents"] <= total["cents"] <= mtd["forecast_high"]["cents"]
    assert (mtd["covered_through"], mtd["as_of"], mtd["currency"]) == ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z",
                                                                        "USD")
    # a final month has none; history is unchanged by it
    assert statement(client, built, A, "2025-12")["month_to_date"] is None
    history = client.get("/billing/history", headers=auth(built, A)).json()["months"]
    assert all("month_to_date" not in m for m in history)
    assert [m["flagged"] for m in history] == [r["flagged"] for r in (
        next(x for x in statement(client, built, A, m["month"])["estimated_vs_actual"] if x["resource_type"] == "total")
        for m in history)]


CSV_HEADER = ("month,accountant_id,status,resource_type,service,usage_type,line_item_type,part,quantity,unit,"
              "unit_cost,currency,cost,cost_rounded")


def test_csv_of_a_month_lists_usage_lines(client, built):
    response = client.get("/billing.csv", params={"month": "2026-01"}, headers=auth(built, A))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="acct-0001_2026-01.csv"'
    text = response.text
    assert text.split("\r\n")[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    doc = statement(client, built, A)
    assert len(rows) == len(doc["usage_lines"])
    for row, line in zip(rows, doc["usage_lines"]):
        assert row == {"month": "2026-01", "accountant_id": A, "status": "provisional",
                       "resource_type": line["resource_type"], "service": line["service"],
                       "usage_type": line["usage_type"] or "", "line_item_type": line["line_item_type"],
                       "part": line["part"], "quantity": line["quantity"], "unit": line["unit"],
                       "unit_cost": line["unit_cost"], "currency": "USD", "cost": line["cost"]["exact"],
                       "cost_rounded": line["cost"]["rounded"]}
        assert row["quantity"] and row["unit"]
    # each cost once; the cents add up to the statement's
    assert sum(D(r["cost"]) for r in rows) == built.total(JAN, A)
    assert sum(D(r["cost_rounded"]) for r in rows) == built.cents(JAN)[A]
    lambda_direct = [r for r in rows if r["usage_type"] == "USE1-Lambda-GB-Second" and r["part"] == "direct"]
    for r in lambda_direct:
        assert r["unit"] == "GB-seconds" and D(r["unit_cost"]).quantize(D("1e-10"), ROUND_HALF_UP) == D("0.0000166667")


def test_csv_of_a_range_is_named_after_the_tenant_and_the_months(client, built):
    response = client.get("/billing.csv", params={"from": "2025-12", "to": "2026-01"}, headers=auth(built, A))
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="acct-0001_2025-12_2026-01.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [m for m in dict.fromkeys(r["month"] for r in rows)] == ["2025-12", "2026-01"]
    assert {r["status"] for r in rows if r["month"] == "2025-12"} == {"final"}
    for month, period in (("2025-12", DEC), ("2026-01", JAN)):
        assert sum(D(r["cost"]) for r in rows if r["month"] == month) == built.total(period, A)
        assert sum(D(r["cost_rounded"]) for r in rows if r["month"] == month) == built.cents(period)[A]
    assert client.get("/billing.csv", params={"from": "2026-01", "to": "2025-12"},
                      headers=auth(built, A)).status_code == 400
    assert client.get("/billing.csv", params={"month": "2026-01", "from": "2025-12"},
                      headers=auth(built, A)).status_code == 400
    # another tenant's data never
    assert B not in response.text


def test_csv_ranges_keep_one_document_per_month_not_one_per_range(built):
    """Every `?from=&to=` pair was a document of its own, kept in memory and rebuilt after each publication: one
    tenant's token asking the ranges 2018-01..2026-01 (each a copy of the same two months) made the server hold and
    rebuild hundreds of documents, for every tenant's wait. The CSV is now kept per month (and the list of the
    tenant's months) and a range put together from them: the same bytes, a bounded number of documents."""
    from .conftest import in_process_client

    client = in_process_client(built.published, built.tokens_file)
    headers = auth(built, A)
    single = {m: client.get("/billing.csv", params={"month": m}, headers=headers).text for m in ("2025-12", "2026-01")}
    header, *_ = single["2025-12"].split("\r\n", 1)
    both = header + "\r\n" + single["2025-12"].split("\r\n", 1)[1] + single["2026-01"].split("\r\n", 1)[1]
    starts = [f"{y}-{m:02d}" for y in range(2018, 2026) for m in (1, 4, 7, 10)]
    for first in starts:
        answer = client.get("/billing.csv", params={"from": first, "to": "2026-01"}, headers=headers)
        assert answer.status_code == 200 and answer.text == both, first
        assert answer.headers["content-disposition"] == f'attachment; filename="acct-0001_{first}_2026-01.csv"'
    documents = client.app.state.served["entries"]
    assert sorted(k for k in documents if k[1] == A and k[0] in ("csv", "months")) == [
        ("csv", A, DEC), ("csv", A, JAN), ("months", A)]
