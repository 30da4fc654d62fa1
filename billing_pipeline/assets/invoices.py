"""invoices: each tenant's monthly charge in Stripe, from its attributed cost and the price list.

Per month and tenant (never `unattributed`): the Stripe customer (metadata accountant_id) subscribed to the platform
plan, and one invoice item per resource type (plus `minimum_fee`), which Stripe sweeps into the subscription's next
invoice. While the month is provisional (no invoice id in the CUR yet) nothing is charged: the computed lines are
recorded as a preview. Stripe is the record of what was charged: before adding anything the customer's items of the
month (pending and invoiced) are listed by metadata, and only the difference to the price list's amount is added,
as a `charge` the first time and an `adjustment` (positive or negative) after a restatement. A re-run therefore adds
nothing, and a run that failed half-way is completed, never doubled, by the next one. Overlapping runs take turns
(each holds the cross-process invoicing lock from reading the month to recording what Stripe holds) and every
create carries a deterministic idempotency key. Only tenants of the registry (BILLING_TENANTS) are charged, and a month with implausible CUR lines
or charge lines beyond BILLING_MAX_LINE_COST (a metered quantity in the wrong unit) is held until it is explicitly
allowed (implausible_money.py). See docs/invoicing.md.
"""

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from billing_pipeline.assets.common import month_of
from billing_pipeline.assets.implausible_money import hold_message, implausible_lines, settings
from billing_pipeline.assets.tenant_registry import describe, load_registry
from billing_pipeline.checks.common import duplicate_check
from billing_pipeline.formatting import markdown_table, money
from billing_pipeline.lineage import month_delivery
from billing_pipeline.money import stripe_units
from billing_pipeline.partitions import billing_month_partitions
from billing_pipeline.price_list import LINE_ORDER, MINIMUM_FEE, ChargeLine, PriceList, parse_price_list
from billing_pipeline.resources.output_lock import OutputLockTimeout, invoicing_lock
from billing_pipeline.resources.money_bounds import MoneyBounds
from billing_pipeline.resources.stripe_billing import StripeBilling, StripeBillingClient, StripeBillingError
from billing_pipeline.resources.tenant_registry import TenantRegistry
from billing_pipeline.resources.warehouse import WAREHOUSE_POOL, BillingWarehouse, replace_month_with_rows

INVOICE_SCHEMA = pa.schema([
    ("billing_period", pa.date32()),
    ("accountant_id", pa.string()),
    ("resource_type", pa.string()),
    ("stripe_customer_id", pa.string()),
    ("stripe_subscription_id", pa.string()),
    ("stripe_invoice_item_id", pa.string()),
    ("stripe_invoice_id", pa.string()),
    ("amount_cents", pa.int64()),
    ("currency", pa.string()),
    ("kind", pa.string()),
    ("status", pa.string()),
    ("attributed_cost", pa.decimal128(38, 10)),
    ("charge_amount", pa.decimal128(38, 10)),
    ("updated_at", pa.timestamp("us")),
])
SHOWN = ["accountant_id", "resource_type", "kind", "status", "amount_cents", "currency", "stripe_invoice_item_id",
         "stripe_invoice_id"]
TEN_DIGITS = Decimal("1e-10")  # the warehouse's money scale; cents are computed from the unrounded amount
CHECKS = ("no_duplicate_invoice_items", "stripe_items_match_charges")


