"""Read the published billing for one accountant: the statement of a month, the history, the CSV rows.

Every query is in queries.sql and takes its values as parameters; it runs over the published snapshots
(api/published.py), never over the warehouse. Money is served as published: the statements' exact cost and
cents, the estimates' cents and each variance's cents as the pipeline rounded them (assets/published_billing.py).
Nothing here rounds money; the only arithmetic is the unit cost, a ratio (cost / quantity) shown to 12 places.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, localcontext
from functools import lru_cache
from importlib import resources as package_files
from typing import Any, Iterable

import duckdb

RESOURCE_TYPE_ORDER = ["lambda", "dynamodb", "s3", "agentcore", "bedrock", "other"]
UNIT_COST_PLACES = Decimal("1e-12")  # a ratio, not money: shown to 12 decimal places
ZERO, ZERO_CENTS = Decimal("0E-10"), Decimal("0.00")


class NoData(Exception):
    """Nothing for this accountant and month."""


# ----------------------------------------------------------------------------------------------------------------
# SQL


@lru_cache(maxsize=1)
def _queries() -> dict[str, str]:
    text = package_files.files("billing_pipeline.api").joinpath("queries.sql").read_text(encoding="utf-8")
    blocks = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: sql.strip() for name, sql in zip(blocks[1::2], blocks[2::2])}


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
    if cost is None or quantity is None or quantity == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        return exact((cost / quantity).quantize(UNIT_COST_PLACES))


# ----------------------------------------------------------------------------------------------------------------
# Months


def month_key(period: dt.date) -> str:
    return f"{period:%Y-%m}"


def tenant_months(con, accountant_id: str) -> list[dt.date]:
    return [row[0] for row in query(con, "tenant_months", accountant_id=accountant_id)]


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
    for period, currency, metric, cost, amount, est, est_amount, variance, variance_amount in query(
            con, "totals", accountant_id=accountant_id):
        if period in months and currency is not None:
            raise ValueError(f"{month_key(period)}: costs in several currencies")
        months[period] = dict(currency=currency, cost_metric=metric, actual=cost, actual_cents=amount,
                              estimated=est, estimated_cents=est_amount, variance=variance,
                              variance_cents=variance_amount)
    return months


def _month_summary(period: dt.date, totals: dict, published: dict, currency_default: str) -> dict:
    actual, estimated = totals["actual"], totals["estimated"]
    has_actual = actual is not None
    is_final = published["is_final"]
    return {
        "month": month_key(period),
        "currency": totals["currency"] or currency_default,
        "cost_metric": totals["cost_metric"],
        "status": _status(is_final, has_actual),
        "is_final": is_final,
        "actual_available": has_actual,
        "total_source": "actual" if has_actual else "estimated",
        "total_cost": money(actual, totals["actual_cents"]) if has_actual
        else money(estimated, totals["estimated_cents"]),
        "actual_cost": money(actual, totals["actual_cents"]),
        "estimated_cost": money(estimated, totals["estimated_cents"]),
        # actual - estimated as the report has it, where both exist
        "variance": money(totals["variance"], totals["variance_cents"]) if has_actual and estimated is not None
        else None,
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
    return doc


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

CSV_COLUMNS = ["month", "accountant_id", "resource_type", "status", "currency", "quantity", "unit", "unit_cost",
               "estimated_cost", "actual_cost", "cost", "cost_rounded", "variance", "variance_pct", "flagged"]


def csv_rows(doc: dict) -> list[list[str]]:
    """The statement as CSV rows: one per resource type, then the month's total."""
    flagged = {row["resource_type"]: row for row in doc["estimated_vs_actual"]}

    def amount(m: dict | None, key: str = "exact") -> str:
        return "" if m is None or m[key] is None else str(m[key])

    rows = []
    for rtype, usage in doc["usage_by_type"].items():
        report = flagged.get(rtype, {})
        rows.append([doc["month"], doc["accountant_id"], rtype, doc["status"], doc["currency"],
                     usage["quantity"] or "", usage["unit"] or "", usage["unit_cost"] or "",
                     amount(usage["estimated_cost"]), amount(usage["actual_cost"]), amount(usage["cost"]),
                     amount(usage["cost"], "rounded"), amount(report.get("variance")),
                     report.get("variance_pct") or "", "" if not report else str(report["flagged"]).lower()])
    total = flagged.get("total", {})
    rows.append([doc["month"], doc["accountant_id"], "total", doc["status"], doc["currency"], "", "", "",
                 amount(doc["estimated_cost"]), amount(doc["actual_cost"]), amount(doc["total_cost"]),
                 amount(doc["total_cost"], "rounded"), amount(doc["variance"]),
                 total.get("variance_pct") or "", "" if not total else str(total["flagged"]).lower()])
    return rows
