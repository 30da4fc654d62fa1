"""invoices under overlapping runs: two real processes invoice the same month at the same instant against one
localstripe. Without the invoicing lock both list a tenant's items, both find them missing and both add them (the
issue's 36 items instead of 18, two customers per tenant on an empty account); with it, exactly one set.

Each process imports the real Definitions first (the slow part), then waits for a common start instant and
materializes `invoices` with its own ephemeral instance, as a one-off `dagster asset materialize` beside the
schedule would: no Dagster pool stands between them, only the lock beside the warehouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from billing_pipeline.resources.stripe_billing import idempotency_key
from billing_pipeline_tests.stripe_support import (
    API_KEY,
    PRICE_LIST,
    assert_one_set,
    expected_cents,
    run_invoices,
    run_together,
    sums,
)

def test_two_runs_at_once_on_an_empty_account_charge_once(env):
    sample, warehouse, stripe_api = env
    outputs = run_together()
    assert_one_set(sample, warehouse, stripe_api)
    # one of them waited for the other's lock, beside the warehouse
    assert all(f"file lock {warehouse}.invoices.lock" in output for output in outputs)


def test_two_runs_at_once_with_existing_customers_charge_once(env):
    sample, warehouse, stripe_api = env
    for accountant in sample.tenants:
        stripe_api.post("/v1/customers", {"name": accountant, "metadata[accountant_id]": accountant})
    run_together()
    assert_one_set(sample, warehouse, stripe_api)


def test_idempotency_keys_are_deterministic_and_follow_the_state():
    item = ("item", "cus_1", "acct-0001", "2026-01", "lambda", "charge", 1234, "usd")
    assert idempotency_key(*item, []) == idempotency_key(*item, [])
    assert idempotency_key(*item, ["ii_2", "ii_1"]) != idempotency_key(*item, [])  # on top of other items: new
    assert idempotency_key("customer", "acct-0001") == \
        "billing_pipeline-customer-" + __import__("hashlib").sha256(b'["customer", "acct-0001"]').hexdigest()[:48]
    assert len(idempotency_key(*item, ["ii_" + "x" * 300])) <= 255


@pytest.fixture
def recorded_keys(monkeypatch):
    """The Idempotency-Key header of every request the stripe library sends (its real HTTP client, observed)."""
    import stripe

    sent: list[tuple[str, str, str | None]] = []
    original = stripe.RequestsClient.request

    def request(self, method, url, headers, post_data=None):
        sent.append((method.upper(), url, (headers or {}).get("Idempotency-Key")))
        return original(self, method, url, headers, post_data)

    monkeypatch.setattr(stripe.RequestsClient, "request", request)
    return sent


def test_every_create_carries_a_deterministic_idempotency_key(env, recorded_keys):
    sample, _, stripe_api = env
    assert run_invoices().success
    posts = [(url, key) for method, url, key in recorded_keys if method == "POST"]
    expected = expected_cents(sample.expected_actuals, PRICE_LIST)
    # product, plan, 4 customers, 4 subscriptions, one item per line: every one with a key, no key twice
    assert len(posts) == 2 + 2 * len(sample.tenants) + len(expected)
    assert all(key and key.startswith("billing_pipeline-") for _, key in posts)
    assert len({key for _, key in posts}) == len(posts)
    customers = stripe_api.customers()
    assert {key for url, key in posts if url.endswith("/v1/customers")} == \
        {idempotency_key("customer", a) for a in customers}
    # the same state gives the same keys: the same month on a fresh account sends exactly the same ones for the
    # objects whose key does not name a Stripe id (product, plan, customers)
    first = {key for url, key in posts if url.endswith(("/v1/products", "/v1/plans", "/v1/customers"))}
    import httpx

    httpx.delete(stripe_api.http.base_url.join("/_config/data"), timeout=10).raise_for_status()
    recorded_keys.clear()
    assert run_invoices().success
    again = {key for method, url, key in recorded_keys
             if method == "POST" and url.endswith(("/v1/products", "/v1/plans", "/v1/customers"))}
    assert again == first and len(first) == 2 + len(sample.tenants)
    assert API_KEY not in repr(recorded_keys)


def test_re_placing_an_item_deleted_in_stripe_sends_another_key_than_the_one_that_placed_it(env, recorded_keys):
    """A pending item deleted in Stripe (by hand, say) leaves Stripe as it was before the item was placed, so the
    next run's key was the key that placed it: Stripe, which answers a key it saw within 24 h with its first
    response, would hand back the deleted item and nothing would be charged, while the table recorded the item.
    The ids the table recorded and Stripe no longer lists are part of the key: the re-placing is a new request."""
    sample, _, stripe_api = env
    assert run_invoices().success
    item = next(i for i in stripe_api.items() if i["invoice"] is None)
    placing = {key for method, url, key in recorded_keys if method == "POST" and url.endswith("/v1/invoiceitems")}
    stripe_api.http.delete(f"/v1/invoiceitems/{item['id']}").raise_for_status()
    recorded_keys.clear()
    assert run_invoices().success
    again = [key for method, url, key in recorded_keys if method == "POST" and url.endswith("/v1/invoiceitems")]
    assert len(again) == 1 and again[0] not in placing
    assert again[0] == idempotency_key(
        "item", item["customer"], item["metadata"]["accountant_id"], "2026-01", item["metadata"]["resource_type"],
        "charge", item["amount"], "usd", [f"deleted:{item['id']}"])
    assert sums(stripe_api.items()) == expected_cents(sample.expected_actuals, PRICE_LIST)


def test_a_run_that_cannot_get_the_lock_gives_up_clearly(tmp_path):
    """Another process holds the lock beside the warehouse: the run waits, then fails naming it (nothing charged)."""
    from billing_pipeline.resources.output_lock import OutputLockTimeout, invoicing_lock

    warehouse = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock\n"
        "with FileLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)\n"), f"{warehouse}.invoices.lock"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockTimeout) as error:
            with invoicing_lock(None, str(warehouse), wait_seconds=0.5):
                pass
        assert str(error.value) == (f"Another invoicing run held {warehouse}.invoices.lock for over 0.5 s: nothing was "
                                    "charged; re-run the month when it has finished")
    finally:
        holder.kill()
        holder.wait()
    with invoicing_lock(None, str(warehouse)) as held:  # released by the OS when its holder died
        assert held == f"file lock {warehouse}.invoices.lock"


def test_the_lock_file_is_one_per_warehouse_whatever_the_instance_or_the_path_to_it(tmp_path):
    """A link to the warehouse is the same warehouse, so the same lock; a warehouse with no local file (Spark on S3)
    gets one lock per URI in the host's temporary folder (it went into the instance's folder, and an ephemeral
    instance's is new each run: two one-off runs locked two files)."""
    from billing_pipeline.resources.output_lock import lock_file_path

    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.touch()
    (tmp_path / "link.duckdb").symlink_to(warehouse)
    assert lock_file_path(str(tmp_path / "link.duckdb")) == lock_file_path(str(warehouse)) == f"{warehouse}.invoices.lock"
    on_s3 = lock_file_path("s3://billing/warehouse")
    assert on_s3 == lock_file_path("s3://billing/warehouse") != lock_file_path("s3://billing/other")
    assert os.path.dirname(on_s3) == tempfile.gettempdir()
