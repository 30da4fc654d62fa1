"""Read the warehouse for one accountant: the statement of a month, the history, the CSV rows.

Every query is in queries.sql and takes its values as parameters. Money stays `Decimal` until it is written out
as a string (exact, ten fractional digits) next to its cents. Cents are per tenant-month by largest remainder over
all tenants of the month (`billing_pipeline.money.largest_remainder_cents`, the same rounding as the statements),
and a tenant's per-type cents are apportioned by largest remainder to add up to the tenant's cents.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache
from importlib import resources as package_files
from typing import Any, Iterable

import duckdb

from billing_pipeline import lineage
from billing_pipeline.money import CENT, largest_remainder_cents

RESOURCE_TYPE_ORDER = ["lambda", "dynamodb", "s3", "agentcore", "bedrock", "other"]
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"  # as billing_pipeline.resources.warehouse (not imported: no Dagster here)
UNIT_COST_PLACES = Decimal("1e-12")  # a ratio, not money: shown to 12 decimal places


class WarehouseUnavailable(Exception):
    """The warehouse cannot be read now (missing, locked by a writer, or without tables)."""


class NoData(Exception):
    """Nothing for this accountant and month."""


class MonthInconsistent(Exception):
    """The month's tables come from different CUR deliveries (a run died between two steps): not served."""


def refuse_inconsistent(con, months: Iterable[dt.date]) -> None:
    """MonthInconsistent naming the asset to re-run when a month's tables disagree on their delivery
    (billing_pipeline/lineage.py). A warehouse the pipeline has not written since lineage existed has nothing
    to compare."""
    for period in months:
        try:
            reason = lineage.problem(con, period, "reconciliation_report")
        except duckdb.BinderException:
            return
        if reason:
            raise MonthInconsistent(f"The billing data of {month_key(period)} is being recomputed and cannot be "
                                    f"served now ({reason}).")


# ----------------------------------------------------------------------------------------------------------------
# SQL


@lru_cache(maxsize=1)
def _queries() -> dict[str, str]:
    text = package_files.files("billing_pipeline.api").joinpath("queries.sql").read_text(encoding="utf-8")
    blocks = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: sql.strip() for name, sql in zip(blocks[1::2], blocks[2::2])}


def query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[tuple]:
    return con.execute(_queries()[name], params).fetchall()


# ----------------------------------------------------------------------------------------------------------------
# Connection: read-only, per request


def warehouse_path() -> str:
    return os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE


def _is_lock_error(error: Exception) -> bool:
    message = str(error).lower()
    return "lock" in message or "different configuration" in message


