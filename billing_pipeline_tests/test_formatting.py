"""One number format for people (billing_pipeline/formatting.py): exact strings, hand-checked."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing_pipeline.formatting import (
    MISSING, cents, count, csv_value, markdown_table, money, money_in, percent, percent_in, quantity, text, unit_price,
)


def test_money_rounds_half_up_to_cents_with_separators_and_currency():
    assert money(D("1234.565"), "USD") == "1,234.57 USD"
    assert money(D("1234.564999"), "USD") == "1,234.56 USD"
    assert money(D("0.005"), "USD") == "0.01 USD"  # half up, not half even (0.00)
    assert money(D("0.015"), "USD") == "0.02 USD"
    assert money(D("-1.255"), "EUR") == "-1.26 EUR"  # half away from zero, as the statements do
    assert money(D("-0.004"), "USD") == "0.00 USD"  # no "-0.00"
    assert money(D("1234567.8"), None) == "1,234,567.80"
    assert money(0.1, "USD") == "0.10 USD"
    assert money(2.675, "USD") == "2.68 USD"  # the float's repr, not its binary value (2.67499999...)
    assert money(None, "USD") == money(float("nan"), "USD") == MISSING == "—"
    assert cents(D("0.125")) == D("0.13") and cents(None) is None


def test_percent_quantity_unit_price_count_text():
    assert percent(D("33.33333")) == "33.3 %"
    assert percent(D("9.0909"), signed=True) == "+9.1 %"
    assert percent(D("-5.05"), signed=True) == "-5.1 %"
    assert percent(D("0"), signed=True) == "0.0 %"
    assert percent(None) == MISSING
    assert quantity(D("190575.6800"), "GB-seconds") == "190,575.68 GB-seconds"
    assert quantity(D("3.0000000000"), "requests") == "3 requests"
    assert quantity(D("0.000049"), "GB-months") == "0 GB-months"
    assert quantity(D("0.00005"), "GB-months") == "0.0001 GB-months"
    assert quantity(D("1E+3")) == "1,000"
    assert unit_price(D("0.0000166667"), "USD") == "0.0000166667 USD"
    assert unit_price(D("0.2000000000"), "USD") == "0.20 USD"
    assert unit_price(D("0.00000000005"), "USD") == "0.00000000005 USD"
    assert unit_price(D("1.5E-19"), None) == "0.00"
    assert count(12345, "rows") == "12,345 rows"
    assert text(None) == text(float("nan")) == MISSING
    assert (text(True), text(dt.date(2026, 1, 1)), text(D("1.50"))) == ("yes", "2026-01-01", "1.50")


def test_csv_values_are_exact_plain_decimals():
    assert csv_value(D("0.0001396440")) == "0.0001396440"
    assert csv_value(D("1E-7")) == "0.0000001"
    assert csv_value(0.000139644) == "0.000139644"
    assert csv_value(None) == csv_value(float("nan")) == ""
    assert (csv_value(False), csv_value(dt.date(2026, 1, 31))) == ("false", "2026-01-31")
    with pytest.raises(ValueError):
        csv_value(float("inf"))


def test_markdown_table_formats_money_in_each_rows_currency():
    table = markdown_table(
        ["accountant_id", "currency", "cost", "variance_pct", "net_amortized_cost"],
        [("acc|1", "USD", D("1234.5"), D("12.34"), None), ("acc-2", "EUR", D("-0.125"), None, None)],
        {"cost": money_in("cost"), "variance_pct": percent_in("variance_pct")})
    assert table == (
        "| accountant_id | currency | cost | variance_pct | net_amortized_cost |\n"
        "| --- | --- | ---: | ---: | --- |\n"
        "| acc\\|1 | USD | 1,234.50 USD | +12.3 % | — |\n"
        "| acc-2 | EUR | -0.13 EUR | — | — |"
    )
    assert markdown_table(["a"], []) == "_no rows_"


def test_summary_tables_in_the_ui_show_missing_as_a_dash_and_money_in_cents():
    """assets.common.markdown (cur_line_items' by_type, hourly_cost_facts' by_service, ...): a CUR without net
    columns shows net_amortized_cost as —, never nan; quantities trimmed; counts grouped."""
    import duckdb

    from billing_pipeline.assets.common import markdown

    with duckdb.connect() as con:
        value = markdown(con, """SELECT * FROM (VALUES ('Usage', 'USD', 12345, CAST(1234.5650000000 AS DECIMAL(38, 10)),
                                                       CAST(NULL AS DECIMAL(38, 10)), CAST(0.000139644 AS DECIMAL(38, 10))))
                                 AS t(line_item_type, currency, line_items, unblended_cost, net_amortized_cost, quantity)""")
    assert value.value == (
        "| line_item_type | currency | line_items | unblended_cost | net_amortized_cost | quantity |\n"
        "| --- | --- | ---: | ---: | --- | ---: |\n"
        "| Usage | USD | 12,345 | 1,234.57 USD | — | 0.0001 |"
    )


def test_pricing_feedback_table_prints_unit_costs_exactly_and_no_nan():
    from billing_pipeline.assets.pricing_feedback import FEEDBACK_COLUMNS, feedback_table
    from billing_pipeline.sql import arrow_schema
    import pyarrow as pa

    row = dict.fromkeys(arrow_schema("pricing_feedback").names)
    row.update(billing_period=dt.date(2026, 1, 1), service="AWSLambda", resource_type="lambda", driver="gb_seconds",
               currency="USD", accountant_id="total", quantity=D("190575.68"), actual_cost=D("3.1762668000"),
               bill_quantity=D("190575.68"), implied_unit_cost=D("0.000016666700000000"),
               configured_unit_cost=D("0.000013964400000000"), variance_pct=D("19.3528"), flagged=True,
               suggested_unit_cost=D("0.000016666700"), is_final=False)
    table = feedback_table(pa.Table.from_pylist([row], schema=arrow_schema("pricing_feedback")))
    header, _rule, line = table.splitlines()
    assert header == "| " + " | ".join(FEEDBACK_COLUMNS) + " |"
    assert line == ("| AWSLambda | lambda | gb_seconds | USD | total | 190,575.68 | 3.18 USD | 190,575.68 | — "
                    "| 0.0000166667 USD | 0.0000139644 USD | +19.4 % | ⚑ flagged | 0.0000166667 USD | — | — |")
