"""The oracle: docs/attribution-rules.md implemented a second time, in plain Python with exact integers/Fractions.

It deliberately imports nothing else from billing_pipeline (it reads the catalog, catalog.json, as data), so
that it is an independent check of the SQL implementation (`billing_pipeline/assets/cost_allocations.sql`). It
works on line items and usage evidence as plain Python values (the sample-data generator hands over exactly what
it wrote to the CUR and the logs).

Money is counted in integer units of 1e-10 (DECIMAL(38,10)); driver quantities are Fractions, so no step rounds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Mapping

UNITS_PER_DOLLAR = 10**10  # DECIMAL(38, 10)
UNATTRIBUTED = "unattributed"
HOUR = dt.timedelta(hours=1)

COMBINED = "combined"
OTHERWISE = ("",)  # the substring every usage type contains: a service's `otherwise` rule

# The catalog is data, read here with json alone (not through billing_pipeline.catalog): the rules that use it are
# implemented independently below.
CATALOG_DOCUMENT = json.loads((Path(__file__).with_name("catalog.json")).read_text())
CATALOG = CATALOG_DOCUMENT["services"]
# Untagged NAT gateway / data transfer lines are split by the tenants' compute cost (or left unattributed).
NETWORK_USAGE_TYPES = tuple(CATALOG_DOCUMENT.get("network", {}).get("usage_types", []))
COMPUTE_SERVICES = tuple(CATALOG_DOCUMENT.get("network", {}).get("compute_services", []))
NETWORK, COMPUTE_COST = "*network", "compute_cost"


def is_network(usage_type: str) -> bool:
    return any(pattern in usage_type for pattern in NETWORK_USAGE_TYPES)

# (service, substrings of usage_type, drivers in order of preference); first matching row wins.
DRIVER_RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (service, tuple(rule["contains"]), tuple(rule["drivers"]))
    for service, spec in CATALOG.items() for rule in spec.get("usage_types", [])
] + [(service, OTHERWISE, tuple(spec["otherwise"])) for service, spec in CATALOG.items() if spec.get("otherwise")]

RESOURCE_TYPES = {service: spec["resource_type"] for service, spec in CATALOG.items()}
SCOPE_PATTERNS = {service: spec["scope_from_resource_id"] for service, spec in CATALOG.items()
                  if spec.get("scope_from_resource_id")}


RESERVED_TENANT_IDS = ("unattributed", "total")


def tenant_id(value: object) -> str | None:
    """A tag's or log line's tenant: a string trimmed of spaces; missing or empty -> None (untagged); a non-string,
    a reserved word (any case) or a control character -> 'unattributed' (never a tenant)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return UNATTRIBUTED
    trimmed = value.strip(" ")
    if not trimmed:
        return None
    if trimmed.lower() in RESERVED_TENANT_IDS or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return UNATTRIBUTED
    return trimmed


def resource_type(service: str) -> str:
    return RESOURCE_TYPES.get(service, "other")


def drivers_for(service: str, usage_type: str) -> tuple[str, ...]:
    """The drivers (in order of preference) that split a shared line; ('combined',) or () for none."""
    for rule_service, needles, drivers in DRIVER_RULES:
        if rule_service == service and any(n in usage_type for n in needles):
            return drivers
    return ()


# (scope, usage type substring, product name substring, evidence substring) per service, first match wins
SCOPE_NAMES = {service: [(n["scope"], n["usage_type"], n.get("product_name"), n["evidence"])
                         for n in spec.get("scope_names", [])] for service, spec in CATALOG.items()}


# What may follow a model's name in a modelId: the end, ':', a version (`-v1`, `-1:0`) or a date (`-20250514`)
MODEL_ID_FOLLOWS = r"(:|-v[0-9]|-[0-9]+:|-[0-9]{8}|$)"
# The scope of a model the catalog does not name: its token lines and its modelIds (never a catalog model's users)
UNNAMED_MODEL = "(unnamed model)"
# The scope of an application inference profile's tokens: its ARN names no model, and no fact has this scope
APPLICATION_PROFILE = "(application inference profile)"


