"""invoices in currencies whose Stripe amounts are not cents: zero-decimal (JPY: amount 1 is 1 yen) and
three-decimal (KWD: amount 1000 is 1 dinar, and Stripe takes only multiples of 10). Against localstripe over HTTP,
through the real Definitions, like test_invoices.py."""

from __future__ import annotations

import json
from decimal import Decimal as D

import duckdb
import pytest

from billing_pipeline_tests.stripe_support import PRICE_LIST, expected_cents, invoice_rows, run_invoices, sums


@pytest.mark.parametrize("currency, step, per_unit", [("jpy", D(1), 1), ("krw", D(1), 1),
                                                      ("kwd", D("0.01"), 1000), ("usd", D("0.01"), 100)])
def test_a_month_in_another_currency_is_charged_in_that_currency_s_smallest_unit(env, tmp_path, monkeypatch,
                                                                                currency, step, per_unit):
    """The month's cost in JPY: Stripe's amount is in yen, so a Lambda charge of 5.71 JPY is 6, not 571 (a hundred
    times the charge: the month's 46.57 JPY were charged 4,657 JPY); in KWD 5.71 is 5710 fils, not 571 (a tenth,
    and refused by Stripe: not a multiple of 10). The lines are rounded to whole yen by largest remainder, so they
    add up to the tenant-month's total in whole yen."""
    sample, warehouse, stripe_api = env
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE tenant_costs SET currency = ?", [currency.upper()])
    prices = {**PRICE_LIST, "currency": currency,
              "platform_plan": {**PRICE_LIST["platform_plan"], "plan_id": f"test_platform_monthly_{currency}"}}
    price_list = tmp_path / "price_list.json"
    price_list.write_text(json.dumps(prices))
    monkeypatch.setenv("BILLING_PRICE_LIST", str(price_list))

    result = run_invoices()
    expected = {k: v for k, v in expected_cents(sample.expected_actuals, PRICE_LIST, step, per_unit).items() if v}
    items = stripe_api.items()
    assert sums(items) == expected and {i["currency"] for i in items} == {currency}
    assert all(i["amount"] % (per_unit // 100 or 1) == 0 for i in items)  # KWD: multiples of 10 fils
    assert {(a, r): c for a, r, _, _, c, *_ in invoice_rows(warehouse)} == expected
    in_money = D(sum(expected.values())) / per_unit
    by_status = result.asset_materializations_for_node("invoices")[0].metadata["by_status"].value
    assert f" {in_money.quantize(D('0.01')):,} {currency.upper()} |" in by_status
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_duplicate_invoice_items": True, "stripe_items_match_charges": True}