def open_read_only(path: str, wait_seconds: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file read-only. A pipeline run may hold the write lock: retry for `wait_seconds`
    (BILLING_API_LOCK_WAIT, default 3), then raise WarehouseUnavailable."""
    if wait_seconds is None:
        wait_seconds = float(os.environ.get("BILLING_API_LOCK_WAIT", "3"))
    if path == ":memory:" or not os.path.exists(path):
        raise WarehouseUnavailable("The billing warehouse has not been built yet: run the pipeline first.")
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            if not _is_lock_error(error):
                raise WarehouseUnavailable(f"The billing warehouse cannot be opened ({type(error).__name__}).") from error
            if time.monotonic() >= deadline:
                raise WarehouseUnavailable(
                    "The billing warehouse is busy: a pipeline run is writing it. Retry in a few seconds."
                ) from error
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


# ----------------------------------------------------------------------------------------------------------------
# Money


def exact(value: Decimal | None) -> str | None:
    """A Decimal as a plain string with its fractional digits (never exponent notation)."""
    if value is None:
        return None
    return f"{value:f}"


def money(amount: Decimal | None, cents: Decimal | None) -> dict | None:
    if amount is None:
        return None
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP) if cents is None else cents
    return {"exact": exact(amount), "rounded": exact(rounded), "cents": int(rounded / CENT)}


def apportion_cents(amounts: dict[str, Decimal], target: Decimal) -> dict[str, Decimal]:
    """Round the parts to cents so that they add up to `target` (a tenant's cents from the month's statement):
    floor each part, then hand the missing cents one by one to the largest remainders (ties by key)."""
    if not amounts:
        return {}
    floored = {key: value.quantize(CENT, rounding=ROUND_FLOOR) for key, value in amounts.items()}
    missing = int((target - sum(floored.values(), Decimal(0))) / CENT)
    order = sorted(amounts, key=lambda key: (-(amounts[key] - floored[key]), key))
    step = CENT if missing >= 0 else -CENT
    if missing < 0:
        order = order[::-1]
    for i in range(abs(missing)):
        floored[order[i % len(order)]] += step
    return floored


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


@dataclass
class MonthTotals:
    """The caller's totals of some months, with cents computed over every tenant of each month."""

    actual: dict[dt.date, Decimal]
    actual_cents: dict[dt.date, Decimal]
    estimated: dict[dt.date, Decimal]
    estimated_cents: dict[dt.date, Decimal]
    currency: dict[dt.date, str]
    cost_metric: dict[dt.date, str]
    is_final: dict[dt.date, bool]


def _month_totals(con, accountant_id: str, months: list[dt.date]) -> MonthTotals:
    actual_all: dict[dt.date, dict[tuple[str, str], Decimal]] = {}
    metric: dict[dt.date, str] = {}
    for period, accountant, currency, cost, cost_metric in query(con, "actual_totals", months=months):
        actual_all.setdefault(period, {})[(accountant, currency)] = cost
        metric[period] = cost_metric
    estimated_all: dict[dt.date, dict[str, Decimal]] = {}
    for period, accountant, cost in query(con, "estimated_totals", months=months):
        estimated_all.setdefault(period, {})[accountant] = cost
    final = {period: bool(is_final) for period, is_final in query(con, "month_final", months=months)}

    totals = MonthTotals({}, {}, {}, {}, {}, {}, {})
    for period, parts in actual_all.items():
        mine = {currency: cost for (accountant, currency), cost in parts.items() if accountant == accountant_id}
        if not mine:
            continue
        if len(mine) > 1:
            raise ValueError(f"{month_key(period)}: costs in several currencies ({', '.join(sorted(mine))})")
        (currency, cost), = mine.items()
        cents = largest_remainder_cents({key: v for key, v in parts.items() if key[1] == currency})
        totals.actual[period] = cost
        totals.actual_cents[period] = cents[(accountant_id, currency)]
        totals.currency[period] = currency
        totals.cost_metric[period] = metric[period]
    for period, parts in estimated_all.items():
        if accountant_id in parts:
            totals.estimated[period] = parts[accountant_id]
            totals.estimated_cents[period] = largest_remainder_cents(parts)[accountant_id]
    for period in months:
        totals.is_final[period] = final.get(period, False)
    return totals


def tenant_months(con, accountant_id: str) -> list[dt.date]:
    return [row[0] for row in query(con, "tenant_months", accountant_id=accountant_id)]


def _status(is_final: bool, has_actual: bool) -> str:
    if not has_actual:
        return "estimated"
    return "final" if is_final else "provisional"


def history(con, accountant_id: str, currency_default: str = "USD") -> list[dict]:
    months = tenant_months(con, accountant_id)
    if not months:
        return []
    refuse_inconsistent(con, months)
    totals = _month_totals(con, accountant_id, months)
    rows = []
    for period in months:
        actual = totals.actual.get(period)
        estimated = totals.estimated.get(period)
        source = "actual" if actual is not None else "estimated"
        rows.append({
            "month": month_key(period),
            "currency": totals.currency.get(period, currency_default),
            "status": _status(totals.is_final[period], actual is not None),
            "is_final": totals.is_final[period],
            "total_source": source,
            "total_cost": money(actual, totals.actual_cents.get(period)) if actual is not None
            else money(estimated, totals.estimated_cents.get(period)),
            "actual_cost": money(actual, totals.actual_cents.get(period)),
            "estimated_cost": money(estimated, totals.estimated_cents.get(period)),
            "variance": _variance(actual, estimated, totals.actual_cents.get(period), totals.estimated_cents.get(period)),
        })
    return rows


def _variance(actual, estimated, *_cents) -> dict | None:
    """actual - estimated, exact; its cents are the exact variance rounded half up (not the difference of the
    rounded amounts, which can even have the other sign)."""
    if actual is None or estimated is None:
        return None
    return money(actual - estimated, None)


def _sort_types(types: Iterable[str]) -> list[str]:
    return sorted(set(types), key=lambda t: (RESOURCE_TYPE_ORDER.index(t) if t in RESOURCE_TYPE_ORDER else 99, t))


def statement(con, accountant_id: str, period: dt.date, currency_default: str = "USD") -> dict:
    """The caller's billing statement of one month (see docs/billing-api.md for every field)."""
    refuse_inconsistent(con, [period])
    totals = _month_totals(con, accountant_id, [period])
    actual = totals.actual.get(period)
    estimated = totals.estimated.get(period)
    if actual is None and estimated is None:
        raise NoData(f"No billing data for {month_key(period)}.")
    has_actual = actual is not None
    is_final = totals.is_final[period]

    actual_by_type = {rtype: cost for rtype, _currency, cost in query(
        con, "actual_by_type", month=period, accountant_id=accountant_id)}
    operations: dict[str, dict[str, tuple[Decimal | None, Decimal, int]]] = {}
    for rtype, operation, quantity, cost, records in query(
            con, "estimated_by_operation", month=period, accountant_id=accountant_id):
        operations.setdefault(rtype, {})[operation] = (quantity, cost, records)
    estimated_by_type = {rtype: sum((c for _q, c, _r in ops.values()), Decimal(0)) for rtype, ops in operations.items()}
    drivers: dict[str, dict[str, Decimal]] = {}
    for rtype, driver, quantity in query(con, "measured_drivers", month=period, accountant_id=accountant_id):
        drivers.setdefault(rtype, {})[driver] = quantity
    driver_cost: dict[tuple[str, str], Decimal] = {
        (rtype, driver): cost for rtype, driver, cost in query(con, "driver_costs", month=period, accountant_id=accountant_id)}

    type_actual_cents = apportion_cents(actual_by_type, totals.actual_cents[period]) if has_actual else {}
    type_estimated_cents = (apportion_cents(estimated_by_type, totals.estimated_cents[period])
                            if estimated is not None else {})

    usage_by_type: dict[str, dict] = {}
    for rtype in _sort_types([*actual_by_type, *estimated_by_type]):
        a = actual_by_type.get(rtype)
        e = estimated_by_type.get(rtype)
        cost, cents, source = (a, type_actual_cents.get(rtype), "actual") if has_actual else (e, type_estimated_cents.get(rtype), "estimated")
        if cost is None:  # an actual month with no actual cost of an estimated type: it cost nothing
            cost, cents = Decimal(0).quantize(Decimal("1e-10")), Decimal("0.00")
        ops = operations.get(rtype, {})
        single = next(iter(ops.items())) if len(ops) == 1 else None
        quantity = single[1][0] if single else None
        usage_by_type[rtype] = {
            "quantity": exact(quantity),
            "unit": single[0] if single else None,
            "unit_cost": unit_cost(cost, quantity),
            "cost": money(cost, cents),
            "cost_source": source,
            "actual_cost": money(a, type_actual_cents.get(rtype)) if a is not None else None,
            "estimated_cost": money(e, type_estimated_cents.get(rtype)) if e is not None else None,
            "operations": {
                operation: {
                    "quantity": exact(q),
                    "unit_cost": unit_cost(c, q),
                    "estimated_cost": exact(c),
                    "records": r,
                }
                for operation, (q, c, r) in ops.items()
            },
            "drivers": {
                driver: {
                    "quantity": exact(q),
                    "cost": exact(driver_cost.get((rtype, driver))),
                    "unit_cost": unit_cost(driver_cost.get((rtype, driver)), q),
                }
                for driver, q in drivers.get(rtype, {}).items()
            },
        }

    comparison = []
    for rtype, currency, est, act, variance, variance_pct, flagged, _final in query(
            con, "report", month=period, accountant_id=accountant_id):
        if rtype == "total":
            est_c, act_c = totals.estimated_cents.get(period), totals.actual_cents.get(period)
        else:
            est_c, act_c = type_estimated_cents.get(rtype), type_actual_cents.get(rtype)
        est_c = est_c if est_c is not None else (Decimal("0.00") if est == 0 else None)
        act_c = act_c if act_c is not None else (Decimal("0.00") if act == 0 else None)
        comparison.append({
            "resource_type": rtype,
            "estimated_cost": money(est, est_c),
            "actual_cost": money(act, act_c),
            "variance": money(variance, None),
            "variance_pct": exact(variance_pct),
            "flagged": bool(flagged),
        })

    order = {rtype: i for i, rtype in enumerate(_sort_types(row["resource_type"] for row in comparison))}
    comparison.sort(key=lambda row: (row["resource_type"] == "total", order[row["resource_type"]]))
    return {
        "accountant_id": accountant_id,
        "month": month_key(period),
        "currency": totals.currency.get(period, currency_default),
        "cost_metric": totals.cost_metric.get(period),
        "status": _status(is_final, has_actual),
        "is_final": is_final,
        "actual_available": has_actual,
        "total_source": "actual" if has_actual else "estimated",
        "total_cost": money(actual, totals.actual_cents[period]) if has_actual
        else money(estimated, totals.estimated_cents[period]),
        "actual_cost": money(actual, totals.actual_cents.get(period)),
        "estimated_cost": money(estimated, totals.estimated_cents.get(period)),
        "variance": _variance(actual, estimated, totals.actual_cents.get(period), totals.estimated_cents.get(period)),
        "usage_by_type": usage_by_type,
        "estimated_vs_actual": comparison,
    }


# ----------------------------------------------------------------------------------------------------------------
# CSV

CSV_COLUMNS = ["month", "accountant_id", "resource_type", "status", "currency", "quantity", "unit", "unit_cost",
               "estimated_cost", "actual_cost", "cost", "cost_rounded", "variance", "variance_pct", "flagged"]


def csv_rows(doc: dict) -> list[list[str]]:
    """The statement as CSV rows: one per resource type, then the month's total."""
    flagged = {row["resource_type"]: row for row in doc["estimated_vs_actual"]}

    def amount(m: dict | None, key: str = "exact") -> str:
        return "" if m is None else str(m[key])

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