def fact_scope(service: str, resource_id: str, usage_type: str = "") -> str:
    """The scope a line item's usage counts for: the model its usage type names (Bedrock; a Marketplace line's
    usage type carries the product name), else for a model's tokens (a driver rule matches) UNNAMED_MODEL, else
    group 1 of the service's pattern in the resource id (the Lambda function, the DynamoDB table, the S3 bucket);
    '' when none names one."""
    # a bedrock-mantle usage type names the model by its modelId: `USE1-openai.gpt-oss-120b-mantle-input-tokens-...`
    mantle_model = usage_type.split("-mantle-")[0] if "-mantle-" in usage_type else None
    for scope, in_usage_type, in_product, in_evidence in SCOPE_NAMES.get(service, []):
        if names_whole(usage_type, in_usage_type, r"[A-Za-z0-9.]", False) \
                or (in_product is not None and names_whole(usage_type, in_product, r"[A-Za-z0-9.]", False)) \
                or (mantle_model is not None and names_whole(mantle_model, in_evidence, MODEL_ID_FOLLOWS, True)):
            return scope
    if SCOPE_NAMES.get(service) and any(s == service and needles != OTHERWISE and any(n in usage_type for n in needles)
                                        for s, needles, _ in DRIVER_RULES):
        return UNNAMED_MODEL
    match = re.search(SCOPE_PATTERNS[service], resource_id) if service in SCOPE_PATTERNS else None
    return (match.group(1) or "") if match else ""


def evidence_scope(service: str, scope: str) -> str:
    """The evidence's scope under the facts' name for it: a Bedrock modelId names its model, else UNNAMED_MODEL;
    else (no modelId, another service) itself."""
    if not SCOPE_NAMES.get(service) or scope == "":
        return scope
    if ":application-inference-profile/" in scope:
        return APPLICATION_PROFILE
    return next((name for name, _, _, in_evidence in SCOPE_NAMES[service]
                 if names_whole(scope, in_evidence, MODEL_ID_FOLLOWS, True)), UNNAMED_MODEL)


def names_whole(text: str, name: str, after: str, must: bool) -> bool:
    """`name` occurs in `text` (first occurrence) and what follows it matches `after` (`must`) or does not: a model
    name that another model's name continues (`Claude3Haiku2`, `claude-sonnet-4-5-...`) is not its name."""
    at = text.find(name)
    return at >= 0 and bool(re.match(after, text[at + len(name):])) == must


@dataclass(frozen=True)
class LineItem:
    usage_start: dt.datetime  # UTC, naive or aware (compared consistently)
    usage_end: dt.datetime
    usage_account_id: str
    line_item_type: str
    service: str
    usage_type: str
    operation: str
    resource_id: str
    accountant_id: str
    application: str
    environment: str
    cost_center: str
    currency: str
    cost_units: int  # unblended cost in 1e-10
    usage_amount: Decimal = Decimal(0)  # as the CUR reader keeps it: DECIMAL(38, 10)


@dataclass(frozen=True)
class Evidence:
    hour: dt.datetime  # the usage hour (timestamp truncated to the hour)
    service: str
    driver: str
    scope: str
    accountant_id: str  # 'unattributed' for usage with no known owner
    quantity: Fraction


@dataclass(frozen=True)
class Allocation:
    usage_hour: dt.datetime
    accountant_id: str
    service: str
    usage_type: str
    line_item_type: str
    resource_id: str
    allocation: str  # direct | shared_hour | shared_day | shared_month | unattributed
    driver: str | None
    cost_units: int
    fact: int = -1  # which fact (index in the oracle's fact order) the row belongs to

    @property
    def usage_date(self) -> dt.date:
        return self.usage_hour.date()

    @property
    def cost(self) -> Decimal:
        return units_to_decimal(self.cost_units)


def units_to_decimal(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_DOLLAR).quantize(Decimal("0.0000000001"))


def decimal_to_units(value: Decimal | str) -> int:
    scaled = Decimal(value) * UNITS_PER_DOLLAR
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 10 decimals")
    return int(scaled)


# ---------------------------------------------------------------------------------------------------------------
# The exact split


