"""The nowcast behind `month_to_date` and `nowcast_accuracy`: each tenant's cost of the hours the CUR has not
reached yet, priced by the bill, and a month-end forecast with an interval. See docs/realtime.md.

    actual_cost     tenant_costs of the month (the hours the current CUR delivery covers), exactly
    estimated_cost  after coverage through as_of:
                      shared drivers: the tenant's measured usage x the unit cost the bill implies for that driver
                      and scope (model, function, table, bucket, as the attribution names them: cost / usage over
                      the last 7 covered days; else the previous month with a CUR; else, for a service the bill
                      prices no driver of, the pricing file's constant);
                      tagged resources with usage evidence of their own: that usage x their own unit cost;
                      other tagged resources and cost no driver explains: their run rate (cost per hour of the same
                      window) x the hours not covered
                    an hour after coverage whose logs were lost (no log evidence at all, while a later hour has
                    some and so had the same hour of most of the 7 days before): the mean of those hours' usage
    forecast_cost   cost_to_date + the cost per hour of the last 7 whole days (all whole days in the first week) x the
                    hours left in the month, storage at its last whole day's cost (it is a stock, not a flow), with
                    an interval from the day-to-day spread of those days' usage (`interval`)

The SQL sums (assets/month_to_date.sql); every division, product and rounding is done here with Decimal, exactly,
rounded half away from zero: unit costs and run rates to 1e-18, money to 1e-10.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext

import duckdb
import pyarrow as pa

from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.money import rounded_ratio
from billing_pipeline.pricing import Pricing
from billing_pipeline.sql import read_sql

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
CALIBRATION_WINDOW = dt.timedelta(days=7)
MIN_COVERED = dt.timedelta(hours=24)  # less of the month covered than this: calibrate on the previous month
MONEY = Decimal("1e-10")
RATE = Decimal("1e-18")
# The interval: forecast +- t x (spread of the remaining days' cost + the error of the rate they are projected at)
# + ESTIMATE_SHARE of the estimated part. t is Student's 97.5th percentile for n - 1 degrees of freedom: a nominal
# 95 % band for independent normal days whose spread is known only from the n days seen. Days are not independent
# (busy weeks, storage that grows): the nominal 90 % band held the final only 70-80 % of the time in the backtest
# on generated months, this one 80-95 % (docs/realtime.md).
T975 = {1: "12.706", 2: "4.303", 3: "3.182", 4: "2.776", 5: "2.571", 6: "2.447", 7: "2.365", 8: "2.306", 9: "2.262",
        10: "2.228", 12: "2.179", 14: "2.145", 16: "2.120", 18: "2.101", 20: "2.086", 24: "2.064", 27: "2.052",
        30: "2.042"}
ESTIMATE_SHARE = Decimal("0.05")
GAP_LOOKBACK_DAYS = 7
GAP_METHOD = "evidence_gap:same_hour_earlier_days"
TAX_METHOD = "tax:levied_on_charges_to_come"  # the month's tax so far, at its rate on the charges still to come


def t975(degrees: int) -> Decimal:
    """The table's value for the largest tabulated degrees of freedom not above `degrees` (conservative)."""
    known = [d for d in T975 if d <= degrees]
    return Decimal(T975[max(known)]) if known else Decimal(T975[1])

# relations staged from the caller's nowcast_* ones, in order (month_to_date.sql), the months through the nowcast's:
# facts and evidence under the catalog's scope names, and the tagged resources with evidence of their own
SCOPED_RELATIONS = ("scoped_facts", "scoped_evidence", "direct_scopes")

BASIS_CURRENT = "last_7_covered_days"
BASIS_PREVIOUS = "previous_month"
BASIS_PRICING = "pricing_file"

FACT_COLUMNS = """billing_period, usage_hour, span_hours, service, usage_type, resource_id, accountant_id, currency,
    CASE $metric WHEN 'unblended' THEN unblended_cost WHEN 'amortized' THEN amortized_cost
                 ELSE net_amortized_cost END AS cost"""


