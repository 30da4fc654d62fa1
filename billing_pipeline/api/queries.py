"""Read the published billing for one accountant: the statement of a month, the history, the CSV rows.

Every query is in queries.sql and takes its values as parameters; it runs over the published snapshots
(api/published.py), never over the warehouse. Money is served as published: the statements' exact cost and
cents, the estimates' cents and each variance's cents as the pipeline rounded them (assets/published_billing.py).
Nothing here rounds money; the only arithmetic is the unit cost, a ratio (cost / quantity) shown to 12 places.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable

import duckdb

from billing_pipeline.catalog import load_catalog
from billing_pipeline.money import rounded_ratio
from billing_pipeline.sql import named_statements, read_sql

RESOURCE_TYPE_ORDER = list(load_catalog().resource_types())
UNIT_COST_PLACES = Decimal("1e-12")  # a ratio, not money: shown to 12 decimal places
ZERO, ZERO_CENTS = Decimal("0E-10"), Decimal("0.00")


class NoData(Exception):
    """Nothing for this accountant and month."""


# ----------------------------------------------------------------------------------------------------------------
# SQL


@lru_cache(maxsize=1)
def _queries() -> dict[str, str]:
    return dict(named_statements(read_sql("billing_pipeline.api", "queries.sql")))


def sql(name: str) -> str:
    return _queries()[name]


def query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[tuple]:
    return con.execute(_queries()[name], params).fetchall()


# ----------------------------------------------------------------------------------------------------------------
# Money, as published


def exact(value: Decimal | None) -> str | None:
    """A Decimal as a plain string with its fractional digits (never exponent notation)."""
    if value is None:
        return None
    return f"{value:f}"


def money(amount: Decimal | None, cents: Decimal | None) -> dict | None:
    """An amount and its published cents (`cents` is a DECIMAL(38, 2) the pipeline rounded)."""
    if amount is None:
        return None
    return {"exact": exact(amount), "rounded": exact(cents), "cents": None if cents is None else int(cents.scaleb(2))}


def unit_cost(cost: Decimal | None, quantity: Decimal | None) -> str | None:
    """cost / quantity to 12 places, rounded half away from zero like every ratio the pipeline publishes."""
    if cost is None or quantity is None or quantity == 0:
        return None
    return exact(rounded_ratio(cost, quantity, UNIT_COST_PLACES))


# ----------------------------------------------------------------------------------------------------------------
# Months


def month_key(period: dt.date) -> str:
    return f"{period:%Y-%m}"


def tenant_months(con, accountant_id: str) -> list[dt.date]:
    """The months the accountant has data in, newest first: exactly the months `totals` lists (and history shows)."""
    return list(_totals(con, accountant_id))


def _status(is_final: bool, has_actual: bool) -> str:
    if not has_actual:
        return "estimated"
    return "final" if is_final else "provisional"


def _published(con) -> dict[dt.date, dict]:
    return {period: {"snapshot": snapshot, "published_at": at, "delivery_id": delivery, "is_final": bool(final)}
            for period, snapshot, at, delivery, final in query(con, "published")}


def _totals(con, accountant_id: str) -> dict[dt.date, dict]:
    """The accountant's totals per published month: statement (cost, cents), estimates, report variance."""
    months: dict[dt.date, dict] = {}
    for (period, currency, metric, cost, amount, est, est_amount, variance, variance_amount, flagged, to_date,
         to_date_amount) in query(con, "totals", accountant_id=accountant_id):
        if period in months and currency is not None:
            raise ValueError(f"{month_key(period)}: costs in several currencies")
        months[period] = dict(currency=currency, cost_metric=metric, actual=cost, actual_cents=amount,
                              estimated=est, estimated_cents=est_amount, variance=variance,
                              variance_cents=variance_amount, flagged=bool(flagged), to_date=to_date,
                              to_date_cents=to_date_amount)
    return months


def _total(totals: dict) -> tuple[str, dict | None]:
    """Where the month's total comes from: the bill when it has one, else the application's estimates, else (the
    hours before the bill's first delivery of the month) the month to date the pipeline estimated from usage."""
    if totals["actual"] is not None:
        return "actual", money(totals["actual"], totals["actual_cents"])
    if totals["estimated"] is not None:
        return "estimated", money(totals["estimated"], totals["estimated_cents"])
    return "month_to_date", money(totals["to_date"], totals["to_date_cents"])


