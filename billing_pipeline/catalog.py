"""The catalog (`catalog.json`): every service the attribution knows, its usage-type patterns, drivers in order of
preference, how a fact's scope comes from its resource id, its resource type, and each driver's unit and unit
price; and the tag keys that name the tenant and the owner tags. The one place this vocabulary is written.

Loaded once per process and handed to the SQL as warehouse views (`catalog_views_sql`, part of the warehouse DDL):

    driver_rules(service, usage_type_pattern, rule_order, driver, driver_order)   first matching rule wins
    fact_scopes(service, resource_id_pattern)        regexp; group 1 of the line's resource id is its scope
    scope_names(service, name_order, scope, usage_type_pattern, product_name_pattern, evidence_pattern)
                                                     a scope named by the usage type (a Bedrock model), first
                                                     match wins; the evidence's own name for it (modelId)
    service_resource_types(service, resource_type)   every other service is 'other'
    driver_units(service, driver, unit, unit_price, units_per_billed_unit)   the catalog's unit prices (the pricing
                                                     file may override); driver units per CUR usage-amount unit
    network_usage_types(pattern)                     NAT gateway and data transfer usage types (the network policy)
    compute_services(service)                        whose attributed cost weighs the network cost (`proportional`)

and the tag keys as SQL parameters (`tag_parameters`). No Dagster here: the API and the price list import it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources as package_files
from typing import Mapping

from billing_pipeline.sql import sql_string

COMBINED = "combined"  # a rule's pseudo-driver: the service's drivers valued at their unit prices
OTHER = "other"  # the resource type of every service the catalog does not name
OTHERWISE_ORDER = 9999  # rule_order of a service's `otherwise` rule: after every pattern
TAG_ROLES = ("tenant", "application", "environment", "cost_center")
NO_MATCH = "$^(never)"  # a pattern no text contains: the SQL parameter of a feature the catalog leaves out


@dataclass(frozen=True)
class Driver:
    unit: str
    unit_price: Decimal
    units_per_billed_unit: int = 1  # driver units in one unit of the CUR's usage amount (log bytes: 2^30 per GB)


@dataclass(frozen=True)
class ScopeName:
    scope: str  # the canonical name (e.g. a model) facts and evidence meet on
    usage_type: str  # substring of the CUR usage type naming it
    product_name: str | None  # substring of a Marketplace line's product name naming it (None: not sold there)
    evidence: str  # substring of the evidence's scope naming it (Bedrock: the invocation log's modelId, which a
    #                bedrock-mantle usage type, `USE1-openai.gpt-oss-120b-mantle-input-tokens-standard`, repeats)


@dataclass(frozen=True)
class Service:
    name: str  # CUR product code (lineItem/ProductCode)
    resource_type: str
    drivers: Mapping[str, Driver]
    rules: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (usage type substrings, drivers), in order
    otherwise: tuple[str, ...]  # drivers of every other usage type; () -> unattributed
    scope_from_resource_id: str | None  # regexp, group 1 = scope
    scope_names: tuple[ScopeName, ...] = ()
    marketplace: Mapping[str, str] | None = None  # billing_entity, usage_type_contains: lines sold via Marketplace
    storage_classes: Mapping[str, str] | None = None  # S3 Inventory StorageClass -> driver of its GB-months
    product_codes: tuple[str, ...] = ()  # other product codes AWS bills this service's usage under


@dataclass(frozen=True)
class Catalog:
    services: Mapping[str, Service]
    tag_keys: Mapping[str, str]  # role (tenant, application, environment, cost_center) -> tag key
    network_usage_types: tuple[str, ...] = ()
    compute_services: tuple[str, ...] = ()

    def resource_types(self) -> tuple[str, ...]:
        """Every resource type, in catalog order, then 'other'."""
        return (*dict.fromkeys(s.resource_type for s in self.services.values() if s.resource_type != OTHER), OTHER)

    def unit_prices(self) -> dict[tuple[str, str], Decimal]:
        return {(s.name, d): driver.unit_price for s in self.services.values() for d, driver in s.drivers.items()}

    def storage_class_drivers(self, service: str = "AmazonS3") -> dict[str, str]:
        """S3 Inventory StorageClass -> the driver its GB-months count for (the first, STANDARD's, for others)."""
        return dict(self.services[service].storage_classes or {"STANDARD": "gb_months"})

    def knows(self, service: str, driver: str) -> bool:
        return service in self.services and driver in self.services[service].drivers

    def tag_parameters(self) -> dict[str, str]:
        """The CUR reader's parameters: the tag keys ($tenant_tag, $application_tag, $environment_tag,
        $cost_center_tag), the IAM principal tag naming the tenant as the tag map holds it ($principal_tenant_tag,
        `iamPrincipal/<tenant tag>` by AWS's column rule) and the pattern of a principal ARN naming a tenant
        ($principal_tenant_pattern), and which Marketplace lines are a service's ($marketplace_*)."""
        params = {f"{role}_tag": self.tag_keys[role] for role in TAG_ROLES}
        tenant = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([A-Z])", r"_\1", "iamPrincipal/" + self.tag_keys["tenant"]).lower())
        params["principal_tenant_tag"] = tenant.strip("_")
        params["principal_tenant_pattern"] = self.tag_keys.get("iam_principal_tenant") or NO_MATCH
        sold = next((s for s in self.services.values() if s.marketplace), None)
        params["marketplace_billing_entity"] = sold.marketplace["billing_entity"] if sold else NO_MATCH
        params["marketplace_usage_type"] = sold.marketplace["usage_type_contains"] if sold else NO_MATCH
        params["marketplace_service"] = sold.name if sold else NO_MATCH
        return params

    def product_code_services(self) -> dict[str, str]:
        """Each other product code a service's usage is billed under -> that service (`product_codes`)."""
        return {code: s.name for s in self.services.values() for code in s.product_codes}

    def driver_rule_rows(self) -> list[tuple[str, str, int, str, int]]:
        rows = []
        for service in self.services.values():
            order = 0
            for patterns, drivers in service.rules:
                for pattern in patterns:  # each pattern its own rule, in file order: first match wins
                    order += 1
                    rows += [(service.name, pattern, order, d, i) for i, d in enumerate(drivers, 1)]
            rows += [(service.name, "", OTHERWISE_ORDER, d, i) for i, d in enumerate(service.otherwise, 1)]
        return rows


def _text(value: str | None) -> str:
    return "CAST(NULL AS VARCHAR)" if value is None else sql_string(value)


def catalog_views_sql(catalog: Catalog | None = None) -> str:
    """The catalog as warehouse views (VALUES lists: the same DDL runs on DuckDB and, transpiled, on Spark)."""
    catalog = catalog or load_catalog()

    def view(name: str, columns: str, rows: list[str]) -> str:
        return f"CREATE OR REPLACE VIEW {name} AS\nSELECT * FROM (VALUES\n    " + ",\n    ".join(rows) + \
               f"\n) AS t({columns});\n"

    services = catalog.services.values()
    return "-- The catalog (billing_pipeline/catalog.json), generated by catalog.py: edit the JSON, not these.\n" + "".join([
        view("driver_rules", "service, usage_type_pattern, rule_order, driver, driver_order",
             [f"({_text(s)}, {_text(p)}, {o}, {_text(d)}, {i})" for s, p, o, d, i in catalog.driver_rule_rows()]),
        view("fact_scopes", "service, resource_id_pattern",
             [f"({_text(s.name)}, {_text(s.scope_from_resource_id)})" for s in services if s.scope_from_resource_id]
             or ["(CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR))"]),
        view("scope_names", "service, name_order, scope, usage_type_pattern, product_name_pattern, evidence_pattern",
             [f"({_text(s.name)}, {i}, {_text(n.scope)}, {_text(n.usage_type)}, {_text(n.product_name)}, "
              f"{_text(n.evidence)})" for s in services for i, n in enumerate(s.scope_names, 1)]
             or ["(CAST(NULL AS VARCHAR), 0, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), "
                 "CAST(NULL AS VARCHAR))"]),
        view("service_resource_types", "service, resource_type",
             [f"({_text(s.name)}, {_text(s.resource_type)})" for s in services]),
        view("network_usage_types", "pattern",
             [f"({_text(p)})" for p in catalog.network_usage_types] or ["(CAST(NULL AS VARCHAR))"]),
        view("compute_services", "service",
             [f"({_text(s)})" for s in catalog.compute_services] or ["(CAST(NULL AS VARCHAR))"]),
        view("driver_units", "service, driver, unit, unit_price, units_per_billed_unit",
             [f"({_text(s.name)}, {_text(d)}, {_text(v.unit)}, CAST({_text(format(v.unit_price, 'f'))} AS DECIMAL(38, 10)), "
              f"CAST({v.units_per_billed_unit} AS DECIMAL(18, 0)))" for s in services for d, v in s.drivers.items()]),
    ])


def parse_catalog(text: str, source: str = "catalog.json") -> Catalog:
    """Parse and validate the catalog; a bad one is an error naming the file and the problem."""
    try:
        document = json.loads(text)
        tag_keys = {role: str(key) for role, key in document["tag_keys"].items()}
        missing = [role for role in TAG_ROLES if role not in tag_keys]
        if missing:
            raise KeyError(f"tag_keys lacks {', '.join(missing)}")
        network = document.get("network", {})
        network_usage_types = tuple(str(p) for p in network.get("usage_types", []))
        compute_services = tuple(str(s) for s in network.get("compute_services", []))
        services = {}
        for name, spec in document["services"].items():
            drivers = {d: Driver(str(v["unit"]), Decimal(str(v["unit_price"])), int(v.get("units_per_billed_unit", 1)))
                       for d, v in spec["drivers"].items()}
            rules = tuple((tuple(r["contains"]), tuple(r["drivers"])) for r in spec.get("usage_types", []))
            names = tuple(ScopeName(n["scope"], n["usage_type"], n.get("product_name"), n["evidence"])
                          for n in spec.get("scope_names", []))
            marketplace = spec.get("marketplace")
            if marketplace is not None:
                marketplace = {k: str(marketplace[k]) for k in ("billing_entity", "usage_type_contains")}
            classes = {str(k).upper(): str(v) for k, v in spec["storage_classes"].items()} \
                if "storage_classes" in spec else None
            services[name] = Service(name, str(spec["resource_type"]), drivers, rules,
                                     tuple(spec.get("otherwise", [])), spec.get("scope_from_resource_id"),
                                     names, marketplace, classes, tuple(spec.get("product_codes", [])))
    except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise ValueError(f"{source}: not a valid catalog ({type(error).__name__}: {error})") from error
    problems = []
    for s in services.values():
        named = [d for _, drivers in s.rules for d in drivers] + list(s.otherwise) + list((s.storage_classes or {}).values())
        problems += [f"{s.name}: rule names unknown driver {d!r}" for d in named
                     if d not in s.drivers and d != COMBINED]
        problems += [f"{s.name}/{d}: negative unit price" for d, v in s.drivers.items() if v.unit_price < 0]
        problems += [f"{s.name}: empty usage type pattern (use `otherwise`)" for p, _ in s.rules if "" in p]
        if s.scope_from_resource_id is not None:
            try:
                if re.compile(s.scope_from_resource_id).groups < 1 or "\\" in s.scope_from_resource_id:
                    raise re.error("needs one group and no backslash (the same text must work on Spark)")
            except re.error as error:
                problems.append(f"{s.name}: scope_from_resource_id {s.scope_from_resource_id!r}: {error}")
        # an empty or non-text name would be contained in every usage type or modelId: every line one model's
        problems += [f"{s.name}: scope_names entry {n.scope!r}: {field} must be non-empty text"
                     for n in s.scope_names for field, value in (("scope", n.scope), ("usage_type", n.usage_type),
                                                                 ("evidence", n.evidence), ("product_name", n.product_name))
                     if not (isinstance(value, str) and value.strip()) and not (field == "product_name" and value is None)]
        scopes = [n.scope for n in s.scope_names if isinstance(n.scope, str)]
        problems += [f"{s.name}: scope {scope!r} named twice in scope_names" for scope in dict.fromkeys(scopes)
                     if scopes.count(scope) > 1]
    aliases = [c for s in services.values() for c in s.product_codes]
    problems += [f"product code {c!r}: letters and digits only" for c in aliases
                 if not isinstance(c, str) or not re.fullmatch(r"[A-Za-z0-9]+", c)]
    problems += [f"product code {c!r} is a service of its own or named twice" for c in dict.fromkeys(aliases)
                 if c in services or aliases.count(c) > 1]
    if sum(1 for s in services.values() if s.marketplace) > 1:
        problems.append("more than one service has `marketplace`")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))
    if "" in network_usage_types:
        raise ValueError(f"{source}: empty network usage type pattern")
    return Catalog(services, tag_keys, network_usage_types, compute_services)


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The packaged catalog, read once per process."""
    text = package_files.files("billing_pipeline").joinpath("catalog.json").read_text(encoding="utf-8")
    return parse_catalog(text, "billing_pipeline/catalog.json")
