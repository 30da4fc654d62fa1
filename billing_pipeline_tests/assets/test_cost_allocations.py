"""The attribution rules of docs/attribution-rules.md, stage by stage, on hand-built facts and usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from billing_pipeline.assets.tenant_costs import stage_cost_allocations
from billing_pipeline.engines.duckdb_engine import DuckDBEngine
from billing_pipeline.pricing import Pricing

JAN = dt.date(2026, 1, 1)


def add_fact(con, hour, service, usage_type, cost, *, accountant_id=None, resource_id="", span_hours=1,
             line_item_type="Usage", application="tax-demo", currency="USD"):
    con.execute(
        """INSERT INTO hourly_cost_facts (billing_period, usage_hour, span_hours, usage_account_id, line_item_type,
               service, usage_type, operation, resource_id, accountant_id, application, currency, in_scope,
               usage_amount, unblended_cost, amortized_cost, net_amortized_cost, line_items)
           VALUES (?, ?, ?, '111122223333', ?, ?, ?, '', ?, ?, ?, ?, ? = 'tax-demo', 1, ?, ?, NULL, 1)""",
        [JAN, hour, span_hours, line_item_type, service, usage_type, resource_id, accountant_id, application,
         currency, application, D(cost), D(cost)],
    )


def add_usage(con, hour, service, driver, accountant_id, quantity, scope=""):
    con.execute(
        """INSERT INTO usage_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1.0)""",
        [JAN, hour, service, driver, scope, accountant_id, D(quantity), D(quantity)],
    )


def allocate(con, prices=None, network_policy="proportional"):
    prices = prices or {("AWSLambda", "gb_seconds"): "0.5", ("AWSLambda", "requests"): "0.25"}
    pricing = Pricing("USD", D(10), {k: D(v) for k, v in prices.items()}, network_policy)
    stage_cost_allocations(DuckDBEngine(con), {"billing_period": JAN, "cost_metric": "unblended"}, pricing)
    rows = con.execute(
        "SELECT usage_hour, service, usage_type, line_item_type, accountant_id, allocation, driver, cost "
        "FROM cost_allocations ORDER BY ALL").fetchall()
    con.execute("DROP TABLE cost_allocations")
    return rows


def by_tenant(rows, usage_type, hour=None, line_item_type="Usage"):
    return {(r[4], r[5]): r[7] for r in rows
            if r[2] == usage_type and r[3] == line_item_type and (hour is None or r[0] == hour)}


H = lambda day, hour: dt.datetime(2026, 1, day, hour)  # noqa: E731


@pytest.fixture
def scenario(warehouse_con):
    con = warehouse_con
    # evidence: Jan 1 10:00 three tenants use Lambda equally, 'a' also makes two requests; 12:00 'a' and an
    # ownerless invocation; requests at 05:00
    for tenant in "abc":
        add_usage(con, H(1, 10), "AWSLambda", "gb_seconds", tenant, "1")
    add_usage(con, H(1, 10), "AWSLambda", "requests", "a", "2")
    add_usage(con, H(1, 12), "AWSLambda", "gb_seconds", "a", "1")
    add_usage(con, H(1, 12), "AWSLambda", "gb_seconds", "unattributed", "1")
    add_usage(con, H(1, 5), "AWSLambda", "requests", "a", "3")
    add_usage(con, H(1, 5), "AWSLambda", "requests", "b", "1")
    add_usage(con, H(1, 9), "AmazonDynamoDB", "read_units", "a", "1", scope="t1")
    add_usage(con, H(1, 9), "AmazonDynamoDB", "read_units", "b", "1", scope="t2")
    return con


def test_direct_cost_goes_wholly_to_the_tagged_tenant(scenario):
    add_fact(scenario, H(1, 10), "AWSLambda", "USE1-Lambda-GB-Second", "1.2345", accountant_id="z")
    assert by_tenant(allocate(scenario), "USE1-Lambda-GB-Second") == {("z", "direct"): D("1.2345")}


def test_shared_hour_split_is_exact_with_largest_remainder_ties_by_accountant(scenario):
    add_fact(scenario, H(1, 10), "AWSLambda", "USE1-Lambda-GB-Second", "0.0000000010")
    assert by_tenant(allocate(scenario), "USE1-Lambda-GB-Second") == {
        ("a", "shared_hour"): D("0.0000000004"),
        ("b", "shared_hour"): D("0.0000000003"),
        ("c", "shared_hour"): D("0.0000000003"),
    }


def test_negative_cost_splits_symmetrically(scenario):
    add_fact(scenario, H(1, 10), "AWSLambda", "USE1-Lambda-GB-Second", "-0.0000000010", line_item_type="Credit")
    assert by_tenant(allocate(scenario), "USE1-Lambda-GB-Second", line_item_type="Credit") == {
        ("a", "shared_hour"): D("-0.0000000004"),
        ("b", "shared_hour"): D("-0.0000000003"),
        ("c", "shared_hour"): D("-0.0000000003"),
    }


def test_hour_without_evidence_falls_back_to_the_day_then_the_month(scenario):
    add_fact(scenario, H(1, 11), "AWSLambda", "USE1-Request", "1.00")
    add_fact(scenario, H(2, 11), "AWSLambda", "USE1-Request", "2.00")
    rows = allocate(scenario)
    # requests on Jan 1 (and so in the month): a = 3 + 2, b = 1
    assert by_tenant(rows, "USE1-Request", H(1, 11)) == {
        ("a", "shared_day"): D("0.8333333333"), ("b", "shared_day"): D("0.1666666667")}
    assert by_tenant(rows, "USE1-Request", H(2, 11)) == {
        ("a", "shared_month"): D("1.6666666667"), ("b", "shared_month"): D("0.3333333333")}


def test_ownerless_usage_takes_its_share_as_unattributed(scenario):
    add_fact(scenario, H(1, 12), "AWSLambda", "USE1-Lambda-GB-Second", "0.50")
    assert by_tenant(allocate(scenario), "USE1-Lambda-GB-Second") == {
        ("a", "shared_hour"): D("0.25"), ("unattributed", "shared_hour"): D("0.25")}


def test_service_without_drivers_stays_unattributed(scenario):
    add_fact(scenario, H(1, 10), "AmazonCloudWatch", "USE1-CW:Requests", "0.30")
    assert by_tenant(allocate(scenario), "USE1-CW:Requests") == {("unattributed", "unattributed"): D("0.30")}


def test_driver_without_any_evidence_in_the_month_stays_unattributed(scenario):
    add_fact(scenario, H(1, 10), "AmazonS3", "USE1-TimedStorage-ByteHrs", "0.30", resource_id="bucket")
    assert by_tenant(allocate(scenario), "USE1-TimedStorage-ByteHrs") == {("unattributed", "unattributed"): D("0.30")}


def test_table_scope_is_used_when_it_has_evidence_else_all_tables(scenario):
    arn = "arn:aws:dynamodb:us-east-1:111122223333:table/"
    add_fact(scenario, H(1, 9), "AmazonDynamoDB", "USE1-ReadRequestUnits", "0.10", resource_id=arn + "t1")
    add_fact(scenario, H(1, 9), "AmazonDynamoDB", "USE1-ReadRequestUnits", "0.20", resource_id=arn + "t3")
    rows = [r for r in allocate(scenario) if r[1] == "AmazonDynamoDB"]
    assert sorted((r[4], r[7]) for r in rows) == [("a", D("0.10")), ("a", D("0.10")), ("b", D("0.10"))]


def test_other_usage_types_split_by_the_services_priced_drivers(scenario):
    # at 10:00 a = 1 GB-s x 0.5 + 2 requests x 0.25 = 1.0; b = c = 0.5
    add_fact(scenario, H(1, 10), "AWSLambda", "USE1-Lambda-Provisioned-Concurrency", "1.00")
    assert by_tenant(allocate(scenario), "USE1-Lambda-Provisioned-Concurrency") == {
        ("a", "shared_hour"): D("0.5"), ("b", "shared_hour"): D("0.25"), ("c", "shared_hour"): D("0.25")}


def test_line_spanning_a_day_is_split_by_the_days_usage(scenario):
    # Jan 1 GB-seconds: a = 1 + 1, b = 1, c = 1, unattributed = 1
    add_fact(scenario, H(1, 0), "AWSLambda", "USE1-Lambda-GB-Second", "1.00", span_hours=24)
    assert by_tenant(allocate(scenario), "USE1-Lambda-GB-Second") == {
        ("a", "shared_day"): D("0.4"), ("b", "shared_day"): D("0.2"),
        ("c", "shared_day"): D("0.2"), ("unattributed", "shared_day"): D("0.2")}


def test_out_of_scope_and_zero_cost_facts_are_not_allocated(scenario):
    add_fact(scenario, H(1, 10), "AmazonEC2", "BoxUsage", "5.00", application="other-app")
    add_fact(scenario, H(1, 10), "AWSLambda", "USE1-Lambda-GB-Second", "0")
    assert allocate(scenario) == []


def test_every_fact_is_conserved_exactly(scenario):
    costs = ["0.0000000007", "1.0000000001", "-0.3333333333", "12345.6789012345"]
    for i, cost in enumerate(costs):
        add_fact(scenario, H(1, 10), "AWSLambda", f"USE1-Lambda-GB-Second-{i}", cost)
    rows = allocate(scenario)
    for i, cost in enumerate(costs):
        assert sum(r[7] for r in rows if r[2] == f"USE1-Lambda-GB-Second-{i}") == D(cost).quantize(D("1e-10"))


def test_large_costs_and_weights_split_exactly(warehouse_con):
    """|C| x w far beyond DECIMAL(38) in one product: the two-limb split still gives the exact floor."""
    weights = {"a": D("123456789012.0123456789"), "b": D("987654321987.9876543210"), "c": D("0.0000000001")}
    for tenant, quantity in weights.items():
        add_usage(warehouse_con, H(3, 4), "AmazonBedrock", "input_tokens", tenant, quantity)
    cost = D("98765432.1987654321")
    add_fact(warehouse_con, H(3, 4), "AmazonBedrock", "USE1-Model-input-tokens", str(cost))
    got = by_tenant(allocate(warehouse_con), "USE1-Model-input-tokens")

    units, total = int(cost * 10**10), sum(int(q * 10**10) for q in weights.values())
    base = {t: units * int(q * 10**10) // total for t, q in weights.items()}
    rema = {t: units * int(q * 10**10) % total for t, q in weights.items()}
    for t in sorted(weights, key=lambda t: (-rema[t], t))[: units - sum(base.values())]:
        base[t] += 1
    assert got == {(t, "shared_hour"): D(u) / 10**10 for t, u in base.items()}
    assert sum(got.values()) == cost


def test_bedrock_tokens_split_by_their_own_models_evidence(warehouse_con):
    con = warehouse_con
    # the month: A used Sonnet (1,000 input tokens), B used Haiku (9,000); pooled, A got 10 % of both
    add_usage(con, H(3, 10), "AmazonBedrock", "input_tokens", "A", "1000",
              scope="anthropic.claude-3-5-sonnet-20240620-v1:0")
    add_usage(con, H(3, 10), "AmazonBedrock", "input_tokens", "B", "9000",
              scope="us.anthropic.claude-3-haiku-20240307-v1:0")  # an inference profile names the model too
    add_fact(con, H(3, 10), "AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", "3.00")
    add_fact(con, H(3, 10), "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", "2.25")
    # a model without evidence this month, and a usage type naming no catalog model: all models' evidence
    add_fact(con, H(3, 10), "AmazonBedrock", "USE1-NovaLite-input-tokens", "1.00")
    add_fact(con, H(3, 10), "AmazonBedrock", "USE1-Llama3-input-tokens", "0.10")
    # Haiku sold through AWS Marketplace (the reader appends the product name to its usage type)
    add_fact(con, H(3, 10), "AmazonBedrock",
             "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))", "0.50")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003"})
    assert by_tenant(rows, "USE1-Claude3.5Sonnet-input-tokens") == {("A", "shared_hour"): D("3.00")}
    assert by_tenant(rows, "USE1-Claude3Haiku-input-tokens") == {("B", "shared_hour"): D("2.25")}
    assert by_tenant(rows, "USE1-NovaLite-input-tokens") == {("A", "shared_hour"): D("0.1"),
                                                            ("B", "shared_hour"): D("0.9")}
    assert by_tenant(rows, "USE1-Llama3-input-tokens") == {("A", "shared_hour"): D("0.01"),
                                                          ("B", "shared_hour"): D("0.09")}
    assert by_tenant(rows, "USE1-MP:USE1_InputTokenCount-Units (Claude 3 Haiku (Amazon Bedrock Edition))") == {
        ("B", "shared_hour"): D("0.50")}


def test_lambda_split_by_the_evidence_of_the_lines_own_function(warehouse_con):
    con = warehouse_con
    fn = "arn:aws:lambda:us-east-1:111122223333:function:"
    add_usage(con, H(4, 8), "AWSLambda", "gb_seconds", "A", "1", scope="tax-api")  # x86
    add_usage(con, H(4, 8), "AWSLambda", "gb_seconds", "B", "3", scope="tax-worker")  # arm64
    add_usage(con, H(4, 8), "AWSLambda", "gb_seconds", "C", "1")  # a REPORT whose function is not known
    add_fact(con, H(4, 8), "AWSLambda", "USE1-Lambda-GB-Second", "1.00", resource_id=fn + "tax-api")
    add_fact(con, H(4, 8), "AWSLambda", "USE1-Lambda-GB-Second-ARM", "2.00", resource_id=fn + "tax-worker:live")
    add_fact(con, H(4, 8), "AWSLambda", "USE2-Lambda-GB-Second", "1.00", resource_id=fn + "no-logs")
    rows = allocate(con)
    assert by_tenant(rows, "USE1-Lambda-GB-Second") == {("A", "shared_hour"): D("1.00")}
    assert by_tenant(rows, "USE1-Lambda-GB-Second-ARM") == {("B", "shared_hour"): D("2.00")}
    # no evidence for its function: every function's (and the unknown one's), A 1 : B 3 : C 1
    assert by_tenant(rows, "USE2-Lambda-GB-Second") == {
        ("A", "shared_hour"): D("0.2"), ("B", "shared_hour"): D("0.6"), ("C", "shared_hour"): D("0.2")}


def test_s3_storage_split_by_the_evidence_of_its_storage_class(warehouse_con):
    con = warehouse_con
    add_usage(con, H(6, 0), "AmazonS3", "gb_months", "A", "3", scope="docs")
    add_usage(con, H(6, 0), "AmazonS3", "gb_months", "B", "1", scope="docs")
    add_usage(con, H(6, 0), "AmazonS3", "gb_months_glacier", "B", "5", scope="docs")
    add_fact(con, H(6, 0), "AmazonS3", "USE1-TimedStorage-ByteHrs", "0.40", resource_id="docs")
    add_fact(con, H(6, 0), "AmazonS3", "USE1-TimedStorage-GlacierByteHrs", "0.20", resource_id="docs")
    # no Standard-IA evidence: the Standard objects' bytes
    add_fact(con, H(6, 0), "AmazonS3", "USE1-TimedStorage-SIA-ByteHrs", "0.80", resource_id="docs")
    rows = allocate(con)
    assert by_tenant(rows, "USE1-TimedStorage-ByteHrs") == {("A", "shared_hour"): D("0.3"),
                                                           ("B", "shared_hour"): D("0.1")}
    assert by_tenant(rows, "USE1-TimedStorage-GlacierByteHrs") == {("B", "shared_hour"): D("0.20")}
    assert by_tenant(rows, "USE1-TimedStorage-SIA-ByteHrs") == {("A", "shared_hour"): D("0.6"),
                                                               ("B", "shared_hour"): D("0.2")}


def test_s3_intelligent_tiering_split_by_each_access_tiers_evidence(warehouse_con):
    """S3 bills each Intelligent-Tiering access tier as its own usage type: a tenant whose objects sit in Deep
    Archive Access pays none of the Frequent Access line (it paid half, with the tiers one driver). An inventory
    without the tier field gives the class's evidence, which every tier's line falls back to."""
    con = warehouse_con
    add_usage(con, H(6, 0), "AmazonS3", "gb_months_int_frequent", "A", "2", scope="docs")
    add_usage(con, H(6, 0), "AmazonS3", "gb_months_int_deep_archive", "B", "2", scope="docs")
    add_usage(con, H(7, 0), "AmazonS3", "gb_months_intelligent_tiering", "A", "1", scope="docs")
    add_usage(con, H(7, 0), "AmazonS3", "gb_months_intelligent_tiering", "B", "3", scope="docs")
    add_fact(con, H(6, 0), "AmazonS3", "USE1-TimedStorage-INT-FA-ByteHrs", "0.46", resource_id="docs")
    add_fact(con, H(6, 0), "AmazonS3", "USE1-TimedStorage-INT-DAA-ByteHrs", "0.02", resource_id="docs")
    add_fact(con, H(7, 0), "AmazonS3", "USE1-TimedStorage-INT-AIA-ByteHrs", "0.08", resource_id="docs")
    rows = allocate(con)
    assert by_tenant(rows, "USE1-TimedStorage-INT-FA-ByteHrs") == {("A", "shared_hour"): D("0.46")}
    assert by_tenant(rows, "USE1-TimedStorage-INT-DAA-ByteHrs") == {("B", "shared_hour"): D("0.02")}
    # 07:00: no tier evidence (an inventory without IntelligentTieringAccessTier): the class's bytes
    assert by_tenant(rows, "USE1-TimedStorage-INT-AIA-ByteHrs") == {("A", "shared_hour"): D("0.02"),
                                                                   ("B", "shared_hour"): D("0.06")}


def test_agentcore_tools_and_memory_split_by_their_own_evidence_not_the_runtimes(warehouse_con):
    con = warehouse_con
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "vcpu_hours", "A", "1")  # the runtime: A only
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "sessions", "A", "1")
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "code_interpreter_vcpu_hours", "B", "2")
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "code_interpreter_vcpu_hours", "C", "1")
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "browser_gb_hours", "C", "1")
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "memory_events", "B", "1")
    add_usage(con, H(7, 9), "AmazonBedrockAgentCore", "memory_events", "C", "3")
    for usage_type, cost in [("USE1-AgentCoreRuntime-vCPU-Hours", "1.00"), ("USE1-CodeInterpreter-vCPU-Hours", "0.30"),
                             ("USE1-Browser-GB-Hours", "0.20"), ("USE1-Memory-ShortTermEvents", "0.40")]:
        add_fact(con, H(7, 9), "AmazonBedrockAgentCore", usage_type, cost)
    rows = allocate(con)
    assert by_tenant(rows, "USE1-AgentCoreRuntime-vCPU-Hours") == {("A", "shared_hour"): D("1.00")}
    assert by_tenant(rows, "USE1-CodeInterpreter-vCPU-Hours") == {("B", "shared_hour"): D("0.2"),
                                                                 ("C", "shared_hour"): D("0.1")}
    # the browser's vCPU-hours have no evidence this month: its GB-hours are the next preference
    assert by_tenant(rows, "USE1-Browser-GB-Hours") == {("C", "shared_hour"): D("0.20")}
    assert by_tenant(rows, "USE1-Memory-ShortTermEvents") == {("B", "shared_hour"): D("0.1"),
                                                             ("C", "shared_hour"): D("0.3")}


@pytest.mark.parametrize("policy", ["proportional", "unattributed"])
def test_nat_gateway_and_data_transfer_by_the_tenants_compute_cost(warehouse_con, policy):
    con = warehouse_con
    add_usage(con, H(9, 10), "AmazonBedrockAgentCore", "sessions", "B", "1")
    add_fact(con, H(9, 10), "AWSLambda", "USE1-Lambda-GB-Second", "3.00", accountant_id="A")  # compute: A 3
    add_fact(con, H(9, 10), "AmazonBedrockAgentCore", "USE1-AgentCoreRuntime-vCPU-Hours", "1.00")  # B 1
    add_fact(con, H(9, 10), "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", "5.00", accountant_id="C")  # not compute
    add_fact(con, H(9, 10), "AmazonEC2", "USE1-NatGateway-Bytes", "0.40")
    add_fact(con, H(9, 11), "AWSLambda", "USE1-DataTransfer-Out-Bytes", "0.20")  # no compute that hour: the day's
    add_fact(con, H(9, 10), "AmazonEC2", "USE1-NatGateway-Hours", "0.045", accountant_id="C")  # tagged: direct
    rows = allocate(con, network_policy=policy)
    assert by_tenant(rows, "USE1-NatGateway-Hours") == {("C", "direct"): D("0.045")}
    if policy == "unattributed":
        assert by_tenant(rows, "USE1-NatGateway-Bytes") == {("unattributed", "unattributed"): D("0.40")}
        assert by_tenant(rows, "USE1-DataTransfer-Out-Bytes") == {("unattributed", "unattributed"): D("0.20")}
        return
    assert by_tenant(rows, "USE1-NatGateway-Bytes") == {("A", "shared_hour"): D("0.3"), ("B", "shared_hour"): D("0.1")}
    assert by_tenant(rows, "USE1-DataTransfer-Out-Bytes") == {("A", "shared_day"): D("0.15"),
                                                             ("B", "shared_day"): D("0.05")}
    assert {r[6] for r in rows if r[2] in ("USE1-NatGateway-Bytes", "USE1-DataTransfer-Out-Bytes")} == {"compute_cost"}


def test_network_lines_are_split_by_the_compute_cost_of_their_own_currency(warehouse_con):
    """Compute cost is money: a USD NAT gateway line is weighed by USD compute cost only, never by a tenant's EUR
    cost of the same hour (an outside check: a tenant's 2.50 EUR Lambda line took a USD data-transfer line from
    the USD tenants), and a currency with no compute cost all month keeps its network line unattributed."""
    con = warehouse_con
    add_fact(con, H(9, 10), "AWSLambda", "USE1-Lambda-GB-Second", "1.00", accountant_id="A")
    add_fact(con, H(9, 10), "AWSLambda", "USE1-Lambda-GB-Second", "3.00", accountant_id="B", currency="EUR")
    add_fact(con, H(9, 10), "AmazonEC2", "USE1-NatGateway-Bytes", "0.40")
    add_fact(con, H(9, 10), "AmazonEC2", "USE1-NatGateway-Bytes", "0.30", currency="EUR")
    add_fact(con, H(9, 10), "AmazonEC2", "USE1-NatGateway-Bytes", "0.50", currency="JPY")
    con.execute("UPDATE hourly_cost_facts SET usage_type = 'USE1-NatGateway-Bytes-' || currency "
                "WHERE usage_type = 'USE1-NatGateway-Bytes'")
    rows = allocate(con)
    assert by_tenant(rows, "USE1-NatGateway-Bytes-USD") == {("A", "shared_hour"): D("0.40")}
    assert by_tenant(rows, "USE1-NatGateway-Bytes-EUR") == {("B", "shared_hour"): D("0.30")}
    assert by_tenant(rows, "USE1-NatGateway-Bytes-JPY") == {("unattributed", "unattributed"): D("0.50")}


def test_bedrock_model_the_catalog_does_not_name_is_split_by_such_models_users_only(warehouse_con):
    con = warehouse_con
    # B used Haiku, C used Llama 3 (no catalog entry: its CUR name and its modelId cannot be matched)
    add_usage(con, H(3, 11), "AmazonBedrock", "input_tokens", "B", "9000",
              scope="anthropic.claude-3-haiku-20240307-v1:0")
    add_usage(con, H(3, 11), "AmazonBedrock", "input_tokens", "C", "1000", scope="us.meta.llama3-70b-instruct-v1:0")
    add_usage(con, H(3, 11), "AmazonBedrock", "input_tokens", "D", "1000")  # no modelId: any model's
    add_fact(con, H(3, 11), "AmazonBedrock", "USE1-Llama3-70B-input-tokens", "2.00")
    add_fact(con, H(3, 11), "AmazonBedrock", "USE1-Claude3Haiku-input-tokens", "0.90")
    # a usage type naming no model that is not a model's tokens (combined): every model's users, as before
    add_fact(con, H(3, 11), "AmazonBedrock", "USE1-Guardrails-TextUnits", "1.10")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003"})
    # Haiku's user B never pays for the Llama tokens it did not use
    assert by_tenant(rows, "USE1-Llama3-70B-input-tokens") == {("C", "shared_hour"): D("2.00")}
    assert by_tenant(rows, "USE1-Claude3Haiku-input-tokens") == {("B", "shared_hour"): D("0.90")}
    assert by_tenant(rows, "USE1-Guardrails-TextUnits") == {
        ("B", "shared_hour"): D("0.9"), ("C", "shared_hour"): D("0.1"), ("D", "shared_hour"): D("0.1")}


def test_bedrock_model_names_match_whole_not_as_the_prefix_of_a_newer_model(warehouse_con):
    con = warehouse_con
    # A used Claude Sonnet 4, B Claude Sonnet 4.5, C Sonnet 4.6: `claude-sonnet-4` is a prefix of B's and C's
    # modelIds, and C's has no date (`anthropic.claude-sonnet-4-6`)
    add_usage(con, H(3, 12), "AmazonBedrock", "input_tokens", "A", "1000",
              scope="anthropic.claude-sonnet-4-20250514-v1:0")
    add_usage(con, H(3, 12), "AmazonBedrock", "input_tokens", "B", "3000",
              scope="us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    add_usage(con, H(3, 12), "AmazonBedrock", "input_tokens", "C", "2000", scope="global.anthropic.claude-sonnet-4-6")
    add_fact(con, H(3, 12), "AmazonBedrock", "USE1-Claude4Sonnet-input-tokens", "1.00")
    add_fact(con, H(3, 12), "AmazonBedrock", "USE1-Claude4.5Sonnet-input-tokens", "3.00")
    add_fact(con, H(3, 12), "AmazonBedrock", "USE1-Claude4.6Sonnet-input-tokens-cross-region-global", "2.00")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003"})
    assert by_tenant(rows, "USE1-Claude4Sonnet-input-tokens") == {("A", "shared_hour"): D("1.00")}
    assert by_tenant(rows, "USE1-Claude4.5Sonnet-input-tokens") == {("B", "shared_hour"): D("3.00")}
    assert by_tenant(rows, "USE1-Claude4.6Sonnet-input-tokens-cross-region-global") == {("C", "shared_hour"): D("2.00")}


def test_bedrock_inference_profiles(warehouse_con):
    """A cross-Region (system-defined) profile id or ARN names its model: its tokens are that model's evidence. An
    application inference profile ARN names no model: its tokens are never another model's evidence (AWS bills its
    usage under the model's own usage type with the profile's cost allocation tags: a tagged line is direct)."""
    con = warehouse_con
    arn = "arn:aws:bedrock:us-east-1:123456789012:"
    add_usage(con, H(3, 13), "AmazonBedrock", "input_tokens", "A", "1000",
              scope=arn + "inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    add_usage(con, H(3, 13), "AmazonBedrock", "input_tokens", "B", "3000",
              scope="eu.anthropic.claude-3-5-sonnet-20240620-v1:0")
    add_usage(con, H(3, 13), "AmazonBedrock", "input_tokens", "C", "5000",
              scope=arn + "application-inference-profile/abc123xyz")
    add_usage(con, H(3, 13), "AmazonBedrock", "input_tokens", "D", "1000", scope="meta.llama3-70b-instruct-v1:0")
    add_fact(con, H(3, 13), "AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", "0.40")
    add_fact(con, H(3, 13), "AmazonBedrock", "USE1-Claude3.5Sonnet-input-tokens", "0.15", accountant_id="C",
             resource_id=arn + "application-inference-profile/abc123xyz")
    add_fact(con, H(3, 13), "AmazonBedrock", "USE1-Llama3-70B-input-tokens", "2.00")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003"})
    assert by_tenant(rows, "USE1-Claude3.5Sonnet-input-tokens") == {
        ("A", "shared_hour"): D("0.1"), ("B", "shared_hour"): D("0.3"), ("C", "direct"): D("0.15")}
    # C's application-profile tokens are not unnamed-model usage: the Llama line is D's alone
    assert by_tenant(rows, "USE1-Llama3-70B-input-tokens") == {("D", "shared_hour"): D("2.00")}


def test_bedrock_claude_4_usage_types_as_aws_spells_them(warehouse_con):
    """AWS spells the newer Claude models version first (`USE1-Claude4Sonnet-input-tokens-cross-region-global`,
    `USE1-Claude4.5Haiku-input-tokens`): their lines are split by their own model's users, not the unnamed models'."""
    con = warehouse_con
    add_usage(con, H(3, 14), "AmazonBedrock", "input_tokens", "A", "1000",
              scope="global.anthropic.claude-sonnet-4-20250514-v1:0")
    add_usage(con, H(3, 14), "AmazonBedrock", "input_tokens", "B", "3000",
              scope="us.anthropic.claude-haiku-4-5-20251001-v1:0")
    add_usage(con, H(3, 14), "AmazonBedrock", "input_tokens", "C", "1000", scope="meta.llama3-70b-instruct-v1:0")
    add_fact(con, H(3, 14), "AmazonBedrock", "USE1-Claude4Sonnet-input-tokens-cross-region-global", "1.00")
    add_fact(con, H(3, 14), "AmazonBedrock", "USE1-Claude4.5Haiku-input-tokens", "0.30")
    add_fact(con, H(3, 14), "AmazonBedrock", "USE1-Llama3-70B-input-tokens", "0.50")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003"})
    assert by_tenant(rows, "USE1-Claude4Sonnet-input-tokens-cross-region-global") == {("A", "shared_hour"): D("1.00")}
    assert by_tenant(rows, "USE1-Claude4.5Haiku-input-tokens") == {("B", "shared_hour"): D("0.30")}
    assert by_tenant(rows, "USE1-Llama3-70B-input-tokens") == {("C", "shared_hour"): D("0.50")}


def test_bedrock_models_by_aws_usage_types_including_bedrock_mantle(warehouse_con):
    """The spellings AWS's Bedrock CUR guide and its cost attribution posts show: `USE1-Claude4.6Opus-...`,
    `USE1-Nova2.0Lite-input-tokens-flex`, `USE1-gpt-oss-120b-output-tokens-priority`, and bedrock-mantle usage types,
    which name the model by its model id (`USE1-openai.gpt-oss-120b-mantle-input-tokens-standard`), including
    cache writes spelled `-mantle-cache-write-tokens-standard`. Each line is split by its own model's users, the
    cache writes by cache-write tokens; a mantle model the catalog does not name (Opus 4.8) by unnamed models'."""
    con = warehouse_con
    hour = H(3, 15)
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "A", "1000", scope="us.anthropic.claude-opus-4-6-v1")
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "B", "1000", scope="global.amazon.nova-2-lite-v1:0")
    # gpt-oss's modelId carries its version as `-1:0`; the mantle endpoint's has none
    add_usage(con, hour, "AmazonBedrock", "output_tokens", "C", "3000", scope="openai.gpt-oss-120b-1:0")
    add_usage(con, hour, "AmazonBedrock", "output_tokens", "D", "1000", scope="openai.gpt-oss-120b")
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "D", "1000", scope="openai.gpt-oss-120b")
    add_usage(con, hour, "AmazonBedrock", "cache_write_tokens", "A", "1000", scope="anthropic.claude-opus-4-6-v1")
    add_usage(con, hour, "AmazonBedrock", "cache_write_tokens", "E", "1000", scope="anthropic.claude-opus-4-8")
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "E", "5000", scope="anthropic.claude-opus-4-8")
    add_fact(con, hour, "AmazonBedrock", "USE1-Claude4.6Opus-input-tokens", "0.50")
    add_fact(con, hour, "AmazonBedrock", "USE1-Nova2.0Lite-input-tokens-flex", "0.20")
    add_fact(con, hour, "AmazonBedrock", "USE1-gpt-oss-120b-output-tokens-priority", "0.40")
    add_fact(con, hour, "AmazonBedrock", "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard", "0.10")
    add_fact(con, hour, "AmazonBedrock", "USE1-Claude4.6Opus-cache-write-input-token-count", "0.30")
    add_fact(con, hour, "AmazonBedrock", "USW2-anthropic.claude-opus-4-8-mantle-cache-write-tokens-standard", "0.70")
    add_fact(con, hour, "AmazonBedrock", "USW2-anthropic.claude-opus-4-8-mantle-input-tokens-standard", "0.90")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003", ("AmazonBedrock", "output_tokens"): "0.000015",
                          ("AmazonBedrock", "cache_write_tokens"): "0.00000375"})
    assert by_tenant(rows, "USE1-Claude4.6Opus-input-tokens") == {("A", "shared_hour"): D("0.50")}
    assert by_tenant(rows, "USE1-Nova2.0Lite-input-tokens-flex") == {("B", "shared_hour"): D("0.20")}
    assert by_tenant(rows, "USE1-gpt-oss-120b-output-tokens-priority") == {
        ("C", "shared_hour"): D("0.30"), ("D", "shared_hour"): D("0.10")}
    assert by_tenant(rows, "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard") == {("D", "shared_hour"): D("0.10")}
    assert by_tenant(rows, "USE1-Claude4.6Opus-cache-write-input-token-count") == {("A", "shared_hour"): D("0.30")}
    # Opus 4.8 is no catalog model: its lines and its modelIds are both the unnamed model's, E's alone here
    assert by_tenant(rows, "USW2-anthropic.claude-opus-4-8-mantle-cache-write-tokens-standard") == {
        ("E", "shared_hour"): D("0.70")}
    assert by_tenant(rows, "USW2-anthropic.claude-opus-4-8-mantle-input-tokens-standard") == {
        ("E", "shared_hour"): D("0.90")}