@asset(
    partitions_def=billing_month_partitions,
    deps=["tenant_costs", "reconciliation_report", "tenant_registry", "implausible_money"],
    pool=WAREHOUSE_POOL,
    group_name="billing",
    kinds={"duckdb", "stripe"},
    check_specs=[
        AssetCheckSpec("no_duplicate_invoice_items", asset="invoices", blocking=True,
                       description="No Stripe invoice item (or preview line) appears twice in the month."),
        AssetCheckSpec("stripe_items_match_charges", asset="invoices",
                       description="Per tenant x resource type, the Stripe items of the month (charges + "
                                   "adjustments) add up to the price list's amount in cents."),
    ],
)
def invoices(
    context: AssetExecutionContext, warehouse: BillingWarehouse, stripe_billing: StripeBilling,
    tenants: TenantRegistry, money_bounds: MoneyBounds,
) -> MaterializeResult:
    """Per tenant x resource type: the month's charge in Stripe (integer cents, largest remainder per tenant-month),
    its Stripe customer, subscription, invoice item and invoice, and the invoice's status read back from Stripe
    (pending, draft, open, past_due, paid, void). Provisional months: a preview only, nothing charged. Off (nothing
    written) unless STRIPE_API_KEY is set."""
    period, _ = month_of(context)
    month = f"{period:%Y-%m}"
    if not stripe_billing.configured():
        context.log.info(f"{month}: Stripe is not configured (STRIPE_API_KEY is unset): nothing charged or written")
        return MaterializeResult(
            metadata={"status": "not configured", "billing_period": month},
            check_results=[AssetCheckResult(check_name=name, passed=True, metadata={"skipped": "Stripe not configured"})
                           for name in CHECKS],
        )
    try:
        price_list = parse_price_list(stripe_billing.price_list_text(), stripe_billing.price_list_source())
    except (OSError, ValueError) as error:
        raise Failure(f"Price list {stripe_billing.price_list_source()}: {error}") from None

    bound, allowed = settings(money_bounds)
    try:
        repriced = money_bounds.repriced_months()
    except ValueError as error:
        raise Failure(str(error)) from None
    try:
        # One invoicing run at a time across processes (resources/output_lock.py), from reading the month to
        # recording what Stripe holds: a run that read the month before another run restated and invoiced it would
        # put Stripe back to what it read, and the table the later run wrote would not say what Stripe holds. Only
        # this asset takes the lock, and it takes it before the warehouse, so no run can hold one waiting for the other.
        with invoicing_lock(context.instance, warehouse.lock_anchor(), context.log):
            with warehouse.connect() as con:
                month_delivery(con, period, "reconciliation_report")  # never charge from tables of different deliveries
                # Held while the month's bill has implausible lines, unless the month is allowed
                # (implausible_money.py): read from cur_line_items itself, so running `invoices` alone is held too
                implausible = implausible_lines(con, period, bound)
                if implausible and month not in allowed:
                    raise Failure(hold_message(month, implausible, bound) + " Nothing charged, nothing written.")
                is_final, costs, quantities, used = _month_to_charge(con, period, month)
                (charged,) = con.execute(
                    "SELECT count(*) FROM invoices WHERE billing_period = ? AND kind IN ('charge', 'adjustment')",
                    [period]).fetchall()[0]
                if not is_final and charged:
                    # a preview would replace the record of what Stripe holds (and is collecting) by computed lines
                    raise Failure(f"{month} is provisional again but was charged (the invoices table holds {charged} "
                                  "Stripe item(s) of it): the month's CUR has no invoice id any more. Nothing "
                                  "charged, nothing written; invoice it again once its delivery is final.")
                # the items this warehouse recorded as placed: one Stripe no longer lists was deleted there
                recorded_rows = _recorded_rows(con, period)
                # Only tenants of the registry are charged, whatever ingestion let through (tenant_registry.py)
                registry = load_registry(tenants, con)
            if registry.ambiguous:  # holding both out would leave the real tenant uncharged, and say nothing
                groups = sorted({" and ".join(map(repr, sorted((i, *others))))
                                 for i, others in registry.ambiguous.items()})
                raise Failure(f"{month}: {'; '.join(groups)} read the same in {registry.source}, so which is the "
                              "tenant cannot be told: list the tenants in BILLING_TENANTS. Nothing charged, nothing "
                              "written.")
            # an override written under a look-alike of a tenant's id would apply to no one: the tenant would be
            # charged the default terms (its minimum fee, the full markups) with the run green
            misspelt = sorted(f"the price list's override {o!r} is no tenant but reads as {registry.classify(o)[1]!r}"
                              for o in price_list.overrides if registry.classify(o)[0] == "lookalike")
            if misspelt:
                raise Failure(f"{month}: {'; '.join(misspelt)} ({stripe_billing.price_list_source()}): write the "
                              "tenant's id as the registry has it. Nothing charged, nothing written.")
            # an override naming no tenant at all (a typo the look-alike rule does not catch: `acct_0002`, or a tenant
            # that left) applies to no one: said, so that a tenant charged its default terms by mistake is seen
            unused_overrides = sorted(o for o in price_list.overrides if o not in registry.known)
            if unused_overrides:
                context.log.warning(f"{month}: the price list's overrides {', '.join(map(repr, unused_overrides))} "
                                    f"name no tenant of {registry.source} and apply to no one")
            held_out = sorted({row[0] for row in [*costs, *quantities] if row[0] not in registry.known})
            if held_out:
                context.log.warning(f"{month}: not invoiced, not in the tenant registry ({registry.source}): "
                                    + "; ".join(describe(a, *registry.classify(a)) for a in held_out))
            charged_quantities = [row for row in quantities if row[0] in registry.known]
            charges = _charges(price_list, [row for row in costs if row[0] in registry.known], charged_quantities,
                               used)
            # the charges are held like the CUR lines they add to: a quantity the application logged in the wrong
            # unit (1000x) would otherwise be charged with the run green
            beyond = _implausible_charges(price_list, charges, charged_quantities, bound)
            if beyond and month not in allowed:
                raise Failure(_charges_hold_message(month, beyond, bound) + " Nothing charged, nothing written.")
            if beyond:
                context.log.warning(f"{month}: {len(beyond)} charge line(s) beyond BILLING_MAX_LINE_COST={bound} "
                                    f"allowed by {money_bounds.allowance_source()}: {'; '.join(beyond)}")
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            client = stripe_billing.client()
            if is_final:
                rows, created, other_terms, customer_gone = _place(client, price_list, charges, registry.known, period,
                                                                   month, now, month in repriced, context,
                                                                   recorded_rows)
            else:
                rows, created, other_terms, customer_gone = _preview(client, charges, period, now), [], [], []

            staged = pa.Table.from_pylist(rows, schema=INVOICE_SCHEMA)
            with warehouse.connect() as con:
                written = replace_month_with_rows(con, "invoices", period, staged)
                no_duplicates = duplicate_check(
                    con, "invoices", ["accountant_id", "resource_type", "kind", "stripe_invoice_item_id"], period,
                    "no_duplicate_invoice_items",
                )
    except (StripeBillingError, OutputLockTimeout) as error:
        raise Failure(f"{month}: {error}. The warehouse's invoices of {month} were left as they were.") from None
    if customer_gone:
        raise Failure(f"{month}: {'; '.join(customer_gone)}: Stripe no longer lists the customer the invoices table "
                      f"recorded the month's items on (deleted in Stripe?), so nothing was added for "
                      f"{'it' if len(customer_gone) == 1 else 'them'}: charging the month on another customer would "
                      "charge it twice. The recorded items were kept. Restore the customer (or, if the tenant is to "
                      f"be charged {month} again, delete its rows of {month} from the invoices table).")
    if other_terms:
        raise Failure(f"{month}: {', '.join(other_terms)} {'was' if len(other_terms) == 1 else 'were'} charged at "
                      f"other price terms than {stripe_billing.price_list_source()} gives now: nothing was added for "
                      f"{'it' if len(other_terms) == 1 else 'them'} (the other tenants are up to date, and the "
                      f"invoices table says what Stripe holds). To charge {month} at the price list as it is now, "
                      f"set BILLING_REPRICE_MONTHS={month}.")
    metadata = _metadata(rows, created, charges, price_list, stripe_billing, month, is_final, written)
    metadata["held_out_tenants"] = MetadataValue.json([describe(a, *registry.classify(a)) for a in held_out])
    metadata["overrides_without_tenant"] = MetadataValue.json(unused_overrides)
    return MaterializeResult(
        metadata=metadata,
        check_results=[no_duplicates, _match_check(rows, charges, is_final, registry.known)],
    )


