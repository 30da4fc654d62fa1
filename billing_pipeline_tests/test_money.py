from decimal import Decimal as D

from billing_pipeline.money import largest_remainder_cents


def test_cents_add_up_to_the_rounded_total():
    parts = {"a": D("0.3333333333"), "b": D("0.3333333333"), "c": D("0.3333333334")}
    assert largest_remainder_cents(parts) == {"a": D("0.33"), "b": D("0.33"), "c": D("0.34")}


def test_largest_remainders_get_the_missing_cents_ties_by_key():
    parts = {"b": D("1.005"), "a": D("1.005"), "c": D("0.990")}
    cents = largest_remainder_cents(parts)
    assert cents == {"a": D("1.01"), "b": D("1.00"), "c": D("0.99")}
    assert sum(cents.values()) == D("3.00")


def test_negative_totals_round_symmetrically():
    cents = largest_remainder_cents({"a": D("-0.005"), "b": D("-0.005")})
    assert cents == {"a": D("-0.01"), "b": D("0.00")}


def test_empty():
    assert largest_remainder_cents({}) == {}
