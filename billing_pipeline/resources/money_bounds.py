"""What money is plausible on a CUR line, and which months an operator has explicitly allowed beyond it.

A negative Usage line, or a line costing more than `BILLING_MAX_LINE_COST` (absolute value, in the bill's
currency, any of the unblended / amortized / net amortized costs), holds invoicing of its month
(assets/implausible_money.py): a corrupted or forged delivery must not reach customers' cards. After checking the
bill, an operator releases the month by naming it: `BILLING_ALLOW_IMPLAUSIBLE=2026-01` (several: comma separated),
or in run config `resources: {money_bounds: {config: {allow_implausible_months: "2026-01"}}}`. Naming the month
(not a global switch) keeps the allowance from silently covering next month's anomalies.

The same goes for re-pricing: a month already charged is only re-charged at the price terms it was charged under;
to charge it at a price list changed since, the operator names it: `BILLING_REPRICE_MONTHS=2026-01`
(assets/invoices.py).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation

from dagster import ConfigurableResource
from pydantic import Field

from billing_pipeline.settings import require_valid_settings

DEFAULT_MAX_LINE_COST = Decimal("100000")  # far above any one hourly line of this application; far below 9.99e27
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class MoneyBounds(ConfigurableResource):
    """The per-line bound and the months allowed beyond it."""

    max_line_cost: str | None = Field(default=None, description="Largest plausible |cost| of one CUR line. "
                                                                "Env: BILLING_MAX_LINE_COST (default 100000)")
    allow_implausible_months: str | None = Field(
        default=None, description="Months (YYYY-MM, comma separated) to invoice despite implausible lines. "
                                  "Env: BILLING_ALLOW_IMPLAUSIBLE")
    reprice_months: str | None = Field(
        default=None, description="Months (YYYY-MM, comma separated) already charged to re-charge at the price list "
                                  "as it is now. Env: BILLING_REPRICE_MONTHS")

    def setup_for_execution(self, context) -> None:
        """Before any step: the bound and the allowances checked (see settings.py)."""
        require_valid_settings(("BILLING_MAX_LINE_COST", "BILLING_ALLOW_IMPLAUSIBLE", "BILLING_REPRICE_MONTHS"),
                               {"BILLING_MAX_LINE_COST": self.max_line_cost,
                                "BILLING_ALLOW_IMPLAUSIBLE": self.allow_implausible_months,
                                "BILLING_REPRICE_MONTHS": self.reprice_months}, unknown=False)

    def bound(self) -> Decimal:
        text = self.max_line_cost or os.environ.get("BILLING_MAX_LINE_COST") or str(DEFAULT_MAX_LINE_COST)
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"BILLING_MAX_LINE_COST={text!r}: not a number") from None
        if not value.is_finite() or value <= 0:
            raise ValueError(f"BILLING_MAX_LINE_COST={text!r}: must be a positive amount")
        return value

    def allowed_months(self) -> set[str]:
        return _months(self.allow_implausible_months, "BILLING_ALLOW_IMPLAUSIBLE")

    def repriced_months(self) -> set[str]:
        return _months(self.reprice_months, "BILLING_REPRICE_MONTHS")

    def allowance_source(self) -> str:
        return ("run config allow_implausible_months" if self.allow_implausible_months
                else "BILLING_ALLOW_IMPLAUSIBLE")


def _months(configured: str | None, variable: str) -> set[str]:
    text = configured or os.environ.get(variable) or ""
    months = {part.strip() for part in text.split(",") if part.strip()}
    wrong = sorted(m for m in months if not MONTH.match(m))
    if wrong:
        raise ValueError(f"{variable}: {', '.join(wrong)} is not a month (YYYY-MM)")
    return months
