"""Stripe in the tests: a local localstripe server (the `localstripe` fixture in conftest.py), the test API key and
price list, a small client to look at what the invoices asset did, and the invoicing tests' helpers (the expected
cents, one run of `invoices`, several at once; their month is conftest.py's `final_month`). No tests here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import duckdb
import httpx

from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.price_list import MINIMUM_FEE

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


def expected_cents(actuals: dict[tuple[str, str], D], price_list: dict, step: D = D("0.01"),
                   per_unit: int = 100) -> dict[tuple[str, str], int]:
    """(accountant, resource type or minimum_fee) -> cents: markup on the attributed cost, the minimum topped up,
    largest remainder per tenant-month (to `step`, as Stripe's amount: `per_unit` of them per currency unit; whole
    yen are step 1, per_unit 1)."""
    by_tenant = defaultdict(dict)
    for (accountant, resource_type), cost in actuals.items():
        if accountant != "unattributed" and cost != 0:
            by_tenant[accountant][resource_type] = cost
    cents = {}
    for accountant, costs in by_tenant.items():
        override = price_list["overrides"].get(accountant, {})
        minimum = D(override.get("minimum_monthly_fee", price_list["minimum_monthly_fee"]))
        amounts = {}
        for resource_type, cost in costs.items():
            spec = {**price_list["resource_types"][resource_type],
                    **override.get("resource_types", {}).get(resource_type, {})}
            amounts[resource_type] = cost * (1 + D(spec["markup_pct"]) / 100)
        total = sum(amounts.values())
        if total < minimum:
            amounts[MINIMUM_FEE] = minimum - total
        for key, value in largest_remainder_cents(amounts, step).items():
            cents[(accountant, key)] = int(value * per_unit)
    return cents


def run_invoices(raise_on_error=True):
    """`invoices` of 2026-01 through the real Definitions, Stripe's retries off."""
    from dagster import AssetKey, DagsterInstance, materialize

    from billing_pipeline.definitions import defs
    from billing_pipeline.resources.stripe_billing import StripeBilling

    resources = {**defs.resources, "stripe_billing": StripeBilling(max_network_retries=0)}
    return materialize([*defs.assets, *defs.asset_checks], selection=[AssetKey("invoices")], resources=resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
                       raise_on_error=raise_on_error)


def invoice_rows(warehouse: Path, columns="accountant_id, resource_type, kind, status, amount_cents, currency, "
                                          "stripe_invoice_item_id, stripe_invoice_id"):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM invoices ORDER BY ALL").fetchall()


def sums(items, key=lambda i: (i["metadata"]["accountant_id"], i["metadata"]["resource_type"])):
    totals = defaultdict(int)
    for item in items:
        totals[key(item)] += item["amount"]
    return dict(totals)


REPO = Path(__file__).resolve().parents[1]
# A one-off `dagster asset materialize` of `invoices` in a process of its own, starting at a given instant
RUNNER = """
import sys, time
from dagster import AssetKey, DagsterInstance, materialize
from billing_pipeline.definitions import defs
start, instance_kind = float(sys.argv[1]), sys.argv[2]
instance = DagsterInstance.get() if instance_kind == "home" else DagsterInstance.ephemeral()
time.sleep(max(0.0, start - time.time()))
result = materialize(list(defs.assets), selection=[AssetKey("invoices")], resources=defs.resources,
                     partition_key="2026-01-01", instance=instance, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def run_together(count: int = 3, extra_env: dict | None = None, instance: str = "ephemeral") -> list[str]:
    """`count` processes (three: more chances to interleave) invoicing 2026-01 from the same instant, each with an
    ephemeral instance or (`home`) the instance of DAGSTER_HOME; returns their outputs (all must succeed)."""
    start = time.time() + 12  # time enough for both to import the Definitions
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    processes = [subprocess.Popen([sys.executable, "-c", RUNNER, str(start), instance], env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(count)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    return outputs


def assert_one_set(sample, warehouse, stripe_api):
    """Exactly one set of charges for the month: in Stripe (one customer per tenant) and in the warehouse."""
    expected = expected_cents(sample.expected_actuals, PRICE_LIST)
    items = stripe_api.items()
    assert len(items) == len(expected) and sums(items) == expected
    assert {i["metadata"]["kind"] for i in items} == {"charge"}
    customers = stripe_api.get("/v1/customers")["data"]
    assert sorted(c["metadata"]["accountant_id"] for c in customers) == sorted(sample.tenants)
    rows = invoice_rows(warehouse, "accountant_id, resource_type, amount_cents")
    assert {(a, r): c for a, r, c in rows} == expected and len(rows) == len(expected)