def _month_to_charge(con, period: dt.date, month: str) -> tuple[bool, list, list, set[str]]:
    """Whether the month is final, each tenant's attributed cost per resource type and currency, its metered
    quantities per resource type and operation (`unattributed` is never charged), and the tenants that used the
    platform in the month (some positive cost before credits, or a positive metered quantity)."""
    (report_rows, is_final) = con.execute(
        "SELECT count(*), coalesce(bool_or(is_final), false) FROM reconciliation_report WHERE billing_period = ?",
        [period],
    ).fetchall()[0]
    if not report_rows:
        raise Failure(f"reconciliation_report has no rows for {month}: materialize the month's chain first "
                      "(nothing charged, nothing written)")
    costs = con.execute(
        """SELECT accountant_id, resource_type, currency, sum(cost) FROM tenant_costs
           WHERE billing_period = ? AND accountant_id <> 'unattributed' GROUP BY ALL ORDER BY ALL""",
        [period],
    ).fetchall()
    quantities = con.execute(
        """SELECT accountant_id, resource_type, coalesce(operation, ''), sum(quantity) FROM estimated_usage
           WHERE billing_period = ? AND accountant_id <> 'unattributed' AND quantity IS NOT NULL
           GROUP BY ALL ORDER BY ALL""",
        [period],
    ).fetchall()
    # a usage fully refunded the same month nets to 0 but was used; a refund alone (after the tenant left) was not
    used = {accountant for (accountant,) in con.execute(
        "SELECT DISTINCT accountant_id FROM tenant_costs WHERE billing_period = ? AND cost > 0", [period]).fetchall()}
    used |= {accountant for accountant, _, _, quantity in quantities if quantity > 0}
    return bool(is_final), costs, quantities, used


