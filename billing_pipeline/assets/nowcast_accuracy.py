"""nowcast_accuracy: the month_to_date method measured. A final month is replayed as of the end of day 7, 14, 21
and 28 with only what existed then: the CUR cut where a delivery of that day would have stopped (REPLAY_CUR_LAG
behind), the usage evidence up to that day, the attribution re-run on the cut month; its cost to date and forecast
are compared with the final attributed cost, per tenant. The seed's constant-price estimates (the application's
usage table) are measured beside it.
"""


import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import duckdb
import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from billing_pipeline.assets.common import cur_is_final, month_of, stage_sql
from billing_pipeline.assets.tenant_costs import stage_account_level_lines, stage_cost_allocations
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.nowcast import FACT_COLUMNS, MONEY, Nowcast, _div, _round, compute
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.pricing import Pricing, parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import (
    WAREHOUSE_POOL,
    BillingWarehouse,
    replace_month_with_rows,
)

REPLAY_DAYS = (7, 14, 21, 28)
REPLAY_CUR_LAG = dt.timedelta(hours=12)  # AWS delivers the CUR 6 to 24 hours behind usage
PCT = Decimal("0.0001")
# The targets of issue 17 on the generated sample: shown in the metadata as met or not.
TARGET_COST_TO_DATE_PCT = Decimal(1)
TARGET_FORECAST_PCT = Decimal(5)
TARGET_FORECAST_FROM_DAY = 14
TARGET_HIT_RATE = Decimal("0.8")


ATTRIBUTED_COLUMNS = ("billing_period, usage_date, accountant_id, service, resource_type, usage_type, line_item_type, "
                      "allocation, driver, driver_quantity, currency, cost_metric, cost")


def replayed_cost_facts_sql(period: dt.date, covered_through: dt.datetime) -> str:
    """hourly_cost_facts (read as `$source`) as a delivery of `period` stopping at `covered_through` held them."""
    return (stage_sql("replayed_cost_facts").replace("$billing_period", f"DATE '{period}'")
            .replace("$covered_through", f"TIMESTAMP '{covered_through}'"))


@contextmanager
def replayed_inputs(con, period: dt.date, as_of: dt.datetime, covered_through: dt.datetime, metric: str,
                    pricing: Pricing) -> Iterator[None]:
    """The nowcast's inputs as they were at `as_of`: the month's facts as a delivery cut at `covered_through` held
    them (replayed_cost_facts.sql: the facts that end by then and the month's tax so far), its evidence
    before `as_of`, and tenant_costs re-attributed from those two by the pipeline's own SQL (cost_allocations.sql
    and tenant_costs.sql, reading stand-ins for the two tables). Other months as they are. Both engines."""
    engine = DuckDBEngine(con) if isinstance(con, duckdb.DuckDBPyConnection) else con
    # the cut as literals (dates and times we formatted, nothing from outside): DuckDB views take no parameters
    p, until = f"DATE '{period}'", f"TIMESTAMP '{as_of}'"
    stood_in = []
    try:
        engine.shadow("hourly_cost_facts", replayed_cost_facts_sql(period, covered_through))
        stood_in.append("hourly_cost_facts")
        engine.shadow("usage_shares", f"SELECT * FROM $source WHERE billing_period <> {p} OR usage_hour < {until}")
        stood_in.append("usage_shares")
        # the relations tenant_costs.py stages before tenant_costs.sql, staged the same way
        stage_cost_allocations(engine, {"billing_period": period, "cost_metric": metric}, pricing)
        stage_account_level_lines(engine, period, metric, pricing)
        engine.stage("account_level_allocations", stage_sql("account_level_allocations"))
        engine.stage("replayed_tenant_costs", stage_sql("tenant_costs"), {"cost_metric": metric})
        engine.execute(f"CREATE OR REPLACE TEMP VIEW nowcast_facts AS SELECT "
                       f"{FACT_COLUMNS.replace('$metric', repr(metric))} FROM hourly_cost_facts WHERE in_scope")
        engine.execute("CREATE OR REPLACE TEMP VIEW nowcast_evidence AS SELECT * FROM usage_shares")
        engine.execute(f"""CREATE OR REPLACE TEMP VIEW nowcast_attributed AS
                           SELECT {ATTRIBUTED_COLUMNS} FROM tenant_costs WHERE billing_period <> {p}
                           UNION ALL SELECT {ATTRIBUTED_COLUMNS} FROM replayed_tenant_costs""")  # no delivery id
        yield
    finally:
        for view in ("nowcast_facts", "nowcast_evidence", "nowcast_attributed"):
            engine.execute(f"DROP VIEW IF EXISTS {view}")
        for table in ("cost_allocations", "account_level_lines", "account_level_allocations", "replayed_tenant_costs"):
            engine.drop(table)
        for table in stood_in:
            engine.unshadow(table)


