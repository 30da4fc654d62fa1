"""Stripe in the tests: a local localstripe server (the `localstripe` fixture in conftest.py), the test API key and
price list, and a small client to look at what the invoices asset did. No tests here."""

from __future__ import annotations

import socket

import httpx

API_KEY = "sk_test_billing_pipeline_0123456789"
PRICE_LIST = {
    "currency": "usd",
    "platform_plan": {"product_id": "test_platform", "plan_id": "test_platform_monthly_usd", "name": "Test platform",
                      "amount_cents": 0},
    "minimum_monthly_fee": "12.00",
    "resource_types": {"lambda": {"markup_pct": "30"}, "dynamodb": {"markup_pct": "30"}, "s3": {"markup_pct": "20"},
                       "agentcore": {"markup_pct": "25"}, "bedrock": {"markup_pct": "15"},
                       "other": {"markup_pct": "10"}},
    "overrides": {"acct-0002": {"minimum_monthly_fee": "0", "resource_types": {"s3": {"markup_pct": "0"}}}},
}

# localstripe's console script binds every interface ('::') and pickles its store to the shared
# /tmp/localstripe.pickle after each write; the tests run the same server app on 127.0.0.1 with an in-memory store.
LAUNCHER = """
import sys
from aiohttp import web
import localstripe.resources as resources
from localstripe.server import app
resources.Store.dump_to_disk = lambda self: None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


class Stripe:
    """Just enough of the Stripe API to look at what the asset did (and to play Stripe's part: sweep, pay, void)."""

    def __init__(self, base: str):
        self.http = httpx.Client(base_url=base, auth=(API_KEY, ""), timeout=10)

    def get(self, path, **params):
        response = self.http.get(path, params={"limit": 100, **params})
        response.raise_for_status()
        return response.json()

    def post(self, path, data=None):
        response = self.http.post(path, data=data or {})
        response.raise_for_status()
        return response.json()

    def customers(self) -> dict[str, dict]:
        return {c["metadata"]["accountant_id"]: c for c in self.get("/v1/customers")["data"]}

    def items(self) -> list[dict]:
        """Every invoice item, pending or on an invoice, with its invoice id."""
        found = {}
        for customer in self.get("/v1/customers")["data"]:
            for item in self.get("/v1/invoiceitems", customer=customer["id"])["data"]:
                found[item["id"]] = {**item, "invoice": None}
            for invoice in self.get("/v1/invoices", customer=customer["id"])["data"]:
                for line in self.get(f"/v1/invoices/{invoice['id']}/lines")["data"]:
                    if line["type"] == "invoiceitem":
                        found[line["invoice_item"]] = {**line, "id": line["invoice_item"], "invoice": invoice["id"]}
        return list(found.values())

    def sweep(self, accountant: str) -> str:
        """What Stripe does at the period end: the subscription's next invoice takes the pending items."""
        customer = self.customers()[accountant]["id"]
        subscription = self.get("/v1/subscriptions", customer=customer)["data"][0]["id"]
        return self.post("/v1/invoices", {"customer": customer, "subscription": subscription})["id"]

    def pay_with_card(self, accountant: str, invoice: str, number: str = "4242424242424242"):
        """Attempt the invoice's payment with a test card (4000000000000341 attaches, then is declined)."""
        customer = self.customers()[accountant]["id"]
        card = self.post("/v1/payment_methods", {"type": "card", "card[number]": number,
                                                 "card[exp_month]": "12", "card[exp_year]": "2030",
                                                 "card[cvc]": "123"})["id"]
        self.post(f"/v1/payment_methods/{card}/attach", {"customer": customer})
        self.post(f"/v1/customers/{customer}", {"invoice_settings[default_payment_method]": card})
        return self.post(f"/v1/invoices/{invoice}/pay")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