def _month_summary(period: dt.date, totals: dict, published: dict, currency_default: str) -> dict:
    if totals["actual"] is None and published["delivery_id"] is not None:
        # the month has a bill, and it charged this tenant nothing (say, estimates only): its actual cost is 0 as
        # tenant_costs says, not its estimate, and the month is provisional or final, not 'estimated'
        totals = {**totals, "actual": ZERO, "actual_cents": ZERO_CENTS}
    actual, estimated = totals["actual"], totals["estimated"]
    has_actual = actual is not None
    is_final = published["is_final"]
    total_source, total_cost = _total(totals)
    return {
        "month": month_key(period),
        "currency": totals["currency"] or currency_default,
        "cost_metric": totals["cost_metric"],
        "status": _status(is_final, has_actual),
        "is_final": is_final,
        "actual_available": has_actual,
        "total_source": total_source,
        "total_cost": total_cost,
        "actual_cost": money(actual, totals["actual_cents"]),
        "estimated_cost": money(estimated, totals["estimated_cents"]),
        # actual - estimated as the report has it, where both exist
        "variance": money(totals["variance"], totals["variance_cents"]) if has_actual and estimated is not None
        else None,
        # the report's total row: |variance %| beyond the threshold, or cost nobody estimated
        "flagged": totals["flagged"],
        "published": {"at": published["published_at"], "cur_delivery": published["delivery_id"],
                      "snapshot": published["snapshot"]},
    }


def history(con, accountant_id: str, currency_default: str = "USD") -> list[dict]:
    published = _published(con)
    rows = []
    for period, totals in _totals(con, accountant_id).items():
        summary = _month_summary(period, totals, published[period], currency_default)
        summary.pop("cost_metric")
        summary.pop("actual_available")
        rows.append(summary)
    return rows


def _sort_types(types: Iterable[str]) -> list[str]:
    return sorted(set(types), key=lambda t: (RESOURCE_TYPE_ORDER.index(t) if t in RESOURCE_TYPE_ORDER else 99, t))


def statement(con, accountant_id: str, period: dt.date, currency_default: str = "USD") -> dict:
    """The caller's billing statement of one month (see docs/billing-api.md for every field)."""
    totals = _totals(con, accountant_id).get(period)
    if totals is None:
        raise NoData(f"No billing data for {month_key(period)}.")
    doc = {"accountant_id": accountant_id,
           **_month_summary(period, totals, _published(con)[period], currency_default)}
    has_actual = doc["actual_available"]

    actual = {line: (cost, amount) for line, _currency, cost, amount in query(
        con, "statement_lines", month=period, accountant_id=accountant_id)}
    estimated = {line: (cost, amount) for line, cost, amount in query(
        con, "estimated_lines", month=period, accountant_id=accountant_id)}
    operations: dict[str, dict[str, tuple]] = {}
    for rtype, operation, quantity, cost, records in query(
            con, "estimates_by_operation", month=period, accountant_id=accountant_id):
        operations.setdefault(rtype, {})[operation] = (quantity, cost, records)
    drivers: dict[str, dict[str, tuple]] = {}
    for rtype, driver, quantity, cost in query(con, "drivers", month=period, accountant_id=accountant_id):
        drivers.setdefault(rtype, {})[driver] = (quantity, cost)

    usage_by_type: dict[str, dict] = {}
    for rtype in _sort_types([*actual, *estimated]):
        a, e = actual.get(rtype), estimated.get(rtype)
        cost, cents = (a if has_actual else e) or (ZERO, ZERO_CENTS)  # an estimated type that cost nothing
        ops = operations.get(rtype, {})
        single = next(iter(ops.items())) if len(ops) == 1 else None
        quantity = single[1][0] if single else None
        usage_by_type[rtype] = {
            "quantity": exact(quantity),
            "unit": single[0] if single else None,
            "unit_cost": unit_cost(cost, quantity),
            "cost": money(cost, cents),
            "cost_source": "actual" if has_actual else "estimated",
            "actual_cost": money(*a) if a else None,
            "estimated_cost": money(*e) if e else None,
            "operations": {
                operation: {"quantity": exact(q), "unit_cost": unit_cost(c, q), "estimated_cost": exact(c),
                            "records": r}
                for operation, (q, c, r) in ops.items()
            },
            "drivers": {
                driver: {"quantity": exact(q), "cost": exact(c), "unit_cost": unit_cost(c, q)}
                for driver, (q, c) in drivers.get(rtype, {}).items()
            },
        }

    comparison = []
    for rtype, est, act, variance, variance_cents, variance_pct, flagged in query(
            con, "report", month=period, accountant_id=accountant_id):
        if rtype == "total":
            est_c, act_c = totals["estimated_cents"], totals["actual_cents"]
        else:
            est_c, act_c = estimated.get(rtype, (None, None))[1], actual.get(rtype, (None, None))[1]
        comparison.append({
            "resource_type": rtype,
            "estimated_cost": money(est, est_c if est_c is not None or est != 0 else ZERO_CENTS),
            "actual_cost": money(act, act_c if act_c is not None or act != 0 else ZERO_CENTS),
            "variance": money(variance, variance_cents),
            "variance_pct": exact(variance_pct),
            "flagged": bool(flagged),
        })
    order = {rtype: i for i, rtype in enumerate(_sort_types(row["resource_type"] for row in comparison))}
    comparison.sort(key=lambda row: (row["resource_type"] == "total", order[row["resource_type"]]))
    doc["usage_by_type"] = usage_by_type
    doc["estimated_vs_actual"] = comparison
    doc.update(usage_detail(con, accountant_id, period))
    doc["month_to_date"] = None if doc["is_final"] else month_to_date(con, accountant_id, period)
    return doc


def timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else f"{value:%Y-%m-%dT%H:%M:%S}Z"


def usage_detail(con, accountant_id: str, period: dt.date) -> dict:
    """The published detail behind the statement (assets/published_usage.py): usage lines in units with the
    bill's unit cost (and their days), each resource type's and the month's cost per day, the parts."""
    days: dict[tuple, list[dict]] = {}
    for rtype, service, usage_type, line_type, part, day, quantity, cost, amount in query(
            con, "usage_days", month=period, accountant_id=accountant_id):
        days.setdefault((rtype, service, usage_type, line_type, part), []).append(
            {"date": day.isoformat(), "quantity": exact(quantity), "cost": money(cost, amount)})
    lines = [{"resource_type": rtype, "service": service, "usage_type": usage_type, "line_item_type": line_type,
              "part": part, "currency": currency, "quantity": exact(quantity), "unit": unit,
              "unit_cost": exact(unit_cost), "cost": money(cost, amount),
              "days": days.get((rtype, service, usage_type, line_type, part), [])}
             for rtype, service, usage_type, line_type, part, currency, quantity, unit, unit_cost, cost, amount
             in query(con, "usage_lines", month=period, accountant_id=accountant_id)]
    daily: dict[str, list[dict]] = {}
    for rtype, day, cost, amount in query(con, "daily", month=period, accountant_id=accountant_id):
        daily.setdefault(rtype, []).append({"date": day.isoformat(), "cost": money(cost, amount)})
    parts = {part: money(cost, amount) for part, cost, amount in query(
        con, "cost_parts", month=period, accountant_id=accountant_id)}
    return {"parts": parts, "usage_lines": lines, "daily": daily}


def month_to_date(con, accountant_id: str, period: dt.date) -> dict | None:
    """The month so far (a month not final): actual through covered_through, estimated after it through as_of,
    the month-end forecast and its interval, as published from the month_to_date table."""
    rows = query(con, "month_to_date", month=period, accountant_id=accountant_id)
    if not rows:
        return None
    if len(rows) > 1:
        raise ValueError(f"{month_key(period)}: month to date in several currencies")
    (currency, actual, actual_c, estimated, estimated_c, to_date, to_date_c, forecast, forecast_c, low, low_c,
     high, high_c, covered_through, as_of), = rows
    return {"currency": currency, "actual_cost": money(actual, actual_c),
            "estimated_cost": money(estimated, estimated_c), "cost_to_date": money(to_date, to_date_c),
            "forecast_cost": money(forecast, forecast_c), "forecast_low": money(low, low_c),
            "forecast_high": money(high, high_c), "covered_through": timestamp(covered_through),
            "as_of": timestamp(as_of)}


# ----------------------------------------------------------------------------------------------------------------
# The data team (admin tokens)


def published_months(con) -> list[dict]:
    return [{"month": month_key(period), "published_at": p["published_at"], "cur_delivery": p["delivery_id"],
             "snapshot": p["snapshot"], "is_final": p["is_final"]} for period, p in _published(con).items()]


def month_statements(con, period: dt.date) -> dict:
    """Every tenant's statement lines of the month (and 'unattributed'), as published."""
    published = _published(con).get(period)
    if published is None:
        raise NoData(f"No billing data for {month_key(period)}.")
    lines = [{"accountant_id": a, "line": line, "currency": c, "cost_metric": m, "cost": money(cost, amount)}
             for a, line, c, m, cost, amount in query(con, "month_statements", month=period)]
    return {"month": month_key(period), "published": {"at": published["published_at"],
            "cur_delivery": published["delivery_id"], "snapshot": published["snapshot"]},
            "is_final": published["is_final"], "statements": lines}


# ----------------------------------------------------------------------------------------------------------------
# CSV

CSV_COLUMNS = ["month", "accountant_id", "status", "resource_type", "service", "usage_type", "line_item_type",
               "part", "quantity", "unit", "unit_cost", "currency", "cost", "cost_rounded"]


def csv_rows(doc: dict) -> list[list[str]]:
    """The month's usage lines as CSV rows: quantity in its unit, the bill's unit cost, the exact cost and its
    published cents (the cents of a statement line split over its usage lines: they add up to the statement)."""
    return [[doc["month"], doc["accountant_id"], doc["status"], line["resource_type"], line["service"] or "",
             line["usage_type"] or "", line["line_item_type"], line["part"], line["quantity"] or "", line["unit"],
             line["unit_cost"] or "", line["currency"], line["cost"]["exact"], line["cost"]["rounded"]]
            for line in doc["usage_lines"]]