def replay(con, period: dt.date, next_period: dt.date, day: int, metric: str, pricing: Pricing) -> Nowcast:
    """The month as the nowcast saw it at the end of `day`."""
    as_of = dt.datetime.combine(period, dt.time()) + dt.timedelta(days=day)
    with replayed_inputs(con, period, as_of, as_of - REPLAY_CUR_LAG, metric, pricing):
        return compute(con, period, next_period, pricing, now=as_of)


def _pct(value: Decimal, final: Decimal) -> Decimal | None:
    return _div((value - final) * 100, final, PCT) if final != 0 else None


def accuracy_rows(con, period: dt.date, next_period: dt.date, metric: str, pricing: Pricing,
                  days=REPLAY_DAYS) -> list[dict]:
    """One row per replay day x tenant (incl. 'unattributed') x currency."""
    final = defaultdict(Decimal)
    final_by_day = defaultdict(Decimal)
    # account-level lines (allocation 'proportional': tax, credits) are the month's, dated on its first day: part
    # of the final cost the forecast predicts, not of the days a cost to date covers
    for accountant, currency, usage_date, month_level, cost in con.execute(
            """SELECT accountant_id, currency, usage_date, allocation = 'proportional', sum(cost) FROM tenant_costs
               WHERE billing_period = ? GROUP BY ALL""", [period]).fetchall():
        final[(accountant, currency)] += cost
        if not month_level:
            final_by_day[(accountant, currency, usage_date)] += cost
    seed_by_day = defaultdict(Decimal)
    for accountant, usage_date, cost in con.execute(
            """SELECT accountant_id, usage_date, sum(estimated_cost) FROM estimated_usage WHERE billing_period = ?
               GROUP BY ALL""", [period]).fetchall():
        seed_by_day[(accountant, usage_date)] += cost
    month_hours = Decimal((next_period - period).days * 24)
    rows = []
    for day in days:
        if period + dt.timedelta(days=day) >= next_period:
            continue
        nowcast = replay(con, period, next_period, day, metric, pricing)
        as_of_date = nowcast.as_of.date()
        ours = defaultdict(lambda: [Decimal(0)] * 4)
        for r in nowcast.rows:
            totals = ours[(r["accountant_id"], r["currency"])]
            for i, column in enumerate(("cost_to_date", "forecast_cost", "forecast_low", "forecast_high")):
                totals[i] += r[column]
        # the cost to date is measured without the month's tax so far, as final_to_date is without the month's
        # account-level lines: the replay takes that tax from the final one (replayed_cost_facts.sql), so comparing
        # it would measure the replay, not the nowcast
        for (accountant, _resource_type, currency), days_of_key in nowcast.daily.items():
            ours[(accountant, currency)][0] -= sum((slots[3] for slots in days_of_key.values()), Decimal(0))
        for key in sorted(set(final) | set(ours)):
            accountant, currency = key
            to_date, forecast, low, high = ours[key]
            final_cost = final.get(key, Decimal(0))
            final_to_date = sum((c for (a, cur, d), c in final_by_day.items()
                                 if (a, cur) == key and d < as_of_date), Decimal(0))
            seed_to_date = sum((c for (a, d), c in seed_by_day.items() if a == accountant and d < as_of_date),
                               Decimal(0)) if currency == pricing.currency else Decimal(0)
            seed_forecast = _round(seed_to_date * month_hours / Decimal(day * 24), MONEY)
            rows.append({
                "billing_period": period, "replay_day": day, "as_of": nowcast.as_of,
                "covered_through": nowcast.covered_through, "accountant_id": accountant, "currency": currency,
                "final_cost": final_cost, "final_to_date": final_to_date, "cost_to_date": to_date,
                "forecast_cost": forecast, "forecast_low": low, "forecast_high": high,
                "cost_to_date_error_pct": _pct(to_date, final_to_date), "forecast_error_pct": _pct(forecast, final_cost),
                "in_interval": low <= final_cost <= high, "seed_cost_to_date": seed_to_date,
                "seed_forecast": seed_forecast, "seed_cost_to_date_error_pct": _pct(seed_to_date, final_to_date),
                "seed_forecast_error_pct": _pct(seed_forecast, final_cost),
            })
    return rows


