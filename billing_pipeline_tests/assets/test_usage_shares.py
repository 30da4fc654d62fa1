"""usage_shares keeps evidence it read before and no longer finds: logs expire (CloudWatch retention, S3 lifecycle
rules) long before AWS stops restating a month, and a restated month re-read without them moved its tenants'
cost to the fallbacks and `unattributed` (an outside check: one tenant's 13.14 became 5.39)."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.month_support import ASSETS, JAN, point_at, run

REREAD = {"usage_shares", "tenant_costs"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=3, rows=1200, seed=31)


@pytest.fixture
def month(tmp_path, monkeypatch, sample):
    """The month run end to end on a copy of its logs (which the tests then expire)."""
    logs = tmp_path / "logs"
    shutil.copytree(sample.logs_uri, logs)
    warehouse = point_at(monkeypatch, sample, tmp_path, logs=logs)
    assert run(ASSETS).success
    return warehouse, logs


def rows(warehouse, table: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def unattributed_cost(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT sum(cost) FROM tenant_costs WHERE accountant_id = 'unattributed'").fetchone()[0]


def reread(keep: bool = True):
    result = materialize([a for a in defs.assets if a.key.to_user_string() in REREAD], resources=defs.resources,
                         partition_key="2026-01-01", instance=DagsterInstance.ephemeral(),
                         run_config={"ops": {"usage_shares": {"config": {"keep_vanished_evidence": keep}}}})
    (materialization,) = [m for m in result.asset_materializations_for_node("usage_shares")]
    return {k: v.value for k, v in materialization.metadata.items()}


def test_evidence_of_expired_logs_stays_as_read_and_the_month_attributes_the_same(month):
    warehouse, logs = month
    shares, costs = rows(warehouse, "usage_shares"), rows(warehouse, "tenant_costs")
    log_hours = {r[1] for r in shares if not r[3].startswith("gb_months")}  # all but the inventory's stored bytes
    files = sorted(p for p in logs.rglob("*") if p.is_file())
    assert len(files) > 4

    # evidence a reader now names otherwise (the same bytes under another driver, as Intelligent-Tiering's tiers
    # once were one driver) is replaced, not kept beside: its source still has evidence of the hour and scope
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE usage_shares SET driver = 'gb_months_old_name' WHERE driver = 'gb_months'")
    assert reread()["kept_vanished_evidence/hours"] == 0
    assert rows(warehouse, "usage_shares") == shares and rows(warehouse, "tenant_costs") == costs

    # the AgentCore runtime's application logs (naming each session's tenant) expired, its usage logs not: the
    # runtime's vCPU- and GB-hours are read again but own by no one; the stored rows, which had owners, stay
    runtime = [p for p in files if "[runtime-logs]" in str(p)]
    assert runtime and len(runtime) < len(files)
    for path in runtime:
        path.unlink()
    lost_owners = reread()
    assert lost_owners["kept_vanished_evidence/hours"] > 0
    assert "AmazonBedrockAgentCore/vcpu_hours" in lost_owners["kept_vanished_evidence/drivers"]
    assert rows(warehouse, "usage_shares") == shares and rows(warehouse, "tenant_costs") == costs
    files = [p for p in files if p not in runtime]

    # part of the logs expired: the evidence still found is read again, the rest kept, the month unchanged
    for path in files[: len(files) // 2]:
        path.unlink()
    partial = reread()
    assert 0 < partial["kept_vanished_evidence/hours"] < len(log_hours)
    assert rows(warehouse, "usage_shares") == shares and rows(warehouse, "tenant_costs") == costs

    # every log expired (a restatement months later): the same again, every log hour kept
    shutil.rmtree(logs)
    logs.mkdir()
    expired = reread()
    assert expired["kept_vanished_evidence/hours"] == len(log_hours)
    assert expired["kept_vanished_evidence/first_hour"] == str(min(log_hours))
    assert expired["kept_vanished_evidence/last_hour"] == str(max(log_hours))
    assert "AWSLambda/gb_seconds" in expired["kept_vanished_evidence/drivers"]
    assert rows(warehouse, "usage_shares") == shares and rows(warehouse, "tenant_costs") == costs

    # asked to replace what it read with what is read now: only the inventory's evidence is left, and the cost
    # the logs explained is the fallbacks' and unattributed's (what every re-read did before)
    unattributed_before = unattributed_cost(warehouse)
    assert reread(keep=False)["dagster/row_count"] == sum(1 for r in shares if r[3].startswith("gb_months"))
    assert all(r[3].startswith("gb_months") for r in rows(warehouse, "usage_shares"))
    assert unattributed_cost(warehouse) > unattributed_before


def test_a_log_driver_whose_own_log_group_expired_stays_beside_the_drivers_still_found(month):
    """The AgentCore runtime's vended usage logs (its vCPU- and GB-hours) expire while its application logs (session
    starts and tool calls, in the same hour x service x scope) remain: the hours' vCPU- and GB-hours stay as read
    beside the sessions and tool calls read again (replacing the key whole lost them: a tenant's AgentCore 2.50
    became 0.01, another's 7.67 became 11.00)."""
    warehouse, logs = month
    shares, costs = rows(warehouse, "usage_shares"), rows(warehouse, "tenant_costs")
    agentcore = [r for r in shares if r[2] == "AmazonBedrockAgentCore"]
    # a log driver the reader now names otherwise is no vanished driver: the key is replaced whole, not kept beside
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE usage_shares SET driver = 'vcpu_hours_old_name' WHERE driver = 'vcpu_hours'")
    assert reread()["kept_vanished_evidence/hours"] == 0
    assert rows(warehouse, "usage_shares") == shares and rows(warehouse, "tenant_costs") == costs
    usage_logs = [p for p in logs.rglob("*") if p.is_file() and "[usage-logs]" in str(p)]
    assert usage_logs
    for path in usage_logs:
        path.unlink()
    assert "AmazonBedrockAgentCore/vcpu_hours" in reread()["kept_vanished_evidence/drivers"]
    assert [r for r in rows(warehouse, "usage_shares") if r[2] == "AmazonBedrockAgentCore"] == agentcore
    assert rows(warehouse, "tenant_costs") == costs
    # a second re-read keeps them again
    reread()
    assert [r for r in rows(warehouse, "usage_shares") if r[2] == "AmazonBedrockAgentCore"] == agentcore
    assert rows(warehouse, "tenant_costs") == costs