def _charges(price_list: PriceList, costs, quantities, used: set[str]) -> dict[str, list[ChargeLine]]:
    """Every tenant's charge lines (tenants with attributed cost or metered usage)."""
    wrong_currency = sorted({c for _, _, c, _ in costs if c.lower() != price_list.currency})
    if wrong_currency:
        raise Failure(f"The attributed cost is in {', '.join(wrong_currency)}, the price list charges in "
                      f"{price_list.currency}: set the price list's currency (no exchange rates are applied)")
    by_tenant: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for accountant, resource_type, _, cost in costs:
        by_tenant[accountant][resource_type] = by_tenant[accountant].get(resource_type, Decimal(0)) + cost
    metered = _metered(quantities)
    try:
        return {
            accountant: price_list.tenant_charges(accountant, by_tenant.get(accountant, {}), metered.get(accountant),
                                                  accountant in used)
            for accountant in sorted(set(by_tenant) | set(metered))
        }
    except ValueError as error:
        raise Failure(f"Could not price the month: {error}") from None


def _metered(quantities) -> dict[str, dict[tuple[str, str], Decimal]]:
    """Each tenant's metered quantities, (resource type, operation) -> quantity, as the price list takes them."""
    metered: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    for accountant, resource_type, operation, quantity in quantities:
        metered[accountant][(resource_type, operation)] = quantity
    return metered


