"""The price list: what a tenant is charged for its attributed AWS cost, kept apart from the cost itself.

One JSON file (`BILLING_PRICE_LIST`, default: `price_list.json` in this package):

    {
      "currency": "usd",                         # what tenants are charged in (must be the cost's currency)
      "platform_plan": {"product_id": ..., "plan_id": ..., "name": ..., "amount_cents": 0},
      "minimum_monthly_fee": "5.00",             # a tenant-month below it is topped up (line `minimum_fee`)
      "resource_types": {                        # lambda, dynamodb, s3, agentcore, bedrock, other
        "lambda": {"markup_pct": "30", "unit_prices": {"LambdaRequests": "0.0000005"}}
      },
      "overrides": {"<accountant_id>": {"minimum_monthly_fee": "0", "resource_types": {"s3": {"markup_pct": "0"}}}}
    }

Per tenant-month and resource type the charge is, exactly (Decimal):

    attributed cost x (1 + markup_pct / 100) + sum over operations of unit price x metered quantity

where the metered quantity is the tenant's quantity of that operation in the application's usage table
(`estimated_usage`; `"*"` prices every operation of the resource type that is not named). An override's unit prices
replace the inherited ones per operation, and its `"*"` replaces all of them. When the tenant-month's charges add up to less
than the minimum monthly fee, a `minimum_fee` line makes up the difference (to zero when the tenant did not use the
platform in the month: only credits). The lines are then rounded to cents by
largest remainder (money.py), so they add up to the tenant-month's total rounded to cents. In Stripe's amounts: the
currency's smallest unit (money.stripe_units: cents; whole yen for zero-decimal currencies, lines rounded to whole
yen; fils in tens for three-decimal ones).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Mapping

from billing_pipeline.catalog import load_catalog
from billing_pipeline.money import largest_remainder_cents, stripe_units

RESOURCE_TYPES = load_catalog().resource_types()  # lambda, dynamodb, s3, agentcore, bedrock, other
MINIMUM_FEE = "minimum_fee"
LINE_ORDER = (*RESOURCE_TYPES, MINIMUM_FEE)


@dataclass(frozen=True)
class PlatformPlan:
    product_id: str
    plan_id: str
    name: str
    amount_cents: int


@dataclass(frozen=True)
class ResourcePrice:
    markup_pct: Decimal = Decimal(0)
    unit_prices: Mapping[str, Decimal] = field(default_factory=dict)  # operation (or '*') -> price per unit


@dataclass(frozen=True)
class Terms:
    """What one tenant pays: the default terms with its overrides applied."""

    minimum_monthly_fee: Decimal
    resource_prices: Mapping[str, ResourcePrice]


@dataclass(frozen=True)
class ChargeLine:
    accountant_id: str
    resource_type: str  # one of RESOURCE_TYPES, or MINIMUM_FEE
    currency: str  # lower case, as Stripe writes it
    attributed_cost: Decimal  # the tenant's exact AWS cost of the resource type (0 for the minimum fee)
    quantity: Decimal  # metered units that unit prices applied to (0 when priced by markup only)
    amount: Decimal  # exact charge
    amount_cents: int  # the charge as Stripe's integer amount (cents; yen for JPY), largest remainder per tenant-month


@dataclass(frozen=True)
class PriceList:
    currency: str
    plan: PlatformPlan
    default: Terms
    overrides: Mapping[str, Terms]

    def terms_for(self, accountant_id: str) -> Terms:
        return self.overrides.get(accountant_id, self.default)

    def terms_digest(self, accountant_id: str) -> str:
        """A fingerprint of what one tenant pays (currency, minimum fee, markups, unit prices; equal numbers however
        written), recorded on its Stripe items: a month is re-charged only at the terms it was charged under."""
        terms = self.terms_for(accountant_id)
        # a resource type priced at nothing counts as absent: one the catalog gains later changes no one's terms
        prices = {resource_type: [str(price.markup_pct.normalize()),
                                  {operation: str(unit.normalize()) for operation, unit in price.unit_prices.items()}]
                  for resource_type, price in terms.resource_prices.items() if price != ResourcePrice()}
        canonical = json.dumps([self.currency, str(terms.minimum_monthly_fee.normalize()), prices], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def priced_quantities(self, accountant_id: str, quantities: Mapping[tuple[str, str], Decimal]
                          ) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
        """The tenant's metered quantities that a unit price applies to, as (resource type, operation, quantity,
        unit price, unit price x quantity), exactly: what `tenant_charges` adds to each line."""
        terms = self.terms_for(accountant_id)
        priced = []
        with localcontext() as ctx:
            ctx.prec = 60
            for (resource_type, operation), quantity in quantities.items():
                unit_prices = terms.resource_prices.get(resource_type, ResourcePrice()).unit_prices
                unit_price = unit_prices.get(operation, unit_prices.get("*"))
                if unit_price is not None:
                    priced.append((resource_type, operation, quantity, unit_price, unit_price * quantity))
        return priced

    def tenant_charges(
        self,
        accountant_id: str,
        costs: Mapping[str, Decimal],
        quantities: Mapping[tuple[str, str], Decimal] | None = None,
        used: bool | None = None,
    ) -> list[ChargeLine]:
        """One tenant-month's charge lines: `costs` is resource type -> attributed cost, `quantities` is
        (resource type, operation) -> metered quantity, `used` whether the tenant used the platform in the month
        (some positive cost before credits, or metered quantity; default: a positive cost or quantity here). Lines
        whose exact amount is zero are left out."""
        terms = self.terms_for(accountant_id)
        quantities = quantities or {}
        if used is None:
            used = any(cost > 0 for cost in costs.values()) or any(q > 0 for q in quantities.values())
        # the minimum is for a month the tenant used the platform: a month of nothing but credits (AWS refunding,
        # after the tenant left, what it was charged for) is capped at zero, since a credit must never raise what
        # a tenant pays (with no credit at all it pays nothing)
        minimum = terms.minimum_monthly_fee if used else Decimal(0)
        unknown = sorted(set(costs) - set(RESOURCE_TYPES))
        if unknown:
            raise ValueError(f"resource types not in the price list's vocabulary: {', '.join(unknown)}")
        lines: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        priced_quantities = self.priced_quantities(accountant_id, quantities)
        with localcontext() as ctx:
            ctx.prec = 60
            for resource_type in RESOURCE_TYPES:
                cost = costs.get(resource_type, Decimal(0))
                price = terms.resource_prices.get(resource_type, ResourcePrice())
                amount = cost * (1 + price.markup_pct / 100)
                metered = Decimal(0)
                for rtype, _, quantity, _, priced in priced_quantities:
                    if rtype == resource_type:
                        amount += priced
                        metered += quantity
                if amount != 0 or cost != 0:
                    lines[resource_type] = (cost, metered, amount)
            total = sum((amount for _, _, amount in lines.values()), Decimal(0))
            if total < minimum:
                lines[MINIMUM_FEE] = (Decimal(0), Decimal(0), minimum - total)
            step, per_unit = stripe_units(self.currency)  # Stripe counts yen, not hundredths of a yen
            rounded = largest_remainder_cents({key: amount for key, (_, _, amount) in lines.items()}, step)
        return [
            ChargeLine(accountant_id, key, self.currency, cost, metered, amount, int(rounded[key] * per_unit))
            for key in LINE_ORDER
            if key in lines
            for cost, metered, amount in [lines[key]]
        ]


def _decimal(value, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError(f"{where}: not a number ({value!r})") from error
    if not number.is_finite():
        raise ValueError(f"{where}: not a finite number ({value!r})")
    return number


def _resource_price(spec: dict, base: ResourcePrice, where: str) -> ResourcePrice:
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected an object")
    extra = set(spec) - {"markup_pct", "unit_prices"}
    if extra:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(extra))}")
    markup = _decimal(spec["markup_pct"], f"{where}.markup_pct") if "markup_pct" in spec else base.markup_pct
    if markup < -100:
        raise ValueError(f"{where}.markup_pct: below -100")
    given = spec.get("unit_prices") or {}
    # an override's "*" prices every operation of the resource type: the inherited named prices (which a named
    # price beats "*" over) would otherwise keep charging the default terms for them
    unit_prices = {} if "*" in given else dict(base.unit_prices)
    for operation, price in given.items():
        unit_prices[str(operation)] = _decimal(price, f"{where}.unit_prices.{operation}")
        if unit_prices[str(operation)] < 0:
            raise ValueError(f"{where}.unit_prices.{operation}: negative")
    return ResourcePrice(markup, unit_prices)


def _terms(document: dict, base: Terms | None, where: str) -> Terms:
    resource_specs = document.get("resource_types") or {}
    unknown = sorted(set(resource_specs) - set(RESOURCE_TYPES))
    if unknown:
        raise ValueError(f"{where}.resource_types: unknown resource types {', '.join(unknown)} "
                         f"(expected {', '.join(RESOURCE_TYPES)})")
    prices = {}
    for resource_type in RESOURCE_TYPES:
        inherited = base.resource_prices[resource_type] if base else ResourcePrice()
        spec = resource_specs.get(resource_type)
        prices[resource_type] = (_resource_price(spec, inherited, f"{where}.resource_types.{resource_type}")
                                 if spec is not None else inherited)
    if "minimum_monthly_fee" in document:
        minimum = _decimal(document["minimum_monthly_fee"], f"{where}.minimum_monthly_fee")
    else:
        minimum = base.minimum_monthly_fee if base else Decimal(0)
    if minimum < 0:
        raise ValueError(f"{where}.minimum_monthly_fee: negative")
    return Terms(minimum, prices)


def parse_price_list(text: str, source: str = "price list") -> PriceList:
    """Parse and validate the price list JSON; a bad file is an error naming it and the problem."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("expected a JSON object")
        currency = str(document.get("currency", "usd")).strip().lower()
        if len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"currency: expected an ISO 4217 code, got {currency!r}")
        plan_spec = document.get("platform_plan") or {}
        plan = PlatformPlan(
            product_id=str(plan_spec.get("product_id", "billing_pipeline_platform")),
            plan_id=str(plan_spec.get("plan_id", f"billing_pipeline_platform_monthly_{currency}")),
            name=str(plan_spec.get("name", "Platform")),
            amount_cents=int(plan_spec.get("amount_cents", 0)),
        )
        if plan.amount_cents < 0:
            raise ValueError("platform_plan.amount_cents: negative")
        default = _terms(document, None, "price list")
        overrides = {
            str(accountant): _terms(spec, default, f"overrides.{accountant}")
            for accountant, spec in (document.get("overrides") or {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{source}: not a valid price list ({error})") from error
    return PriceList(currency=currency, plan=plan, default=default, overrides=overrides)
