"""Every `BILLING_*` setting, checked before a run does any work.

A misspelt metric used to fail at the fifth step, an empty CUR folder said "months found: none" without naming the
variable, and a usage export given as one file failed with a raw NotADirectoryError. Here each variable has one
entry: its default and what a valid value looks like. `check_settings()` returns one line per problem, each naming
the variable, the value and what was expected; the resources call it when a run starts (before any step), the
sensor and the schedule before they request a run, and `python -m billing_pipeline.settings` prints the table.

Run config set on a resource overrides its variable; `check_settings(overrides=...)` takes those values.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable, Mapping

from billing_pipeline.catalog import load_catalog

S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-01)?$")
TRUE_OR_FALSE = {"", "0", "1", "true", "false", "yes", "no", "on", "off"}


class SettingsError(ValueError):
    """One or more settings are wrong; the message has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Settings are not valid:\n" + "\n".join(f"- {p}" for p in problems))


@dataclass(frozen=True)
class Setting:
    variable: str
    default: str
    expected: str  # what a valid value looks like, said in the error
    check: Callable[[str], str | None]  # None when valid, else what is wrong with the value
    meaning: str
    # an optional input whose default (the demo's sample folder) may be absent: unset means "none of it"
    default_may_be_missing: bool = False


def _local_path(uri: str) -> str:
    return os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)


