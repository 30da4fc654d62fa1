"""The API when the warehouse is busy, nothing is published, a month is only estimated, or holds hostile strings
(in-process, on copies)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import time
from decimal import Decimal as D

import duckdb
import pytest

from billing_pipeline.api.app import safe_cell
from billing_pipeline.api.auth import issue_token

from .conftest import JAN, in_process_client, publish, run_month, sample_env

A = "acct-0001"


def test_a_writer_holding_the_warehouse_changes_nothing_for_the_api(built, copy):
    """The API reads the published snapshots, never the warehouse: a pipeline run holding DuckDB's write lock
    (which used to answer 503 to every tenant) is not even noticed."""
    client = in_process_client(copy.published, built.tokens_file)
    headers = {"Authorization": f"Bearer {built.tokens[A]}"}
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()",
         str(copy.warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        response = client.get("/billing", params={"month": "2026-01"}, headers=headers)
        assert response.status_code == 200
        assert response.json()["total_cost"]["exact"] == f"{built.total(dt.date(2026, 1, 1), A):f}"
        assert time.monotonic() - started < 2
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_nothing_published_is_503(built, tmp_path):
    client = in_process_client(tmp_path / "nowhere", built.tokens_file)
    response = client.get("/billing/history", headers={"Authorization": f"Bearer {built.tokens[A]}"})
    assert response.status_code == 503
    assert response.json()["detail"] == "No billing figures have been published yet: run the pipeline first."


def test_a_month_with_estimates_only(built, copy):
    """Before the month's CUR arrives, the statement is the application's estimates, marked as such."""
    feb = dt.date(2026, 2, 1)
    rows = [(feb, A, "lambda", "LambdaRequests", feb, D("1000"), D("0.0002000000"), 1),
            (feb, A, "s3", "S3Storage", feb, D("10"), D("0.2300000000"), 1),
            (feb, "acct-0002", "s3", "S3Storage", feb, D("10"), D("0.1155555555"), 1)]
    with duckdb.connect(str(copy.warehouse)) as con:
        con.executemany("INSERT INTO estimated_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    publish(copy.warehouse, copy.published, feb)
    client = in_process_client(copy.published, built.tokens_file)
    doc = client.get("/billing", params={"month": "2026-02"}, headers={"Authorization": f"Bearer {built.tokens[A]}"}).json()
    assert (doc["status"], doc["actual_available"], doc["total_source"], doc["is_final"]) == (
        "estimated", False, "estimated", False)
    assert doc["actual_cost"] is None and doc["variance"] is None
    assert doc["total_cost"] == {"exact": "0.2302000000", "rounded": "0.23", "cents": 23}
    assert doc["usage_by_type"]["s3"]["cost"]["exact"] == "0.2300000000"
    assert doc["usage_by_type"]["s3"]["unit_cost"] == "0.023000000000"
    assert doc["usage_by_type"]["lambda"]["unit_cost"] == "0.000000200000"
    assert doc["usage_by_type"]["lambda"]["cost_source"] == "estimated"
    assert "0.1155555555" not in client.get("/billing/history", headers={"Authorization": f"Bearer {built.tokens[A]}"}).text


def test_a_tenant_the_month_s_bill_charged_nothing_costs_0_not_its_estimate(built, copy, tmp_path):
    """January has its CUR. A tenant of the registry that recorded estimates but has no attributed cost in it
    (tenant_costs: nothing, the statements: nothing, the report: actual 0) cost 0 this month: it used to be served
    as an 'estimated' month ("no bill yet") whose total was its estimate, beside a report saying actual 0."""
    tenant = "acct-0009"
    with duckdb.connect(str(copy.warehouse)) as con:
        con.execute("INSERT INTO estimated_usage VALUES (?, ?, 'lambda', 'LambdaRequests', ?, 1000000, 0.2, 1)",
                    [JAN, tenant, dt.date(2026, 1, 3)])
    with pytest.MonkeyPatch.context() as mp:
        sample_env(mp, built.months[JAN], copy.warehouse, copy.published)
        assert run_month(["reconciliation_report", "statements", "published_billing"], "2026-01-01").success
    with duckdb.connect(str(copy.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM tenant_costs WHERE accountant_id = ?", [tenant]).fetchone() == (0,)
    tokens = tmp_path / "tokens.json"
    headers = {"Authorization": f"Bearer {issue_token(tenant, str(tokens))}"}
    client = in_process_client(copy.published, tokens)
    doc = client.get("/billing", params={"month": "2026-01"}, headers=headers).json()
    zero = {"exact": "0.0000000000", "rounded": "0.00", "cents": 0}
    assert (doc["status"], doc["is_final"], doc["actual_available"], doc["total_source"]) == (
        "provisional", False, True, "actual")
    assert doc["total_cost"] == doc["actual_cost"] == zero
    assert doc["estimated_cost"] == {"exact": "0.2000000000", "rounded": "0.20", "cents": 20}
    assert doc["variance"] == {"exact": "-0.2000000000", "rounded": "-0.20", "cents": -20}
    assert doc["usage_by_type"]["lambda"]["cost"] == zero
    assert doc["usage_by_type"]["lambda"]["cost_source"] == "actual"
    (month,) = client.get("/billing/history", headers=headers).json()["months"]
    assert (month["status"], month["total_cost"]) == ("provisional", zero)


def test_csv_cells_cannot_be_formulas(built, copy, tmp_path):
    hostile = "=HYPERLINK(\"http://evil\",\"x\")"
    with duckdb.connect(str(copy.warehouse)) as con:
        # a hostile accountant id (estimates only: no usage lines, but the file is named after it) and hostile
        # service and usage type names in acct-0001's lines
        con.execute("INSERT INTO estimated_usage VALUES (DATE '2026-01-01', ?, '@SUM(A1)', '+cmd', DATE '2026-01-02', "
                    "1, 0.5, 1)", [hostile])
        con.execute("UPDATE tenant_costs SET service = '@SUM(A1)', usage_type = ? WHERE accountant_id = 'acct-0001' "
                    "AND billing_period = DATE '2026-01-01' AND resource_type = 'lambda'", [hostile])
    publish(copy.warehouse, copy.published, dt.date(2026, 1, 1))
    tokens = tmp_path / "tokens.json"
    token = issue_token(hostile, str(tokens))
    client = in_process_client(copy.published, built.tokens_file)
    response = client.get("/billing.csv", params={"month": "2026-01"},
                          headers={"Authorization": f"Bearer {built.tokens['acct-0001']}"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text)))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'" + hostile in cells and "'@SUM(A1)" in cells
    assert not any(cell[:1] in ("=", "+", "@") for cell in cells)
    response = in_process_client(copy.published, tokens).get(
        "/billing.csv", params={"month": "2026-01"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert 'filename="_HYPERLINK__http___evil___x___2026-01.csv"' in response.headers["content-disposition"]


@pytest.mark.parametrize("value, expected", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1+2", "'-1+2"), ("@x", "'@x"), ("\tx", "'\tx"), ("\r=x", "'\r=x"),
    ("-0.0834129839", "-0.0834129839"), ("12.5", "12.5"), ("acct-0001", "acct-0001"), (None, ""), ("", ""),
])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected
