"""What the accountant's dashboard shows beyond the statement, computed here from the CUR rows (never in the API
or the page): each tenant's usage lines (service x usage type x line item type x part) in human units with the
bill's own unit cost, the same per day, the direct / shared / proportional parts, and the month to date.

- quantity: the tenant's part of the bill's usage amount, in proportion to its part of the cost: tenant cost x
  (usage amount / cost) of the in-scope CUR facts of that service, usage type and line item type; the unit is the
  catalog's unit of the usage type's first driver (GB-seconds, GB-months, requests, tokens, ...; the usage amount
  converted by `units_per_billed_unit`), GB for network usage types. Lines that carry no usage (tax, credits, fees)
  or a usage type the catalog has no unit for: the tenant's percent of the bill's line, `% of <service> <type>`.
- unit_cost: the bill's cost / usage amount (or the cost of 1 % of the line), half up to 1e-18: quantity x
  unit_cost = cost to the rounding of the quantity.
- cents, one source: the statements' rows. A statement line's cents are split over its usage lines, a usage line's
  over its days, a resource type's (and the tenant's) over the days, the tenant's over its parts, each by largest
  remainder (statements.split_cents): every series adds up to the statement figure it details.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa

from billing_pipeline.assets.statements import split_cents
from billing_pipeline.assets.tenant_registry import reported
from billing_pipeline.catalog import COMBINED, Catalog, load_catalog
from billing_pipeline.money import CENT, largest_remainder_cents, rounded_ratio

MONEY = pa.decimal128(38, 10)
CENTS = pa.decimal128(38, 2)
UNIT_COST = pa.decimal128(38, 18)
QUANTITY_PLACES = Decimal("1e-10")
UNIT_COST_PLACES = Decimal("1e-18")
USAGE_LINE_TYPES = ("Usage", "SavingsPlanCoveredUsage", "DiscountedUsage")  # lines whose usage amount is usage
PARTS = {"direct": "direct", "shared_hour": "shared", "shared_day": "shared", "shared_month": "shared",
         "proportional": "proportional", "unattributed": "unattributed"}
LINE_KEY = [("resource_type", pa.string()), ("service", pa.string()), ("usage_type", pa.string()),
            ("line_item_type", pa.string()), ("part", pa.string())]
USAGE_LINES = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), *LINE_KEY,
                         ("currency", pa.string()), ("quantity", MONEY), ("unit", pa.string()),
                         ("unit_cost", UNIT_COST), ("cost", MONEY), ("amount", CENTS)])
USAGE_DAYS = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), *LINE_KEY,
                        ("usage_date", pa.date32()), ("quantity", MONEY), ("cost", MONEY), ("amount", CENTS)])
DAILY = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), ("resource_type", pa.string()),
                   ("usage_date", pa.date32()), ("cost", MONEY), ("amount", CENTS)])
COST_PARTS = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), ("part", pa.string()),
                        ("cost", MONEY), ("amount", CENTS)])
MONTH_TO_DATE = pa.schema([("billing_period", pa.date32()), ("accountant_id", pa.string()), ("currency", pa.string()),
                           *[(f"{name}{suffix}", kind) for name in ("actual_cost", "estimated_cost", "cost_to_date",
                                                                   "forecast_cost", "forecast_low", "forecast_high")
                             for suffix, kind in (("", MONEY), ("_amount", CENTS))],
                           ("covered_through", pa.timestamp("us")), ("as_of", pa.timestamp("us"))])

# Ids outside the tenant registry as 'unknown', as in the statements (assets/tenant_registry.py)
TENANT_LINES_SQL = f"""
SELECT accountant_id, resource_type, service, usage_type, line_item_type, allocation, usage_date, currency,
       CAST(sum(cost) AS DECIMAL(38, 10)) AS cost, min(cost_metric) AS cost_metric
FROM {reported("tenant_costs", ["billing_period", "resource_type", "service", "usage_type", "line_item_type",
                                "allocation", "usage_date", "currency", "cost", "cost_metric"])}
WHERE billing_period = ?
GROUP BY accountant_id, resource_type, service, usage_type, line_item_type, allocation, usage_date, currency"""
# the bill's lines as the CUR has them: usage amount and cost (every metric) per service x usage type x line type
BILL_SQL = """
SELECT service, usage_type, line_item_type, currency, in_scope,
       CAST(sum(usage_amount) AS DECIMAL(38, 10)), CAST(sum(unblended_cost) AS DECIMAL(38, 10)),
       CAST(sum(amortized_cost) AS DECIMAL(38, 10)),
       CAST(sum(coalesce(net_amortized_cost, amortized_cost)) AS DECIMAL(38, 10))
