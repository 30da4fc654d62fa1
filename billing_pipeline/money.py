"""Cents for people: exact DECIMAL amounts rounded so that the parts add up to the rounded whole."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Hashable, Mapping

CENT = Decimal("0.01")
WHOLE = Decimal(1)

# Stripe's amounts are integers in the currency's smallest unit (https://stripe.com/docs/currencies): cents for most
# currencies, the unit itself for the zero-decimal ones, thousandths (in tens: Stripe takes only multiples of 10)
# for the three-decimal ones; ISK stays two-decimal in the API but takes whole kronur only (multiples of 100).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
WHOLE_UNITS_TWO_DECIMAL = frozenset({"isk"})


def stripe_units(currency: str) -> tuple[Decimal, int]:
    """What a charge in `currency` is rounded to, and how many of Stripe's integer amount units make one of the
    currency: (0.01, 100) for USD, (1, 1) for JPY, (0.01, 1000) for KWD (multiples of 10 fils), (1, 100) for ISK."""
    code = currency.strip().lower()
    if code in ZERO_DECIMAL:
        return WHOLE, 1
    if code in THREE_DECIMAL:
        return CENT, 1000
    if code in WHOLE_UNITS_TWO_DECIMAL:
        return WHOLE, 100
    return CENT, 100


def rounded_ratio(numerator: Decimal, denominator: Decimal, places: Decimal) -> Decimal:
    """numerator / denominator to `places`, half away from zero (Decimal's ROUND_HALF_UP), from a quotient of 80
    significant digits: far beyond what DECIMAL(38, s) operands need for the rounding to be the exact one."""
    with localcontext() as ctx:
        ctx.prec = 80
        return (numerator / denominator).quantize(places, rounding=ROUND_HALF_UP)


def largest_remainder_cents(amounts: Mapping[Hashable, Decimal], step: Decimal = CENT) -> dict[Hashable, Decimal]:
    """Round each amount to cents (or another `step`: whole yen) so that the parts add up to the total rounded to
    that step (half up).

    Each part is first floored to the step; the steps still missing go one each to the parts with the largest
    remainders (ties by key). Negative totals (credits) are handled by symmetry.
    """
    if not amounts:
        return {}
    total = sum(amounts.values(), Decimal(0))
    sign = -1 if total < 0 else 1
    signed = {key: value * sign for key, value in amounts.items()}
    target_steps = int((total * sign).quantize(step, rounding=ROUND_HALF_UP) / step)
    floored = {key: value.quantize(step, rounding=ROUND_FLOOR) for key, value in signed.items()}
    missing = target_steps - int(sum(floored.values(), Decimal(0)) / step)
    by_remainder = sorted(signed, key=lambda key: (-(signed[key] - floored[key]), str(key)))
    for key in by_remainder[:missing]:
        floored[key] += step
    return {key: value * sign for key, value in floored.items()}
