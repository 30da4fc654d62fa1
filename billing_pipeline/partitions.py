"""One partition per billing period: a calendar month in UTC, keyed `YYYY-MM-01` (Dagster's default format).

`end_offset=1` makes the current, still-changing month a partition too: AWS rewrites it several times a day.
The first month is BILLING_FIRST_MONTH (default 2018-01, early enough for the public sample CUR of 2018); it is
read when the definitions load because the partition set is part of the definitions.
"""

import datetime as dt
import os

from dagster import MonthlyPartitionsDefinition

from billing_pipeline.settings import require_valid_settings

DEFAULT_FIRST_MONTH = "2018-01"


def _first_month() -> str:
    # checked here, as every setting is when a run starts: a value such as `2026-3` failed the definitions' load
    # with a bare "Invalid isoformat string: '2026-3-01'" that named no variable (runs never got to check it)
    require_valid_settings(("BILLING_FIRST_MONTH",), unknown=False)
    first = os.environ.get("BILLING_FIRST_MONTH") or DEFAULT_FIRST_MONTH
    return dt.date.fromisoformat(first[:7] + "-01").isoformat()


billing_month_partitions = MonthlyPartitionsDefinition(start_date=_first_month(), end_offset=1, timezone="UTC")


def billing_period_of(partition_key: str) -> dt.date:
    """The billing period (first day of the month) a partition key stands for."""
    return dt.date.fromisoformat(partition_key)

