"""Fixtures of the API tests: a real warehouse built from two generated months (2025-12 final, 2026-01
provisional) through the real Definitions, a tokens file, and the API served by its documented command
(`python -m billing_pipeline.api`) on 127.0.0.1. Session-scoped: each xdist worker builds them once."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from billing_pipeline.api.auth import issue_token
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.sample_data import SampleMonth, generate_month

DEC, JAN = dt.date(2025, 12, 1), dt.date(2026, 1, 1)
# the tables the API reads, and the chain that feeds them (not the output assets: statements, invoices, ...)
CORE_TABLES = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
               "reconciliation_report"]


@dataclass
class Built:
    warehouse: Path
    tokens_file: Path
    months: dict[dt.date, SampleMonth]
    tokens: dict[str, str]  # accountant_id -> token

    def total(self, month: dt.date, accountant: str) -> Decimal:
        return sum((c for (a, _s), c in self.months[month].expected_costs.items() if a == accountant), Decimal(0))

    def cents(self, month: dt.date) -> dict[str, Decimal]:
        """Every accountant's cents of the month's statement (largest remainder over all, 'unattributed' too)."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (accountant, _service), cost in self.months[month].expected_costs.items():
            totals[accountant] += cost
        return largest_remainder_cents(dict(totals))

    def estimated_cents(self, month: dt.date) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (accountant, _rtype), cost in self.months[month].expected_estimates.items():
            totals[accountant] += cost
        return largest_remainder_cents(dict(totals))

    def estimated(self, month: dt.date, accountant: str) -> Decimal:
        return sum((c for (a, _t), c in self.months[month].expected_estimates.items() if a == accountant), Decimal(0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build(root: Path) -> Built:
    """January 2026 through the real Definitions; December 2025 is the same numbers a month earlier, marked final
    (a second generated month would double the build time and test nothing more of the API)."""
    import duckdb
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    warehouse = root / "warehouse.duckdb"
    sample = generate_month(root / "sample", JAN, tenants=3, rows=1200, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BILLING_CUR_URI", sample.cur_uri)
        mp.setenv("BILLING_LOGS_URI", sample.logs_uri)
        mp.setenv("BILLING_S3_INVENTORY_URI", sample.inventory_uri)
        mp.setenv("BILLING_USAGE_URI", sample.usage_uri)
        mp.setenv("BILLING_WAREHOUSE", str(warehouse))
        result = materialize([*defs.assets, *defs.asset_checks], selection=CORE_TABLES, resources=defs.resources,
                             partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
        assert result.success
    with duckdb.connect(str(warehouse)) as con:
        for table in ("tenant_costs", "estimated_usage", "reconciliation_report"):
            con.execute(f"""INSERT INTO {table} BY NAME
                SELECT * REPLACE (DATE '2025-12-01' AS billing_period) FROM {table} WHERE billing_period = ?""", [JAN])
        con.execute("UPDATE reconciliation_report SET is_final = true WHERE billing_period = DATE '2025-12-01'")
    tokens_file = root / "tokens.json"
    tokens = {accountant: issue_token(accountant, str(tokens_file)) for accountant in sample.tenants}
    return Built(warehouse, tokens_file, {DEC: sample, JAN: sample}, tokens)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """Built once per test session: under xdist the first worker builds it, the others wait and load it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return _build(tmp_path_factory.mktemp("api"))
    import pickle

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "billing-api-warehouse"
    with FileLock(str(shared) + ".lock"):
        done = shared / "built.pickle"
        if not done.exists():
            shared.mkdir(exist_ok=True)
            built = _build(shared)
            done.write_bytes(pickle.dumps(built))
        return pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def server(built):
    """The API served by `python -m billing_pipeline.api` on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "BILLING_API_LOCK_WAIT": "1"}
    log = open(built.tokens_file.parent / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "billing_pipeline.api", "--host", "127.0.0.1", "--port", str(port),
         "--warehouse", str(built.warehouse), "--tokens", str(built.tokens_file), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the API server did not start: " + (built.tokens_file.parent / "server.log").read_text())
        time.sleep(0.1)
    yield base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=20) as http:
        yield http


@pytest.fixture
def warehouse_copy(built, tmp_path) -> Path:
    """A private copy of the warehouse, for tests that change or lock it."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built.warehouse, copy)
    return copy


def in_process_client(warehouse: Path, tokens_file: Path):
    """FastAPI's TestClient over create_app (imported here: it warns about its httpx backend on import)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from billing_pipeline.api.app import create_app

    return TestClient(create_app(warehouse=str(warehouse), tokens_file=str(tokens_file)))
