"""One way to print numbers for people: the Dagster UI's metadata, the demo's report, the dashboard and the exports.

- money: exact DECIMAL rounded half up to cents (as the statements round a total), thousands separated, the
  currency after it: `1,234.56 USD`, `-0.05 USD`.
- percentages: half up to one decimal, a space before the sign: `33.3 %` (`+33.3 %` for a variance).
- quantities: half up to 4 decimals, trailing zeros dropped, with their unit: `190,575.68 GB-seconds`, `3 requests`.
- unit prices: exact to 18 decimals (what the bill says per unit), at least cents: `0.0000166667 USD`, `0.20 USD`.
- missing (NULL, NaN: e.g. `net_amortized_cost` in a CUR without that column): `—` for people, empty in CSV.
- CSV: exact plain decimals (`format(d, 'f')`, never `1E-7`, never a float's `nan`).

Floats only ever reach here from pandas or a plot; they are read through their shortest repr (`0.1` is 0.1), never
through their binary value.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping, Sequence

MISSING = "—"
CENT = Decimal("0.01")
PERCENT_STEP = Decimal("0.1")
QUANTITY_STEP = Decimal("0.0001")
UNIT_PRICE_STEP = Decimal("1E-18")


def is_missing(value: Any) -> bool:
    """None, a float NaN (pandas' NULL) or a Decimal NaN."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    try:  # pandas.NA / NaT without importing pandas
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def to_decimal(value: Any) -> Decimal | None:
    """The exact Decimal of a value (a float through its shortest repr), None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float):
        if math.isinf(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _grouped(value: Decimal, places: int | None = None) -> str:
    """`value` with thousands separators, exactly `places` decimals (None: as many as it has)."""
    text = f"{value:,f}" if places is None else f"{value:,.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and value.is_zero() else text  # no "-0.00"


def cents(value: Any) -> Decimal | None:
    """The amount rounded half up to cents (as the statements round), None when missing."""
    amount = to_decimal(value)
    return None if amount is None else amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Any, currency: str | None) -> str:
    """`1,234.56 USD` (half up to cents); `—` when missing; no currency suffix when `currency` is None."""
    amount = cents(value)
    if amount is None:
        return MISSING
    return _grouped(amount, 2) + (f" {currency}" if currency else "")


def percent(value: Any, signed: bool = False) -> str:
    """`33.3 %` (half up to one decimal; `signed` puts `+` on a positive value: a variance); `—` when missing."""
    number = to_decimal(value)
    if number is None:
        return MISSING
    text = _grouped(number.quantize(PERCENT_STEP, rounding=ROUND_HALF_UP), 1)
    return ("+" + text if signed and not text.startswith("-") and number > 0 else text) + " %"


def _trimmed(number: Decimal, step: Decimal, least_places: int = 0) -> str:
    rounded = number.quantize(step, rounding=ROUND_HALF_UP)
    places = max(-rounded.normalize().as_tuple().exponent, least_places, 0) if not rounded.is_zero() else least_places
    return _grouped(rounded, min(places, -step.as_tuple().exponent))


def quantity(value: Any, unit: str | None = None) -> str:
    """`190,575.68 GB-seconds` (half up to 4 decimals, trailing zeros dropped); `—` when missing."""
    number = to_decimal(value)
    if number is None:
        return MISSING
    return _trimmed(number, QUANTITY_STEP) + (f" {unit}" if unit else "")


def unit_price(value: Any, currency: str | None) -> str:
    """A price per unit as the bill has it: `0.0000166667 USD` (up to 18 decimals, at least 2); `—` when missing."""
    number = to_decimal(value)
    if number is None:
        return MISSING
    return _trimmed(number, UNIT_PRICE_STEP, least_places=2) + (f" {currency}" if currency else "")


def count(value: Any, noun: str | None = None) -> str:
    """`1,234 rows` for a count."""
    if is_missing(value):
        return MISSING
    return f"{int(value):,}" + (f" {noun}" if noun else "")


def text(value: Any) -> str:
    """Any other cell: `—` when missing, a date as ISO, a bool as yes/no, anything else as str."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def csv_value(value: Any) -> str:
    """A CSV cell of a number, date or bool: exact plain decimal (`0.0001396440`), ISO date, true/false, '' missing."""
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, float)):
        return format(to_decimal(value), "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]],
                   formats: Mapping[str, Callable[[Mapping[str, Any]], str]] | None = None,
                   empty: str = "_no rows_", right: Iterable[str] | None = None) -> str:
    """Rows as a markdown table for the Dagster UI. `formats` maps a column to a function of the whole row (so a
    money cell can read the row's currency), e.g. `{"cost": lambda r: money(r["cost"], r["currency"])}`; every
    other cell goes through `text`. The columns `formats` names are right-aligned, unless `right` names them."""
    formats = dict(formats or {})
    right = set(formats if right is None else right)
    lines = []
    for row in rows:
        record = dict(zip(columns, row))
        lines.append([_escape(formats[c](record) if c in formats else text(record[c])) for c in columns])
    if not lines:
        return empty
    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---:" if c in right else "---" for c in columns) + " |"
    return "\n".join([header, rule] + ["| " + " | ".join(cells) + " |" for cells in lines])


def money_in(column: str, currency_column: str = "currency") -> Callable[[Mapping[str, Any]], str]:
    """A `markdown_table` format: the row's `column` as money in the row's currency."""
    return lambda row: money(row[column], row.get(currency_column))


def percent_in(column: str, signed: bool = True) -> Callable[[Mapping[str, Any]], str]:
    """A `markdown_table` format: the row's `column` as a (signed) percentage."""
    return lambda row: percent(row[column], signed=signed)
