"""The application's usage table read live from DynamoDB (`BILLING_USAGE_URI=dynamodb://tax-agent-usage`).

URI: `dynamodb://<table>[?index=<gsi name>|none&page_size=<n>]`.

- When the table has a global secondary index whose partition (HASH) key is `month` (string `YYYY-MM`), the
  month's items are read with paginated `Query`s on it (`#month = :month`, for the month and the months beside
  it: an item belongs to the month of its UTC timestamp, and its `month` may be the application's local one).
  The index looked for is `month-index`, else any GSI keyed on `month`; `?index=<name>` names it (it must
  exist, be keyed on `month` and project every field the pipeline reads), `?index=none` forces a Scan. An index that was found by itself but
  does not project those fields is not used.
- Otherwise a paginated `Scan` with `FilterExpression begins_with(#month, :month0) OR ... OR
  attribute_not_exists(#month)` over the same three months (items without `month` are kept and placed by their
  timestamp, as in a JSON Lines file).
- `page_size` sets `Limit` per request (default: DynamoDB's 1 MB pages).

Items are read with the low-level client, so every attribute stays in DynamoDB JSON (`{"N": "0.0000166667"}`):
numbers keep their exact decimal text (no float ever). Each item becomes one line `{"Item": {...}}`, the shape of
a DynamoDB export, and goes through the same SQL as exports and JSON Lines (`estimates.py`), so the result equals
the file readers' for the same items. Credentials, region and endpoint (`AWS_ENDPOINT_URL`,
`AWS_ENDPOINT_URL_DYNAMODB`) come from the standard AWS environment; `AWS_REGION` is honoured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

SCHEME = "dynamodb://"
DEFAULT_INDEX = "month-index"
MONTH = "month"
# The attributes read_estimates uses: an index must project them (keys are always projected).
FIELDS = ("accountant_id", "timestamp", "month", "operation", "resource_type", "quantity", "unit_cost",
          "estimated_cost", "source")


def is_dynamodb_uri(uri: str) -> bool:
    return uri.startswith(SCHEME)


@dataclass(frozen=True)
class DynamoDBUsageTable:
    table: str
    index: str | None = None  # None: look for one; "none": always Scan
    page_size: int | None = None
    uri: str = ""

    def display(self) -> str:
        return self.uri or SCHEME + self.table

    def read_item_lines(self, month: str) -> tuple[list[str], str]:
        """The month's items as DynamoDB-JSON export lines, and how they were read ('Query on <index>' or 'Scan')."""
        how, requests = self.plan(month)
        return [line for request in requests for line in self.read_request(request)], how

    def plan(self, month: str, segments: int = 1) -> tuple[str, list[tuple[str, dict]]]:
        """How the month's items are read and the requests that read them, each (operation, its parameters):
        one Query on the month index, or a Scan in `segments` parallel segments (Spark's executors read one
        each)."""
        client = dynamodb_client()
        try:
            description = client.describe_table(TableName=self.table)["Table"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(client, exc) from exc
        index = self._month_index(description)
        names = {"#month": MONTH}
        # An item belongs to the month of its timestamp in UTC (estimates.py); the application may write `month`
        # in its local time, one month off at the boundary (`2026-01-31T20:00:00-08:00` in '2026-01' is February's),
        # so the months beside it are read too and each item is kept by its timestamp.
        months = neighbour_months(month)
        if index:
            return f"Query on {index}", [("query", dict(
                TableName=self.table, IndexName=index, KeyConditionExpression="#month = :month",
                ExpressionAttributeNames=names, ExpressionAttributeValues={":month": {"S": m}})) for m in months]
        values = {f":month{i}": {"S": m} for i, m in enumerate(months)}
        scan = dict(TableName=self.table,
                    FilterExpression=" OR ".join(f"begins_with(#month, {v})" for v in values)
                    + " OR attribute_not_exists(#month)",
                    ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        if segments > 1:
            return "Scan", [("scan", scan | {"Segment": i, "TotalSegments": segments}) for i in range(segments)]
        return "Scan", [("scan", scan)]

    def read_request(self, request: tuple[str, dict]) -> list[str]:
        """Every page of one request of `plan`, each item as one DynamoDB-JSON export line."""
        operation, parameters = request
        client = dynamodb_client()
        paging = {"PageSize": self.page_size} if self.page_size else {}
        try:
            pages = client.get_paginator(operation).paginate(**parameters, PaginationConfig=paging)
            return [json.dumps({"Item": item}, separators=(",", ":")) for page in pages for item in page.get("Items", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(client, exc) from exc

    def _error(self, client, exc: Exception) -> ValueError:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        if code == "ResourceNotFoundException":
            return ValueError(f"{self.display()}: table {self.table!r} not found "
                              f"(region {client.meta.region_name}): {exc}")
        return ValueError(f"{self.display()}: reading the table failed ({exc})")

    def _month_index(self, description: dict) -> str | None:
        if self.index == "none":
            return None
        indexes = {i["IndexName"]: i for i in description.get("GlobalSecondaryIndexes", [])}
        table_keys = {k["AttributeName"] for k in description.get("KeySchema", [])}

        def problem(index: dict) -> str | None:
            hash_keys = [k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH"]
            if hash_keys != [MONTH]:
                return f"its partition key is {hash_keys[0] if hash_keys else None!r}, not {MONTH!r}"
            projection = index.get("Projection", {})
            if projection.get("ProjectionType", "ALL") == "ALL":
                return None
            projected = table_keys | {k["AttributeName"] for k in index["KeySchema"]}
            projected |= set(projection.get("NonKeyAttributes", []))
            missing = [f for f in FIELDS if f not in projected]
            return f"it does not project {', '.join(missing)}" if missing else None

        if self.index:
            if self.index not in indexes:
                raise ValueError(f"{self.display()}: table {self.table!r} has no global secondary index "
                                 f"{self.index!r} (it has: {', '.join(sorted(indexes)) or 'none'})")
            why = problem(indexes[self.index])
            if why:
                raise ValueError(f"{self.display()}: index {self.index!r} cannot list a month's items: {why}")
            return self.index
        candidates = sorted(indexes, key=lambda name: (name != DEFAULT_INDEX, name))
        return next((name for name in candidates if problem(indexes[name]) is None), None)


def neighbour_months(month: str) -> list[str]:
    """'2026-01' -> ['2025-12', '2026-01', '2026-02']: the `month` values an item of that UTC month may carry."""
    year, number = int(month[:4]), int(month[5:7])
    before = f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"
    after = f"{year + 1}-01" if number == 12 else f"{year}-{number + 1:02d}"
    return [before, month, after]


def parse_dynamodb_uri(uri: str) -> DynamoDBUsageTable:
    """`dynamodb://<table>[?index=<name>|none&page_size=<n>]`."""
    if not is_dynamodb_uri(uri):
        raise ValueError(f"{uri!r}: not a {SCHEME} URI")
    body, _, query = uri[len(SCHEME) :].partition("?")
    table = unquote(body.strip("/"))
    if not table or "/" in table:
        raise ValueError(f"{uri!r}: expected {SCHEME}<table name>[?index=<gsi>&page_size=<n>]")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"index", "page_size"}
    if unknown:
        raise ValueError(f"{uri!r}: unknown option(s) {', '.join(sorted(unknown))} (known: index, page_size)")
    page_size = None
    if "page_size" in options:
        if not options["page_size"].isdigit() or int(options["page_size"]) < 1:
            raise ValueError(f"{uri!r}: page_size={options['page_size']!r}: expected a whole number >= 1")
        page_size = int(options["page_size"])
    index = options.get("index") or None
    return DynamoDBUsageTable(table=table, index=index.lower() if index and index.lower() == "none" else index,
                              page_size=page_size, uri=uri)


def dynamodb_client():
    """A DynamoDB client from the standard AWS environment (endpoint override, region, credentials)."""
    session = boto3.session.Session()
    region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
    return session.client("dynamodb", region_name=region,
                          config=Config(retries={"mode": "standard", "max_attempts": 8}))