def _s3_or(local_check: Callable[[str], str | None]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.startswith("s3://"):
            return None if S3_URI.match(value) else "not a valid s3://bucket/prefix URI"
        if "://" in value and not value.startswith("file://"):
            return f"unknown scheme {value.split('://')[0]!r}"
        return local_check(_local_path(value))
    return check


def _existing_folder(path: str) -> str | None:
    if not os.path.exists(path):
        return f"the folder {path} does not exist"
    if not os.path.isdir(path):
        return f"{path} is a file, not a folder"
    return None


def _existing_folder_or_file(path: str) -> str | None:
    return None if os.path.exists(path) else f"nothing exists at {path}"


def _existing_file_or_default(path: str) -> str | None:
    if not path:
        return None
    if not os.path.exists(path):
        return f"the file {path} does not exist"
    if os.path.isdir(path):
        return f"{path} is a folder, not a file"
    try:
        with open(path, encoding="utf-8") as handle:
            json.load(handle)
    except ValueError as error:
        return f"{path} is not JSON ({error})"
    return None


def _creatable_file(path: str) -> str | None:
    if path == ":memory:":
        return None
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return f"{path} is a folder, not a file"
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f"{parent} is a file, so {path} cannot be created"
    return None


def _creatable_folder(path: str) -> str | None:
    return f"{path} is a file, not a folder" if os.path.isfile(path) else None


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.strip().lower() in choices:
            return None
        close = difflib.get_close_matches(value.strip().lower(), choices, n=1)
        return "not one of them" + (f" (did you mean {close[0]!r}?)" if close else "")
    return check


def _logs(value: str) -> str | None:
    if value.startswith("cloudwatch://"):
        return None if value[len("cloudwatch://"):].split("?")[0].strip(",") else "no log group named"
    return _s3_or(_existing_folder)(value)


def _usage(value: str) -> str | None:
    if value.startswith("dynamodb://"):
        return None if value[len("dynamodb://"):].split("?")[0] else "no table named"
    return _s3_or(_existing_folder_or_file)(value)


def _month(value: str) -> str | None:
    return None if MONTH.match(value.strip()) else "not a month"


def _memory(value: str) -> str | None:
    return None if not value or MEMORY.match(value) else "not an amount of memory"


def _positive_int(value: str) -> str | None:
    if not value:
        return None
    return None if value.strip().isdigit() and int(value) > 0 else "not a positive whole number"


def _port(value: str) -> str | None:
    return None if value.strip().isdigit() and 0 < int(value) < 65536 else "not a port number"


def _non_negative_decimal(value: str) -> str | None:
    try:
        return None if Decimal(value) >= 0 else "negative"
    except InvalidOperation:
        return "not a number"


def _tenants(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("dynamodb://"):
        return None if value[len("dynamodb://"):].split("?")[0] else "no table named"
    return _s3_or(lambda path: None if os.path.isfile(path) else f"the file {path} does not exist")(value)


def _positive_decimal(value: str) -> str | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return "not a number"
    return None if number.is_finite() and number > 0 else "not a positive amount"


def _months(value: str) -> str | None:
    wrong = [m.strip() for m in value.split(",") if m.strip() and not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", m.strip())]
    return f"{', '.join(wrong)} is not a month" if wrong else None


def _not_blank(value: str) -> str | None:
    return None if value.strip() else "empty"


def _anything(value: str) -> str | None:
    return None


def _true_or_false(value: str) -> str | None:
    return None if value.strip().lower() in TRUE_OR_FALSE else "not a yes/no value"


def _spark_master(value: str) -> str | None:
    if not value or value in ("yarn", "local") or re.match(r"^local\[(\*|\d+)(,\d+)?\]$", value):
        return None
    return None if re.match(r"^(spark|k8s|mesos)://", value) else "not a Spark master URL"


def _spark_remote(value: str) -> str | None:
    return None if not value or value.startswith("sc://") else "not a Spark Connect URL"


SETTINGS: tuple[Setting, ...] = (
    # unset and absent is said by cur_line_items itself: the other assets run without the CUR
    Setting("BILLING_CUR_URI", "data/sample/cur", "an existing folder or s3://bucket/prefix", _s3_or(_existing_folder),
            "CUR deliveries", default_may_be_missing=True),
    Setting("BILLING_LOGS_URI", "data/sample/logs",
            "an existing folder, s3://bucket/prefix or cloudwatch://<log-group>[,...]", _logs,
            "CloudWatch Logs exports or log groups", default_may_be_missing=True),
    Setting("BILLING_S3_INVENTORY_URI", "data/sample/inventory", "an existing folder or s3://bucket/prefix",
            _s3_or(_existing_folder), "S3 Inventory reports", default_may_be_missing=True),
    Setting("BILLING_USAGE_URI", "data/sample/usage",
            "an existing folder or file (JSON Lines, DynamoDB export), s3://bucket/prefix or dynamodb://<table>",
            _usage, "the application's estimates", default_may_be_missing=True),
    Setting("BILLING_WAREHOUSE", "data/warehouse.duckdb", "a DuckDB file path (created if missing)", _creatable_file,
            "the DuckDB warehouse"),
    Setting("BILLING_PRICING", "", "a JSON pricing file (unset: the packaged pricing.json)", _existing_file_or_default,
            "unit prices of the usage drivers"),
    Setting("BILLING_COST_METRIC", "amortized", "one of unblended, amortized, net_amortized",
            _one_of("unblended", "amortized", "net_amortized"), "the cost metric attributed"),
    Setting("BILLING_APPLICATION", "tax-demo", "the application tag value (not empty)", _not_blank,
            "which tagged cost is in scope"),
    Setting("BILLING_FIRST_MONTH", "2018-01", "a month as YYYY-MM", _month, "the first monthly partition"),
    Setting("BILLING_DUCKDB_MEMORY_LIMIT", "", "an amount such as 2GB or 512MB", _memory, "DuckDB's memory limit"),
    Setting("BILLING_DUCKDB_THREADS", "", "a positive whole number", _positive_int, "DuckDB's threads"),
    Setting("BILLING_MAX_LOG_LINE_BYTES", "1048576", "a positive whole number of bytes", _positive_int,
            "longer log lines are counted bad lines (docs/input-integrity.md)"),
    Setting("BILLING_MAX_EXPANSION", "100", "a non-negative number (0: off)", _non_negative_decimal,
            "a gzip or zip input expanding more (times its size) fails naming the file"),
    Setting("BILLING_ENGINE", "duckdb", "one of duckdb, spark", _one_of("duckdb", "spark"), "the engine"),
    Setting("BILLING_SPARK_MASTER", "", "local[*], local[N], yarn or spark://host:port", _spark_master,
            "the Spark master"),
    Setting("BILLING_SPARK_REMOTE", "", "sc://host:port", _spark_remote, "the Spark Connect URL"),
    Setting("BILLING_SPARK_WAREHOUSE", "data/spark-warehouse", "a folder or s3://bucket/prefix",
            _s3_or(_creatable_folder), "the Spark engine's Parquet tables"),
    Setting("BILLING_EXPORT_URI", "data/exports", "a folder or s3://bucket/prefix", _s3_or(_creatable_folder),
            "where statements and the report are exported"),
    Setting("BILLING_PUBLISH_URI", "data/published", "a folder or s3://bucket/prefix", _s3_or(_creatable_folder),
            "the snapshots the billing API serves"),
    Setting("BILLING_WRITEBACK_TABLE", "", "a DynamoDB table name (unset: off)", _anything,
            "the usage table receiving actual costs"),
    Setting("BILLING_COST_EXPLORER", "", "1/true/yes to turn on (unset: off)", _true_or_false,
            "the Cost Explorer cross-check"),
    Setting("BILLING_COST_EXPLORER_TAG", load_catalog().tag_keys["tenant"], "a cost allocation tag key", _not_blank,
            "the tag Cost Explorer groups by"),
    Setting("BILLING_COST_EXPLORER_TOLERANCE", "0.005", "a non-negative amount", _non_negative_decimal,
            "allowed Cost Explorer difference per tenant x day"),
    Setting("BILLING_PRICE_LIST", "", "a JSON price list file (unset: the packaged price_list.json)",
            _existing_file_or_default, "the Stripe price list"),
    Setting("BILLING_TENANTS", "", "a file or s3://bucket/key of tenant ids, or dynamodb://<table> (unset: the ids "
            "of estimated_usage)", _tenants, "the tenant registry: only its tenants are invoiced"),
    Setting("BILLING_MAX_LINE_COST", "100000", "a positive amount", _positive_decimal,
            "largest plausible |cost| of one CUR line (beyond: invoicing held)"),
    Setting("BILLING_ALLOW_IMPLAUSIBLE", "", "months as YYYY-MM, comma separated", _months,
            "months invoiced despite implausible lines"),
    Setting("BILLING_REPRICE_MONTHS", "", "months as YYYY-MM, comma separated", _months,
            "months already charged to re-charge at today's price list"),
    Setting("BILLING_API_TOKENS", "data/api-tokens.json", "a file path", _creatable_file, "the API's token hashes"),
    Setting("BILLING_API_HOST", "127.0.0.1", "a host name or address", _not_blank, "the API's address"),
    Setting("BILLING_API_PORT", "8000", "a port number", _port, "the API's port"),
    Setting("BILLING_API_REFRESH_SECONDS", "1", "seconds, a non-negative number", _non_negative_decimal,
            "how often the API looks for newly published months"),
)
BY_VARIABLE = {s.variable: s for s in SETTINGS}


def setting_value(variable: str, environ: Mapping[str, str] | None = None) -> str:
    """The value in force: the environment's unless empty, else the default."""
    environ = os.environ if environ is None else environ
    return environ.get(variable) or BY_VARIABLE[variable].default


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per BILLING_* variable this pipeline does not have (a misspelling silently leaves the real one at
    its default), with the one meant if one is close."""
    problems = []
    for name in sorted(environ):
        if name.startswith("BILLING_") and name not in BY_VARIABLE:
            # compared without the common prefix, which would make every name look alike
            suffixes = [v[len("BILLING_"):] for v in BY_VARIABLE]
            close = difflib.get_close_matches(name[len("BILLING_"):], suffixes, n=1, cutoff=0.75)
            hint = f"did you mean BILLING_{close[0]}?" if close else "see the README's Configuration table"
            problems.append(f"{name} is not a setting of this pipeline ({hint})")
    return problems


def _examine(setting: Setting, environ: Mapping[str, str], override: str | None = None) -> tuple[str, str, str | None]:
    """(value in force, where it comes from: run config / set / default, what is wrong with it or None)."""
    value = str(override) if override not in (None, "") else setting_value(setting.variable, environ)
    source = "run config" if override not in (None, "") else ("set" if environ.get(setting.variable) else "default")
    return value, source, setting.check(value)


def _problem(setting: Setting, value: str, source: str, wrong: str | None) -> str | None:
    """The line check_settings reports for an examined setting, or None (an absent default input is no problem)."""
    if wrong is None or (source == "default" and setting.default_may_be_missing):
        return None
    return f"{setting.variable}={value!r} ({source}): {wrong}; expected {setting.expected}"


def check_settings(variables: tuple[str, ...] | None = None, overrides: Mapping[str, str | None] | None = None,
                   environ: Mapping[str, str] | None = None, unknown: bool = True) -> list[str]:
    """One line per problem: values that are not what their variable expects (all variables, or `variables`),
    and, with `unknown`, BILLING_* variables this pipeline does not have. `overrides` are run-config values by
    variable; they win over the environment."""
    environ = os.environ if environ is None else environ
    problems = _unknown_variables(environ) if unknown else []
    for setting in SETTINGS:
        if variables is not None and setting.variable not in variables:
            continue
        problem = _problem(setting, *_examine(setting, environ, (overrides or {}).get(setting.variable)))
        if problem:
            problems.append(problem)
    return problems


def require_valid_settings(variables: tuple[str, ...] | None = None,
                           overrides: Mapping[str, str | None] | None = None, unknown: bool = True) -> None:
    """Raise SettingsError listing every problem (see check_settings)."""
    problems = check_settings(variables, overrides, unknown=unknown)
    if problems:
        raise SettingsError(problems)


def main(argv: list[str] | None = None) -> int:
    """`python -m billing_pipeline.settings`: every setting, its value in force and whether it is valid; each
    examined once, and the exit status is check_settings()'s."""
    failed = False
    for setting in SETTINGS:
        value, source, wrong = _examine(setting, os.environ)
        failed = failed or _problem(setting, value, source, wrong) is not None
        print(f"{'ok ' if wrong is None else 'BAD'} {setting.variable}={value!r}"
              + (f"  <- {wrong}; expected {setting.expected}" if wrong else ""))
    unknown = _unknown_variables(os.environ)
    for line in unknown:
        print(f"BAD {line}")
    return 1 if failed or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
