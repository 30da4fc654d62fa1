"""Shared fixtures: an empty in-memory warehouse with every table of warehouse.sql."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from billing_pipeline.resources.warehouse import warehouse_ddl

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture
def warehouse_con():
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(warehouse_ddl())
    yield con
    con.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port = _free_port()
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
                raise RuntimeError("moto_server did not start")
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