ACCURACY_SCHEMA = pa.schema([
    ("billing_period", pa.date32()), ("replay_day", pa.int32()), ("as_of", pa.timestamp("us")),
    ("covered_through", pa.timestamp("us")), ("accountant_id", pa.string()), ("currency", pa.string()),
    *[(c, pa.decimal128(38, 10)) for c in ("final_cost", "final_to_date", "cost_to_date", "forecast_cost",
                                          "forecast_low", "forecast_high")],
    ("cost_to_date_error_pct", pa.decimal128(38, 4)), ("forecast_error_pct", pa.decimal128(38, 4)),
    ("in_interval", pa.bool_()), ("seed_cost_to_date", pa.decimal128(38, 10)), ("seed_forecast", pa.decimal128(38, 10)),
    ("seed_cost_to_date_error_pct", pa.decimal128(38, 4)), ("seed_forecast_error_pct", pa.decimal128(38, 4)),
])


def summary(rows: list[dict]) -> dict:
    """Per tenant: mean and worst absolute % error of cost to date and forecast (nowcast and seed), interval hit
    rate; and whether the issue's targets are met."""
    by_tenant = defaultdict(list)
    for r in rows:
        by_tenant[r["accountant_id"]].append(r)

    def stats(values):
        values = [abs(v) for v in values if v is not None]
        return (_div(sum(values, Decimal(0)), Decimal(len(values)), PCT), max(values)) if values else (None, None)

    tenants = {}
    for tenant, rs in sorted(by_tenant.items()):
        tenants[tenant] = {
            "cost_to_date": stats(r["cost_to_date_error_pct"] for r in rs),
            "forecast": stats(r["forecast_error_pct"] for r in rs),
            "forecast_from_day_14": stats(r["forecast_error_pct"] for r in rs
                                          if r["replay_day"] >= TARGET_FORECAST_FROM_DAY),
            "seed_cost_to_date": stats(r["seed_cost_to_date_error_pct"] for r in rs),
            "seed_forecast": stats(r["seed_forecast_error_pct"] for r in rs),
            "hit_rate": _div(Decimal(sum(r["in_interval"] for r in rs)), Decimal(len(rs)), PCT),
        }
    # the application (tenants + unattributed), per month x replay day x currency: the tenants' errors partly cancel
    application = defaultdict(lambda: [Decimal(0)] * 4)
    for r in rows:
        totals = application[(r["billing_period"], r["replay_day"], r["currency"])]
        for i, column in enumerate(("cost_to_date", "final_to_date", "forecast_cost", "final_cost")):
            totals[i] += r[column]
    by_replay = {key: {"cost_to_date_error_pct": _pct(to_date, final_to_date), "forecast_error_pct": _pct(forecast, final)}
                 for key, (to_date, final_to_date, forecast, final) in sorted(application.items())}
    hits = sum(r["in_interval"] for r in rows)
    targets = {
        "cost_to_date_within_1pct": all(abs(r["cost_to_date_error_pct"] or 0) <= TARGET_COST_TO_DATE_PCT for r in rows),
        "forecast_within_5pct_from_day_14": all(abs(r["forecast_error_pct"] or 0) <= TARGET_FORECAST_PCT
                                                for r in rows if r["replay_day"] >= TARGET_FORECAST_FROM_DAY),
        "interval_hit_rate": _div(Decimal(hits), Decimal(len(rows)), PCT) if rows else None,
        "application_forecast_within_5pct_from_day_14": all(
            abs(e["forecast_error_pct"] or 0) <= TARGET_FORECAST_PCT for (_, day, _), e in by_replay.items()
            if day >= TARGET_FORECAST_FROM_DAY),
    }
    return {"tenants": tenants, "application": by_replay, "targets": targets}


