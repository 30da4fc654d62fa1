"""Pre-commit guards: a table's blocking checks, run on the month's new rows before they replace the old ones.

Each blocking `@asset_check` of a table is a function `(con, period, relation) -> AssetCheckResult` that reads the
month from `relation`. The asset check calls it on the committed table; the asset calls the same function through
`guard()` as the `verify=` of the engine's replace method, on the new rows inside the replacing transaction (DuckDB:
the table itself before COMMIT; Spark: the staged rows before the partition is overwritten). A month that fails is
refused with the check's name and its offending rows, and the table keeps the month it held.

Not guarded here, and why:
- `no_duplicate_line_items` / `no_duplicate_facts` compare the rows held with the rows the commit wrote (a second,
  overlapping write): before the commit the two are the same rows by construction. cur_line_items is guarded by
  `duplicate_line_items` instead (a line item that a delivery holds twice), which the asset check also runs.
- `month_from_one_delivery`: statements refuses a month whose tables disagree before it computes anything
  (lineage.month_delivery), and stamps its rows with that one delivery.
- `money_is_plausible`: it holds invoicing of a month by design; the `implausible_money` table is its evidence and
  must be committed for someone to see it.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from dagster import AssetCheckResult, Failure

Check = Callable[[str], AssetCheckResult]


def describe_failure(result: AssetCheckResult) -> str:
    """A failing check's metadata as text (the offending rows, named)."""
    lines = []
    for key, value in (result.metadata or {}).items():
        text = str(getattr(value, "value", value))
        if text and text != "none":
            lines.append(f"{key}: {text}" if "\n" not in text else f"{key}:\n{text}")
    return "\n".join(lines)


def guard(table: str, period: dt.date, checks: dict[str, Check]) -> Callable[[str], None]:
    """A `verify=` for the engines' replace methods: every named check must pass on the new rows of `table`, or a
    Failure naming the table, month and check (and its offending rows) rolls the month back."""

    def verify(relation: str) -> None:
        for name, check in checks.items():
            result = check(relation)
            if not result.passed:
                detail = describe_failure(result)
                raise Failure(
                    f"{table} of {period:%Y-%m} failed its check {name} before commit; nothing was replaced, the "
                    f"table keeps the month it held" + (f":\n{detail}" if detail else ""),
                    metadata={"check": name, **(result.metadata or {})},
                )

    return verify