def _implausible_charges(price_list: PriceList, charges, quantities, bound: Decimal) -> list[str]:
    """The tenant-month charge lines with one metered quantity whose priced amount (unit price x quantity) is beyond
    the bound (|amount|, like a CUR line's cost), each described with its priced quantities (operation, quantity,
    unit price, amount). Only the metered part: the AWS cost a line carries is bounded line item by line item
    (implausible_money), and a large tenant's month of it may rightly exceed one line's bound."""
    metered = _metered(quantities)
    found = []
    for accountant, lines in charges.items():
        priced = price_list.priced_quantities(accountant, metered.get(accountant, {}))
        for line in lines:
            usage = [p for p in priced if p[0] == line.resource_type]
            if all(abs(amount) <= bound for *_, amount in usage):
                continue
            parts = [f"operation {operation or '(none)'}: quantity {quantity.normalize():f} x unit price "
                     f"{unit.normalize():f} = {amount.normalize():f}" for _, operation, quantity, unit, amount in usage]
            if line.attributed_cost:
                parts.append(f"AWS cost {line.attributed_cost.normalize():f} with markup")
            found.append(f"{accountant} {line.resource_type} {line.amount.normalize():f} "
                         f"{line.currency.upper()} ({'; '.join(parts) or 'no metered quantity'})")
    return found


def _charges_hold_message(month: str, beyond: list[str], bound: Decimal) -> str:
    return (f"{month}: invoicing is held: {len(beyond)} charge line(s) beyond BILLING_MAX_LINE_COST={bound} (one "
            f"metered quantity at its unit price): {'; '.join(beyond)}. Check the usage table's "
            f"quantities (a unit logged wrong?) and the price list; to invoice {month} as it is, re-run with "
            f"BILLING_ALLOW_IMPLAUSIBLE={month} (or run config resources.money_bounds.config."
            f"allow_implausible_months: \"{month}\").")


def _row(period, line: ChargeLine | None, accountant, resource_type, *, customer=None, subscription=None,
         item=None, invoice=None, amount_cents, currency, kind, status, now) -> dict:
    return {
        "billing_period": period, "accountant_id": accountant, "resource_type": resource_type,
        "stripe_customer_id": customer, "stripe_subscription_id": subscription, "stripe_invoice_item_id": item,
        "stripe_invoice_id": invoice, "amount_cents": int(amount_cents), "currency": currency, "kind": kind,
        "status": status, "attributed_cost": line.attributed_cost if line else None,
        "charge_amount": line.amount.quantize(TEN_DIGITS, ROUND_HALF_UP) if line else None, "updated_at": now,
    }


def _preview(client: StripeBillingClient, charges, period, now) -> list[dict]:
    """Provisional month: the computed lines, nothing sent. The Stripe customer is named where it exists already."""
    customers = client.customers_by_accountant()
    return [
        _row(period, line, accountant, line.resource_type, customer=customers.get(accountant, {}).get("id"),
             amount_cents=line.amount_cents, currency=line.currency, kind="preview", status="preview", now=now)
        for accountant, lines in charges.items()
        for line in lines
        if line.amount_cents != 0
    ]


def _description(month: str, resource_type: str, kind: str, line: ChargeLine | None) -> str:
    if resource_type == MINIMUM_FEE:
        text = f"{month} minimum monthly fee"
    elif line is not None and line.quantity:
        text = f"{month} {resource_type}: {line.quantity.normalize():f} units, AWS cost {line.attributed_cost:.4f}"
    elif line is not None:
        text = f"{month} {resource_type}: AWS cost {line.attributed_cost:.4f} {line.currency.upper()}"
    else:
        text = f"{month} {resource_type}"
    return text + (" (adjustment: restated month)" if kind == "adjustment" else "")


def _recorded_rows(con, period) -> list[dict]:
    """The Stripe items the invoices table recorded for the month (charges and adjustments), as rows."""
    return [dict(zip(INVOICE_SCHEMA.names, row)) for row in con.execute(
        f"""SELECT {', '.join(INVOICE_SCHEMA.names)} FROM invoices
            WHERE billing_period = ? AND kind IN ('charge', 'adjustment') AND stripe_invoice_item_id IS NOT NULL""",
        [period]).fetchall()]


