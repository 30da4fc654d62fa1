"""An AWS Data Exports FOCUS 1.2 with AWS columns export through the real Definitions: each tenant's cost and the
bill's conservation, exactly.

The export as AWS documents it (AWS Data Exports, "FOCUS 1.2 with AWS columns": the 60 columns, the SQL table
FOCUS_1_2_AWS; "Migrating from FOCUS 1.0 to FOCUS 1.2": x_UsageType is now SkuMeter, x_CostCategories is in Tags;
delivery `<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-00001.snappy.parquet` and its manifest under
`metadata/`), and the FOCUS specification's commitment discount rows (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec):
a Savings Plan's recurring fee is a `Purchase` (BilledCost the commitment, EffectiveCost 0: "EffectiveCost MUST be
0 when ChargeCategory is Purchase and the purchase is intended to cover future eligible charges"), the usage it
covers a `Usage` row with CommitmentDiscountStatus `Used` (BilledCost 0, EffectiveCost its share of the
commitment) and the commitment left unused a `Usage` row with CommitmentDiscountStatus `Unused` (BilledCost 0,
EffectiveCost the unused part). A correction of a billing period already invoiced carries ChargeClass `Correction`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import duckdb
import pyarrow as pa
import pytest

from billing_pipeline_tests.assets.test_optional_cur_data import run_month
from billing_pipeline_tests.readers.cur_builders import write_export_manifest, write_parquet

PAYER, ACCOUNT = "111111111111", "222222222222"
JAN, FEB = dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)
HOUR = (dt.datetime(2026, 1, 5, 10), dt.datetime(2026, 1, 5, 11))
MONTH = (JAN, FEB)
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:tax"
SP = f"arn:aws:savingsplans::{PAYER}:savingsplan/3b2c1d0e-0000-4000-8000-000000000001"
APP = {"user:application": "tax-demo"}
ACME, BETA = {**APP, "user:accountant_id": "acme"}, {**APP, "user:accountant_id": "beta"}

# The 60 columns of FOCUS 1.2 with AWS columns, in AWS's order (the table dictionary), with their Parquet types.
MAP = pa.map_(pa.string(), pa.string())
UTC = pa.timestamp("ms", tz="UTC")
COLUMNS = {
    "AvailabilityZone": pa.string(), "BilledCost": pa.float64(), "BillingAccountId": pa.string(),
    "BillingAccountName": pa.string(), "BillingAccountType": pa.string(), "BillingCurrency": pa.string(),
    "BillingPeriodEnd": UTC, "BillingPeriodStart": UTC, "CapacityReservationId": pa.string(),
    "CapacityReservationStatus": pa.string(), "ChargeCategory": pa.string(), "ChargeClass": pa.string(),
    "ChargeDescription": pa.string(), "ChargeFrequency": pa.string(), "ChargePeriodEnd": UTC,
    "ChargePeriodStart": UTC, "CommitmentDiscountCategory": pa.string(), "CommitmentDiscountId": pa.string(),
    "CommitmentDiscountName": pa.string(), "CommitmentDiscountQuantity": pa.float64(),
    "CommitmentDiscountStatus": pa.string(), "CommitmentDiscountType": pa.string(),
    "CommitmentDiscountUnit": pa.string(), "ConsumedQuantity": pa.float64(), "ConsumedUnit": pa.string(),
    "ContractedCost": pa.float64(), "ContractedUnitPrice": pa.float64(), "EffectiveCost": pa.float64(),
    "InvoiceId": pa.string(), "InvoiceIssuerName": pa.string(), "ListCost": pa.float64(),
    "ListUnitPrice": pa.float64(), "PricingCategory": pa.string(), "PricingCurrency": pa.string(),
    "PricingCurrencyContractedUnitPrice": pa.float64(), "PricingCurrencyEffectiveCost": pa.float64(),
    "PricingCurrencyListUnitPrice": pa.float64(), "PricingQuantity": pa.float64(), "PricingUnit": pa.string(),
    "ProviderName": pa.string(), "PublisherName": pa.string(), "RegionId": pa.string(), "RegionName": pa.string(),
    "ResourceId": pa.string(), "ResourceName": pa.string(), "ResourceType": pa.string(),
    "ServiceCategory": pa.string(), "ServiceName": pa.string(), "ServiceSubcategory": pa.string(),
    "SkuId": pa.string(), "SkuMeter": pa.string(), "SkuPriceDetails": MAP, "SkuPriceId": pa.string(),
    "SubAccountId": pa.string(), "SubAccountName": pa.string(), "SubAccountType": pa.string(), "Tags": MAP,
    "x_Discounts": pa.map_(pa.string(), pa.float64()), "x_Operation": pa.string(), "x_ServiceCode": pa.string(),
}
SERVICES = {"AWSLambda": ("AWS Lambda", "Compute"), "AmazonEC2": ("Amazon Elastic Compute Cloud", "Compute"),
            "ComputeSavingsPlans": ("Savings Plans for AWS Compute usage", "Compute")}


def row(category, code, meter, period, billed, effective, tags=None, *, list_cost=None, status=None,
        frequency="Usage-Based", charge_class=None, resource=None, operation=None, discounts=None, **extra):
    """One FOCUS 1.2 row as AWS writes it (columns that do not apply are null)."""
    service, service_category = SERVICES[code]
    commitment = status is not None or code == "ComputeSavingsPlans"
    values = {
        "BilledCost": billed, "EffectiveCost": effective, "ListCost": billed if list_cost is None else list_cost,
        "ContractedCost": effective if list_cost is None else list_cost, "PricingCurrencyEffectiveCost": effective,
        "BillingAccountId": PAYER, "BillingAccountName": "payer", "BillingAccountType": "Billing Account",
        "BillingCurrency": "USD", "PricingCurrency": "USD", "BillingPeriodStart": JAN, "BillingPeriodEnd": FEB,
        "ChargeCategory": category, "ChargeClass": charge_class, "ChargeFrequency": frequency,
        "ChargeDescription": f"{category} {meter or code}", "ChargePeriodStart": period[0],
        "ChargePeriodEnd": period[1], "CommitmentDiscountStatus": status,
        "CommitmentDiscountId": SP if commitment else None,
        "CommitmentDiscountType": "Compute Savings Plans" if commitment else None,
        "CommitmentDiscountCategory": "Spend" if commitment else None,
        "InvoiceId": "EUINUS26-000001", "InvoiceIssuerName": "Amazon Web Services, Inc.",
        "ProviderName": "AWS", "PublisherName": "Amazon Web Services, Inc.", "RegionId": "us-east-1",
        "ServiceName": service, "ServiceCategory": service_category, "SkuMeter": meter,
        "SubAccountId": ACCOUNT, "SubAccountName": "prod", "SubAccountType": "Linked Account",
        "PricingCategory": "Committed" if status == "Used" else "Standard" if category == "Usage" else None,
        "ResourceId": resource, "x_Operation": operation, "x_ServiceCode": code,
        "Tags": list((tags or {}).items()), "x_Discounts": list((discounts or {}).items()),
        "SkuPriceDetails": [], **extra,
    }
    return values


def focus12_export(root, rows, export="focus12", period="2026-01"):
    """The export's one data file and its manifest, where AWS delivers them."""
    table = pa.table({name: pa.array([r.get(name) for r in rows], kind) for name, kind in COLUMNS.items()})
    data = write_parquet(root / export / "data" / f"BILLING_PERIOD={period}" / f"{export}-00001.snappy.parquet",
                         table)
    write_export_manifest(root / export / "metadata" / f"BILLING_PERIOD={period}" / f"{export}-Manifest.json",
                          export, [f"s3://cur-bucket/{data.relative_to(root).as_posix()}"], period)


