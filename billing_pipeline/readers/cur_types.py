"""The values the CUR reader hands out: a month's delivery and the error for bad CUR input."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

LAYOUTS = ("legacy_csv", "legacy_parquet", "athena_parquet", "cur2", "focus")


class CurFormatError(Exception):
    """Bad CUR input. str(e) names the file (full URI/path) and the problem."""


class CurNotReady(CurFormatError):
    """A delivery AWS is still writing (its status says UPDATING): not bad, not readable yet."""


@dataclass(frozen=True)
class CurDelivery:
    """The current delivery of one billing period of one report / export."""

    billing_period: datetime.date  # first day of the month
    report: str  # report / export name
    layout: str  # one of LAYOUTS
    delivery_id: str  # assemblyId for manifests that have one; else a fingerprint of the files and manifest
    files: tuple[str, ...]  # paths inside location.filesystem, in a stable order
    manifest: str | None  # path of the manifest used, if any
    status: str | None  # 'READY'/'UPDATING' from cost_and_usage_data_status (athena layout), else None
