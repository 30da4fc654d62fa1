"""The tenant registry: which accountant ids are real tenants, and how to tell a look-alike from one.

Cost tags are free text: anyone who can tag a resource can write `acct-0001 ` (trailing space), `ACCT-0001`,
`acct‐0001` (U+2010 hyphen), `total`, `<img ...>` or `=HYPERLINK(...)`. Only ids in the registry are invoiced;
every other id keeps its cost (nothing is dropped) but is marked unknown (assets/tenant_registry.py) and held out.

`BILLING_TENANTS` (or the resource's `source`) names the registry:
- unset: the accountant ids the application's usage table knows (`estimated_usage`, every month loaded), except
  ids that read the same as another of them (`ACCT-0001` beside `acct-0001`): which one is the tenant is not the
  usage table's to say, so both are held out as look-alikes of each other (and invoicing fails naming them) until
  `BILLING_TENANTS` lists the tenants;
- a local file or `s3://bucket/key`: a JSON array of ids, or one id per line (`#` comments and blank lines
  ignored);
- `dynamodb://table[?attribute=accountant_id]`: the attribute's values over a scan of the table.
An id that is itself malformed (empty, surrounding whitespace, control characters, a reserved word) fails loading
with the file and line (or item) named, and so do two ids that read the same (same skeleton): the registry is the
one list that must be exact.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from confusable_homoglyphs import confusables
from dagster import ConfigurableResource
from pydantic import Field

from billing_pipeline.settings import require_valid_settings
from billing_pipeline.storage import locate

RESERVED_IDS = ("unattributed", "total", "unknown")  # rows of the warehouse that are not a tenant
DEFAULT_ATTRIBUTE = "accountant_id"


class TenantRegistryError(ValueError):
    """The registry could not be read or holds a malformed id; the message names the source and the problem."""


@dataclass(frozen=True)
class Registry:
    known: frozenset[str]
    source: str
    # ids held out because they read the same as another id of the source -> those other ids (default registry)
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def classify(self, accountant_id: str) -> tuple[str, str | None]:
        """(status, looks_like): `known`; `unattributed` (the pipeline's own bucket of unexplained cost);
        `lookalike` of a known id (same skeleton: case, whitespace, NFKC, Unicode confusables); else `unknown`."""
        if accountant_id in self.known:
            return "known", None
        if accountant_id == "unattributed":
            return "unattributed", None
        if accountant_id in self.ambiguous:
            return "lookalike", self.ambiguous[accountant_id][0]
        skeleton = id_skeleton(accountant_id)
        matches = sorted(k for k in self.known if id_skeleton(k) == skeleton)
        if matches:
            return "lookalike", matches[0]
        return "unknown", None


def id_skeleton(value: str) -> str:
    """What an id looks like to a person: NFKC, format characters (zero-width) dropped, surrounding whitespace
    stripped, case folded, and every non-ASCII character replaced by its ASCII confusable (Unicode's
    confusables.txt, through confusable_homoglyphs), so `acct‐0001`, ` ACCT-0001` and `аcct-0001` (Cyrillic а)
    all read `acct-0001`."""
    text = unicodedata.normalize("NFKC", value)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf").strip().casefold()
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        found = confusables.is_confusable(char, greedy=True, preferred_aliases=[]) or []
        ascii_glyphs = [h["c"] for entry in found for h in entry["homoglyphs"] if h["c"].isascii()]
        out.append(ascii_glyphs[0].casefold() if ascii_glyphs else char)
    return "".join(out)


def lookalike_groups(ids) -> list[list[str]]:
    """The groups of two or more ids that read the same (id_skeleton), each sorted."""
    by_skeleton: dict[str, list[str]] = defaultdict(list)
    for value in ids:
        by_skeleton[id_skeleton(value)].append(value)
    return sorted(sorted(group) for group in by_skeleton.values() if len(set(group)) > 1)


def id_problem(value) -> str | None:
    """Why `value` cannot be a registry id, or None."""
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a non-empty string"
    if value != value.strip():
        return f"{value!r} has surrounding whitespace"
    if any(unicodedata.category(c)[0] == "C" for c in value):
        return f"{value!r} contains control or format characters"
    if value.casefold() in RESERVED_IDS:  # any case: a tag `TOTAL` is read as the reserved word too
        return f"{value!r} is a reserved word of the warehouse, not a tenant"
    return None


class TenantRegistry(ConfigurableResource):
    """Which accountant ids are tenants (BILLING_TENANTS; default: those the usage table knows)."""

    source: str | None = Field(default=None, description="File, s3://bucket/key or dynamodb://table of tenant ids. "
                                                         "Env: BILLING_TENANTS (default: the ids in estimated_usage)")

    def setup_for_execution(self, context) -> None:
        """Before any step: the registry's URI checked (see settings.py); its content is read by the steps."""
        require_valid_settings(("BILLING_TENANTS",), {"BILLING_TENANTS": self.source}, unknown=False)

    def source_uri(self) -> str | None:
        return self.source or os.environ.get("BILLING_TENANTS") or None

    def load(self, engine) -> Registry:
        """The registry; `engine` (the warehouse) answers the default, the ids of estimated_usage."""
        uri = self.source_uri()
        if uri is None:
            rows = engine.execute("SELECT DISTINCT accountant_id FROM estimated_usage "
                                  "WHERE accountant_id IS NOT NULL ORDER BY 1").fetchall()
            ids = [r[0] for r in rows if r[0] not in RESERVED_IDS and id_problem(r[0]) is None]
            ambiguous = {i: tuple(other for other in group if other != i)
                         for group in lookalike_groups(ids) for i in group}
            return Registry(frozenset(ids) - set(ambiguous), "estimated_usage (the application's usage table)",
                            ambiguous)
        if uri.startswith("dynamodb://"):
            return Registry(frozenset(_dynamodb_ids(uri)), uri)
        return Registry(frozenset(_file_ids(uri)), uri)


def _file_ids(uri: str) -> list[str]:
    location = locate(uri)
    try:
        with location.filesystem.open_input_stream(location.path) as stream:
            raw = stream.read()
    except OSError as error:
        raise TenantRegistryError(f"Tenant registry {uri}: cannot read it ({error})") from None
    try:
        text = raw.decode("utf-8-sig")  # a leading byte order mark (Windows editors) is the encoding's, not an id's
    except UnicodeDecodeError as error:
        raise TenantRegistryError(f"Tenant registry {uri}: not UTF-8 text ({error})") from None
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise TenantRegistryError(f"Tenant registry {uri}: not valid JSON ({error})") from None
        entries = [(f"item {index}", value) for index, value in enumerate(values)]
    else:
        entries = [(f"line {number}", line.rstrip("\r\n")) for number, line in enumerate(text.splitlines(), 1)
                   if line.strip() and not line.lstrip().startswith("#")]
    return _validated(uri, entries)


def _dynamodb_ids(uri: str) -> list[str]:
    from billing_pipeline.readers.usage_table_dynamodb import dynamodb_client

    parsed = urlparse(uri)
    table = parsed.netloc + parsed.path.rstrip("/")
    attribute = (parse_qs(parsed.query).get("attribute") or [DEFAULT_ATTRIBUTE])[0]
    if not table:
        raise TenantRegistryError(f"Tenant registry {uri}: no table named (dynamodb://<table>)")
    entries = []
    try:
        pages = dynamodb_client().get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="#a", ExpressionAttributeNames={"#a": attribute})
        for page in pages:
            for item in page.get("Items", []):
                value = item.get(attribute, {})
                entries.append((f"item {value!r}", value.get("S", value)))
    except Exception as error:  # botocore's ClientError and connection errors alike: name the table
        raise TenantRegistryError(f"Tenant registry {uri}: cannot scan {table} ({error})") from None
    return _validated(uri, entries)


def _validated(uri: str, entries: list[tuple[str, object]]) -> list[str]:
    problems = [f"{where}: {problem}" for where, value in entries if (problem := id_problem(value))]
    problems += [" and ".join(map(repr, group)) + " read the same (case, whitespace or look-alike characters): keep "
                 "the tenant's own" for group in lookalike_groups(value for _, value in entries
                                                                if id_problem(value) is None)]
    if problems:
        raise TenantRegistryError(f"Tenant registry {uri}: " + "; ".join(problems[:10]))
    if not entries:
        raise TenantRegistryError(f"Tenant registry {uri}: no tenant ids in it")
    return [value for _, value in entries]
