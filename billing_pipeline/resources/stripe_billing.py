"""Stripe, for the monthly charges: configured from the environment, off unless STRIPE_API_KEY is set.

`STRIPE_API_KEY` is read when the run starts and only handed to the official `stripe` library: it is never logged,
never put in metadata, and scrubbed from every error message. `STRIPE_API_BASE` points the library at another
server (the local `localstripe` in tests). `BILLING_PRICE_LIST` names the price list (default: the packaged
`price_list.json`).

Everything the pipeline does in Stripe goes through `StripeBillingClient`, which uses only what the local stand-in
(localstripe 1.15) serves as well: customers, products, plans, subscriptions, invoice items and invoices (list,
lines). Stripe's Search API is not used: customers are found by listing them and matching
`metadata.accountant_id`. What was already placed is found by listing invoice items and invoices and matching
metadata; the list-then-create sequence runs under the invoicing lock (resources/output_lock.py). Every create
also carries a deterministic idempotency key (`idempotency_key`): the same request from the same Stripe state gets
the same key, so Stripe (which replays a key for 24 h) turns a repeated request into the first one's answer; a
changed state (a restatement, a deleted item) gives a new key. localstripe ignores the keys: the lock is what the
overlap tests rely on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from importlib import resources as package_files
from typing import Any, Callable

import stripe
from dagster import ConfigurableResource
from pydantic import Field

from billing_pipeline.price_list import PlatformPlan
from billing_pipeline.settings import require_valid_settings

DEFAULT_MAX_NETWORK_RETRIES = 2
PAGE = 100


class StripeBillingError(Exception):
    """A Stripe call failed; the message says which call and why, never the API key."""


class StripeBilling(ConfigurableResource):
    """Where the monthly charges go (Stripe) and at what price (the price list)."""

    api_base: str | None = Field(default=None, description="Stripe API base URL. Env: STRIPE_API_BASE "
                                                            "(default https://api.stripe.com)")
    price_list: str | None = Field(default=None, description="Price list (JSON). Env: BILLING_PRICE_LIST")
    max_network_retries: int | None = Field(default=None, description="Retries of failed connections (default 2)")
    # The API key is deliberately not a field: run config is shown in the UI. Env: STRIPE_API_KEY.

    def setup_for_execution(self, context) -> None:
        """Before any step: the price list checked (see settings.py)."""
        require_valid_settings(("BILLING_PRICE_LIST",), {"BILLING_PRICE_LIST": self.price_list}, unknown=False)

    def configured(self) -> bool:
        return bool(os.environ.get("STRIPE_API_KEY", "").strip())

    def base_url(self) -> str:
        return (self.api_base or os.environ.get("STRIPE_API_BASE") or stripe.DEFAULT_API_BASE).rstrip("/")

    def price_list_text(self) -> str:
        path = self.price_list or os.environ.get("BILLING_PRICE_LIST")
        if path:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        return package_files.files("billing_pipeline").joinpath("price_list.json").read_text(encoding="utf-8")

    def price_list_source(self) -> str:
        return self.price_list or os.environ.get("BILLING_PRICE_LIST") or "billing_pipeline/price_list.json"

    def client(self) -> "StripeBillingClient":
        api_key = os.environ.get("STRIPE_API_KEY", "").strip()
        if not api_key:
            raise StripeBillingError("STRIPE_API_KEY is not set")
        retries = DEFAULT_MAX_NETWORK_RETRIES if self.max_network_retries is None else self.max_network_retries
        return StripeBillingClient(api_key, self.base_url(), retries)


class StripeBillingClient:
    """The few Stripe operations invoicing needs, with errors turned into clear StripeBillingErrors."""

    def __init__(self, api_key: str, api_base: str, max_network_retries: int):
        self._secret = api_key
        self.api_base = api_base
        self._stripe = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, max_network_retries=max_network_retries
        )
        self.calls = 0
        self.idempotency_keys: list[str] = []  # every key sent, in order (the run's metadata counts them)

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "<STRIPE_API_KEY>") if self._secret else text

    def _call(self, what: str, fn: Callable[..., Any], *args, missing_ok: bool = False,
              idempotency_key: str | None = None) -> dict | None:
        self.calls += 1
        try:
            if idempotency_key:
                self.idempotency_keys.append(idempotency_key)
                result = fn(*args, options={"idempotency_key": idempotency_key})
            else:
                result = fn(*args)
            return result.to_dict() if hasattr(result, "to_dict") else result
        except stripe.InvalidRequestError as error:
            if missing_ok and error.http_status == 404:
                return None
            raise StripeBillingError(
                f"Stripe refused to {what} (HTTP {error.http_status}): {self._scrub(str(error.user_message or error))}"
            ) from None
        except stripe.AuthenticationError as error:
            raise StripeBillingError(
                f"Stripe rejected the API key while trying to {what} (HTTP {error.http_status}): check STRIPE_API_KEY"
            ) from None
        except stripe.PermissionError as error:
            raise StripeBillingError(
                f"The Stripe API key may not {what} (HTTP {error.http_status}): it needs write access to customers, "
                "subscriptions and invoice items"
            ) from None
        except stripe.APIConnectionError as error:
            first_line = self._scrub(str(error.user_message or error)).strip().splitlines()[0]
            raise StripeBillingError(
                f"Could not reach Stripe at {self.api_base} to {what}: {first_line} (network error; re-run the month "
                "when Stripe is reachable: items already placed are found again, never doubled)"
            ) from None
        except stripe.StripeError as error:
            message = self._scrub(str(error.user_message or error))
            raise StripeBillingError(f"Stripe failed to {what} (HTTP {error.http_status}): {message}") from None

    def _list(self, what: str, fn: Callable[..., Any], *args, params: dict | None = None) -> list[dict]:
        """Every object of a list endpoint: Stripe's auto_paging_iter fetches page after page (errors named as
        any call's)."""
        params = {"limit": PAGE, **(params or {})}
        return self._call(what, lambda: [item.to_dict() for item in fn(*args, params).auto_paging_iter()])

    # -- catalogue -----------------------------------------------------------------------------------------------

    def ensure_plan(self, plan: PlatformPlan, currency: str) -> str:
        """The platform plan (and its product), found by their fixed ids or created once."""
        v1 = self._stripe.v1
        existing = self._call("read the platform plan", v1.plans.retrieve, plan.plan_id, missing_ok=True)
        if existing:
            if str(existing.get("currency", "")).lower() != currency:
                raise StripeBillingError(f"Stripe plan {plan.plan_id} is in {existing.get('currency')}, the price list "
                                         f"in {currency}: give the price list's platform_plan another plan_id")
            # a plan's amount cannot change in Stripe: one of another amount would charge every subscribed tenant
            # what the price list does not ask for, every month
            if int(existing.get("amount") or 0) != plan.amount_cents:
                raise StripeBillingError(f"Stripe plan {plan.plan_id} charges {existing.get('amount')} a month, the "
                                         f"price list's platform_plan {plan.amount_cents}: give the price list's "
                                         "platform_plan another plan_id")
            if existing.get("interval") != "month" or int(existing.get("interval_count") or 1) != 1:
                raise StripeBillingError(f"Stripe plan {plan.plan_id} is billed every "
                                         f"{existing.get('interval_count') or 1} {existing.get('interval')}, not every "
                                         "month: give the price list's platform_plan another plan_id")
            return existing["id"]
        if not self._call("read the platform product", v1.products.retrieve, plan.product_id, missing_ok=True):
            self._call("create the platform product", v1.products.create,
                       {"id": plan.product_id, "name": plan.name, "metadata": {"billing_pipeline": "platform"}},
                       idempotency_key=idempotency_key("product", plan.product_id))
        created = self._call("create the platform plan", v1.plans.create, {
            "id": plan.plan_id, "product": plan.product_id, "amount": plan.amount_cents, "currency": currency,
            "interval": "month", "metadata": {"billing_pipeline": "platform"},
        }, idempotency_key=idempotency_key("plan", plan.plan_id, currency, plan.amount_cents))
        return created["id"]

    # -- customers and subscriptions -----------------------------------------------------------------------------

    def customers_by_accountant(self) -> dict[str, dict]:
        """Every customer carrying metadata.accountant_id (Stripe search is not available everywhere)."""
        found: dict[str, list[dict]] = {}
        for customer in self._list("list customers", self._stripe.v1.customers.list):
            accountant = (customer.get("metadata") or {}).get("accountant_id")
            if accountant and not customer.get("deleted"):
                found.setdefault(accountant, []).append(customer)
        duplicates = {a: [c["id"] for c in cs] for a, cs in found.items() if len(cs) > 1}
        if duplicates:
            raise StripeBillingError("Several Stripe customers carry the same accountant_id (merge or delete the "
                                     f"extra ones): {duplicates}")
        return {accountant: customers[0] for accountant, customers in found.items()}

    def customer_deleted(self, customer_id: str) -> bool | None:
        """Whether Stripe says the customer was deleted (Stripe answers a deleted customer's id with `deleted:
        true`); None when it does not know the id at all (another account or mode; localstripe forgets deleted
        customers so)."""
        customer = self._call(f"retrieve the customer {customer_id}", self._stripe.v1.customers.retrieve, customer_id,
                              missing_ok=True)
        return None if customer is None else bool(customer.get("deleted"))

    def create_customer(self, accountant_id: str) -> dict:
        return self._call(f"create the customer of {accountant_id}", self._stripe.v1.customers.create,
                          {"name": accountant_id, "metadata": {"accountant_id": accountant_id}},
                          idempotency_key=idempotency_key("customer", accountant_id))

    def subscriptions_of(self, customer_id: str) -> list[dict]:
        return list(self._list(f"list the subscriptions of {customer_id}", self._stripe.v1.subscriptions.list,
                               params={"customer": customer_id}))

    @staticmethod
    def subscription_to(subscriptions: list[dict], plan_id: str) -> dict | None:
        for subscription in subscriptions:
            if subscription.get("status") in ("canceled", "incomplete_expired"):
                continue
            items = (subscription.get("items") or {}).get("data") or []
            if any(((item.get("plan") or {}).get("id") or (item.get("price") or {}).get("id")) == plan_id
                   for item in items):
                return subscription
        return None

    def ensure_subscription(self, customer_id: str, plan_id: str, accountant_id: str) -> dict:
        subscriptions = self.subscriptions_of(customer_id)
        # the key names the subscriptions that exist: after a cancellation, a new one gets a new key
        return self.subscription_to(subscriptions, plan_id) or self._call(
            f"subscribe {accountant_id} to the platform plan", self._stripe.v1.subscriptions.create,
            {"customer": customer_id, "items": [{"plan": plan_id}], "metadata": {"accountant_id": accountant_id}},
            idempotency_key=idempotency_key("subscription", customer_id, plan_id,
                                            sorted(s["id"] for s in subscriptions)),
        )

    # -- invoice items -------------------------------------------------------------------------------------------

    def items_of(self, customer_id: str) -> list[dict]:
        """The customer's invoice items, pending and invoiced, each with `invoice` (id or None).

        Pending items come from the invoice items list; invoiced ones from the lines of the customer's invoices
        (localstripe lists only pending items; Stripe lists both: the union, by item id, covers both)."""
        items: dict[str, dict] = {}
        for item in self._list(f"list the invoice items of {customer_id}", self._stripe.v1.invoice_items.list,
                               params={"customer": customer_id}):
            items[item["id"]] = {"id": item["id"], "amount": int(item["amount"]), "currency": item["currency"],
                                 "metadata": item.get("metadata") or {}, "invoice": _id_of(item.get("invoice"))}
        for invoice in self._list(f"list the invoices of {customer_id}", self._stripe.v1.invoices.list,
                                  params={"customer": customer_id}):
            for line in self._list(f"list the lines of invoice {invoice['id']}",
                                   self._stripe.v1.invoices.line_items.list, invoice["id"]):
                item_id = _line_item_id(line)
                if item_id is None:
                    continue  # the subscription's own line
                # the line's metadata over the item's own (Stripe lists an invoiced item too): a line without the
                # item's metadata must not make a charge unrecognized, and charged again
                metadata = {**items.get(item_id, {}).get("metadata", {}), **(line.get("metadata") or {})}
                items[item_id] = {"id": item_id, "amount": int(line["amount"]), "currency": line["currency"],
                                  "metadata": metadata, "invoice": invoice["id"],
                                  "invoice_status": invoice_status(invoice)}
        return list(items.values())

    def invoice_status(self, invoice_id: str) -> str:
        return invoice_status(self._call(f"read invoice {invoice_id}", self._stripe.v1.invoices.retrieve, invoice_id))

    def add_item(self, customer_id: str, amount_cents: int, currency: str, description: str,
                 metadata: dict[str, str], placed_ids: list[str]) -> dict:
        """One invoice item; `placed_ids` are the ids of the items of the same tenant, month and resource type that
        Stripe held when the difference was computed (part of the idempotency key: the same difference on top of
        the same items is the same request; on top of other items, a new one)."""
        return self._call(
            f"add an invoice item for {metadata.get('accountant_id')} {metadata.get('month')} "
            f"{metadata.get('resource_type')}",
            self._stripe.v1.invoice_items.create,
            {"customer": customer_id, "amount": amount_cents, "currency": currency, "description": description,
             "metadata": metadata},
            idempotency_key=idempotency_key("item", customer_id, metadata.get("accountant_id"), metadata.get("month"),
                                            metadata.get("resource_type"), metadata.get("kind"), amount_cents,
                                            currency, sorted(placed_ids)),
        )


