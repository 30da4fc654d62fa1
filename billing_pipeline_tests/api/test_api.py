"""The billing API over real HTTP (the documented command on 127.0.0.1), against the generator's exact answers."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from billing_pipeline import sample_data_oracle as oracle

from billing_pipeline.api.auth import token_hash

from .conftest import DEC, JAN

A, B, C = "acct-0001", "acct-0002", "acct-0003"


def auth(built, accountant):
    return {"Authorization": f"Bearer {built.tokens[accountant]}"}


def money(amount: D, cents: D) -> dict:
    return {"exact": f"{amount:f}", "rounded": f"{cents:f}", "cents": int(cents * 100)}


def expected_report(sample, accountant):
    """(resource_type -> (estimated, actual, flagged)) as the reconciliation rules define it."""
    actual = {t: c for (a, t), c in sample.expected_actuals.items() if a == accountant}
    estimated = {t: c for (a, t), c in sample.expected_estimates.items() if a == accountant}
    rows = {}
    for rtype in set(actual) | set(estimated):
        e, a = estimated.get(rtype, D(0)), actual.get(rtype, D(0))
        rows[rtype] = (e, a, oracle.reconcile(e, a)[2])
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Statements


@pytest.mark.parametrize("accountant", [A, B])
def test_statement_of_a_month_equals_the_generators_answers(client, built, accountant):
    sample = built.months[JAN]
    response = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, accountant))
    assert response.status_code == 200, response.text
    doc = response.json()
    total, cents = built.total(JAN, accountant), built.cents(JAN)[accountant]
    estimated = built.estimated(JAN, accountant)
    assert doc["accountant_id"] == accountant and doc["month"] == "2026-01" and doc["currency"] == "USD"
    assert (doc["status"], doc["is_final"], doc["actual_available"], doc["total_source"]) == (
        "provisional", False, True, "actual")
    assert doc["total_cost"] == doc["actual_cost"] == money(total, cents)
    assert doc["estimated_cost"] == money(estimated, built.estimated_cents(JAN)[accountant])
    assert D(doc["variance"]["exact"]) == total - estimated

    report = expected_report(sample, accountant)
    by_type = doc["usage_by_type"]
    assert set(by_type) == set(report)
    for rtype, usage in by_type.items():
        assert D(usage["cost"]["exact"]) == sample.expected_actuals[(accountant, rtype)]
        assert usage["cost_source"] == "actual"
        estimate = sample.expected_estimates.get((accountant, rtype))  # none for 'other' (log ingestion)
        assert (usage["estimated_cost"] and D(usage["estimated_cost"]["exact"])) == estimate
        rounded = D(usage["cost"]["rounded"])
        assert abs(rounded - sample.expected_actuals[(accountant, rtype)]) < D("0.01")
    # the types' cents add up to the tenant's cents on the statement
    assert sum(D(u["cost"]["rounded"]) for u in by_type.values()) == cents
    assert sum(u["cost"]["cents"] for u in by_type.values()) == doc["total_cost"]["cents"]

    rows = {r["resource_type"]: r for r in doc["estimated_vs_actual"]}
    assert rows.pop("total")["actual_cost"]["exact"] == f"{total:f}"
    assert {t: (D(r["estimated_cost"]["exact"]), D(r["actual_cost"]["exact"]), r["flagged"])
            for t, r in rows.items()} == report


@pytest.mark.parametrize("cost, quantity, shown", [
    ("0.0000000000005", "1", "0.000000000001"),  # a tie goes away from zero (half-even gave 0.000000000000)
    ("-0.0000000000025", "1", "-0.000000000003"),  # a refund's too (half-even: -0.000000000002)
    ("2", "3", "0.666666666667"), ("1", "3", "0.333333333333"),
    # a quotient that does not end, just under a tie at the 13th place: rounded once, from the exact fraction
    ("0.0000000000004999999999999999999999999999999999999999999999999999999999999", "1", "0.000000000000"),
    ("1", "0", None),
])
def test_a_unit_cost_is_rounded_half_away_from_zero_once(cost, quantity, shown):
    from billing_pipeline.api.queries import unit_cost

    assert unit_cost(D(cost), D(quantity)) == shown


def test_quantities_and_unit_costs_come_from_the_usage(client, built):
    doc = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    s3 = doc["usage_by_type"]["s3"]
    # one operation: the type has a quantity, and unit_cost = cost / quantity (12 places)
    assert s3["unit"] == "S3Storage"
    quantity = D(s3["quantity"])
    assert quantity > 0
    assert D(s3["unit_cost"]) == (D(s3["cost"]["exact"]) / quantity).quantize(D("1e-12"), ROUND_HALF_UP)
    # several operations: per-operation quantities and the application's unit prices
    lam = doc["usage_by_type"]["lambda"]
    assert lam["quantity"] is None and lam["unit_cost"] is None
    assert set(lam["operations"]) == {"LambdaCompute", "LambdaRequests"}
    assert D(lam["operations"]["LambdaRequests"]["unit_cost"]) == D("0.0000002")
    assert set(lam["drivers"]) == {"gb_seconds", "requests"}


def test_final_month_and_history(client, built):
    doc = client.get("/billing", params={"month": "2025-12"}, headers=auth(built, B)).json()
    assert (doc["status"], doc["is_final"]) == ("final", True)
    assert doc["total_cost"] == money(built.total(DEC, B), built.cents(DEC)[B])

    history = client.get("/billing/history", headers=auth(built, B)).json()
    assert history["accountant_id"] == B
    assert [(m["month"], m["status"], m["total_cost"]) for m in history["months"]] == [
        ("2026-01", "provisional", money(built.total(JAN, B), built.cents(JAN)[B])),
        ("2025-12", "final", money(built.total(DEC, B), built.cents(DEC)[B])),
    ]
    assert history["months"][0]["estimated_cost"]["exact"] == f"{built.estimated(JAN, B):f}"


def test_without_a_month_the_latest_month_is_served(client, built):
    doc = client.get("/billing", headers=auth(built, C)).json()
    assert doc["month"] == "2026-01"
    assert doc["total_cost"]["exact"] == f"{built.total(JAN, C):f}"


# ---------------------------------------------------------------------------------------------------------------
# Tenant isolation and authentication


def _numbers_of(built, accountant):
    return {f"{built.total(m, accountant):f}" for m in (DEC, JAN)} | {
        f"{c:f}" for (a, _s), c in built.months[JAN].expected_costs.items() if a == accountant}


@pytest.mark.parametrize("path", ["/billing", "/billing/history", "/billing.csv"])
def test_another_tenants_id_is_forbidden_and_leaks_nothing(client, built, path):
    response = client.get(path, params={"month": "2026-01", "accountant_id": B}, headers=auth(built, A))
    assert response.status_code == 403
    assert "own accountant" in response.json()["detail"]
    assert not any(number in response.text for number in _numbers_of(built, B))
    assert B not in response.text
    # naming oneself is allowed
    assert client.get(path, params={"month": "2026-01", "accountant_id": A}, headers=auth(built, A)).status_code == 200


def test_a_tenant_never_sees_another_tenants_numbers(client, built):
    for path in ("/billing?month=2026-01", "/billing?month=2025-12", "/billing/history", "/billing.csv?month=2026-01"):
        text = client.get(path, headers=auth(built, A)).text
        for other in (B, C):
            assert other not in text
            assert not any(number in text for number in _numbers_of(built, other))


@pytest.mark.parametrize("header", [None, "Bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer not-a-token",
                                    "Bearer " + "0" * 64])
def test_missing_or_invalid_token_is_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    for path in ("/billing?month=2026-01", "/billing/history", "/billing.csv?month=2026-01"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "acct-" not in response.text


def test_a_token_hash_is_not_a_token(client, built):
    """The file stores sha256 hashes: presenting a stored hash as the token does not authenticate."""
    stored = json.loads(built.tokens_file.read_text())
    assert built.tokens[A] not in built.tokens_file.read_text()
    assert stored["tokens"][token_hash(built.tokens[A])]["accountant_id"] == A
    response = client.get("/billing/history", headers={"Authorization": f"Bearer {token_hash(built.tokens[A])}"})
    assert response.status_code == 401


# ---------------------------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize("month, message", [
    ("2026-1", "YYYY-MM"), ("202601", "YYYY-MM"), ("2026-01-01", "YYYY-MM"), ("january", "YYYY-MM"), ("", "YYYY-MM"),
    ("2026-13", "01..12"), ("2026-00", "01..12"), ("2017-12", "out of range"), ("2999-01", "out of range"),
    ("2026-01' OR '1'='1", "YYYY-MM"), ("\uff12\uff10\uff12\uff16-\uff10\uff11", "YYYY-MM"),
    ("\u0662\u0660\u0662\u0666-\u0660\u0661", "YYYY-MM"),  # full-width and Arabic-Indic digits are no YYYY-MM
])
def test_bad_month_is_400_with_a_clear_message(client, built, month, message):
    for path in ("/billing", "/billing.csv"):
        response = client.get(path, params={"month": month}, headers=auth(built, A))
        assert response.status_code == 400
        assert message in response.json()["detail"]


@pytest.mark.parametrize("path, query", [
    ("/billing", "month=2026-01&month=2025-12"), ("/billing", "month=2026-01&month=2026-01"),
    ("/billing.csv", "month=2025-12&month=2026-01"), ("/billing.csv", "from=2025-12&to=2025-12&to=2026-01"),
    ("/billing.csv", "from=2026-01&from=2025-12&to=2026-01"),
])
def test_a_parameter_given_twice_is_400_not_the_last_one_silently(client, built, path, query):
    """`?month=2026-01&month=2025-12` answered December (the last one) with 200: which month a caller, a proxy or a
    log reads from such a request is anyone's guess. A parameter given twice is refused, naming it."""
    response = client.get(f"{path}?{query}", headers=auth(built, A))
    assert response.status_code == 400, response.text
    names = [pair.split("=")[0] for pair in query.split("&")]
    (name,) = {n for n in names if names.count(n) > 1}
    assert response.json() == {"detail": f"{name} is given more than once"}