def _place(client: StripeBillingClient, price_list: PriceList, charges, known: frozenset[str] | set[str], period,
           month: str, now, reprice: bool, context, recorded_rows: list[dict]
           ) -> tuple[list[dict], list[dict], list[str], list[str]]:
    """Final month: make the Stripe items of the month add up to the charges, adding only the difference. Every
    tenant of the registry with a Stripe customer is looked at, not only those with charges now: a restatement can
    take all of a tenant's cost away, and what was placed for it (by any run, one that died half-way included) is
    in Stripe, whatever the warehouse recorded. A tenant whose items of the month were placed at other price terms
    than the price list's now gets nothing added unless the month is to be re-priced (returned: those tenants):
    a price change must not re-charge months already billed. A tenant whose recorded items of the month are on a
    customer Stripe no longer lists (deleted there) gets nothing either (returned: those tenants): its items, paid
    ones too, are not listed any more, and a new customer would be charged the whole month again (when other
    recorded customers are listed: none listed is another account or mode, charged as an empty one)."""
    plan_id = client.ensure_plan(price_list.plan, price_list.currency)
    customers = client.customers_by_accountant()
    recorded: dict[tuple[str, str], set[str]] = defaultdict(set)
    recorded_customers: dict[str, set[str]] = defaultdict(set)
    for row in recorded_rows:
        recorded[(row["accountant_id"], row["resource_type"])].add(row["stripe_invoice_item_id"])
        recorded_customers[row["accountant_id"]].add(row["stripe_customer_id"])
    # none of the recorded customers listed: another Stripe account or mode (a test key, then a live one), placed
    # there as on an empty account
    recorded_ids = set().union(*recorded_customers.values())
    same_account = any(c["id"] in recorded_ids for c in customers.values())
    rows: list[dict] = []
    created: list[dict] = []
    other_terms: list[str] = []
    customer_gone: list[str] = []
    for accountant in sorted(set(charges) | set(customers) | set(recorded_customers)):
        lines = {line.resource_type: line for line in charges.get(accountant, [])}
        customer = customers.get(accountant)
        gone = sorted(recorded_customers.get(accountant, set()) - {customer["id"] if customer else None})
        # gone from this account: the other recorded customers are listed, or Stripe itself says it was deleted
        # (the month's only recorded customer deleted would otherwise read as another account's, charged anew)
        deleted = bool(gone) and (same_account or any(client.customer_deleted(c) for c in gone))
        if accountant in known and deleted:
            customer_gone.append(f"{accountant} (recorded on {', '.join(gone)})")
            rows += [row for row in recorded_rows if row["accountant_id"] == accountant]
            continue
        if accountant not in known:
            if deleted:
                # its items on the deleted customer are on record only here: dropped, the tenant back in the
                # registry would be charged the month again on a new customer
                context.log.warning(f"{month}: {accountant} is not in the tenant registry and its customer "
                                    f"{', '.join(gone)} is no longer listed in Stripe: its recorded items are kept")
                rows += [row for row in recorded_rows
                         if row["accountant_id"] == accountant and row["stripe_customer_id"] in gone]
            if customer is None:
                continue
            # left the registry (or never in it): nothing is added or taken back in Stripe, but what Stripe holds
            # for it of the month stays on record (the table says what Stripe holds, whoever is a tenant now)
            month_items = _month_items(client, customer, accountant, month)
            if month_items:
                subscription = client.subscription_to(client.subscriptions_of(customer["id"]), plan_id) or {}
                context.log.warning(f"{month}: {accountant} is not in the tenant registry but Stripe holds "
                                    f"{len(month_items)} item(s) of the month for it: recorded, left as they are")
                rows += _item_rows(period, lines, accountant, customer, subscription, month_items, now)
            continue
        if customer is None:
            if not any(line.amount_cents for line in lines.values()):
                continue
            customer = client.create_customer(accountant)
            context.log.info(f"Created the Stripe customer {customer['id']} of {accountant}")
        month_items = _month_items(client, customer, accountant, month)
        if not month_items and not any(line.amount_cents for line in lines.values()):
            continue  # nothing placed, nothing to place (no subscription made for it either)
        subscription = client.ensure_subscription(customer["id"], plan_id, accountant)
        other_currency = sorted({i["currency"] for i in month_items if i["currency"].lower() != price_list.currency})
        if other_currency:
            raise StripeBillingError(f"{accountant}'s items of {month} are in {', '.join(other_currency)}, the price "
                                     f"list in {price_list.currency}: correct them in Stripe first")
        placed: dict[str, int] = defaultdict(int)
        for item in month_items:
            placed[item["metadata"].get("resource_type", "")] += item["amount"]
        extra_types = sorted(set(placed) - set(LINE_ORDER))
        terms = price_list.terms_digest(accountant)
        # held when the month was last placed at other terms (once re-priced, its adjustments carry these terms and
        # later restatements go through); items placed before terms were recorded carry none. The last placement,
        # not any: a month re-priced to a discount would otherwise be charged back at its first terms, unasked,
        # once they returned
        charged_at, placement = _last_placed_terms(month_items)
        held = bool(charged_at) and terms not in charged_at and not reprice
        for resource_type in [*LINE_ORDER, *extra_types]:
            line = lines.get(resource_type)
            difference = (line.amount_cents if line else 0) - placed.get(resource_type, 0)
            if difference == 0:
                continue
            if held:
                other_terms.append(accountant)
                break
            kind = "adjustment" if resource_type in placed else "charge"
            metadata = {"accountant_id": accountant, "month": month, "resource_type": resource_type, "kind": kind,
                        "attributed_cost": str(line.attributed_cost if line else 0),
                        "quantity": str(line.quantity if line else 0), "price_terms": terms,
                        "placement": str(placement + 1), "source": "billing_pipeline"}
            placed_ids = [i["id"] for i in month_items if i["metadata"].get("resource_type", "") == resource_type]
            # items recorded as placed that Stripe no longer lists were deleted there: part of the key, so that
            # placing the difference again is a new request, not the replay of the deleted item's (Stripe answers
            # a key it saw within 24 h with its first response, and nothing would be placed)
            gone = sorted(recorded.get((accountant, resource_type), set()) - set(placed_ids))
            item = client.add_item(customer["id"], difference, price_list.currency,
                                   _description(month, resource_type, kind, line), metadata,
                                   placed_ids + [f"deleted:{i}" for i in gone])
            month_items.append({"id": item["id"], "amount": difference, "currency": price_list.currency,
                                "metadata": metadata, "invoice": None})
            created.append({"accountant_id": accountant, "resource_type": resource_type, "kind": kind,
                            "amount_cents": difference})
        rows += _item_rows(period, lines, accountant, customer, subscription, month_items, now)
    return rows, created, other_terms, customer_gone