def idempotency_key(kind: str, *parts) -> str:
    """A deterministic Stripe idempotency key: what is created and from which state (Stripe allows 255
    characters; the state is hashed)."""
    digest = hashlib.sha256(json.dumps([kind, *parts], sort_keys=True, default=str).encode()).hexdigest()
    return f"billing_pipeline-{kind}-{digest[:48]}"


def _id_of(value) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _line_item_id(line: dict) -> str | None:
    """The invoice item behind an invoice line: `invoice_item` (older API versions, localstripe) or
    `parent.invoice_item_details.invoice_item` (2025-03-31 and later)."""
    if line.get("invoice_item"):
        return _id_of(line["invoice_item"])
    parent = line.get("parent") or {}
    details = parent.get("invoice_item_details") or {}
    return _id_of(details.get("invoice_item"))


def invoice_status(invoice: dict) -> str:
    """Stripe's invoice status (draft, open, paid, uncollectible, void), with `past_due` for an open invoice that is
    past its due date (send_invoice) or whose automatic payment was attempted and failed (Smart Retries pending)."""
    status = invoice.get("status") or "draft"
    if status == "open":
        due = invoice.get("due_date")
        if (due and due < time.time()) or (invoice.get("attempt_count") or 0) > 0:
            return "past_due"
    return status
