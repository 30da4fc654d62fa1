"""Where the pipeline reads from and how it attributes: one resource, configured from the environment.

Every field may be set in code or run config; left unset, it is read from its environment variable when the run
starts (not at import time), and falls back to the local sample layout that `billing_pipeline.demo` writes.
Dagster's `EnvVar` cannot carry a default (dagster-io/dagster#16232), and the interface contract requires that the
pipeline runs with none of these variables set, hence this small resolution step.
"""

from __future__ import annotations

import os
from importlib import resources as package_files

from dagster import ConfigurableResource
from pydantic import Field

from billing_pipeline.readers.cloudwatch_logs_api import CloudWatchLogsSource, is_cloudwatch_uri, parse_cloudwatch_uri
from billing_pipeline.readers.usage_table_dynamodb import DynamoDBUsageTable, is_dynamodb_uri, parse_dynamodb_uri
from billing_pipeline.settings import require_valid_settings
from billing_pipeline.storage import Location, locate

COST_METRICS = ("unblended", "amortized", "net_amortized")
INPUT_SETTINGS = ("BILLING_CUR_URI", "BILLING_LOGS_URI", "BILLING_S3_INVENTORY_URI", "BILLING_USAGE_URI",
                  "BILLING_PRICING", "BILLING_COST_METRIC", "BILLING_APPLICATION", "BILLING_FIRST_MONTH")

# variable -> default when unset (paths are relative to the working directory)
DEFAULTS = {
    "BILLING_CUR_URI": "data/sample/cur",
    "BILLING_LOGS_URI": "data/sample/logs",
    "BILLING_S3_INVENTORY_URI": "data/sample/inventory",
    "BILLING_USAGE_URI": "data/sample/usage",
    "BILLING_PRICING": "",  # '' -> the pricing.json shipped in the package
    "BILLING_COST_METRIC": "amortized",
    "BILLING_APPLICATION": "tax-demo",
}


def _setting(value: str | None, variable: str) -> str:
    if value not in (None, ""):
        return value
    return os.environ.get(variable) or DEFAULTS[variable]


class BillingConfig(ConfigurableResource):
    """The inputs (CUR bucket, logs, S3 inventory, estimates) and the attribution settings."""

    cur_uri: str | None = Field(default=None, description="CUR deliveries: folder or s3://bucket/prefix. Env: BILLING_CUR_URI")
    logs_uri: str | None = Field(default=None, description="CloudWatch Logs exports, or cloudwatch://<log-group>,... Env: BILLING_LOGS_URI")
    s3_inventory_uri: str | None = Field(default=None, description="S3 Inventory reports. Env: BILLING_S3_INVENTORY_URI")
    usage_uri: str | None = Field(default=None, description="The application's estimates (files or dynamodb://<table>). Env: BILLING_USAGE_URI")
    pricing: str | None = Field(default=None, description="Pricing file (JSON). Env: BILLING_PRICING")
    cost_metric: str | None = Field(default=None, description="amortized (default) | unblended | net_amortized. Env: BILLING_COST_METRIC")
    application: str | None = Field(default=None, description="Value of the `application` tag in scope. Env: BILLING_APPLICATION")

    def setup_for_execution(self, context) -> None:
        """Before any step: every input setting checked (and any misspelt BILLING_* variable named), so a mistake
        fails the run at once with the variable, the value and what was expected."""
        require_valid_settings(INPUT_SETTINGS, self.setting_overrides())

    def setting_overrides(self) -> dict[str, str | None]:
        return {"BILLING_CUR_URI": self.cur_uri, "BILLING_LOGS_URI": self.logs_uri,
                "BILLING_S3_INVENTORY_URI": self.s3_inventory_uri, "BILLING_USAGE_URI": self.usage_uri,
                "BILLING_PRICING": self.pricing, "BILLING_COST_METRIC": self.cost_metric,
                "BILLING_APPLICATION": self.application}

    def cur_location(self) -> Location:
        return locate(_setting(self.cur_uri, "BILLING_CUR_URI"))

    def logs_location(self) -> Location:
        return locate(_setting(self.logs_uri, "BILLING_LOGS_URI"))

    def logs_source(self) -> Location | CloudWatchLogsSource:
        """The logs: exports (folder or s3:// prefix) or the log groups through the API (`cloudwatch://...`)."""
        uri = _setting(self.logs_uri, "BILLING_LOGS_URI")
        return parse_cloudwatch_uri(uri) if is_cloudwatch_uri(uri) else locate(uri)

    def s3_inventory_location(self) -> Location:
        return locate(_setting(self.s3_inventory_uri, "BILLING_S3_INVENTORY_URI"))

    def usage_location(self) -> Location:
        return locate(_setting(self.usage_uri, "BILLING_USAGE_URI"))

    def usage_source(self) -> Location | DynamoDBUsageTable:
        """The usage table: files (folder or s3:// prefix) or the live DynamoDB table (`dynamodb://<table>`)."""
        uri = _setting(self.usage_uri, "BILLING_USAGE_URI")
        return parse_dynamodb_uri(uri) if is_dynamodb_uri(uri) else locate(uri)

    def application_tag(self) -> str:
        return _setting(self.application, "BILLING_APPLICATION")

    def metric(self) -> str:
        metric = _setting(self.cost_metric, "BILLING_COST_METRIC").strip().lower()
        if metric not in COST_METRICS:
            raise ValueError(f"BILLING_COST_METRIC={metric!r}: expected one of {', '.join(COST_METRICS)}")
        return metric

    def pricing_text(self) -> str:
        """The pricing file's JSON text (the packaged default unless BILLING_PRICING names another file)."""
        path = _setting(self.pricing, "BILLING_PRICING")
        if path:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        return package_files.files("billing_pipeline").joinpath("pricing.json").read_text(encoding="utf-8")