def test_bedrock_one_hour_cache_writes_split_by_cache_write_tokens(warehouse_con):
    """A 1-hour prompt-cache write is its own usage type (`USE1-Claude4.5Sonnet-cache-write-1h-input-token-count`,
    `...-mantle-cache-write-1h-tokens-standard`, as public CUR readers list them): it contains `input-token`, so it
    was split by input tokens, the tenant who wrote the cache paying as little as its prompts weigh."""
    con = warehouse_con
    hour = H(3, 16)
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "A", "1000", scope=model)
    add_usage(con, hour, "AmazonBedrock", "input_tokens", "B", "9000", scope=model)
    add_usage(con, hour, "AmazonBedrock", "cache_write_tokens", "A", "1800", scope=model)
    add_usage(con, hour, "AmazonBedrock", "cache_write_tokens", "B", "200", scope=model)
    add_fact(con, hour, "AmazonBedrock", "USE1-Claude4.5Sonnet-cache-write-1h-input-token-count", "0.60")
    add_fact(con, hour, "AmazonBedrock", "USW2-anthropic.claude-sonnet-4-5-mantle-cache-write-1h-tokens-standard",
             "0.10")
    rows = allocate(con, {("AmazonBedrock", "input_tokens"): "0.000003",
                          ("AmazonBedrock", "cache_write_tokens"): "0.00000375"})
    assert by_tenant(rows, "USE1-Claude4.5Sonnet-cache-write-1h-input-token-count") == {
        ("A", "shared_hour"): D("0.54"), ("B", "shared_hour"): D("0.06")}
    assert by_tenant(rows, "USW2-anthropic.claude-sonnet-4-5-mantle-cache-write-1h-tokens-standard") == {
        ("A", "shared_hour"): D("0.09"), ("B", "shared_hour"): D("0.01")}