def queries() -> dict[str, str]:
    """The named queries of assets/month_to_date.sql (blocks starting `-- query: <name>`), its includes in place."""
    text = read_sql("billing_pipeline.assets", "month_to_date.sql")
    parts = re.split(r"^-- query: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2])}


def _round(value: Decimal, step: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        return value.quantize(step, rounding=ROUND_HALF_UP)


def _div(a: Decimal, b: Decimal, step: Decimal = RATE) -> Decimal:
    return rounded_ratio(a, b, step)


def _hours(a: dt.datetime, b: dt.datetime) -> int:
    return max(0, int((b - a) // HOUR))


@contextmanager
def warehouse_inputs(con, metric: str) -> Iterator[None]:
    """The nowcast's three inputs as views over the warehouse tables (every month)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW nowcast_facts AS SELECT {FACT_COLUMNS.replace('$metric', repr(metric))} "
                "FROM hourly_cost_facts WHERE in_scope")
    con.execute("CREATE OR REPLACE TEMP VIEW nowcast_evidence AS SELECT * FROM usage_shares")
    con.execute("CREATE OR REPLACE TEMP VIEW nowcast_attributed AS SELECT * FROM tenant_costs")
    try:
        yield
    finally:
        for view in ("nowcast_facts", "nowcast_evidence", "nowcast_attributed"):
            con.execute(f"DROP VIEW IF EXISTS {view}")


@dataclass
class Calibration:
    kind: str  # unit_cost | run_rate
    basis: str
    source_period: dt.date | None
    service: str
    driver: str | None
    scope: str | None
    accountant_id: str | None
    usage_type: str | None
    currency: str
    grain: str  # hour | day
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    cost: Decimal | None
    quantity: Decimal | None  # usage (unit_cost) or hours (run_rate)
    unit_cost: Decimal  # per unit of the driver, or per hour


@dataclass
class Nowcast:
    billing_period: dt.date
    covered_through: dt.datetime
    as_of: dt.datetime
    rows: list[dict] = field(default_factory=list)
    evidence_gaps: dict = field(default_factory=dict)  # an hour whose logs were lost -> the hours standing in
    calibrations: list[Calibration] = field(default_factory=list)
    # (accountant, resource_type, currency) -> {date: (actual, estimated, of which stock, of which tax)}
    daily: dict = field(default_factory=dict)


def _coverage(con, q, period: dt.date) -> tuple[dt.datetime | None, dt.datetime | None]:
    last_hour, last_day = con.execute(q["coverage"], {"billing_period": period}).fetchall()[0]
    return (last_hour + HOUR if last_hour else None), (last_day + DAY if last_day else None)


def _windows(period: dt.date, covered: dt.datetime, days_covered: dt.datetime | None) -> dict:
    start = dt.datetime.combine(period, dt.time())
    days_end = days_covered or start
    return {"hour_window_start": max(start, covered - CALIBRATION_WINDOW), "hour_window_end": covered,
            "day_window_start": max(start, days_end - CALIBRATION_WINDOW), "day_window_end": days_end}


def _window(windows: dict, grain: str) -> tuple[dt.datetime, dt.datetime]:
    return (windows["hour_window_start"], windows["hour_window_end"]) if grain == "hour" else (
        windows["day_window_start"], windows["day_window_end"])


DIRECT_KEY = ("accountant_id", "service", "usage_type", "driver", "scope", "currency", "grain")


@contextmanager
def _direct_unit_costs(con, calibrations: list[Calibration]) -> Iterator[dict]:
    """The direct unit costs as the relation `nowcast_direct_unit_costs` (DIRECT_KEY) while the block runs; yields
    them by that key."""
    by_key = {tuple(getattr(c, k) for k in DIRECT_KEY): c for c in calibrations}
    con.register("nowcast_direct_unit_costs", pa.table(
        {k: [key[i] for key in by_key] for i, k in enumerate(DIRECT_KEY)},
        schema=pa.schema([(k, pa.string()) for k in DIRECT_KEY])))
    try:
        yield by_key
    finally:
        con.unregister("nowcast_direct_unit_costs")


def _calibrate(con, q, period: dt.date, basis: str) -> list[Calibration]:
    """Unit costs and run rates from the month's covered hours (the last 7 days of them)."""
    covered, days_covered = _coverage(con, q, period)
    if covered is None:
        return []
    windows = _windows(period, covered, days_covered)
    params = {"billing_period": period, **windows}
    out = []
    for service, driver, scope, currency, grain, cost, quantity, _buckets in con.execute(q["unit_cost_sums"], params).fetchall():
        w0, w1 = _window(windows, grain)
        out.append(Calibration("unit_cost", basis, period, service, driver, scope, None, None, currency, grain, w0, w1,
                               cost, quantity, _div(cost, quantity)))
    # tagged resources with evidence of their own: their cost over their own usage
    direct = []
    for accountant, service, usage_type, driver, scope, currency, grain, cost, quantity in con.execute(
            q["direct_unit_cost_sums"], params).fetchall():
        w0, w1 = _window(windows, grain)
        direct.append(Calibration("direct_unit_cost", basis, period, service, driver, scope, accountant, usage_type,
                                  currency, grain, w0, w1, cost, quantity, _div(cost, quantity)))
    out += direct
    with _direct_unit_costs(con, direct):
        run_rate_sums = con.execute(q["run_rate_sums"], params).fetchall()
    for accountant, service, usage_type, currency, grain, cost in run_rate_sums:
        w0, w1 = _window(windows, grain)
        hours = _hours(w0, w1)
        if hours:
            out.append(Calibration("run_rate", basis, period, service, None, None, accountant, usage_type, currency,
                                   grain, w0, w1, cost, Decimal(hours), _div(cost, Decimal(hours))))
    return out


def evidence_gaps(log_hours: set[dt.datetime], covered: dt.datetime, as_of: dt.datetime,
                  month_start: dt.datetime) -> dict[dt.datetime, list[dt.datetime]]:
    """The hours after coverage whose logs were lost, each with the hours whose usage stands in for it. An hour is
    lost when the logs hold nothing for it although they hold something for a later hour (evidence still to come
    is not lost) and for the same hour on most of the last GAP_LOOKBACK_DAYS days of the month (an hour the
    application is quiet in every night is not lost either). Those same hours stand in for it, at their mean. The
    final bill splits the lost hour's cost by the day's shares (docs/attribution-rules.md); without this its cost
    would be estimated at nothing."""
    last = max(log_hours, default=None)
    gaps = {}
    hour = covered
    while last is not None and hour < min(as_of, last):
        if hour not in log_hours:
            earlier = [hour - DAY * k for k in range(1, GAP_LOOKBACK_DAYS + 1) if hour - DAY * k >= month_start]
            present = [h for h in earlier if h in log_hours]
            if earlier and 2 * len(present) > len(earlier):
                gaps[hour] = present
        hour += HOUR
    return gaps


EVIDENCE_HOURS_SCHEMA = pa.schema([("grain", pa.string()), ("usage_hour", pa.timestamp("us")),
                                   ("usage_date", pa.date32()), ("divisor", pa.int64())])


def evidence_hours(covered: dt.datetime, days_covered: dt.datetime, as_of: dt.datetime,
                   gaps: dict[dt.datetime, list[dt.datetime]]) -> pa.Table:
    """nowcast_evidence_hours (month_to_date.sql): which hours of evidence count for which day, and for what part.
    Hourly lines: each hour after coverage for its own day, and each hour standing in for a lost one for the lost
    hour's day, divided by how many stand in. Daily lines (storage): each hour after the last covered day."""
    rows = []
    for grain, start in (("hour", covered), ("day", days_covered)):
        hour = start
        while hour < as_of:
            rows.append((grain, hour, hour.date(), 1))
            hour += HOUR
    for lost, sources in sorted(gaps.items()):
        rows += [("hour", source, lost.date(), len(sources)) for source in sources]
    return pa.Table.from_pylist([dict(zip(EVIDENCE_HOURS_SCHEMA.names, r)) for r in rows], schema=EVIDENCE_HOURS_SCHEMA)


def _estimate(quantity: Decimal, unit_cost: Decimal, divisor: int) -> Decimal:
    return _round(quantity * unit_cost, MONEY) if divisor == 1 else _div(quantity * unit_cost, Decimal(divisor), MONEY)


def interval(cost_to_date: Decimal, estimated: Decimal, days: list[Decimal], remaining_hours: int,
             forecast: Decimal) -> tuple[Decimal, Decimal]:
    """forecast +- half width: t x sd x sqrt(R + R^2 / n) for R remaining days projected at the mean of n days
    whose day-to-day standard deviation is sd (the sum of R days, plus the error of the mean they are projected
    at), plus ESTIMATE_SHARE of the estimated part. Exact Decimal arithmetic (Decimal.sqrt is correctly rounded)."""
    with localcontext() as ctx:
        ctx.prec = 60
        n = len(days)
        remaining_days = Decimal(remaining_hours) / 24
        spread = Decimal(0)
        if n >= 2 and remaining_hours:
            mean = sum(days) / n
            variance = sum((d - mean) ** 2 for d in days) / (n - 1)
            spread = t975(n - 1) * (variance * (remaining_days + remaining_days ** 2 / n)).sqrt()
        half = spread + ESTIMATE_SHARE * abs(estimated)
        return _round(forecast - half, MONEY), _round(forecast + half, MONEY)


def compute(con, period: dt.date, next_period: dt.date, pricing: Pricing,
            now: dt.datetime | None = None, final: bool = False) -> Nowcast:
    """The month's nowcast from the nowcast_* relations (see assets/month_to_date.sql). `now` caps as_of (an S3
    Inventory snapshot stands for the 24 hours after it, which may lie in the future). `final`: the month's CUR is
    final (it holds every account-level line the month will have: none of the previous month's are added)."""
    q = queries()
    month_start = dt.datetime.combine(period, dt.time())
    month_end = dt.datetime.combine(next_period, dt.time())
    con.register("driver_prices", pricing.driver_prices_table())
    # materialized once (every query below reads them; on Spark a view would be recomputed by each)
    engine = DuckDBEngine(con) if isinstance(con, duckdb.DuckDBPyConnection) else con
    try:
        for view in SCOPED_RELATIONS:
            engine.stage(f"nowcast_{view}", q[view], {"billing_period": period})
        covered, days_covered = _coverage(con, q, period)
        covered = covered or month_start
        days_covered = days_covered or month_start
        (evidence_end,) = con.execute(q["evidence_end"], {"billing_period": period}).fetchall()[0]
        as_of = max(covered, min(evidence_end + HOUR if evidence_end else covered, month_end,
                                 now.replace(minute=0, second=0, microsecond=0) if now else month_end))

        # calibrations: this month's covered hours when a day of it is covered, else the previous month's
        current = _calibrate(con, q, period, BASIS_CURRENT) if covered - month_start >= MIN_COVERED else []
        previous_period = con.execute(
            "SELECT max(billing_period) FROM nowcast_facts WHERE billing_period < ?", [period]).fetchall()[0][0]
        previous = _calibrate(con, q, previous_period, BASIS_PREVIOUS) if previous_period else []
        unit_costs = [c for c in current if c.kind == "unit_cost"]
        priced = {(c.service, c.driver) for c in unit_costs}
        unit_costs += [c for c in previous if c.kind == "unit_cost" and (c.service, c.driver) not in priced]
        priced |= {(c.service, c.driver) for c in unit_costs}
        run_rates = [c for c in (current if current else previous) if c.kind == "run_rate"]
        direct_costs = [c for c in (current if current else previous) if c.kind == "direct_unit_cost"]
        # the pricing file's constant for a driver only where the bill prices none of its service's: where it does,
        # a driver it leaves unpriced paid for nothing (AgentCore sessions when usage logs give vCPU-hours: pricing
        # them as well would count the runtime twice)
        billed_services = {service for service, _ in priced}
        for service, driver in con.execute(q["evidence_drivers"], {"billing_period": period, "covered_through": covered,
                                                                    "as_of": as_of}).fetchall():
            price = pricing.driver_prices.get((service, driver))
            if service not in billed_services and price is not None:
                unit_costs.append(Calibration("unit_cost", BASIS_PRICING, None, service, driver, "*", None, None,
                                              pricing.currency, "hour", None, None, None, None, price))

        # which hours of evidence count for which day: those after coverage, and stand-ins for hours whose logs were lost
        log_hours = {hour for (hour,) in con.execute(q["log_evidence_hours"], {"billing_period": period,
                                                                              "as_of": as_of}).fetchall()}
        gaps = evidence_gaps(log_hours, covered, as_of, month_start)
        con.register("nowcast_evidence_hours", evidence_hours(covered, days_covered, as_of, gaps))

        resource_types = dict(con.execute("SELECT service, resource_type FROM service_resource_types").fetchall())
        # (tenant, resource type, currency) -> day -> [actual, estimated, of which stock (storage), of which tax]
        daily: dict = defaultdict(lambda: defaultdict(lambda: [Decimal(0)] * 4))
        methods: dict = defaultdict(set)
        for accountant, service, currency, usage_date, cost, stock, tax in con.execute(
                q["actual_by_day"], {"billing_period": period}).fetchall():
            key = (accountant, resource_types.get(service, "other"), currency)
            daily[key][usage_date][0] += cost
            daily[key][usage_date][2] += stock
            daily[key][usage_date][3] += tax
            methods[key].add("actual")

        def add_estimate(key: tuple, day: dt.date, estimate: Decimal, grain: str, method: str,
                         divisor: int = 1) -> None:
            daily[key][day][1] += estimate
            daily[key][day][2] += estimate if grain == "day" else 0  # daily lines (storage) are a stock
            methods[key].add(method)
            if divisor > 1:  # evidence standing in for an hour whose logs were lost
                methods[key].add(GAP_METHOD)

        # shared drivers: usage after coverage x unit cost
        by_key = {(c.service, c.driver, c.scope, c.currency, c.grain): c for c in unit_costs}
        con.register("nowcast_unit_costs", pa.table({
            "service": [k[0] for k in by_key], "driver": [k[1] for k in by_key], "scope": [k[2] for k in by_key],
            "currency": [k[3] for k in by_key], "grain": [k[4] for k in by_key]},
            schema=pa.schema([(n, pa.string()) for n in ("service", "driver", "scope", "currency", "grain")])))
        try:
            usage = con.execute(q["evidence_after_coverage"], {"billing_period": period}).fetchall()
        finally:
            con.unregister("nowcast_unit_costs")
        for accountant, service, driver, scope, currency, grain, usage_date, divisor, quantity in usage:
            c = by_key[(service, driver, scope, currency, grain)]
            add_estimate((accountant, resource_types.get(service, "other"), currency), usage_date,
                         _estimate(quantity, c.unit_cost, divisor), grain, f"unit_cost:{c.basis}", divisor)

        # tagged resources with evidence of their own: that evidence after coverage x their own unit cost
        with _direct_unit_costs(con, direct_costs) as by_direct:
            usage = con.execute(q["direct_evidence_after_coverage"], {"billing_period": period}).fetchall()
        for *direct_key, usage_date, divisor, quantity in usage:
            c = by_direct[tuple(direct_key)]
            add_estimate((c.accountant_id, resource_types.get(c.service, "other"), c.currency), usage_date,
                         _estimate(quantity, c.unit_cost, divisor), c.grain, f"direct_unit_cost:{c.basis}", divisor)

        # tagged resources and cost no driver explains: run rate x hours not covered, day by day
        for c in run_rates:
            start = covered if c.grain == "hour" else days_covered
            key = (c.accountant_id, resource_types.get(c.service, "other"), c.currency)
            day = start.replace(hour=0)
            while day < as_of:
                hours = _hours(max(day, start), min(day + DAY, as_of))
                if hours:
                    add_estimate(key, day.date(), _round(c.unit_cost * hours, MONEY), c.grain, f"run_rate:{c.basis}")
                day += DAY
    finally:
        con.unregister("driver_prices")
        con.unregister("nowcast_evidence_hours")  # (nothing to do if the run stopped before registering it)
        for view in reversed(SCOPED_RELATIONS):
            engine.drop(f"nowcast_{view}")

    # forecast: the cost per hour of the last 7 whole days before as_of (all whole days in the first week), over
    # the hours left: a week holds every weekday once, and only the latest week follows a change of level (a
    # function's memory raised, a price changed, a tenant growing); all whole weeks since the 1st weighed the days
    # before such a change as much as those after it (the backtest: December's application forecasts from day 14
    # all too low after the sample's memory change on the 10th)
    remaining = _hours(as_of, month_end)
    whole_days_end = as_of.replace(hour=0)
    whole_days = (whole_days_end - month_start).days
    window_days = min(whole_days, 7)
    window = [(whole_days_end - DAY * i).date() for i in range(1, window_days + 1)]
    # Account-level lines (tax, credits: allocation 'proportional') dated the whole month arrive late: the tax so
    # far with each delivery, credits often only when the month closes. Of each line item type the month has none
    # of yet, the forecast adds the previous month's, tenant by tenant (a month with its tax so far still gets the
    # previous month's credits). Until the month is final, also once no hour of it is left (its evidence reaches
    # the month's end while the CUR is hours behind, or a delivery covers every hour before the invoice): those
    # lines come when the month closes, whether or not hours remain.
    month_end_lines: dict = defaultdict(Decimal)
    if previous_period and not final:
        # a month's own lines: those dated before it are an earlier month's, billed late (one-offs, below)
        proportional = ("SELECT {} FROM nowcast_attributed WHERE billing_period = ? AND allocation = 'proportional'"
                        " AND usage_date >= billing_period")
        own_types = {t for (t,) in con.execute(proportional.format("DISTINCT line_item_type"), [period]).fetchall()}
        for accountant, resource_type, currency, line_item_type, cost in con.execute(
                proportional.format("accountant_id, resource_type, currency, line_item_type, sum(cost)")
                + " GROUP BY ALL", [previous_period]).fetchall():
            if line_item_type in own_types:
                continue
            key = (accountant, resource_type, currency)
            month_end_lines[key] += cost
            daily[key]  # a row even for a tenant with nothing else yet
            methods[key].add(f"month_end_lines:{BASIS_PREVIOUS}")
    rows = []
    for key in sorted(daily):
        accountant, resource_type, currency = key
        days = daily[key]
        # (the row of zeros: a tenant whose only row is the previous month's month-end lines has no days yet)
        actual, estimated, _, tax = (sum(column, Decimal(0)) for column in zip(*days.values(), [Decimal(0)] * 4))
        to_date = actual + estimated
        # lines dated before the month (the previous month's tax, credits or refunds in this month's CUR) are actual
        # one-offs: in the cost to date and the forecast as they are, but no flow, and not this month's tax or the
        # charges it was levied on
        earlier = [v for d, v in days.items() if d < period]
        earlier_cost = sum((v[0] for v in earlier), Decimal(0))
        tax -= sum((v[3] for v in earlier), Decimal(0))
        if window:
            # usage (flows) at the window's mean per hour; storage (a stock) at its last whole day's cost; the
            # month's tax so far is dated its first day, and is no flow
            zero = (Decimal(0),) * 4
            per_day = [days.get(d, zero)[0] + days.get(d, zero)[1] - days.get(d, zero)[2] - days.get(d, zero)[3]
                       for d in window]
            last_stock = days.get(window[0], zero)[2]
            rate = _div(sum(per_day, Decimal(0)) + last_stock * len(window), Decimal(24 * len(window)))
        else:
            per_day = []
            elapsed = _hours(month_start, as_of)
            rate = _div(to_date - tax - earlier_cost, Decimal(elapsed)) if elapsed else Decimal(0)
        # the tax so far was levied on the covered charges: the charges still to come (the estimated hours and the
        # rest of the month) bear it at the same rate
        taxed = actual - tax - earlier_cost
        tax_to_come = Decimal(0)
        if tax and taxed > 0:
            tax_to_come = _div(tax * (estimated + rate * remaining), taxed, MONEY)
            if tax_to_come:
                methods[key].add(TAX_METHOD)
        forecast = _round(to_date + rate * remaining + tax_to_come + month_end_lines.get(key, 0), MONEY)
        low, high = interval(to_date, estimated, per_day, remaining, forecast)
        rows.append({
            "billing_period": period, "accountant_id": accountant, "resource_type": resource_type,
            "currency": currency, "actual_cost": actual, "estimated_cost": estimated, "cost_to_date": to_date,
            "forecast_cost": forecast, "forecast_low": low, "forecast_high": high, "covered_through": covered,
            "as_of": as_of, "method": "+".join(sorted(methods[key])),
        })
    return Nowcast(period, covered, as_of, rows, gaps, [*unit_costs, *direct_costs, *run_rates],
                   {k: {d: tuple(v) for d, v in days.items()} for k, days in daily.items()})


MONTH_TO_DATE_SCHEMA = pa.schema([
    ("billing_period", pa.date32()), ("accountant_id", pa.string()), ("resource_type", pa.string()),
    ("currency", pa.string()), ("actual_cost", pa.decimal128(38, 10)), ("estimated_cost", pa.decimal128(38, 10)),
    ("cost_to_date", pa.decimal128(38, 10)), ("forecast_cost", pa.decimal128(38, 10)),
    ("forecast_low", pa.decimal128(38, 10)), ("forecast_high", pa.decimal128(38, 10)),
    ("covered_through", pa.timestamp("us")), ("as_of", pa.timestamp("us")), ("method", pa.string()),
])

CALIBRATION_SCHEMA = pa.schema([
    ("billing_period", pa.date32()), ("as_of", pa.timestamp("us")), ("kind", pa.string()), ("basis", pa.string()),
    ("source_period", pa.date32()), ("service", pa.string()), ("driver", pa.string()), ("scope", pa.string()),
    ("accountant_id", pa.string()), ("usage_type", pa.string()), ("currency", pa.string()), ("grain", pa.string()),
    ("window_start", pa.timestamp("us")), ("window_end", pa.timestamp("us")), ("cost", pa.decimal128(38, 10)),
    ("quantity", pa.decimal128(38, 10)), ("unit_cost", pa.decimal128(38, 18)),
])


def month_to_date_table(nowcast: Nowcast) -> pa.Table:
    return pa.Table.from_pylist(nowcast.rows, schema=MONTH_TO_DATE_SCHEMA)


def calibration_table(nowcast: Nowcast) -> pa.Table:
    rows = [{"billing_period": nowcast.billing_period, "as_of": nowcast.as_of, **{
        k: getattr(c, k) for k in ("kind", "basis", "source_period", "service", "driver", "scope", "accountant_id",
                                   "usage_type", "currency", "grain", "window_start", "window_end", "cost",
                                   "quantity", "unit_cost")}} for c in nowcast.calibrations]
    return pa.Table.from_pylist(rows, schema=CALIBRATION_SCHEMA)


# -- the refresh between CUR deliveries: only the evidence of the hours the CUR has not covered -----------------

def evidence_needed_from(con, period: dt.date) -> dt.datetime | None:
    """The first hour whose usage evidence month_to_date still needs from the logs: the CUR's coverage
    (`covered_through`, or for daily lines such as S3 storage the end of the last covered day, if earlier). The
    hours before it are the CUR's, priced and attributed by the last CUR run from the evidence read then. None when
    the month has no CUR yet: all of it."""
    last_hour, last_day = con.execute(
        """SELECT max(CASE WHEN span_hours = 1 THEN usage_hour END),
                  max(CASE WHEN span_hours > 1 AND span_hours <= 24 THEN date_trunc('day', usage_hour) END)
           FROM hourly_cost_facts WHERE billing_period = ? AND in_scope""", [period]).fetchall()[0]
    if last_hour is None:
        return None
    return min(last_hour + HOUR, last_day + DAY) if last_day is not None else last_hour + HOUR
