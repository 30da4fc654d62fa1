"""nowcast_accuracy's replayed delivery (replayed_cost_facts.sql): the facts a delivery stopping at the cut held,
and the month's tax so far as AWS delivers it, exactly."""

import datetime as dt
from decimal import Decimal as D

import duckdb
import pyarrow as pa

from billing_pipeline.assets.nowcast_accuracy import replayed_cost_facts_sql
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.resources.warehouse import replace_month_with_rows
from billing_pipeline.sql import arrow_schema, warehouse_ddl

JAN, DEC = dt.date(2026, 1, 1), dt.date(2025, 12, 1)
MONTH_HOURS = 31 * 24
CUT = dt.datetime(2026, 1, 2)  # the first 24 hours delivered


def fact(period, hour, span, account, line_item_type, service, unblended, amortized=None, net=None):
    amortized = unblended if amortized is None else amortized
    return (period, hour, span, account, line_item_type, service, "", "", "", None, None, None, None, "USD",
            False, D(1), D(unblended), D(amortized), None if net is None else D(net), 1, "d1")


def replayed(facts, engine=None):
    """The rows of hourly_cost_facts shadowed by the replay cut at CUT, on `engine` (default: a new DuckDB)."""
    if engine is None:
        con = duckdb.connect()
        con.execute(warehouse_ddl())
        engine = DuckDBEngine(con)
    schema = arrow_schema("hourly_cost_facts")
    for period in sorted({f[0] for f in facts}):
        rows = [dict(zip(schema.names, f)) for f in facts if f[0] == period]
        replace_month_with_rows(engine, "hourly_cost_facts", period, pa.Table.from_pylist(rows, schema=schema))
    engine.shadow("hourly_cost_facts", replayed_cost_facts_sql(JAN, CUT))
    try:
        return sorted(engine.execute(
            """SELECT billing_period, usage_hour, span_hours, usage_account_id, line_item_type, service,
                      unblended_cost, amortized_cost, net_amortized_cost FROM hourly_cost_facts""").fetchall(),
            key=repr)
    finally:
        engine.unshadow("hourly_cost_facts")


START = dt.datetime(2026, 1, 1)
CUT_FACTS = [
    # account A, Lambda: 3 of 12 delivered (hours 0 and 1 by the cut, hour 30 after it)
    fact(JAN, START, 1, "A", "Usage", "AWSLambda", "1"),
    fact(JAN, START + dt.timedelta(hours=1), 1, "A", "Usage", "AWSLambda", "2"),
    fact(JAN, START + dt.timedelta(hours=30), 1, "A", "Usage", "AWSLambda", "9"),
    # account B's Lambda charges do not count for account A's tax
    fact(JAN, START + dt.timedelta(hours=40), 1, "B", "Usage", "AWSLambda", "100"),
    # month-long lines: A's Lambda tax (levied 3/12: 0.25 x 1.0000000002, amortized 0.25 x 0.80, net none), a tax
    # refund of B's (B has nothing delivered: 0), a tax on a product code with no charges (left out), a credit
    # (applied when the month closes: left out)
    fact(JAN, START, MONTH_HOURS, "A", "Tax", "AWSLambda", "1.0000000002", "0.8"),
    fact(JAN, START, MONTH_HOURS, "B", "Tax", "AWSLambda", "-0.5", net="-0.5"),
    fact(JAN, START, MONTH_HOURS, "A", "Tax", "AmazonS3", "0.7"),
    fact(JAN, START, MONTH_HOURS, "A", "Credit", "AWSLambda", "-5"),
    # a credit among the delivered hours is no charge: A's base stays 3 of 12
    fact(JAN, START, 1, "A", "Credit", "AWSLambda", "-1"),
    # another month: as it is
    fact(DEC, dt.datetime(2025, 12, 1), MONTH_HOURS, "A", "Tax", "AWSLambda", "3"),
]
EXPECTED = sorted([
    (DEC, dt.datetime(2025, 12, 1), MONTH_HOURS, "A", "Tax", "AWSLambda", D(3), D(3), None),
    (JAN, START, 1, "A", "Usage", "AWSLambda", D(1), D(1), None),
    (JAN, START + dt.timedelta(hours=1), 1, "A", "Usage", "AWSLambda", D(2), D(2), None),
    (JAN, START, 1, "A", "Credit", "AWSLambda", D(-1), D(-1), None),
    # 1.0000000002 x 3 / 12 = 0.25000000005: half away from zero
    (JAN, START, MONTH_HOURS, "A", "Tax", "AWSLambda", D("0.2500000001"), D("0.2"), None),
    (JAN, START, MONTH_HOURS, "B", "Tax", "AWSLambda", D(0), D(0), D(0)),
], key=repr)


def test_a_cut_delivery_holds_the_facts_ended_by_then_and_the_tax_levied_on_its_charges_so_far():
    assert replayed(CUT_FACTS) == EXPECTED


def test_a_tax_whose_charges_are_all_delivered_is_whole_and_one_on_negative_charges_is_none():
    facts = [
        fact(JAN, START, 1, "A", "Usage", "AWSLambda", "4"),
        fact(JAN, START, MONTH_HOURS, "A", "Tax", "AWSLambda", "0.4"),
        # C's delivered charges are negative (a refund of usage): nothing levied yet, not a negative tax
        fact(JAN, START, 1, "C", "Usage", "AmazonS3", "-2"),
        fact(JAN, START + dt.timedelta(hours=50), 1, "C", "Usage", "AmazonS3", "6"),
        fact(JAN, START, MONTH_HOURS, "C", "Tax", "AmazonS3", "0.4"),
    ]
    taxes = [r for r in replayed(facts) if r[4] == "Tax"]
    assert [(r[3], r[6]) for r in taxes] == [("A", D("0.4")), ("C", D(0))]