def error_chart(rows: list[dict], width: int = 40) -> str:
    """Mean absolute % error per replay day, nowcast (█) against the seed's constant prices (░), as a text chart in
    a markdown code block (renders in the Dagster UI as is, like the reconciliation chart)."""
    days = sorted({r["replay_day"] for r in rows})
    series = []
    for day in days:
        rs = [r for r in rows if r["replay_day"] == day]
        for label, column in (("cost to date", "cost_to_date_error_pct"), ("forecast", "forecast_error_pct")):
            ours = [abs(r[column]) for r in rs if r[column] is not None]
            seed = [abs(r["seed_" + column]) for r in rs if r["seed_" + column] is not None]
            series.append((day, label, sum(ours) / len(ours) if ours else 0, sum(seed) / len(seed) if seed else 0))
    scale = max([max(a, b) for *_, a, b in series] + [Decimal(1)])
    lines = ["mean |error| %, per replay day   █ nowcast  ░ seed (constant prices)"]
    for day, label, ours, seed in series:
        lines.append(f"day {day:>2} {label:<12} █ {'█' * round(ours / scale * width):<{width}} {float(ours):7.2f}")
        lines.append(f"{'':19} ░ {'░' * round(seed / scale * width):<{width}} {float(seed):7.2f}")
    return "```\n" + "\n".join(lines) + "\n```"


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "usage_shares", "hourly_cost_facts", "estimated_usage"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb"},
)
def nowcast_accuracy(
    context: AssetExecutionContext, billing_config: BillingConfig, warehouse: BillingWarehouse
) -> MaterializeResult:
    """For a final month: the month replayed as of day 7, 14, 21 and 28 with only what existed then, and per
    tenant the error of cost_to_date and forecast_cost against the final attributed cost (mean and worst absolute
    %, how often the final fell inside the interval), the seed's constant-price estimates beside it. A month that
    is not final has nothing to measure yet (no rows)."""
    period, next_period = month_of(context)
    pricing = parse_pricing(billing_config.pricing_text(), "BILLING_PRICING")
    with warehouse.connect() as con:
        final = cur_is_final(con, period)
        rows = accuracy_rows(con, period, next_period, billing_config.metric(), pricing, REPLAY_DAYS) if final else []
        written = replace_month_with_rows(con, "nowcast_accuracy", period, pa.Table.from_pylist(rows, schema=ACCURACY_SCHEMA))
    if not final:
        return MaterializeResult(metadata={"dagster/row_count": MetadataValue.int(0),
                                           "skipped": f"{period:%Y-%m} is not final: nothing to measure yet"})
    result = summary(rows)
    table = [("| tenant | cost to date mean / worst % | forecast mean / worst % | forecast from day 14 mean / worst % "
             "| interval hit rate | seed cost to date mean / worst % | seed forecast mean / worst % |"),
             "|---|---:|---:|---:|---:|---:|---:|"]
    for tenant, s in result["tenants"].items():
        table.append(f"| {tenant} | {s['cost_to_date'][0]} / {s['cost_to_date'][1]} | {s['forecast'][0]} / "
                     f"{s['forecast'][1]} | {s['forecast_from_day_14'][0]} / {s['forecast_from_day_14'][1]} | {s['hit_rate']} | "
                     f"{s['seed_cost_to_date'][0]} / {s['seed_cost_to_date'][1]} | "
                     f"{s['seed_forecast'][0]} / {s['seed_forecast'][1]} |")
    targets = result["targets"]
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(written),
        "per_tenant": MetadataValue.md("\n".join(table)),
        "error_chart": MetadataValue.md(error_chart(rows)),
        "cost_to_date_within_1pct": MetadataValue.bool(targets["cost_to_date_within_1pct"]),
        "forecast_within_5pct_from_day_14": MetadataValue.bool(targets["forecast_within_5pct_from_day_14"]),
        "interval_hit_rate": MetadataValue.float(float(targets["interval_hit_rate"] or 0)),
        "application_forecast_within_5pct_from_day_14": MetadataValue.bool(
            targets["application_forecast_within_5pct_from_day_14"]),
        "application": MetadataValue.md("\n".join(
            ["| replay day | currency | cost to date error % | forecast error % |", "|---:|---|---:|---:|",
             *[f"| {day} | {currency} | {e['cost_to_date_error_pct']} | {e['forecast_error_pct']} |"
               for (_, day, currency), e in result["application"].items()]])),
    })