def largest_remainder_split(units: int, weights: Mapping[str, Fraction | int]) -> dict[str, int]:
    """Split `units` (an integer count of 1e-10) in proportion to `weights`, exactly.

    Each tenant gets floor(|C| w / W); the units left go one each to the largest remainders (|C| w mod W),
    ties by accountant_id ascending; the sign of C is restored. Tenants with weight 0 are left out.
    """
    positive = {k: Fraction(w) for k, w in weights.items() if w > 0}
    total = sum(positive.values(), Fraction(0))
    if total <= 0:
        raise ValueError("no positive weight to split by")
    magnitude = abs(units)
    sign = -1 if units < 0 else 1
    shares: dict[str, int] = {}
    remainders: dict[str, Fraction] = {}
    for tenant, weight in positive.items():
        exact = magnitude * weight / total
        shares[tenant] = math.floor(exact)
        remainders[tenant] = exact - shares[tenant]
    left = magnitude - sum(shares.values())
    for tenant in sorted(remainders, key=lambda t: (-remainders[t], t))[:left]:
        shares[tenant] += 1
    return {tenant: sign * share for tenant, share in shares.items()}


# ---------------------------------------------------------------------------------------------------------------
# Evidence, summed by hour / day / month


class EvidenceIndex:
    """Evidence quantities per (service, driver, scope) and window, per tenant."""

    def __init__(self, evidence: Iterable[Evidence]):
        self.by_hour: dict[tuple, dict[dt.datetime, dict[str, Fraction]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(Fraction))
        )
        for e in evidence:
            if e.quantity:
                key = (e.service, e.driver, evidence_scope(e.service, e.scope))
                self.by_hour[key][e.hour][e.accountant_id] += Fraction(e.quantity)
        self.by_day: dict[tuple, dict[dt.date, dict[str, Fraction]]] = {}
        self.by_month: dict[tuple, dict[str, Fraction]] = {}
        for key, hours in self.by_hour.items():
            days: dict = defaultdict(lambda: defaultdict(Fraction))
            month: dict = defaultdict(Fraction)
            for hour, tenants in hours.items():
                for tenant, q in tenants.items():
                    days[hour.date()][tenant] += q
                    month[tenant] += q
            self.by_day[key] = days
            self.by_month[key] = month

    def has(self, service: str, driver: str, scope: str | None = None) -> bool:
        """Any evidence in the month for (service, driver[, scope])."""
        return any(
            k[0] == service and k[1] == driver and (scope is None or k[2] == scope)
            and any(q > 0 for q in self.by_month[k].values())
            for k in self.by_month
        )

    def keys(self, service: str, driver: str, scope: str | None) -> list[tuple]:
        return [k for k in self.by_month if k[0] == service and k[1] == driver and (scope is None or k[2] == scope)]

    def weights(self, keys: list[tuple], window: str, hour: dt.datetime, factor: Mapping[tuple, Fraction]):
        """Tenant weights in the window (hour / day / month) around `hour`, summed over `keys` x factor."""
        out: dict[str, Fraction] = defaultdict(Fraction)
        for key in keys:
            if window == "hour":
                tenants = self.by_hour[key].get(hour, {})
            elif window == "day":
                tenants = self.by_day[key].get(hour.date(), {})
            else:
                tenants = self.by_month[key]
            for tenant, q in tenants.items():
                out[tenant] += q * factor[key]
        return out


# ---------------------------------------------------------------------------------------------------------------
# Facts and their allocation


