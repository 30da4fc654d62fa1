"""Shared fixtures: an empty in-memory warehouse, the local AWS server (moto) with the application's usage table,
a local Stripe (localstripe), the invoicing tests' final month (`final_month`, `env`), and the README's first
command run once (`demo_run`). Their helpers are in aws_support.py and stripe_support.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import boto3
import duckdb
import httpx
import pytest

from billing_pipeline.resources.warehouse import warehouse_ddl
from billing_pipeline_tests.aws_support import TABLE, cur_item
from billing_pipeline_tests.stripe_support import API_KEY, LAUNCHER, PRICE_LIST, Stripe, free_port

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"
# Spark sessions of the tests read Spark's defaults file from here (data/spark-conf/spark-defaults.conf: settings
# sized for a few thousand rows); a standalone cluster's daemons get an empty folder of their own (spark_cluster.py)
SPARK_TEST_CONF = Path(__file__).resolve().parent / "data" / "spark-conf"
os.environ.setdefault("SPARK_CONF_DIR", str(SPARK_TEST_CONF))

# the tests that read what the demo wrote share one worker under xdist (`--dist loadgroup`), so it runs once
DEMO_GROUP = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`python -m billing_pipeline.demo` (the README's first command, 2 tenants x 1,500 rows) in a folder of its
    own, no BILLING_* or DAGSTER_HOME of the caller's: (the folder, what it printed). Tests only read it."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLING_", "DAGSTER_HOME"))}
    done = subprocess.run([sys.executable, "-m", "billing_pipeline.demo", "--rows", "1500", "--tenants", "2"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, done.stdout


@pytest.fixture
def warehouse_con():
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(warehouse_ddl())
    yield con
    con.close()


@pytest.fixture(scope="session")
def moto_endpoint():
    """A local AWS-compatible server (moto_server) on 127.0.0.1, started for the test session: S3, DynamoDB,
    CloudWatch Logs and Cost Explorer over real HTTP, no credentials, no network."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    server = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """The standard AWS environment pointed at the local server, with dummy credentials."""
    import urllib.request

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield moto_endpoint
    # every test starts from an empty account
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=10)


@pytest.fixture(autouse=True)
def published_in_tmp(monkeypatch, tmp_path):
    """Runs that reach `published_billing` publish into the test's folder, not the repository's data/."""
    monkeypatch.setenv("BILLING_PUBLISH_URI", str(tmp_path / "published"))


@pytest.fixture(autouse=True)
def no_real_services(monkeypatch):
    """Tests never reach real Stripe or AWS with a developer's credentials: those that need a service start a
    local one and point at it explicitly."""
    for name in ("STRIPE_API_KEY", "STRIPE_API_BASE", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def localstripe():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/v1/customers", auth=(API_KEY, ""), timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError("localstripe did not start")
        time.sleep(0.1)
    yield base
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def usage_table(aws):
    dynamodb = boto3.resource("dynamodb")
    table = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "accountant_id", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "accountant_id", "AttributeType": "S"},
                              {"AttributeName": "timestamp", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # the application's own estimate items, and an actual-cost item of another month: never touched
    table.put_item(Item={"accountant_id": "acc-1", "timestamp": "2026-01-02T10:15:00Z", "month": "2026-01",
                         "operation": "compute_tax", "resource_type": "lambda", "quantity": D("1.5"),
                         "unit_cost": D("0.0000166667"), "estimated_cost": D("0.000025")})
    table.put_item(Item=cur_item("acc-1", 31, "AWSLambda", "lambda", "9.99") | {
        "timestamp": "2025-12-31T00:00:00Z#cur#AWSLambda", "month": "2025-12", "usage_date": "2025-12-31"})
    return table


@pytest.fixture(scope="module")
def final_month(tmp_path_factory):
    """A generated final month (invoice id in the CUR) run through the upstream chain, Stripe off: the invoicing
    tests' month (stripe_support.py has their helpers)."""
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs
    from billing_pipeline.sample_data import generate_month

    root = tmp_path_factory.mktemp("invoices")
    sample = generate_month(root / "sample", dt.date(2026, 1, 1), tenants=4, rows=2000, seed=11, final=True)
    warehouse = root / "template.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BILLING_CUR_URI", sample.cur_uri)
        env.setenv("BILLING_LOGS_URI", sample.logs_uri)
        env.setenv("BILLING_S3_INVENTORY_URI", sample.inventory_uri)
        env.setenv("BILLING_USAGE_URI", sample.usage_uri)
        env.setenv("BILLING_WAREHOUSE", str(warehouse))
        env.delenv("STRIPE_API_KEY", raising=False)
        result = materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, partition_key="2026-01-01",
                             instance=DagsterInstance.ephemeral())
    assert result.success
    return sample, warehouse


@pytest.fixture
def env(localstripe, final_month, tmp_path, monkeypatch):
    """A fresh Stripe, a copy of the final month's warehouse, and the environment pointing at both:
    (sample, warehouse, Stripe client)."""
    httpx.delete(localstripe + "/_config/data", timeout=10).raise_for_status()
    sample, template = final_month
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(template, warehouse)
    price_list = tmp_path / "price_list.json"
    price_list.write_text(json.dumps(PRICE_LIST))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("BILLING_PRICE_LIST", str(price_list))
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe)
    return sample, warehouse, Stripe(localstripe)