def _last_placed_terms(month_items: list[dict]) -> tuple[set[str], int]:
    """The price terms of a tenant-month's latest placement (the items one run added carry its number,
    `placement`; items placed before it was recorded count as 0) and the highest placement number of the month."""
    def number(item: dict) -> int:
        text = str(item["metadata"].get("placement") or "0")
        return int(text) if text.isdigit() else 0

    priced = [item for item in month_items if item["metadata"].get("price_terms")]
    last = max(map(number, priced), default=0)
    return ({item["metadata"]["price_terms"] for item in priced if number(item) == last},
            max(map(number, month_items), default=0))


def _month_items(client: StripeBillingClient, customer: dict, accountant: str, month: str) -> list[dict]:
    """The tenant's charges and adjustments of the month that Stripe holds (pending and invoiced)."""
    return [
        item for item in client.items_of(customer["id"])
        if item["metadata"].get("accountant_id") == accountant and item["metadata"].get("month") == month
        and item["metadata"].get("kind") in ("charge", "adjustment")
    ]


def _item_rows(period, lines: dict, accountant: str, customer: dict, subscription: dict, month_items: list[dict],
               now) -> list[dict]:
    rows = []
    for item in month_items:
        resource_type = item["metadata"].get("resource_type", "")
        status = "pending" if item["invoice"] is None else item.get("invoice_status") or "draft"
        rows.append(_row(period, lines.get(resource_type), accountant, resource_type, customer=customer["id"],
                         subscription=subscription.get("id"), item=item["id"], invoice=item["invoice"],
                         amount_cents=item["amount"], currency=item["currency"].lower(),
                         kind=item["metadata"].get("kind"), status=status, now=now))
    return rows