FROM hourly_cost_facts WHERE billing_period = ?
GROUP BY service, usage_type, line_item_type, currency, in_scope"""
MONTH_TO_DATE_SQL = f"""
SELECT accountant_id, currency, CAST(sum(actual_cost) AS DECIMAL(38, 10)), CAST(sum(estimated_cost) AS DECIMAL(38, 10)),
       CAST(sum(cost_to_date) AS DECIMAL(38, 10)), CAST(sum(forecast_cost) AS DECIMAL(38, 10)),
       CAST(sum(forecast_low) AS DECIMAL(38, 10)), CAST(sum(forecast_high) AS DECIMAL(38, 10)),
       max(covered_through), max(as_of)
FROM {reported("month_to_date", ["billing_period", "currency", "actual_cost", "estimated_cost", "cost_to_date",
                                 "forecast_cost", "forecast_low", "forecast_high", "covered_through", "as_of"])}
WHERE billing_period = ?
GROUP BY accountant_id, currency ORDER BY accountant_id, currency"""
METRIC_COLUMN = {"unblended": 0, "amortized": 1, "net_amortized": 2}


def plural(unit: str) -> str:
    """`GB-second` -> `GB-seconds`; abbreviations (`GB`) and plurals stay as they are."""
    return unit if unit.endswith("s") or unit.isupper() or unit.startswith("%") else unit + "s"


def usage_unit(catalog: Catalog, service: str | None, usage_type: str | None) -> tuple[str, int] | None:
    """(unit, driver units per unit of the CUR's usage amount) of a usage type: the catalog's first matching rule's
    first driver (as pricing_feedback reads the bill), GB for the network usage types; None when unknown."""
    if not usage_type:
        return None
    known = catalog.services.get(service or "")
    for patterns, drivers in known.rules if known else ():
        if any(pattern in usage_type for pattern in patterns):
            driver = known.drivers.get(drivers[0]) if drivers[0] != COMBINED else None
            return (plural(driver.unit), driver.units_per_billed_unit) if driver else None
    if any(name in usage_type for name in catalog.network_usage_types):
        return "GB", 1
    return None


def usage_tables(period: dt.date, tenant_rows: list[tuple], bill_rows: list[tuple], statements: list[dict],
                 catalog: Catalog | None = None) -> dict[str, pa.Table]:
    """usage_lines, usage_days, daily and cost_parts of the month (see the module doc)."""
    catalog = catalog or load_catalog()
    metric = next((row[9] for row in tenant_rows), "amortized")
    bill_scoped: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    bill_all: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for service, usage_type, line_type, currency, in_scope, amount, *costs in bill_rows:
        cost = costs[METRIC_COLUMN.get(metric, 1)]
        for target in ([bill_scoped, bill_all] if in_scope else [bill_all]):
            target[(service, usage_type, line_type, currency)][0] += amount or 0
            target[(service, usage_type, line_type, currency)][1] += cost or 0

    def measure(service, usage_type, line_type, currency):
        """(unit, quantity per unit of cost, unit cost) of a bill line."""
        key = (service, usage_type, line_type, currency)
        amount, cost = bill_scoped.get(key, (Decimal(0), Decimal(0)))
        unit = usage_unit(catalog, service, usage_type) if line_type in USAGE_LINE_TYPES else None
        if unit and amount and cost:
            amount *= unit[1]
            return unit[0], (amount, cost), rounded_ratio(cost, amount, UNIT_COST_PLACES)
        line_cost = bill_all.get(key, (0, 0))[1] or cost
        name = f"% of {service or 'the bill'} {usage_type or line_type}" + (
            f" {line_type}" if usage_type and line_type not in USAGE_LINE_TYPES[:1] else "")
        if not line_cost:
            return name, None, None
        return name, (Decimal(100), line_cost), rounded_ratio(line_cost, Decimal(100), UNIT_COST_PLACES)

    # the tenant's cost per line and day
    lines: dict[tuple, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    currency_of: dict[tuple, str] = {}
    for accountant, rtype, service, usage_type, line_type, allocation, day, currency, cost, _m in tenant_rows:
        key = (accountant, rtype, service, usage_type, line_type, PARTS.get(allocation, allocation))
        lines[key][day] += cost
        currency_of[key] = currency
    statement_cents = {(r["accountant_id"], r["line"]): r["amount"] for r in statements}
    units = {key: measure(key[2], key[3], key[4], currency_of[key]) for key in lines}

    def quantity(key, cost):
        per = units[key][1]
        return None if per is None else rounded_ratio(cost * per[0], per[1], QUANTITY_PLACES)

    line_rows, day_rows, daily_rows, part_rows = [], [], [], []
    by_type: dict[tuple, list[tuple]] = defaultdict(list)
    for key in lines:
        by_type[key[:2]].append(key)
    for (accountant, rtype), keys in sorted(by_type.items(), key=lambda item: [str(v) for v in item[0]]):
        costs = {key: sum(lines[key].values(), Decimal(0)) for key in keys}
        cents = split_cents(costs, statement_cents.get((accountant, rtype), Decimal(0)))
        for key in sorted(keys, key=lambda k: [str(v) for v in k]):
            unit, _per, unit_cost = units[key]
            line_rows.append(dict(zip(USAGE_LINES.names, [
                period, accountant, *key[1:], currency_of[key], quantity(key, costs[key]), unit, unit_cost,
                costs[key], cents[key]])))
            day_cents = split_cents(lines[key], cents[key])
            for day in sorted(lines[key]):
                day_rows.append(dict(zip(USAGE_DAYS.names, [
                    period, accountant, *key[1:], day, quantity(key, lines[key][day]), lines[key][day],
                    day_cents[day]])))
    # per day: each resource type's and the tenant's, and the tenant's parts
    days: dict[tuple, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    # the three parts always (zero when none), so a tenant sees that it has, say, no direct cost
    parts: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal, {p: Decimal("0E-10") for p in ("direct", "shared", "proportional")}))
    for key, per_day in lines.items():
        for day, cost in per_day.items():
            days[(key[0], key[1])][day] += cost
            days[(key[0], "total")][day] += cost
            parts[key[0]][key[5]] += cost
    for (accountant, rtype), per_day in sorted(days.items()):
        day_cents = split_cents(per_day, statement_cents.get((accountant, rtype), Decimal(0)))
        daily_rows += [dict(zip(DAILY.names, [period, accountant, rtype, day, per_day[day], day_cents[day]]))
                       for day in sorted(per_day)]
    for accountant, costs in sorted(parts.items()):
        cents = split_cents(costs, statement_cents.get((accountant, "total"), Decimal(0)))
        part_rows += [dict(zip(COST_PARTS.names, [period, accountant, part, costs[part], cents[part]]))
                      for part in sorted(costs)]
    return {
        "usage_lines": pa.Table.from_pylist(line_rows, schema=USAGE_LINES),
        "usage_days": pa.Table.from_pylist(day_rows, schema=USAGE_DAYS),
        "daily": pa.Table.from_pylist(daily_rows, schema=DAILY),
        "cost_parts": pa.Table.from_pylist(part_rows, schema=COST_PARTS),
    }


def month_to_date_table(period: dt.date, rows: list[tuple], statements: list[dict]) -> pa.Table:
    """The month to date per tenant (its resource types summed), with cents: the actual part's are the statement
    total's (the actual part is tenant_costs, as the statement), cost to date and forecast by largest remainder over
    the month's rows (per currency), estimated = cost to date - actual in cents, the interval's ends half up."""
    statement_cents = {(r["accountant_id"], r["currency"]): r["amount"] for r in statements if r["line"] == "total"}
    by_currency: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_currency[row[1]].append(row)
    out = []
    for currency, group in sorted(by_currency.items()):
        to_date = largest_remainder_cents({r[0]: r[4] for r in group})
        forecast = largest_remainder_cents({r[0]: r[5] for r in group})
        for accountant, _c, actual, estimated, cost_to_date, fcost, low, high, covered, as_of in group:
            actual_cents = statement_cents.get((accountant, currency),
                                               actual.quantize(CENT, rounding=ROUND_HALF_UP))
            out.append(dict(
                billing_period=period, accountant_id=accountant, currency=currency,
                actual_cost=actual, actual_cost_amount=actual_cents,
                estimated_cost=estimated, estimated_cost_amount=to_date[accountant] - actual_cents,
                cost_to_date=cost_to_date, cost_to_date_amount=to_date[accountant],
                forecast_cost=fcost, forecast_cost_amount=forecast[accountant],
                forecast_low=low, forecast_low_amount=low.quantize(CENT, rounding=ROUND_HALF_UP),
                forecast_high=high, forecast_high_amount=high.quantize(CENT, rounding=ROUND_HALF_UP),
                covered_through=covered, as_of=as_of))
    return pa.Table.from_pylist(out, schema=MONTH_TO_DATE)


def month_to_date_problems(mtd: pa.Table, statements: list[dict]) -> list[str]:
    """The month to date published beside a statement must be of the same CUR delivery: its actual part equals
    the statement's total (both are tenant_costs)."""
    totals = {(r["accountant_id"], r["currency"]): r["cost"] for r in statements if r["line"] == "total"}
    stale = sorted(r["accountant_id"] for r in mtd.to_pylist()
                   if totals and r["actual_cost"] != totals.get((r["accountant_id"], r["currency"]), Decimal(0)))
    return [f"month_to_date: the actual part of {', '.join(stale)} differs from statements (re-run month_to_date)"
            ] if stale else []
