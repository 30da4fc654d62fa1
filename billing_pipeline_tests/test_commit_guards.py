"""Validate before commit (issue 16, item 5): every blocking check of a table runs on the month's new rows inside
its replacing transaction (billing_pipeline/checks/guard.py). For each guard a month that fails it is fed in: the
run fails naming the check (and the file and line item where there is one), and the table still holds the previous
month's rows exactly. When a guard downstream of cur_line_items fails, the month's tables disagree on their
delivery, and statements, exports, invoices and the API refuse it until the named asset is re-run.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from billing_pipeline import lineage
from billing_pipeline.api.auth import issue_token
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.api_support import in_process_client
from billing_pipeline_tests.readers.cur_builders import legacy_row, write_csv, write_legacy_manifest
from billing_pipeline_tests.stripe_support import API_KEY, Stripe
from billing_pipeline_tests.month_support import (
    ASSETS,
    JAN,
    exports_of,
    failure_message,
    point_at,
    redeliver,
    run,
    run_check,
    snapshot,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=3, rows=600, seed=41)


@pytest.fixture
def month(tmp_path, monkeypatch, sample):
    """A good month materialized end to end (its CUR copied, so a test can deliver it again)."""
    cur = tmp_path / "cur"
    shutil.copytree(sample.cur_uri, cur)
    point_at(monkeypatch, sample, tmp_path, cur=cur)  # (published under tmp_path: conftest's published_in_tmp)
    assert run(ASSETS).success
    return tmp_path, cur


def broken_stage(monkeypatch, module: str, stage: str, wrap: str) -> None:
    """The asset's stage SQL as a buggy stage would compute it: `wrap` with {sql} standing for the real query."""
    import importlib

    target = importlib.import_module(f"billing_pipeline.assets.{module}")
    real = target.stage_sql
    monkeypatch.setattr(target, "stage_sql", lambda name: wrap.format(sql=real(name)) if name == stage else real(name))


DOUBLE_A_ROW = "SELECT * FROM ({sql}) UNION ALL (SELECT * FROM ({sql}) LIMIT 1)"

# (asset, stage SQL, how the stage goes wrong, the check that refuses it)
BROKEN_STAGES = [
    ("hourly_cost_facts", "SELECT * REPLACE (amortized_cost + 0.0000000001 AS amortized_cost) FROM ({sql})",
     "facts_add_up_to_line_items"),
    ("usage_shares", "SELECT * REPLACE (share * 2 AS share) FROM ({sql})", "shares_sum_to_one"),
    ("usage_shares", "SELECT * REPLACE (1 AS share) FROM ({sql})", "shares_sum_to_one"),
    ("estimated_usage", DOUBLE_A_ROW, "no_duplicate_estimates"),
    ("tenant_costs", "SELECT * REPLACE (cost + 0.0000000001 AS cost) FROM ({sql})",
     "attributed_plus_unattributed_equals_cur"),
    ("reconciliation_report", DOUBLE_A_ROW, "no_duplicate_report_rows"),
    ("pricing_feedback", DOUBLE_A_ROW, "no_duplicate_pricing_feedback"),
]


@pytest.mark.parametrize(("asset", "wrap", "check"), BROKEN_STAGES,
                         ids=[f"{a}-{c}-{i}" for i, (a, _w, c) in enumerate(BROKEN_STAGES)])
def test_a_month_failing_a_tables_check_is_refused_before_commit(month, monkeypatch, asset, wrap, check):
    root, _ = month
    before = snapshot(root / "w.duckdb")
    broken_stage(monkeypatch, asset, asset, wrap)

    result = run({asset})

    assert not result.success
    assert (f"{asset} of 2026-01 failed its check {check} before commit; nothing was replaced, the table keeps the "
            "month it held") in failure_message(result)
    assert snapshot(root / "w.duckdb") == before


def test_statements_whose_cents_do_not_add_up_are_refused_before_commit_and_not_exported(month, monkeypatch):
    import billing_pipeline.assets.statements as statements

    root, _ = month
    before, exported = snapshot(root / "w.duckdb"), exports_of(root / "exports")
    real = statements.statement_rows

    def one_cent_more(*args):
        rows = real(*args)
        rows[0]["amount"] += statements.CENT
        return rows

    monkeypatch.setattr(statements, "statement_rows", one_cent_more)
    result = run({"statements"})

    assert not result.success
    message = failure_message(result)
    assert "statements of 2026-01 failed its check statement_cents_add_up before commit" in message
    assert "lines do not add up to the total" in message
    assert snapshot(root / "w.duckdb") == before
    assert exports_of(root / "exports") == exported