def month_rows():
    return [
        # acme's tagged Lambda usage; the application's Lambda usage of no tenant (no evidence: unattributed)
        row("Usage", "AWSLambda", "USE1-Lambda-GB-Second", HOUR, 0.38, 0.38, ACME, resource=FUNCTION,
            operation="Invoke"),
        row("Usage", "AWSLambda", "USE1-Request", HOUR, 0.20, 0.20, APP, resource=FUNCTION, operation="Invoke"),
        # beta's instance hour covered by the Savings Plan: billed 0, its effective cost 0.60 of the 1.00 commitment
        row("Usage", "AmazonEC2", "USE1-BoxUsage:m5.xlarge", HOUR, 0.0, 0.60, BETA, list_cost=1.00, status="Used",
            resource="i-0b", operation="RunInstances"),
        # the plan's hourly fee (invoiced; amortized into the usage above and the unused row) and its unused 0.40
        row("Purchase", "ComputeSavingsPlans", None, HOUR, 1.00, 0.0, frequency="Recurring", resource=SP,
            operation=None),
        row("Usage", "ComputeSavingsPlans", "ComputeSP:1yrNoUpfront", HOUR, 0.0, 0.40, status="Unused",
            resource=SP, operation=None),
        # another application's instance (out of scope)
        row("Usage", "AmazonEC2", "USE1-BoxUsage:m5.large", HOUR, 0.50, 0.50, {"user:application": "other"},
            resource="i-0c", operation="RunInstances"),
        # the month's Lambda tax and a Lambda credit (no tags: account-level)
        row("Tax", "AWSLambda", None, MONTH, 0.05, 0.05, frequency="One-Time"),
        row("Credit", "AWSLambda", None, MONTH, -0.10, -0.10, frequency="One-Time"),
        # December's acme usage corrected in January's bill: a refund of 0.08 (ChargeClass Correction)
        row("Usage", "AWSLambda", "USE1-Lambda-GB-Second", (dt.datetime(2025, 12, 20, 10), dt.datetime(2025, 12, 20, 11)),
            -0.08, -0.08, ACME, charge_class="Correction", resource=FUNCTION, operation="Invoke"),
        # and beta's December hour the plan covered: billed 0, so its correction gives back effective cost only
        row("Usage", "AmazonEC2", "USE1-BoxUsage:m5.xlarge", (dt.datetime(2025, 12, 20, 10), dt.datetime(2025, 12, 20, 11)),
            0.0, -0.10, BETA, list_cost=-0.20, status="Used", charge_class="Correction", resource="i-0b",
            operation="RunInstances"),
    ]