def test_s3_requests_of_a_storage_class_split_by_the_requests(warehouse_con):
    """S3 bills the requests on Intelligent-Tiering, Standard-IA, ... objects under usage types of their own
    (`USE1-Requests-INT-Tier1`, `USE1-Requests-SIA-Tier2`: S3 User Guide, "Understanding your AWS billing and usage
    reports for Amazon S3"): split by the logged PUT / GET requests as `Requests-Tier1` / `-Tier2` are, not by the
    combined share (where stored bytes outweigh requests, so the tenant making them paid next to nothing)."""
    con = warehouse_con
    hour = H(7, 9)
    add_usage(con, hour, "AmazonS3", "tier1_requests", "A", "20", scope="docs")
    add_usage(con, hour, "AmazonS3", "tier2_requests", "A", "1", scope="docs")
    add_usage(con, hour, "AmazonS3", "tier2_requests", "B", "3", scope="docs")
    add_usage(con, hour, "AmazonS3", "gb_months_intelligent_tiering", "B", "100", scope="docs")
    add_fact(con, hour, "AmazonS3", "USE1-Requests-INT-Tier1", "0.0001", resource_id="docs")
    add_fact(con, hour, "AmazonS3", "USE1-Requests-SIA-Tier2", "0.0004", resource_id="docs")
    rows = allocate(con, {("AmazonS3", "tier1_requests"): "0.000005", ("AmazonS3", "tier2_requests"): "0.0000004",
                          ("AmazonS3", "gb_months_intelligent_tiering"): "0.023"})
    assert by_tenant(rows, "USE1-Requests-INT-Tier1") == {("A", "shared_hour"): D("0.0001")}
    assert by_tenant(rows, "USE1-Requests-SIA-Tier2") == {("A", "shared_hour"): D("0.0001"),
                                                         ("B", "shared_hour"): D("0.0003")}
