"""Checks of cur_line_items: one delivery per month, never written twice; commitment-covered usage has the
effective cost the amortized metrics count, and a Savings Plan's unused commitment is counted; net costs count
each discount once."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue

from billing_pipeline.assets.tenant_costs import METRIC_COLUMN
from billing_pipeline.checks.common import (
    OFFENDING_ROWS,
    checked_month,
    configured_check,
    month_check,
    query_check,
    rows_table,
    rows_written,
    written_once_check,
)
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.resources.warehouse import BillingWarehouse

# A line item of a delivery: identity/LineItemId is unique within its time interval (AWS), the rest guards against
# reading two different line items as one where an id repeats.
DUPLICATE_KEYS = ["line_item_id", "usage_start", "usage_end", "line_item_type", "service", "usage_type", "operation",
                  "resource_id", "unblended_cost"]
# Enough of a line item to tell two copies of it apart from two different line items (names the doubled rows)
LINE_ITEM_KEYS = ["source_file", "line_item_id", "usage_start", "usage_end", "line_item_type", "service",
                  "usage_type", "operation", "resource_id", "unblended_cost"]


def deliveries_in_month(con, period, relation: str = "cur_line_items") -> AssetCheckResult:
    deliveries = con.execute(
        f"""SELECT delivery_id, count(*) AS line_items, count(DISTINCT source_file) AS files
            FROM {relation} WHERE billing_period = ? GROUP BY delivery_id ORDER BY delivery_id
            LIMIT {OFFENDING_ROWS}""",
        [period],
    ).df()
    return AssetCheckResult(passed=len(deliveries) == 1,
                            metadata={"deliveries_in_month": len(deliveries), "deliveries": rows_table(deliveries)})


def duplicate_line_items(con, period, relation: str = "cur_line_items") -> AssetCheckResult:
    """A line item the delivery holds twice (same identity/LineItemId, time interval, type, usage, resource and
    cost: the same row in two files, or twice in one), named with its files. Line items without an identity are
    not compared (two such rows may be two real charges)."""
    keys = ", ".join(DUPLICATE_KEYS)
    # Grouping 10M line items by nine columns costs as much as loading them: group one hash of them instead, and
    # compare the columns only where two rows share a hash.
    duplicates = con.execute(
        f"""WITH hashed AS (
                SELECT hash({keys}) AS line_hash, {keys}, source_file FROM {relation}
                WHERE billing_period = ? AND line_item_id IS NOT NULL),
            shared AS (SELECT line_hash FROM hashed GROUP BY line_hash HAVING count(*) > 1)
            SELECT {keys}, count(*) AS copies, min(source_file) AS first_file, max(source_file) AS last_file
            FROM hashed WHERE line_hash IN (SELECT line_hash FROM shared)
            GROUP BY {keys} HAVING count(*) > 1 ORDER BY {keys} LIMIT {OFFENDING_ROWS}""",
        [period],
    ).fetchall()
    problems = [f"{first if first == last else f'{first} and {last}'}: line item {row[0]} starting {row[1]} appears "
                f"{copies} times" for *row, copies, first, last in duplicates]
    return AssetCheckResult(passed=not duplicates, metadata={"duplicate_line_items": "\n".join(problems) or "none"})


one_delivery = query_check(
    "cur_line_items", "one_delivery", deliveries_in_month,
    description="All of the month's rows come from one delivery: a restatement replaced, never added.")


@month_check("cur_line_items", name="no_duplicate_line_items",
             description="The month holds exactly the line items its delivery was loaded with (never written twice), "
                         "and the delivery holds no line item twice.")
def no_duplicate_line_items(context: AssetCheckExecutionContext, warehouse: BillingWarehouse) -> AssetCheckResult:
    period = checked_month(context)
    with warehouse.connect() as con:
        written = written_once_check(con, "cur_line_items", period, rows_written(context, "cur_line_items"),
                                     LINE_ITEM_KEYS)
        doubled = duplicate_line_items(con, period)  # also the pre-commit guard (assets/cur_line_items.py)
    return AssetCheckResult(passed=written.passed and doubled.passed, severity=written.severity,
                            metadata={**written.metadata, **doubled.metadata})


def covered_usage_effective_costs(con, period, metric: str, relation: str = "cur_line_items") -> AssetCheckResult:
    """Fails (a warning) when usage a Savings Plan or a reservation covered counts nothing under the amortized
    metric in use: such a line's amortized cost is its effective cost (savings_plan_savings_plan_effective_cost,
    reservation_effective_cost), and an export without those columns, or with them empty, leaves it 0 while the
    commitment's fee counts only its unused part, so the tenants' costs miss the covered usage. A Savings Plan's
    covered line states its on-demand cost (unblended), a reservation's its usage: either non-zero with an
    effective cost of 0 is named, with its file. Under BILLING_COST_METRIC=unblended nothing reads the effective
    cost: the lines are counted but pass."""
    # the metric's cost column; under unblended the amortized one, to say what it would have missed
    cost = METRIC_COLUMN["amortized" if metric == "unblended" else metric]
    found = con.execute(
        f"""SELECT currency, line_item_type, count(*) AS line_items, sum(unblended_cost) AS unblended_cost,
                   sum(usage_amount) AS usage_amount, min(source_file) AS first_file
            FROM {relation}
            WHERE billing_period = ? AND {cost} = 0
              AND ((line_item_type = 'SavingsPlanCoveredUsage' AND unblended_cost <> 0)
                OR (line_item_type = 'DiscountedUsage' AND usage_amount <> 0))
            GROUP BY ALL ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        [period]).df()
    return lines_warning(
        found, metric, metric != "unblended", "covered_lines_without_effective_cost",
        f"{metric} counts these commitment-covered lines as 0: include the Savings Plan and reservation effective "
        "cost columns in the export (a CUR 2.0 export's column selection), or bill on BILLING_COST_METRIC=unblended")