# (metric): each tenant's cost by service, line type and allocation; the bill's parts
EXPECTED = {
    # EffectiveCost. acme: its 0.38 and the correction -0.08 direct; the tax 0.05 and credit -0.10 are Lambda's,
    # all the application's (its Lambda cost 0.50 is the bill's), split by the tenants' Lambda cost 0.30 : 0.20.
    # beta: the plan's effective cost 0.60 of its covered hour. The Purchase counts 0 (amortized into the usage and
    # the unused row); the unused 0.40 has no tag: out of scope with the other application's 0.50.
    "amortized": ([
        ("acme", "AWSLambda", "Credit", "proportional", D("-0.0600000000")),
        ("acme", "AWSLambda", "Refund", "direct", D("-0.0800000000")),
        ("acme", "AWSLambda", "Tax", "proportional", D("0.0300000000")),
        ("acme", "AWSLambda", "Usage", "direct", D("0.3800000000")),
        ("beta", "AmazonEC2", "Refund", "direct", D("-0.1000000000")),
        ("beta", "AmazonEC2", "SavingsPlanCoveredUsage", "direct", D("0.6000000000")),
        ("unattributed", "AWSLambda", "Credit", "proportional", D("-0.0400000000")),
        ("unattributed", "AWSLambda", "Tax", "proportional", D("0.0200000000")),
        ("unattributed", "AWSLambda", "Usage", "unattributed", D("0.2000000000")),
    ], {"bill/USD": "1.8500000000", "tenants/USD": "0.7700000000", "unattributed/USD": "0.1800000000",
        "out_of_scope/USD": "0.9000000000", "kept_by_company/USD": "0.0000000000"}),
    # BilledCost: the covered hour and its correction are billed 0 (the plan's fee, an untagged Purchase of 1.00, is
    # what AWS invoices: out of scope, as CUR's untagged recurring fee is under unblended), the rest as above; the
    # covered hour's effective cost 0.60 charged to no tenant is said, as for CUR's covered usage
    "unblended": ([
        ("acme", "AWSLambda", "Credit", "proportional", D("-0.0600000000")),
        ("acme", "AWSLambda", "Refund", "direct", D("-0.0800000000")),
        ("acme", "AWSLambda", "Tax", "proportional", D("0.0300000000")),
        ("acme", "AWSLambda", "Usage", "direct", D("0.3800000000")),
        ("unattributed", "AWSLambda", "Credit", "proportional", D("-0.0400000000")),
        ("unattributed", "AWSLambda", "Tax", "proportional", D("0.0200000000")),
        ("unattributed", "AWSLambda", "Usage", "unattributed", D("0.2000000000")),
    ], {"bill/USD": "1.9500000000", "tenants/USD": "0.2700000000", "unattributed/USD": "0.1800000000",
        "out_of_scope/USD": "1.5000000000", "kept_by_company/USD": "0.0000000000",
        "covered_cost_not_charged/USD": "0.6000000000"}),
}


@pytest.mark.parametrize("metric", ["amortized", "unblended"])
@pytest.mark.parametrize("tag_source", ["", "resourceTags/"])
def test_a_focus_1_2_month_through_the_chain(tmp_path, monkeypatch, metric, tag_source):
    """Usage, a Savings Plan's used and unused commitment and its fee, tax, a credit, corrections of the previous
    month, tagged and untagged lines: every tenant's cost exact and the bill conserved (run_month checks
    bill_conserved). The Tags keys as FOCUS 1.0 spells a user tag (`user:accountant_id`) and with the source prefix
    of AWS's tag map of every source (`resourceTags/user:accountant_id`), which read no tag at all before."""
    root = tmp_path / "bucket"
    rows = month_rows()
    for r in rows:
        r["Tags"] = [(tag_source + k, v) for k, v in r["Tags"]] + [("costCategory/accountant_id", "team-x")]
    focus12_export(root, rows)
    result = run_month(tmp_path, monkeypatch, root, metric)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        costs = con.execute("""SELECT accountant_id, service, line_item_type, allocation, sum(cost) FROM tenant_costs
                               GROUP BY ALL HAVING sum(cost) <> 0 ORDER BY ALL""").fetchall()
        refunds = con.execute("""SELECT billing_period, usage_start FROM cur_line_items
                                 WHERE line_item_type = 'Refund'""").fetchall()
    metadata = result.asset_materializations_for_node("tenant_costs")[0].metadata
    expected_costs, expected_parts = EXPECTED[metric]
    assert costs == expected_costs
    assert {k: metadata[k].value for k in expected_parts} == expected_parts
    # December's corrections are January's bill (BillingPeriodStart), at the hour they correct
    assert refunds == [(JAN.date(), dt.datetime(2025, 12, 20, 10))] * 2
