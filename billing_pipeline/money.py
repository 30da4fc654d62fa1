"""Cents for people: exact DECIMAL amounts rounded so that the parts add up to the rounded whole."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Hashable, Mapping

CENT = Decimal("0.01")


def rounded_ratio(numerator: Decimal, denominator: Decimal, places: Decimal) -> Decimal:
    """numerator / denominator to `places`, half away from zero (Decimal's ROUND_HALF_UP), from a quotient of 80
    significant digits: far beyond what DECIMAL(38, s) operands need for the rounding to be the exact one."""
    with localcontext() as ctx:
        ctx.prec = 80
        return (numerator / denominator).quantize(places, rounding=ROUND_HALF_UP)


def largest_remainder_cents(amounts: Mapping[Hashable, Decimal]) -> dict[Hashable, Decimal]:
    """Round each amount to cents so that the cents add up to the total rounded to cents (half up).

    Each part is first floored to cents; the cents still missing go one each to the parts with the largest
    remainders (ties by key). Negative totals (credits) are handled by symmetry.
    """
    if not amounts:
        return {}
    total = sum(amounts.values(), Decimal(0))
    sign = -1 if total < 0 else 1
    signed = {key: value * sign for key, value in amounts.items()}
    target_cents = int((total * sign).quantize(CENT, rounding=ROUND_HALF_UP) / CENT)
    floored = {key: value.quantize(CENT, rounding=ROUND_FLOOR) for key, value in signed.items()}
    missing = target_cents - int(sum(floored.values(), Decimal(0)) / CENT)
    by_remainder = sorted(signed, key=lambda key: (-(signed[key] - floored[key]), str(key)))
    for key in by_remainder[:missing]:
        floored[key] += CENT
    return {key: value * sign for key, value in floored.items()}
