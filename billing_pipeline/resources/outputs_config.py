"""Where the outputs go: exports, the write-back into the application's usage table, the Cost Explorer cross-check.

Same pattern as BillingConfig: every field may be set in code or run config; left unset it is read from its
environment variable when the run starts (not at import time), with the documented default:

| variable | default | meaning |
| --- | --- | --- |
| `BILLING_EXPORT_URI` | `data/exports` | Folder or `s3://bucket/prefix` for the CSV and Parquet exports. |
| `BILLING_PUBLISH_URI` | `data/published` | Folder or `s3://bucket/prefix` of the snapshots the billing API serves. |
| `BILLING_WRITEBACK_TABLE` | unset: off | DynamoDB table (the application's `tax-agent-usage`) that receives the attributed actual costs. |
| `BILLING_COST_EXPLORER` | unset: off | `1` / `true` / `yes`: query Cost Explorer and cross-check it with the CUR. |
| `BILLING_COST_EXPLORER_TAG` | `accountant_id` | The cost allocation tag Cost Explorer groups by. |
| `BILLING_COST_EXPLORER_TOLERANCE` | `0.005` | Allowed difference per tenant x day (half a cent: CE rounds its amounts). |
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation

from dagster import ConfigurableResource
from pydantic import Field

from billing_pipeline.settings import require_valid_settings
from billing_pipeline.storage import Location, locate

DEFAULTS = {
    "BILLING_EXPORT_URI": "data/exports",
    "BILLING_PUBLISH_URI": "data/published",
    "BILLING_WRITEBACK_TABLE": "",
    "BILLING_COST_EXPLORER": "",
    "BILLING_COST_EXPLORER_TAG": "accountant_id",
    "BILLING_COST_EXPLORER_TOLERANCE": "0.005",
}
TRUE_WORDS = {"1", "true", "yes", "on"}


def _setting(value: str | None, variable: str) -> str:
    if value not in (None, ""):
        return str(value)
    return os.environ.get(variable) or DEFAULTS[variable]


class OutputsConfig(ConfigurableResource):
    """Exports, usage-table write-back and the Cost Explorer cross-check (off unless configured)."""

    export_uri: str | None = Field(default=None, description="Exports folder or s3://bucket/prefix. Env: BILLING_EXPORT_URI")
    publish_uri: str | None = Field(
        default=None, description="Snapshots the billing API serves: folder or s3://bucket/prefix. Env: BILLING_PUBLISH_URI")
    writeback_table: str | None = Field(
        default=None, description="DynamoDB usage table receiving actual costs; unset = off. Env: BILLING_WRITEBACK_TABLE")
    cost_explorer: str | None = Field(
        default=None, description="'1' to cross-check with Cost Explorer; unset = off. Env: BILLING_COST_EXPLORER")
    cost_explorer_tag: str | None = Field(
        default=None, description="Tag key Cost Explorer groups by. Env: BILLING_COST_EXPLORER_TAG")
    cost_explorer_tolerance: str | None = Field(
        default=None, description="Allowed |CE - CUR| per tenant x day. Env: BILLING_COST_EXPLORER_TOLERANCE")

    def setup_for_execution(self, context) -> None:
        """Before any step: the output settings checked, each mistake named (see settings.py)."""
        require_valid_settings(
            tuple(DEFAULTS),
            {"BILLING_EXPORT_URI": self.export_uri, "BILLING_PUBLISH_URI": self.publish_uri,
             "BILLING_WRITEBACK_TABLE": self.writeback_table,
             "BILLING_COST_EXPLORER": self.cost_explorer, "BILLING_COST_EXPLORER_TAG": self.cost_explorer_tag,
             "BILLING_COST_EXPLORER_TOLERANCE": self.cost_explorer_tolerance},
            unknown=False,
        )

    def export_location(self) -> Location:
        return locate(_setting(self.export_uri, "BILLING_EXPORT_URI"))

    def publish_location(self) -> Location:
        return locate(_setting(self.publish_uri, "BILLING_PUBLISH_URI"))

    def writeback_table_name(self) -> str | None:
        return _setting(self.writeback_table, "BILLING_WRITEBACK_TABLE").strip() or None

    def cost_explorer_enabled(self) -> bool:
        return _setting(self.cost_explorer, "BILLING_COST_EXPLORER").strip().lower() in TRUE_WORDS

    def cost_explorer_tag_key(self) -> str:
        return _setting(self.cost_explorer_tag, "BILLING_COST_EXPLORER_TAG").strip()

    def tolerance(self) -> Decimal:
        text = _setting(self.cost_explorer_tolerance, "BILLING_COST_EXPLORER_TOLERANCE")
        try:
            value = Decimal(text)
        except InvalidOperation as error:
            raise ValueError(f"BILLING_COST_EXPLORER_TOLERANCE={text!r}: not a number") from error
        if value < 0:
            raise ValueError(f"BILLING_COST_EXPLORER_TOLERANCE={text!r}: must not be negative")
        return value