def test_statement_lines_written_twice_are_refused_before_commit(month, monkeypatch):
    import billing_pipeline.assets.statements as statements

    root, _ = month
    before = snapshot(root / "w.duckdb")
    real = statements.statement_rows
    monkeypatch.setattr(statements, "statement_rows", lambda *args: (rows := real(*args)) + rows[:1])

    result = run({"statements"})

    assert not result.success
    message = failure_message(result)
    # the doubled line breaks the cents first; either way nothing is replaced
    assert "statements of 2026-01 failed its check" in message and "before commit" in message
    assert snapshot(root / "w.duckdb") == before


def test_a_delivery_holding_a_line_item_twice_fails_naming_file_and_line_item(month, monkeypatch):
    root, _ = month
    before = snapshot(root / "w.duckdb")
    bad = root / "doubled-cur"
    period = bad / "doubled" / "20260101-20260201"
    line = legacy_row(**{"identity/LineItemId": "li-twice", "lineItem/UnblendedCost": "1.25"})
    data = write_csv(period / "asm-2" / "doubled-1.csv.gz",
                     [legacy_row(**{"identity/LineItemId": "li-once"}), line, line])
    write_legacy_manifest(period / "doubled-Manifest.json", "doubled", [data.relative_to(bad).as_posix()], "asm-2")
    monkeypatch.setenv("BILLING_CUR_URI", str(bad))

    result = run({"cur_line_items"})

    assert not result.success
    message = failure_message(result)
    assert "cur_line_items of 2026-01 failed its check no_duplicate_line_items before commit" in message
    assert f"{data}: line item li-twice starting 2026-01-01 00:00:00 appears 2 times" in message
    assert snapshot(root / "w.duckdb") == before


def test_a_guard_failing_downstream_leaves_a_month_that_every_reader_refuses(month, monkeypatch, localstripe):
    """A new delivery: cur_line_items and hourly_cost_facts take it, tenant_costs' guard refuses its month, so
    tenant_costs and the tables after it stay on the old delivery. The lineage check, statements (and with them
    the exports), invoices and published_billing (the API) refuse the month, naming tenant_costs; once the stage is
    right again, re-running from tenant_costs makes the month whole."""
    import billing_pipeline.assets.tenant_costs as tenant_costs

    root, cur = month
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        ((old,),) = con.execute("SELECT DISTINCT delivery_id FROM cur_line_items").fetchall()
    exported = exports_of(root / "exports")
    pointer = (root / "published" / "current" / "2026-01.json").read_bytes()
    redeliver(cur, "asm-guarded")
    right = tenant_costs.stage_sql
    broken_stage(monkeypatch, "tenant_costs", "tenant_costs",
                 "SELECT * REPLACE (cost + 0.0000000001 AS cost) FROM ({sql})")

    result = run(ASSETS)

    assert not result.success
    assert "tenant_costs of 2026-01 failed its check attributed_plus_unattributed_equals_cur" in failure_message(result)
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        assert lineage.deliveries_by_table(con, JAN) == {
            "cur_line_items": ["asm-guarded"], "hourly_cost_facts": ["asm-guarded"], "tenant_costs": [old],
            "reconciliation_report": [old], "statements": [old]}
    expected = (f"tenant_costs of 2026-01 was computed from delivery {old}, but cur_line_items holds delivery "
                "asm-guarded: re-run tenant_costs and the assets after it for 2026-01 "
                "(dagster asset materialize --select 'tenant_costs*' --partition 2026-01-01)")
    evaluation = run_check()
    assert not evaluation.passed and evaluation.metadata["problems"].value == expected
    for asset in ("statements", "reconciliation_report"):
        result = run({asset})
        assert not result.success and f"Refusing 2026-01: {expected}" in failure_message(result), asset
    assert exports_of(root / "exports") == exported
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", localstripe)
    result = run({"invoices"})
    assert not result.success and expected in failure_message(result)
    assert Stripe(localstripe).get("/v1/invoiceitems")["data"] == []
    monkeypatch.delenv("STRIPE_API_KEY")
    result = run({"published_billing"})
    assert not result.success and expected in failure_message(result)
    assert (root / "published" / "current" / "2026-01.json").read_bytes() == pointer
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        (accountant,) = con.execute("SELECT min(accountant_id) FROM statements WHERE accountant_id <> 'unattributed'"
                                    ).fetchall()[0]
    headers = {"Authorization": f"Bearer {issue_token(accountant, str(root / 'tokens.json'))}"}
    client = in_process_client(root / "published", root / "tokens.json")
    assert client.get("/billing", params={"month": "2026-01"}, headers=headers).json()["published"]["cur_delivery"] == old

    monkeypatch.setattr(tenant_costs, "stage_sql", right)  # the stage is right again
    assert run(ASSETS - {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage"}).success
    assert run_check().passed
    assert client.get("/billing", params={"month": "2026-01"},
                      headers=headers).json()["published"]["cur_delivery"] == "asm-guarded"
