"""Tokens: expiry, listing by id (never the secret), the data team's admin scope kept apart from tenant tokens,
reserved ids refused with one clean line, and the first file format still read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal as D

import pytest

from billing_pipeline.api.auth import TokensFileError, issue_token, list_tokens, parse_tokens, token_hash

from .conftest import in_process_client

A, B = "acct-0001", "acct-0002"
NOW = dt.datetime.now(dt.timezone.utc)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "billing_pipeline.api", *args], check=False, capture_output=True,
                          text=True,
                          timeout=60)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_expires_after_its_days(built, tmp_path):
    tokens = tmp_path / "tokens.json"
    old = issue_token(A, str(tokens), days=90, now=NOW - dt.timedelta(days=90, seconds=1))
    fresh = issue_token(A, str(tokens), days=1, now=NOW)
    client = in_process_client(built.published, tokens)
    expired = client.get("/billing/history", headers=bearer(old))
    assert expired.status_code == 401 and "expired at" in expired.json()["detail"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert client.get("/billing/history", headers=bearer(fresh)).status_code == 200
    grants = {g.expires_at for g in list_tokens(str(tokens))}
    assert (NOW + dt.timedelta(days=1)).isoformat(timespec="seconds").replace("+00:00", "Z") in grants


def hand_written(expires_at) -> str:
    return json.dumps({"tokens": {token_hash("bpt_x"): {"id": "tok_hand", "scope": "tenant", "accountant_id": A,
                                                        "label": "", "created_at": None, "expires_at": expires_at}}})


def test_an_expiry_without_a_zone_is_utc_not_the_machines_time(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")  # 5 hours behind UTC in January
    time.tzset()
    try:
        (grant,) = parse_tokens(hand_written("2030-01-01T00:00:00"), "tokens.json").values()
        assert grant.expired(dt.datetime(2030, 1, 1, 0, 30, tzinfo=dt.timezone.utc))  # read as local: 05:00Z
        assert not grant.expired(dt.datetime(2029, 12, 31, 23, 59, tzinfo=dt.timezone.utc))
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_hand_written_token_without_an_expiry_is_refused_not_made_eternal(built, tmp_path):
    with pytest.raises(TokensFileError, match=r"tokens\.json: token entry [0-9a-f]{8}\.\.\. has no expires_at"):
        parse_tokens(hand_written(None), "tokens.json")
    tokens = tmp_path / "tokens.json"
    tokens.write_text(hand_written(None))
    answer = in_process_client(built.published, tokens).get("/billing/history", headers=bearer("bpt_x"))
    assert answer.status_code == 503 and "tokens file cannot be read" in answer.json()["detail"]


def test_issue_defaults_to_90_days_and_list_shows_ids_never_secrets(tmp_path):
    tokens = tmp_path / "tokens.json"
    tenant = cli("issue-token", A, "--tokens", str(tokens), "--label", "alice laptop").stdout.strip()
    admin = cli("issue-token", "--admin", "--days", "30", "--tokens", str(tokens), "--label", "data team").stdout.strip()
    assert tenant.startswith("bpt_") and admin.startswith("bpa_")
    stored = json.loads(tokens.read_text())["tokens"]
    grant = stored[token_hash(tenant)]
    created, expires = (dt.datetime.fromisoformat(grant[k].replace("Z", "+00:00")) for k in ("created_at", "expires_at"))
    assert expires - created == dt.timedelta(days=90)
    assert stored[token_hash(admin)]["scope"] == "admin" and stored[token_hash(admin)]["accountant_id"] is None

    listing = cli("list-tokens", "--tokens", str(tokens))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["id", "scope", "accountant_id", "expires_at", "status", "label"]
    assert any(line.split()[1] == "admin" and "(all tenants)" in line and line.endswith("data team") for line in lines)
    assert any(line.split()[1:3] == ["tenant", A] and line.endswith("alice laptop") for line in lines)
    for secret in (tenant, admin, token_hash(tenant), token_hash(admin)):
        assert secret not in listing.stdout

    # revoked by id: only that one goes
    tenant_id = grant["id"]
    assert cli("revoke-token", tenant_id, "--tokens", str(tokens)).returncode == 0
    assert [g.scope for g in list_tokens(str(tokens))] == ["admin"]
    missing = cli("revoke-token", tenant_id, "--tokens", str(tokens))
    assert (missing.returncode, missing.stderr.strip()) == (2, f"error: no token with id '{tenant_id}' in {tokens}")


@pytest.mark.parametrize("accountant, reason", [
    ("unattributed", "'unattributed' is reserved"), ("total", "'total' is reserved"), ("TOTAL", "'TOTAL' is reserved"),
    ("", "it is empty"), ("   ", "it is empty"), (" acct-0001", "has whitespace around it"),
    ("acct-0001\n", "has whitespace around it"), ("acct\x00-1", "contains control characters"),
])
def test_reserved_or_blank_ids_are_refused_in_one_line(tmp_path, accountant, reason):
    tokens = tmp_path / "tokens.json"
    refused = cli("issue-token", accountant, "--tokens", str(tokens)) if "\x00" not in accountant else None
    if refused is not None:  # (a NUL cannot pass through argv: the function is tested below)
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: not an accountant id: ") and reason in line
        assert "Traceback" not in refused.stderr and refused.stdout == ""
    with pytest.raises(ValueError, match=reason):
        issue_token(accountant, str(tokens))
    assert not tokens.exists()


def test_bad_days_and_missing_id_are_one_line_errors(tmp_path):
    tokens = str(tmp_path / "tokens.json")
    for args, message in ((["issue-token", A, "--days", "0"], "--days must be a whole number of days from 1"),
                          (["issue-token"], "name the accountant id, or pass --admin"),
                          (["issue-token", A, "--admin"], "an admin token reads every tenant")):
        result = cli(*args, "--tokens", tokens)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), result.stderr
        assert "Traceback" not in result.stderr


def test_the_admin_scope_reads_every_tenant_and_is_kept_apart(built, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(built.tokens_file.read_text())
    admin = issue_token(None, str(tokens), scope="admin", label="data team")
    client = in_process_client(built.published, tokens)
    months = client.get("/admin/months", headers=bearer(admin)).json()["months"]
    assert [(m["month"], m["is_final"]) for m in months] == [("2026-01", False), ("2025-12", True)]
    assert all(m["cur_delivery"] and m["published_at"] for m in months)

    statements = client.get("/admin/statements", params={"month": "2026-01"}, headers=bearer(admin)).json()
    totals = {(r["accountant_id"]): r["cost"] for r in statements["statements"] if r["line"] == "total"}
    cents = built.cents(dt.date(2026, 1, 1))
    assert {a: D(t["rounded"]) for a, t in totals.items()} == cents  # every tenant and 'unattributed'
    # any tenant's statement, exactly as that tenant sees it
    as_admin = client.get("/admin/billing", params={"month": "2026-01", "accountant_id": B}, headers=bearer(admin))
    as_tenant = client.get("/billing", params={"month": "2026-01"}, headers=bearer(built.tokens[B]))
    assert as_admin.json() == as_tenant.json()

    # kept apart: the admin token is not a tenant token, a tenant token reaches no admin endpoint
    for path in ("/billing", "/billing/history", "/billing.csv"):
        refused = client.get(path, params={"month": "2026-01"}, headers=bearer(admin))
        assert refused.status_code == 403 and "admin token" in refused.json()["detail"]
    for path in ("/admin/months", "/admin/statements?month=2026-01", f"/admin/billing?month=2026-01&accountant_id={B}"):
        refused = client.get(path, headers=bearer(built.tokens[A]))
        assert refused.status_code == 403 and B not in refused.text
    # read-only: nothing but GET
    assert client.post("/admin/statements", params={"month": "2026-01"}, headers=bearer(admin)).status_code == 405
    # one tenant per request: `accountant_id=A&accountant_id=B` served B (the last), whatever a log shows first
    twice = client.get(f"/admin/billing?month=2026-01&accountant_id={A}&accountant_id={B}", headers=bearer(admin))
    assert (twice.status_code, twice.json()) == (400, {"detail": "accountant_id is given more than once"})


def test_the_first_file_format_is_still_read_and_gets_an_expiry_when_rewritten(built, tmp_path):
    tokens = tmp_path / "tokens.json"
    legacy = "bpt_legacy-token-of-acct-0001-xxxxxxxxxxxxxxxxxxxx"
    tokens.write_text(json.dumps({token_hash(legacy): A}))
    client = in_process_client(built.published, tokens)
    assert client.get("/billing/history", headers=bearer(legacy)).status_code == 200
    (grant,) = list_tokens(str(tokens))
    assert (grant.scope, grant.accountant_id, grant.expires_at) == ("tenant", A, None)
    assert token_hash(legacy) not in grant.id
    issue_token(B, str(tokens))
    migrated = {g.accountant_id: g for g in list_tokens(str(tokens))}[A]
    assert migrated.id == grant.id and migrated.expires_at is not None



def cli_env(env: dict, *args: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "billing_pipeline.api", *args], check=False, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def test_a_malformed_option_is_one_line_too(tmp_path):
    result = cli("issue-token", A, "--days", "abc", "--tokens", str(tmp_path / "tokens.json"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: argument --days: invalid int value: 'abc' "
                             "(see python -m billing_pipeline.api issue-token --help)\n")
    assert not (tmp_path / "tokens.json").exists()


def test_an_id_outside_the_tenant_registry_is_refused_in_one_line(tmp_path):
    registry = tmp_path / "tenants.txt"
    registry.write_text(f"{A}\n{B}\n")
    tokens = tmp_path / "tokens.json"
    env = {"BILLING_TENANTS": str(registry), "BILLING_PUBLISH_URI": str(tmp_path / "published")}
    unknown = cli_env(env, "issue-token", "acct-9999", "--tokens", str(tokens))
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == f"error: 'acct-9999' is not in the tenant registry ({registry})\n"
    lookalike = cli_env(env, "issue-token", "ACCT-0001", "--tokens", str(tokens))
    assert (lookalike.returncode, lookalike.stderr) == (
        2, f"error: 'ACCT-0001' is not a tenant: it looks like 'acct-0001' of the tenant registry ({registry})\n")
    assert not tokens.exists()
    known = cli_env(env, "issue-token", A, "--tokens", str(tokens))
    assert known.returncode == 0 and known.stdout.startswith("bpt_")
    # nothing published in that folder: issued, with a warning
    assert known.stderr.splitlines()[-1] == (
        f"warning: nothing is published yet in {tmp_path / 'published'}: {A} will see no data until a month is")


def test_a_tenant_with_no_published_data_gets_a_warning(built, tmp_path):
    env = {"BILLING_PUBLISH_URI": str(built.published)}
    tenant = sorted(built.tokens)[0]
    with_data = cli_env(env, "issue-token", tenant, "--tokens", str(tmp_path / "tokens.json"))
    assert with_data.returncode == 0 and "warning" not in with_data.stderr
    without = cli_env(env, "issue-token", "acct-new", "--tokens", str(tmp_path / "tokens.json"))
    assert without.returncode == 0 and without.stdout.startswith("bpt_")
    assert without.stderr.splitlines()[-1] == (
        f"warning: acct-new has no data in any published month ({built.published}): the dashboard will be empty "
        "for it until a month with its costs is published")


def test_revoking_an_id_that_holds_no_token_fails_naming_the_look_alike_that_does(tmp_path):
    """An operator cutting a tenant off types its id as the tags show it (`ACCT-0001`, a trailing space pasted along):
    "revoked 0 token(s)" with status 0 left the tenant's token working. Revoking nothing is an error, naming the ids
    that read the same and hold tokens; the file is left as it was."""
    tokens = tmp_path / "tokens.json"
    token = issue_token(A, str(tokens))
    before = tokens.read_text()
    for typed in ("ACCT-0001", "acct-0001 ", "acct\u20100001"):
        result = cli("revoke-tokens", typed, "--tokens", str(tokens))
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr == (f"error: no token of {typed!r} in {tokens}: revoked nothing "
                                 f"(tokens are held by {A!r}, which reads the same)\n")
    nobody = cli("revoke-tokens", "acct-0009", "--tokens", str(tokens))
    assert (nobody.returncode, nobody.stderr) == (2, f"error: no token of 'acct-0009' in {tokens}: revoked nothing\n")
    assert tokens.read_text() == before
    assert [g.accountant_id for g in list_tokens(str(tokens))] == [A] and token
    done = cli("revoke-tokens", A, "--tokens", str(tokens))
    assert (done.returncode, done.stderr) == (0, f"revoked 1 token(s) of {A} in {tokens}\n")
    assert list_tokens(str(tokens)) == []


def test_a_token_hash_listed_twice_makes_the_file_unreadable_not_the_last_tenants(tmp_path):
    """A hand-merged tokens file holding one hash twice (the same key again, or in upper case) gave the token to
    whichever entry came last: another tenant's billing. Such a file is refused (503), naming the hash's start."""
    digest = token_hash("bpt_shared")
    entry = {"scope": "tenant", "label": "", "created_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z"}
    first = json.dumps({"id": "tok_000000000001", **entry, "accountant_id": A})
    second = json.dumps({"id": "tok_000000000002", **entry, "accountant_id": B})
    for key in (digest, digest.upper()):
        text = f'{{"tokens": {{"{digest}": {first}, "{key}": {second}}}}}'
        with pytest.raises(TokensFileError, match=f"token hash {digest[:8]}... is listed twice"):
            parse_tokens(text, "tokens.json")
    legacy = f'{{"{digest}": "{A}", "{digest.upper()}": "{B}"}}'
    with pytest.raises(TokensFileError, match="listed twice"):
        parse_tokens(legacy, "tokens.json")
    assert parse_tokens(f'{{"tokens": {{"{digest}": {first}}}}}', "tokens.json")[digest].accountant_id == A
