"""Fixtures of the API tests: a real warehouse built from two generated months (2025-12 final, 2026-01
provisional) through the real Definitions and published by `published_billing`, a tokens file, and the API served
by its documented command (`python -m billing_pipeline.api`) on 127.0.0.1. Session-scoped: each xdist worker builds
them once."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from billing_pipeline.api.auth import issue_token
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.sample_data import SampleMonth, generate_month
from billing_pipeline_tests.api_support import in_process_client, sample_environment, serving  # noqa: F401 (in_process_client: used by the API tests through this module)

DEC, JAN = dt.date(2025, 12, 1), dt.date(2026, 1, 1)
# what the API serves and the chain that feeds it (not the other outputs: invoices, exports elsewhere, ...)
CORE_TABLES = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
               "month_to_date", "reconciliation_report", "statements", "published_billing"]


@dataclass
class Built:
    warehouse: Path
    published: Path
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

    def total_of(self, sample: SampleMonth, accountant: str) -> Decimal:
        return sum((c for (a, _s), c in sample.expected_costs.items() if a == accountant), Decimal(0))

    def estimated(self, month: dt.date, accountant: str) -> Decimal:
        return sum((c for (a, _t), c in self.months[month].expected_estimates.items() if a == accountant), Decimal(0))


def sample_env(mp: pytest.MonkeyPatch, sample: SampleMonth, warehouse: Path, published: Path) -> None:
    for name, value in sample_environment(sample, warehouse, published).items():
        mp.setenv(name, value)


def run_month(selection: list[str], partition_key: str, raise_on_error: bool = True, run_config=None):
    from dagster import DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    return materialize([*defs.assets, *defs.asset_checks], selection=selection, resources=defs.resources,
                       partition_key=partition_key, run_config=run_config,
                       instance=DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


# A restatement stood in for by another generated month brings other logs, which real restatements never do (the
# logs of the hours stay what they were): its evidence replaces the month's (usage_shares keeps, by default,
# evidence it no longer finds, as logs that expired)
OTHER_LOGS = {"ops": {"usage_shares": {"config": {"keep_vanished_evidence": False}}}}


def _build(root: Path) -> Built:
    """January 2026 through the real Definitions, published; December 2025 is the same numbers a month earlier,
    marked final and published by `published_billing` alone (a second generated month would double the build time
    and test nothing more of the API)."""
    import duckdb

    warehouse, published = root / "warehouse.duckdb", root / "published"
    sample = generate_month(root / "sample", JAN, tenants=3, rows=1200, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        sample_env(mp, sample, warehouse, published)
        assert run_month(CORE_TABLES, "2026-01-01").success
        with duckdb.connect(str(warehouse)) as con:
            for table in ("cur_line_items", "hourly_cost_facts", "usage_shares", "tenant_costs", "estimated_usage",
                          "reconciliation_report", "statements"):
                con.execute(f"""INSERT INTO {table} BY NAME SELECT * REPLACE (DATE '2025-12-01' AS billing_period)
                                FROM {table} WHERE billing_period = ?""", [JAN])
            con.execute("UPDATE cur_line_items SET invoice_id = 'INV-2025-12' WHERE billing_period = DATE '2025-12-01'")
            for table in ("reconciliation_report", "statements"):
                con.execute(f"UPDATE {table} SET is_final = true WHERE billing_period = DATE '2025-12-01'")
        assert run_month(["published_billing"], "2025-12-01").success
    tokens_file = root / "tokens.json"
    tokens = {accountant: issue_token(accountant, str(tokens_file)) for accountant in sample.tenants}
    return Built(warehouse, published, tokens_file, {DEC: sample, JAN: sample}, tokens)


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
    with serving(built.published, built.tokens_file, built.tokens_file.parent / "server.log") as base:
        yield base


@pytest.fixture
def server_for(built, tmp_path):
    """Serve other published snapshots (a copy) with the built tokens: server_for(published) -> base URL."""
    with ExitStack() as stack:
        yield lambda published: stack.enter_context(serving(published, built.tokens_file, tmp_path / "server.log"))


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=20) as http:
        yield http


@dataclass
class Copy:
    warehouse: Path
    published: Path


@pytest.fixture
def copy(built, tmp_path) -> Copy:
    """Private copies of the warehouse and the published snapshots, for tests that change or lock them."""
    shutil.copyfile(built.warehouse, tmp_path / "warehouse.duckdb")
    shutil.copytree(built.published, tmp_path / "published")
    return Copy(tmp_path / "warehouse.duckdb", tmp_path / "published")


def publish(warehouse: Path, published: Path, period: dt.date) -> dict:
    """Publish the month as `published_billing` does, without a Dagster run (same function)."""
    import duckdb

    from billing_pipeline.assets.published_billing import publish_from
    from billing_pipeline.storage import locate

    with duckdb.connect(str(warehouse)) as con:
        return publish_from(con, locate(str(published)), period, "duckdb")
