"""Implausible money holds invoicing: a negative Usage line and a line beyond BILLING_MAX_LINE_COST fail the blocking
check `money_is_plausible`, `invoices` refuses the month on its own too, and naming the month in the allowance
(environment or run config) releases it. Against localstripe, on the invoicing tests'
final month (conftest.py)."""

from __future__ import annotations

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.stripe_billing import StripeBilling
from billing_pipeline_tests.stripe_support import PRICE_LIST, expected_cents, invoice_rows, sums


def plant(warehouse) -> tuple[str, str]:
    """One Usage line turned negative (-3.5) and one copy of a line costing 250,000.25; returns their files."""
    with duckdb.connect(str(warehouse)) as con:
        negative_file, line_id = con.execute(
            """SELECT source_file, line_item_id FROM cur_line_items WHERE line_item_type = 'Usage'
               ORDER BY line_item_id LIMIT 1""").fetchone()
        con.execute("""UPDATE cur_line_items SET unblended_cost = -3.5, amortized_cost = -3.5,
                       net_amortized_cost = NULL WHERE line_item_id = ?""", [line_id])
        con.execute("""INSERT INTO cur_line_items SELECT * REPLACE ('huge-1' AS line_item_id,
                           CAST(250000.25 AS DECIMAL(38, 10)) AS unblended_cost,
                           CAST(250000.25 AS DECIMAL(38, 10)) AS amortized_cost,
                           CAST(NULL AS DECIMAL(38, 10)) AS net_amortized_cost)
                       FROM cur_line_items WHERE line_item_type = 'Usage' AND line_item_id <> ?
                       ORDER BY line_item_id LIMIT 1""", [line_id])
        huge_file = con.execute("SELECT source_file FROM cur_line_items WHERE line_item_id = 'huge-1'").fetchone()[0]
    return (negative_file, line_id), huge_file


def run(selection, money_bounds=None, raise_on_error=False):
    resources = {**defs.resources, "stripe_billing": StripeBilling(max_network_retries=0),
                 **({"money_bounds": money_bounds} if money_bounds else {})}
    return materialize(list(defs.assets), selection=[AssetKey(s) for s in selection], resources=resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def check_of(result):
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "money_is_plausible"]
    return check


def test_implausible_lines_hold_invoicing_and_are_listed(env):
    _, warehouse, stripe_api = env
    (negative_file, line_id), huge_file = plant(warehouse)

    result = run(["implausible_money", "invoices"])
    check = check_of(result)
    assert not check.passed and check.severity.value == "ERROR"
    assert check.metadata["negative_usage_lines"].value == 1 and check.metadata["beyond_bound_lines"].value == 1
    assert check.metadata["max_line_cost"].value == "100000"
    assert check.metadata["allowed"].value is False
    # the blocking check stopped the run before invoices: nothing in Stripe, nothing written
    assert not result.success
    assert [e.step_key for e in result.all_events if e.is_step_success] == []
    assert stripe_api.items() == [] and stripe_api.customers() == {} and invoice_rows(warehouse) == []

    with duckdb.connect(str(warehouse), read_only=True) as con:
        listed = con.execute("""SELECT source_file, line_item_id, line_item_type, unblended_cost, reason
                                FROM implausible_money ORDER BY reason""").fetchall()
    assert [(f, i, t, str(c), r) for f, i, t, c, r in listed] == [
        (huge_file, "huge-1", "Usage", "250000.2500000000", "beyond the bound"),
        (negative_file, line_id, "Usage", "-3.5000000000", "negative Usage line"),
    ]

    # the reconciliation report's metadata shows them too
    report = run(["reconciliation_report"]).asset_materializations_for_node("reconciliation_report")[0].metadata
    assert report["implausible_lines"].value == 2 and "huge-1" in report["implausible"].value

    # invoices alone is held as well, naming the month, a file and the way out
    alone = run(["invoices"])
    message = str(next(e for e in alone.all_events if e.is_step_failure).event_specific_data.error)
    assert "2026-01: invoicing is held: 2 implausible CUR line(s)" in message
    assert "BILLING_ALLOW_IMPLAUSIBLE=2026-01" in message and "Nothing charged, nothing written." in message
    assert huge_file in message or negative_file in message
    assert stripe_api.items() == [] and invoice_rows(warehouse) == []


def test_allowance_naming_the_month_releases_it(env, monkeypatch):
    sample, warehouse, stripe_api = env
    plant(warehouse)
    # another month's allowance does not cover this one
    held = run(["implausible_money", "invoices"], MoneyBounds(allow_implausible_months="2026-02"))
    assert not check_of(held).passed and stripe_api.items() == []

    # run config (a resource field), then the environment variable
    allowed = run(["implausible_money", "invoices"], MoneyBounds(allow_implausible_months="2026-01"))
    check = check_of(allowed)
    assert allowed.success and check.passed
    assert check.metadata["allowed_by"].value == "run config allow_implausible_months"
    assert check.metadata["negative_usage_lines"].value == 1  # still listed
    assert sums(stripe_api.items()) == expected_cents(sample.expected_actuals, PRICE_LIST)

    monkeypatch.setenv("BILLING_ALLOW_IMPLAUSIBLE", "2025-12, 2026-01")
    again = run(["implausible_money", "invoices"])
    assert again.success and check_of(again).metadata["allowed_by"].value == "BILLING_ALLOW_IMPLAUSIBLE"


def test_bound_is_configurable_and_a_clean_month_passes(env, monkeypatch):
    _, warehouse, _ = env
    clean = run(["implausible_money"])
    assert clean.success and check_of(clean).passed and check_of(clean).metadata["implausible_lines"].value == 0

    plant(warehouse)
    monkeypatch.setenv("BILLING_MAX_LINE_COST", "250000.25")  # the huge line is at the bound: plausible
    check = check_of(run(["implausible_money"]))
    assert (check.passed, check.metadata["negative_usage_lines"].value, check.metadata["beyond_bound_lines"].value) \
        == (False, 1, 0)


@pytest.mark.parametrize("variable, value, message", [
    ("BILLING_MAX_LINE_COST", "lots", "BILLING_MAX_LINE_COST='lots' (set): not a number; expected a positive amount"),
    ("BILLING_MAX_LINE_COST", "-5", "BILLING_MAX_LINE_COST='-5' (set): not a positive amount; expected a positive "
                                    "amount"),
    ("BILLING_ALLOW_IMPLAUSIBLE", "2026-01,January", "BILLING_ALLOW_IMPLAUSIBLE='2026-01,January' (set): January is "
                                                     "not a month; expected months as YYYY-MM, comma separated"),
])
def test_bad_bound_or_allowance_fails_before_any_step(env, monkeypatch, variable, value, message):
    _, warehouse, stripe_api = env
    monkeypatch.setenv(variable, value)
    result = run(["implausible_money", "invoices"])
    assert not result.success and result.get_step_success_events() == []
    assert message in str(next(e for e in result.all_events if e.is_failure).event_specific_data.error)
    assert stripe_api.items() == [] and invoice_rows(warehouse) == []