def _match_check(rows: list[dict], charges, is_final: bool, known) -> AssetCheckResult:
    """Per registry tenant x resource type (the items Stripe holds for ids outside the registry are recorded, not
    priced: they are listed apart)."""
    wanted = {(a, line.resource_type): line.amount_cents for a, lines in charges.items() for line in lines}
    have: dict[tuple[str, str], int] = defaultdict(int)
    outside: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["accountant_id"] in known:
            have[(row["accountant_id"], row["resource_type"])] += row["amount_cents"]
        else:
            outside[row["accountant_id"]] += row["amount_cents"]
    keys = sorted(set(wanted) | set(have))
    mismatches = [(a, r, wanted.get((a, r), 0), have.get((a, r), 0)) for a, r in keys
                  if wanted.get((a, r), 0) != have.get((a, r), 0)]
    table = "\n".join(f"| {a} | {r} | {w} | {h} |" for a, r, w, h in mismatches)
    return AssetCheckResult(
        check_name="stripe_items_match_charges",
        passed=not mismatches,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "compared": "preview lines" if not is_final else "Stripe items (charges + adjustments)",
            "mismatches": MetadataValue.md(
                "| accountant_id | resource_type | price list cents | recorded cents |\n|---|---|---:|---:|\n" + table
                if mismatches else "none"
            ),
            "charged_outside_registry_cents": MetadataValue.json(dict(sorted(outside.items()))),
        },
    )


def _metadata(rows, created, charges, price_list: PriceList, stripe_billing: StripeBilling, month: str,
              is_final: bool, written: int) -> dict:
    frame = pd.DataFrame(rows, columns=[f.name for f in INVOICE_SCHEMA])
    metadata = {
        "status": "charged" if is_final else "preview",
        "billing_period": month,
        "is_final": MetadataValue.bool(bool(is_final)),
        "stripe_api_base": stripe_billing.base_url(),
        "price_list": stripe_billing.price_list_source(),
        "dagster/row_count": MetadataValue.int(written),
        "tenants": MetadataValue.int(len(charges)),
        f"charge_cents/{price_list.currency}": MetadataValue.int(
            sum(line.amount_cents for lines in charges.values() for line in lines)),
        "items_created": MetadataValue.int(len(created)),
        "adjustments_created": MetadataValue.int(sum(1 for c in created if c["kind"] == "adjustment")),
        "adjustment_cents": MetadataValue.int(sum(c["amount_cents"] for c in created if c["kind"] == "adjustment")),
    }
    if frame.empty:
        metadata["invoices"] = MetadataValue.md("_no rows_")
        return metadata
    by_status = frame.groupby(["status", "currency"], as_index=False).agg(
        items=("kind", "size"), amount_cents=("amount_cents", "sum"))
    # Stripe's integer amounts shown as money (formatting.py; 100 per dollar, 1 per yen), the ids as they are, a
    # missing id as —
    amount = {"amount_cents": lambda r: money(Decimal(int(r["amount_cents"])) / stripe_units(str(r["currency"]))[1],
                                              str(r["currency"]).upper())}
    metadata["by_status"] = MetadataValue.md(markdown_table(
        list(by_status.columns), by_status.itertuples(index=False), amount))
    shown = frame[SHOWN].sort_values(["accountant_id", "resource_type", "kind"], kind="stable")
    metadata["invoices"] = MetadataValue.md(f"**{month} ({metadata['status']})**\n\n" + markdown_table(
        SHOWN, shown.itertuples(index=False), amount))
    return metadata
