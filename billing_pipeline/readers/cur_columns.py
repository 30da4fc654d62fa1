"""CUR column names: AWS's Parquet/Athena naming rule and the one column map every CUR layout is read through.

Legacy CSV headers are `category/Name` (`lineItem/UnblendedCost`, `resourceTags/user:CostCenter`); legacy Parquet,
the Athena layout and CUR 2.0 use AWS's snake_case names (`line_item_unblended_cost`,
`resource_tags_user_cost_center`). Every source column is first renamed by AWS's rule, so ONE map (`CUR_COLUMNS`,
keyed by the snake_case name) serves legacy CSV, legacy Parquet and CUR 2.0, like koku's aws_post_processor does.
FOCUS exports use their own column names; `FOCUS_COLUMNS` says which FOCUS column stands for which CUR column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# How a source column is cast into the line item table.
TEXT, MONEY, NUMBER, TIMESTAMP = "text", "money", "number", "timestamp"


@dataclass(frozen=True)
class CurColumn:
    name: str  # AWS's Parquet (snake_case) name, which the normalization SQL uses
    kind: str  # TEXT | MONEY | NUMBER | TIMESTAMP
    required: bool = False


# Every CUR column the normalization SQL (cur_line_items.sql) reads. A missing optional column is NULL;
# a missing required one is an error naming the file and the column.
CUR_COLUMNS: dict[str, CurColumn] = {
    c.name: c
    for c in [
        CurColumn("bill_billing_period_start_date", TIMESTAMP),
        CurColumn("bill_payer_account_id", TEXT),
        CurColumn("bill_invoice_id", TEXT),
        CurColumn("identity_line_item_id", TEXT),
        CurColumn("line_item_usage_account_id", TEXT),
        CurColumn("line_item_line_item_type", TEXT, required=True),
        CurColumn("line_item_usage_start_date", TIMESTAMP, required=True),
        CurColumn("line_item_usage_end_date", TIMESTAMP, required=True),
        CurColumn("line_item_product_code", TEXT),
        CurColumn("line_item_usage_type", TEXT),
        CurColumn("line_item_operation", TEXT),
        CurColumn("line_item_resource_id", TEXT),
        CurColumn("line_item_line_item_description", TEXT),
        CurColumn("bill_billing_entity", TEXT),  # 'AWS' or 'AWS Marketplace'
        CurColumn("product_product_name", TEXT),
        CurColumn("line_item_iam_principal", TEXT),  # CUR 2.0: the caller of a Bedrock request (IAM principal ARN)
        CurColumn("line_item_usage_amount", NUMBER),
        CurColumn("line_item_currency_code", TEXT, required=True),
        CurColumn("line_item_unblended_cost", MONEY, required=True),
        CurColumn("line_item_net_unblended_cost", MONEY),
        CurColumn("savings_plan_savings_plan_effective_cost", MONEY),
        CurColumn("savings_plan_net_savings_plan_effective_cost", MONEY),
        CurColumn("savings_plan_total_commitment_to_date", MONEY),
        CurColumn("savings_plan_used_commitment", MONEY),
        CurColumn("savings_plan_amortized_upfront_commitment_for_billing_period", MONEY),
        CurColumn("savings_plan_net_amortized_upfront_commitment_for_billing_period", MONEY),
        CurColumn("reservation_reservation_a_r_n", TEXT),
        CurColumn("reservation_effective_cost", MONEY),
        CurColumn("reservation_net_effective_cost", MONEY),
        CurColumn("reservation_unused_amortized_upfront_fee_for_billing_period", MONEY),
        CurColumn("reservation_net_unused_amortized_upfront_fee_for_billing_period", MONEY),
        CurColumn("reservation_unused_recurring_fee", MONEY),
        CurColumn("reservation_net_unused_recurring_fee", MONEY),
        # discount/TotalDiscount (legacy CUR) or CUR 2.0's discount_total_discount: informational, never summed
        # into a cost (legacy CUR also writes each discount as a line item; see cur_line_items.sql)
        CurColumn("discount_total_discount", MONEY),
        # Not CUR columns: FOCUS's EffectiveCost, the amortized cost the export computed itself, its
        # ChargeClass ('Correction': a correction of a billing period already invoiced), and the commitment
        # discount a usage row consumed: CommitmentDiscountStatus ('Used', 'Unused') and CommitmentDiscountCategory
        # ('Spend': a Savings Plan, 'Usage': a reservation).
        CurColumn("effective_cost", MONEY),
        CurColumn("charge_class", TEXT),
        CurColumn("commitment_discount_status", TEXT),
        CurColumn("commitment_discount_category", TEXT),
    ]
}

# CUR 2.0 keeps the product attributes outside its fixed schema in one MAP column, `product` (AWS data dictionary,
# "Product columns": "Any product column that appeared in legacy CUR, but is not part of the CUR 2.0 static schema,
# appears in this map column"): the product name is `product['product_name']` there, a JSON object in a CSV export.
# CUR column -> its key in that map, read where the file has no column of its own for it.
PRODUCT_MAP_COLUMN = "product"
PRODUCT_MAP_KEYS = {"product_product_name": "product_name"}

# The net_* column whose presence says "this delivery carries net costs" (else net_amortized_cost is NULL).
NET_MARKER = "line_item_net_unblended_cost"

# FOCUS 1.x column (first present wins) for each CUR column it stands in for.
FOCUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "bill_billing_period_start_date": ("BillingPeriodStart",),
    "bill_payer_account_id": ("BillingAccountId",),
    "bill_invoice_id": ("InvoiceId",),
    "line_item_usage_account_id": ("SubAccountId",),
    "line_item_line_item_type": ("ChargeCategory",),  # Usage, Purchase, Tax, Credit, Adjustment
    "line_item_usage_start_date": ("ChargePeriodStart",),
    "line_item_usage_end_date": ("ChargePeriodEnd",),
    "line_item_product_code": ("x_ServiceCode", "ServiceName"),
    # FOCUS 1.0 with AWS columns; FOCUS 1.2 dropped x_UsageType: "This is now the SkuMeter column" (AWS Data
    # Exports, "Migrating from FOCUS 1.0 to FOCUS 1.2")
    "line_item_usage_type": ("x_UsageType", "SkuMeter"),
    "line_item_operation": ("x_Operation",),
    "line_item_resource_id": ("ResourceId",),
    "line_item_line_item_description": ("ChargeDescription",),
    "line_item_usage_amount": ("ConsumedQuantity",),
    "line_item_currency_code": ("BillingCurrency",),
    "line_item_unblended_cost": ("BilledCost",),
    "effective_cost": ("EffectiveCost",),
    "charge_class": ("ChargeClass",),
    "commitment_discount_status": ("CommitmentDiscountStatus",),
    "commitment_discount_category": ("CommitmentDiscountCategory",),
}

# A FOCUS file is recognised by this column (CUR files never have it).
FOCUS_MARKER = "BilledCost"

# Legacy CUR: one column per user tag (`resource_tags_user_<key>`). CUR 2.0: one MAP column, `resource_tags` or
# `tags` (every tag source; "If you select this column, you need not select Resource tags and Cost category
# columns", AWS data dictionary), the first present read. FOCUS: `Tags`.
USER_TAG_PREFIX = "resource_tags_user_"
CUR_TAG_MAP_COLUMNS = ("resource_tags", "tags")
FOCUS_TAG_MAP_COLUMNS = ("Tags",)
# A tag map of every source prefixes each key with its source (CUR 2.0 `tags`, "Understanding Tag Prefixes":
# `resourceTags/`, `userAttribute/`, `accountTag/`, `costCategory/`, `iamPrincipal/`; FOCUS 1.2's Tags holds the
# cost categories too). A resource's tag is read under its own key (`resourceTags/user:accountant_id` is
# `accountant_id`); the other sources keep their prefix (`cost_category_accountant_id`), so a cost category or an
# account tag is never read as the resource's tag.
RESOURCE_TAG_SOURCE = "resourceTags/"


def parquet_column_name(header: str) -> str:
    """AWS's rule for CUR column names in Parquet/Athena: underscore before each capital, lower case,
    non-alphanumerics to underscores, no repeated/leading/trailing underscores.
    `lineItem/UnblendedCost` -> `line_item_unblended_cost`, `reservation/ReservationARN` ->
    `reservation_reservation_a_r_n`, `resourceTags/user:CostCenter` -> `resource_tags_user_cost_center`."""
    name = re.sub(r"([A-Z])", r"_\1", header).lower()
    name = re.sub(r"[^a-z0-9]+", "_", name)
    return name.strip("_")


def tag_key_sql(key: str) -> str:
    """The same rule as `parquet_column_name`, as a DuckDB expression over the SQL expression `key`
    (used for the keys of CUR 2.0 / FOCUS tag maps)."""
    underscored = f"lower(regexp_replace({key}, '([A-Z])', '_\\1', 'g'))"
    collapsed = f"regexp_replace({underscored}, '[^a-z0-9]+', '_', 'g')"
    return f"regexp_replace({collapsed}, '^_+|_+$', '', 'g')"