covered_usage_has_effective_cost = configured_check(
    "cur_line_items", "covered_usage_has_effective_cost", covered_usage_effective_costs, BillingConfig.metric,
    description="Warns when usage a Savings Plan or reservation covered has no effective cost: the amortized "
                "metrics would count it 0 and the tenants' costs would miss it.")


def unused_commitments_lost(con, period, metric: str, relation: str = "cur_line_items") -> AssetCheckResult:
    """Fails (a warning) when a Savings Plan's unused commitment counts nothing under the amortized metric in use.
    A recurring fee line counts its unused commitment (savings_plan_total_commitment_to_date - used); an export
    without that column (a CUR 2.0 column selection) leaves it unknown and the fee counts 0, which a fully used
    plan also shows. The hour tells them apart: the usage the plans covered in it (its effective cost) below the
    hour's recurring fees means commitment went unused, paid for and charged to no one. Named per currency with the
    hours, fees, covered cost and a file; the usage's effective cost may include upfront amortization, so a Partial
    Upfront plan's loss can go unseen (never a false alarm: a fully used plan covers at least its recurring fee).
    Under BILLING_COST_METRIC=unblended the fee counts whole: counted, passed."""
    cost = METRIC_COLUMN["amortized" if metric == "unblended" else metric]
    found = con.execute(
        f"""WITH hours AS (
                SELECT currency, usage_start,
                       sum(unblended_cost) FILTER (line_item_type = 'SavingsPlanRecurringFee') AS recurring_fees,
                       sum({cost}) FILTER (line_item_type = 'SavingsPlanRecurringFee') AS fees_counted,
                       coalesce(sum({cost}) FILTER (line_item_type = 'SavingsPlanCoveredUsage'), 0) AS covered_cost,
                       min(source_file) FILTER (line_item_type = 'SavingsPlanRecurringFee') AS first_file
                FROM {relation}
                WHERE billing_period = ?
                  AND line_item_type IN ('SavingsPlanRecurringFee', 'SavingsPlanCoveredUsage')
                GROUP BY ALL)
            -- unused beyond 1 % of the fees: an effective cost summed from rounded lines may fall short of a fully
            -- used plan's fee by a few units of its last place, never by 1 %
            SELECT currency, count(*) AS hours, sum(recurring_fees) AS recurring_fees,
                   sum(covered_cost) AS covered_cost, sum(recurring_fees - covered_cost) AS unused_not_counted,
                   min(first_file) AS first_file
            FROM hours
            WHERE recurring_fees > 0 AND fees_counted = 0 AND recurring_fees - covered_cost > recurring_fees / 100
            GROUP BY ALL ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        [period]).df()
    return lines_warning(
        found, metric, metric != "unblended", "hours_with_unused_commitment_not_counted",
        f"{metric} counts these hours' Savings Plan fees as 0 although the plans covered less than their "
        "commitment: include savings_plan_total_commitment_to_date (and savings_plan_used_commitment) in the export, "
        "or bill on BILLING_COST_METRIC=unblended", counted="hours")


savings_plan_unused_commitment_counted = configured_check(
    "cur_line_items", "savings_plan_unused_commitment_counted", unused_commitments_lost, BillingConfig.metric,
    description="Warns when a Savings Plan's unused commitment counts 0 under the amortized metrics (an export "
                "without its commitment columns): paid for and charged to no tenant.")


def net_discounts_counted_twice(con, period, metric: str, relation: str = "cur_line_items") -> AssetCheckResult:
    """Fails (a warning) under BILLING_COST_METRIC=net_amortized when a currency's net costs already hold its
    discounts (a line other than a discount whose net cost differs from its amortized one) and its discount line
    items (EdpDiscount, PrivateRateDiscount, BundledDiscount, ...) count a net cost too: the discount would be
    taken off twice. Cost Explorer's NetUnblendedCost / NetAmortizedCost count discount line items 0 where the
    usage's net cost holds them; AWS does not document the net cell of a discount line, and one left empty counts
    its gross discount (the fallback that keeps a delivery whose net cells are all empty whole). Named per currency
    and type with the discount's amounts and a file; other metrics do not read net costs: counted, passed."""
    found = con.execute(
        f"""WITH nets_hold_discounts AS (
                SELECT DISTINCT currency FROM {relation}
                WHERE billing_period = ? AND line_item_type NOT LIKE '%Discount'
                  AND net_amortized_cost <> amortized_cost)
            SELECT currency, line_item_type, count(*) AS line_items, sum(unblended_cost) AS discount,
                   sum(net_amortized_cost) AS net_counted, min(source_file) AS first_file
            FROM {relation}
            WHERE billing_period = ? AND line_item_type LIKE '%Discount' AND net_amortized_cost <> 0
              AND currency IN (SELECT currency FROM nets_hold_discounts)
            GROUP BY ALL ORDER BY ALL LIMIT {OFFENDING_ROWS}""",
        [period, period]).df()
    return lines_warning(
        found, metric, metric == "net_amortized", "discount_lines_with_net_cost",
        "the usage's net costs already hold these discounts and the discount lines count them again: the tenants' "
        "net costs are too low by the discount lines' net_counted. Check the delivery's net columns of its discount "
        "lines, or bill on BILLING_COST_METRIC=amortized")


net_discounts_counted_once = configured_check(
    "cur_line_items", "net_discounts_counted_once", net_discounts_counted_twice, BillingConfig.metric,
    description="Warns under net_amortized when discount line items count a net cost although the usage's net "
                "costs already hold the discounts: they would be taken off twice.")


def lines_warning(found, metric: str, metric_reads_them: bool, count_name: str, hint: str,
                  counted: str = "line_items") -> AssetCheckResult:
    """A warning naming the line items `found` (one row per group, with a count in column `counted`) when the
    metric in use reads them; under another metric they are counted and pass."""
    warned = metric_reads_them and not found.empty
    return AssetCheckResult(
        passed=not warned, severity=AssetCheckSeverity.WARN,
        metadata={"cost_metric": metric, count_name: int(found[counted].sum()), "lines": rows_table(found),
                  "hint": MetadataValue.text(hint if warned else "")})