def _hour_floor(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def span_hours(start: dt.datetime, end: dt.datetime) -> int:
    return max(1, math.ceil((end - start) / HOUR))


def build_facts(line_items: Iterable[LineItem], application: str) -> tuple[dict[tuple, int], int, int]:
    """Sum in-scope line items into hourly cost facts; return (facts, in_scope_units, out_of_scope_units)."""
    facts: dict[tuple, int] = defaultdict(int)
    in_scope = out_of_scope = 0
    for li in line_items:
        if li.application != application:
            out_of_scope += li.cost_units
            continue
        in_scope += li.cost_units
        key = (
            _hour_floor(li.usage_start), span_hours(li.usage_start, li.usage_end), li.usage_account_id,
            li.line_item_type, li.service, li.usage_type, li.operation, li.resource_id, tenant_id(li.accountant_id),
            li.application, li.environment, li.cost_center, li.currency,
        )
        facts[key] += li.cost_units
    return facts, in_scope, out_of_scope


def attribute(
    line_items: Iterable[LineItem],
    evidence: Iterable[Evidence],
    prices: Mapping[str, Mapping[str, Decimal | str]],
    application: str = "tax-demo",
    network_policy: str = "proportional",
) -> tuple[list[Allocation], int, int]:
    """Allocate every in-scope fact; return (allocations, in_scope_units, out_of_scope_units)."""
    facts, in_scope, out_of_scope = build_facts(line_items, application)
    index = EvidenceIndex(evidence)
    allocations: list[Allocation] = []
    ordered = sorted(facts.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
    network_facts = []

    def emitter(fact_no: int, key: tuple):
        hour, _span, _acct, li_type, service, usage_type, _op, resource_id = key[:8]

        def emit(tenant: str, units: int, allocation: str, driver: str | None) -> None:
            allocations.append(
                Allocation(hour, tenant, service, usage_type, li_type, resource_id, allocation, driver, units, fact_no)
            )
        return emit

    def split(emit, index: EvidenceIndex, keys: list, factor, hour, span, cost_units, driver_name) -> None:
        windows = ["hour", "day", "month"]  # 4. window
        if span > 24:
            windows = ["month"]
        elif span > 1:
            windows = ["day", "month"]
        for window in windows:
            weights = {t: w for t, w in index.weights(keys, window, hour, factor).items() if w > 0}
            if sum(weights.values(), Fraction(0)) > 0:
                for tenant, units in sorted(largest_remainder_split(cost_units, weights).items()):  # 5. split
                    emit(tenant, units, f"shared_{window}", driver_name)
                return
        emit(UNATTRIBUTED, cost_units, "unattributed", driver_name)

    for fact_no, (key, cost_units) in enumerate(ordered):
        hour, span, _acct, li_type, service, usage_type, _op, resource_id, accountant_id = key[:9]
        accountant_id = accountant_id or ""
        emit = emitter(fact_no, key)

        if accountant_id == UNATTRIBUTED:  # a tag that is never a tenant
            emit(UNATTRIBUTED, cost_units, "unattributed", None)
            continue
        if accountant_id:  # 1. direct
            emit(accountant_id, cost_units, "direct", None)
            continue
        if is_network(usage_type):  # NAT gateway / data transfer: after the compute cost is known
            network_facts.append((fact_no, key, cost_units))
            continue
        preferences = drivers_for(service, usage_type)  # 2. shared: which driver
        if preferences == (COMBINED,):
            drivers = [d for d in prices.get(service, {}) if index.has(service, d)]
            driver_name = COMBINED
        else:
            chosen = next((d for d in preferences if index.has(service, d)), None)
            drivers = [chosen] if chosen else []
            driver_name = chosen
        if not drivers:
            emit(UNATTRIBUTED, cost_units, "unattributed", None)
            continue
        scope = fact_scope(service, resource_id, usage_type)  # 3. scope
        scoped = scope != "" and any(index.has(service, d, scope) for d in drivers)
        keys = [k for d in drivers for k in index.keys(service, d, scope if scoped else None)]
        if driver_name == COMBINED:
            factor = {k: Fraction(Decimal(str(prices[service][k[1]]))) for k in keys}
        else:
            factor = {k: Fraction(1) for k in keys}
        split(emit, index, keys, factor, hour, span, cost_units, driver_name)

    # The network facts, by each tenant's compute cost of the hour / day / month as allocated above (their own
    # network lines excluded), in units of 1e-10, of the fact's own currency (the evidence's scope); or unattributed.
    compute = [Evidence(a.usage_hour, NETWORK, COMPUTE_COST, ordered[a.fact][0][12], a.accountant_id,
                        Fraction(a.cost_units))
               for a in allocations if a.service in COMPUTE_SERVICES and not is_network(a.usage_type)]
    network_index = EvidenceIndex(compute if network_policy == "proportional" else [])
    for fact_no, key, cost_units in network_facts:
        emit = emitter(fact_no, key)
        currency = key[12]
        if not network_index.has(NETWORK, COMPUTE_COST, currency):
            emit(UNATTRIBUTED, cost_units, "unattributed", None)
            continue
        keys = network_index.keys(NETWORK, COMPUTE_COST, currency)
        split(emit, network_index, keys, {k: Fraction(1) for k in keys}, key[0], key[1], cost_units, COMPUTE_COST)
    return allocations, in_scope, out_of_scope


def summarize(allocations: Iterable[Allocation]):
    """(by tenant x service, by tenant x service x date, by tenant x resource type, facts per allocation kind)."""
    monthly: dict[tuple[str, str], int] = defaultdict(int)
    daily: dict[tuple[str, str, dt.date], int] = defaultdict(int)
    by_type: dict[tuple[str, str], int] = defaultdict(int)
    kinds: dict[str, set] = defaultdict(set)
    for a in allocations:
        monthly[(a.accountant_id, a.service)] += a.cost_units
        daily[(a.accountant_id, a.service, a.usage_date)] += a.cost_units
        by_type[(a.accountant_id, resource_type(a.service))] += a.cost_units
        kinds[a.allocation].add(a.fact)
    return monthly, daily, by_type, {k: len(v) for k, v in sorted(kinds.items())}


# ---------------------------------------------------------------------------------------------------------------
# Reconciliation (docs/attribution-rules.md, "Reconciliation")


def reconcile(
    estimated: Decimal, actual: Decimal, threshold_pct: Decimal = Decimal(10)
) -> tuple[Decimal, Decimal, bool]:
    """(variance, variance_pct to 1e-4 half away from zero, flagged) as the seed defines them: variance = actual -
    estimated, variance_pct = variance / actual x 100 and 0 when actual is not positive; flagged when |variance_pct|
    exceeds the threshold, when cost arrived that nothing estimated, or when an estimate found no cost."""
    variance = actual - estimated
    if actual > 0:
        exact = Fraction(variance) * 100 / Fraction(actual)
        pct = Decimal(abs(exact.numerator) * 10**4 * 2 + abs(exact.denominator)) // (2 * exact.denominator)
        pct = (pct if exact >= 0 else -pct) / Decimal(10**4)
    else:
        pct = Decimal(0)
    if estimated == 0:
        flagged = actual != 0
    elif actual <= 0:
        flagged = True
    else:
        flagged = abs(variance) * 100 > threshold_pct * actual
    return variance, pct.quantize(Decimal("0.0001")), flagged


# ---------------------------------------------------------------------------------------------------------------
# Account-level lines (docs/attribution-rules.md, "Account-level lines")

ACCOUNT_LEVEL_TYPES = ("Tax", "Credit", "Refund", "EdpDiscount", "PrivateRateDiscount", "BundledDiscount",
                       "SppDiscount", "DistributorDiscount", "RiVolumeDiscount", "Adjustment")
ALL_PRODUCTS = "*"


def is_account_level(li: LineItem) -> bool:
    """Untagged (no application) tax, credit, refund, discount, or a fee without a resource id."""
    return not li.application and is_account_level_type(li.line_item_type, li.resource_id)


def is_account_level_type(line_item_type: str, resource_id: str | None) -> bool:
    """Tax, credit, refund, FOCUS adjustment, any discount (`...Discount`), or a fee without a resource id (the
    generator makes no reservation, so no reservation's upfront fee, which account_level_lines.sql leaves out)."""
    return (line_item_type in ACCOUNT_LEVEL_TYPES or line_item_type.endswith("Discount")
            or (line_item_type == "Fee" and not resource_id))


def _half_away(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (denominator > 0)."""
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


def attribute_account_level(
    line_items: Iterable[LineItem],
    allocations: Iterable[Allocation],
    application: str = "tax-demo",
    policies: Mapping[str, str] | None = None,
    other_bill_units: Mapping[tuple[str, str], int] | None = None,
) -> tuple[list[Allocation], int, int]:
    """The tenants' parts of the proportional account-level lines among `line_items`; returns (allocations,
    units apportioned to the application, units kept by the company). `allocations` are attribute()'s;
    `other_bill_units` adds (product code, currency) -> cost of bill lines not passed as items (the sample hands
    over its untagged, non-account-level lines as sums)."""
    policies = policies or {}
    items = list(line_items)
    app: dict[tuple[str, str], int] = defaultdict(int)
    bill: dict[tuple[str, str], int] = defaultdict(int)
    for (product, currency), units in (other_bill_units or {}).items():
        bill[(product, currency)] += units
        bill[(ALL_PRODUCTS, currency)] += units
    for li in items:
        if is_account_level(li):
            continue
        for product in (li.service or "", ALL_PRODUCTS):
            bill[(product, li.currency)] += li.cost_units
            if li.application == application:
                app[(product, li.currency)] += li.cost_units
    tenants: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    currencies = {li.currency for li in items}
    currency = next(iter(currencies)) if len(currencies) == 1 else None  # Allocation has no currency: one only
    for a in allocations:
        for product in (a.service or "", ALL_PRODUCTS):
            tenants[(product, currency)][a.accountant_id] += a.cost_units
    # account-level lines summed to their hourly cost fact (as build_facts keys them), each fact apportioned once
    facts: dict[tuple, LineItem] = {}
    for li in items:
        if is_account_level(li):
            key = (_hour_floor(li.usage_start), span_hours(li.usage_start, li.usage_end), li.usage_account_id,
                   li.line_item_type, li.service, li.usage_type, li.operation, li.resource_id, li.currency)
            fact = facts.get(key)
            facts[key] = li if fact is None else LineItem(**{**fact.__dict__,
                                                             "cost_units": fact.cost_units + li.cost_units})
    out: list[Allocation] = []
    apportioned = kept = 0
    for li in facts.values():
        if not li.cost_units:
            continue
        policy = policies.get(li.line_item_type, "proportional")
        if policy == "company":
            kept += li.cost_units
            continue
        product = li.service or ALL_PRODUCTS
        n, d = app[(product, li.currency)], bill[(product, li.currency)]
        if n <= 0 or d <= 0:
            continue
        part = _half_away(li.cost_units * min(n, d), d)
        apportioned += part
        weights = {t: w for t, w in tenants[(product, li.currency)].items() if w > 0}
        for tenant, units in sorted(largest_remainder_split(part, weights).items()):
            out.append(Allocation(_hour_floor(li.usage_start), tenant, li.service, li.usage_type, li.line_item_type,
                                  li.resource_id, "proportional", None, units))
    return out, apportioned, kept


# ---------------------------------------------------------------------------------------------------------------
# Pricing feedback (docs/attribution-rules.md, "Pricing feedback")

USAGE_LINE_TYPES = ("Usage", "SavingsPlanCoveredUsage", "DiscountedUsage")


def bill_quantities(
    line_items: Iterable[LineItem], application: str = "tax-demo"
) -> dict[tuple[str, str], tuple[Decimal, int]]:
    """(service, driver) -> (CUR usage amount, cost units) of the in-scope lines that carry usage and whose usage
    type's first rule prefers that driver (so the amount is in the driver's unit); 'combined' never."""
    out: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for li in line_items:
        if li.application != application or li.line_item_type not in USAGE_LINE_TYPES:
            continue
        drivers = drivers_for(li.service, li.usage_type)
        if not drivers or drivers[0] == COMBINED:
            continue
        quantity, units = out.get((li.service, drivers[0]), (Decimal(0), 0))
        per_billed_unit = CATALOG[li.service]["drivers"][drivers[0]].get("units_per_billed_unit", 1)
        out[(li.service, drivers[0])] = (quantity + li.usage_amount * per_billed_unit, units + li.cost_units)
    return out


def implied_unit_cost(cost_units: int, quantity: Decimal) -> Decimal | None:
    """cost / quantity rounded half away from zero to 1e-18."""
    if quantity <= 0:
        return None
    exact = Fraction(cost_units, UNITS_PER_DOLLAR) / Fraction(quantity)
    return Decimal(_half_away(exact.numerator * 10**18, exact.denominator)) / Decimal(10**18)
