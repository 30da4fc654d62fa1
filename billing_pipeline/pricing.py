"""The pricing file: the currency, the variance threshold and, optionally, unit prices of the usage drivers.

The unit prices are the application's own constants (what it uses to estimate). Each driver's price is the
catalog's (`catalog.json`), unless the pricing file (`BILLING_PRICING`, default: `pricing.json` in this package)
sets it under `drivers` ({"<service>": {"<driver>": "<price>"}}); a driver the catalog does not know is an error.
The attribution uses them only to value a service's drivers against each other for line items no single driver
pays for ("combined"). `network_policy` (`proportional`, default, or `unattributed`) says how untagged NAT gateway
and data transfer lines are split (docs/attribution-rules.md).

`account_level_lines` sets, per line item type, what happens to the untagged account-level lines (tax, credits,
refunds, discounts, fees without a resource): `proportional` (the default) gives the application its part and
splits it among the tenants; `company` keeps the line with the company (docs/attribution-rules.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import pyarrow as pa

from billing_pipeline.catalog import load_catalog

NETWORK_POLICIES = ("proportional", "unattributed")
# the line item types whose untagged lines are account-level (`Adjustment`: a FOCUS export's ChargeCategory;
# account_level_lines.sql also takes any other type AWS names `...Discount`, at the default policy)
ACCOUNT_LEVEL_TYPES = ("Tax", "Credit", "Refund", "EdpDiscount", "PrivateRateDiscount", "BundledDiscount",
                       "SppDiscount", "DistributorDiscount", "RiVolumeDiscount", "Adjustment", "Fee")
ACCOUNT_LEVEL_POLICIES = ("proportional", "company")


@dataclass(frozen=True)
class Pricing:
    currency: str
    variance_threshold_pct: Decimal
    driver_prices: dict[tuple[str, str], Decimal]  # (CUR service, driver) -> unit price
    # untagged NAT gateway / data transfer (catalog `network`): split by the tenants' compute cost, or unattributed
    network_policy: str = "proportional"
    account_level_policies: dict[str, str] = field(default_factory=dict)  # line item type -> policy
    # the application's usage-table operation -> (service, driver) it records (pricing feedback's recorded usage)
    estimate_operations: dict[str, tuple[str, str]] = field(default_factory=dict)

    def estimate_operations_table(self) -> pa.Table:
        rows = sorted(self.estimate_operations.items())
        return pa.table({
            "operation": pa.array([o for o, _ in rows], pa.string()),
            "service": pa.array([s for _, (s, _d) in rows], pa.string()),
            "driver": pa.array([d for _, (_s, d) in rows], pa.string()),
        })

    def account_level_policies_table(self) -> pa.Table:
        """Every account-level line item type with its policy (`proportional` unless the file says otherwise), and
        any other `...Discount` type the file names."""
        types = sorted(set(ACCOUNT_LEVEL_TYPES) | set(self.account_level_policies))
        return pa.table({
            "line_item_type": pa.array(types, pa.string()),
            "policy": pa.array([self.account_level_policies.get(t, "proportional") for t in types], pa.string()),
        })

    def driver_prices_table(self) -> pa.Table:
        rows = sorted(self.driver_prices.items())
        return pa.table(
            {
                "service": pa.array([service for (service, _), _ in rows], pa.string()),
                "driver": pa.array([driver for (_, driver), _ in rows], pa.string()),
                "unit_price": pa.array([price for _, price in rows], pa.decimal128(38, 10)),
            }
        )


def parse_pricing(text: str, source: str = "pricing file") -> Pricing:
    """Parse and validate the pricing JSON; a bad file is an error naming it and the problem."""
    try:
        document = json.loads(text)
        overrides = {
            (service, driver): Decimal(str(price))
            for service, drivers in document.get("drivers", {}).items()
            for driver, price in drivers.items()
        }
        prices = {**load_catalog().unit_prices(), **overrides}
        pricing = Pricing(
            currency=str(document.get("currency", "USD")),
            variance_threshold_pct=Decimal(str(document.get("variance_threshold_pct", "10"))),
            driver_prices=prices,
            network_policy=str(document.get("network_policy", "proportional")),
            account_level_policies={str(k): str(v) for k, v in document.get("account_level_lines", {}).items()},
            estimate_operations={str(op): tuple(str(target).split("/", 1))
                                 for op, target in document.get("estimate_operations", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise ValueError(f"{source}: not a valid pricing file ({type(error).__name__}: {error})") from error
    if pricing.network_policy not in NETWORK_POLICIES:
        raise ValueError(f"{source}: network_policy {pricing.network_policy!r} is not one of {', '.join(NETWORK_POLICIES)}")
    unknown = [f"{s}/{d}" for s, d in overrides if not load_catalog().knows(s, d)]
    if unknown:
        raise ValueError(f"{source}: unit prices for drivers the catalog does not name: {', '.join(unknown)}")
    negative = [f"{s}/{d}" for (s, d), p in prices.items() if p < 0]
    if negative:
        raise ValueError(f"{source}: negative unit prices for {', '.join(negative)}")
    malformed = sorted(op for op, target in pricing.estimate_operations.items() if len(target) != 2)
    if malformed:
        raise ValueError(f"{source}: estimate_operations must map to 'Service/driver': {', '.join(malformed)}")
    unknown = sorted(t for t in set(pricing.account_level_policies) - set(ACCOUNT_LEVEL_TYPES)
                     if not t.endswith("Discount"))
    if unknown:
        raise ValueError(f"{source}: account_level_lines names line item types that are not account-level: "
                         f"{', '.join(unknown)} (expected {', '.join(ACCOUNT_LEVEL_TYPES)} or another ...Discount)")
    bad = sorted(f"{t}={p}" for t, p in pricing.account_level_policies.items() if p not in ACCOUNT_LEVEL_POLICIES)
    if bad:
        raise ValueError(f"{source}: account_level_lines policies must be proportional or company: {', '.join(bad)}")
    return pricing