def test_month_without_data_is_404(client, built):
    response = client.get("/billing", params={"month": "2025-06"}, headers=auth(built, A))
    assert response.status_code == 404
    assert response.json()["detail"] == "No billing data for 2025-06."


# ---------------------------------------------------------------------------------------------------------------
# The dashboard's files and headers


def test_dashboard_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and "https://" not in response.text  # no CDN
    assert client.get("/billing/history").headers.get("cache-control") == "no-store"


def test_api_docs_load_nothing_from_the_internet(client):
    """/api/docs: Swagger UI from the app (swagger-ui-bundle) under the same policy; the OpenAPI document is 3.0,
    which that Swagger UI renders (headless Chromium renders it in test_dashboard.py)."""
    page = client.get("/api/docs")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text and "<script>" not in page.text  # no CDN, no inline script
    for src in ("/api/docs/swagger-ui/swagger-ui-bundle.js", "/api/docs/swagger-ui/swagger-ui.css", "/static/docs.js"):
        assert src in page.text and client.get(src).status_code == 200
    assert client.get("/api/openapi.json").json()["openapi"].startswith("3.0")


def test_issue_and_revoke_token_commands(tmp_path):
    tokens = tmp_path / "tokens.json"
    issued = subprocess.run([sys.executable, "-m", "billing_pipeline.api", "issue-token", "acct-0042",
                             "--tokens", str(tokens)], capture_output=True, text=True, check=True)
    token = issued.stdout.strip()
    assert token.startswith("bpt_") and len(token) > 40
    stored = json.loads(tokens.read_text())["tokens"]
    assert list(stored) == [token_hash(token)] and stored[token_hash(token)]["accountant_id"] == "acct-0042"
    assert token not in tokens.read_text()
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    subprocess.run([sys.executable, "-m", "billing_pipeline.api", "revoke-tokens", "acct-0042", "--tokens",
                    str(tokens)], capture_output=True, text=True, check=True)
    assert json.loads(tokens.read_text()) == {"tokens": {}}
    refused = subprocess.run([sys.executable, "-m", "billing_pipeline.api", "issue-token", "unattributed",
                              "--tokens", str(tokens)], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.startswith("error: not an accountant id")
    assert "Traceback" not in refused.stderr
