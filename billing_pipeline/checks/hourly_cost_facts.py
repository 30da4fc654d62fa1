"""Checks of hourly_cost_facts: every cost metric adds up to the line items, never written twice, and a month
with line items holds some of the application's."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from billing_pipeline.checks.common import (
    OFFENDING_ROWS,
    configured_check,
    query_check,
    rows_table,
    written_once,
)
from billing_pipeline.resources.billing_config import BillingConfig

GRAIN = ["usage_hour", "span_hours", "usage_account_id", "line_item_type", "service", "product_code", "usage_type",
         "operation", "resource_id", "accountant_id", "application", "environment", "cost_center", "currency"]


def facts_match_line_items(con, period, relation: str = "hourly_cost_facts") -> AssetCheckResult:
    mismatches = con.execute(
        f"""WITH facts AS (SELECT currency, sum(unblended_cost) u, sum(amortized_cost) a, sum(net_amortized_cost) n,
                                 sum(line_items) items
                          FROM {relation} WHERE billing_period = $billing_period GROUP BY currency),
                items AS (SELECT currency, sum(unblended_cost) u, sum(amortized_cost) a, sum(net_amortized_cost) n,
                                 count(*) items
                          FROM cur_line_items WHERE billing_period = $billing_period GROUP BY currency)
           SELECT currency, facts.u AS facts_unblended, items.u AS line_items_unblended,
                  facts.a AS facts_amortized, items.a AS line_items_amortized,
                  facts.n AS facts_net_amortized, items.n AS line_items_net_amortized,
                  facts.items AS facts_line_items, items.items AS line_items
           FROM facts FULL JOIN items USING (currency)
           WHERE facts.u IS DISTINCT FROM items.u OR facts.a IS DISTINCT FROM items.a
              OR facts.n IS DISTINCT FROM items.n OR facts.items IS DISTINCT FROM items.items
           ORDER BY currency""",
        {"billing_period": period},
    ).df()
    return AssetCheckResult(
        passed=mismatches.empty,
        metadata={"currencies_not_adding_up": ", ".join(mismatches["currency"].astype(str)) or "none",
                  "mismatches": rows_table(mismatches)},
    )


facts_add_up_to_line_items = query_check(
    "hourly_cost_facts", "facts_add_up_to_line_items", facts_match_line_items,
    description="Every cost metric of the facts sums exactly to the month's line items.")

# The facts are one GROUP BY over GRAIN, unique as written; re-grouping 10M rows to prove it again would cost as
# much as writing them, so the check counts what the month holds against what was written.
no_duplicate_facts = written_once(
    "hourly_cost_facts", "no_duplicate_facts", GRAIN,
    description="The month holds exactly the facts its one GROUP BY wrote: never written twice.")


def application_tag_values(con, period, application: str) -> AssetCheckResult:
    """Fails (a warning) when the month has facts but none tagged `application` = BILLING_APPLICATION: every
    tenant would owe nothing, which is far likelier a wrong setting (or a tag not activated for cost allocation)
    than a month without the application. Names the values the month's `application` tag does hold."""
    ((in_scope, facts),) = con.execute(
        "SELECT count(*) FILTER (in_scope), count(*) FROM hourly_cost_facts WHERE billing_period = $billing_period",
        {"billing_period": period}).fetchall()
    found = con.execute(
        f"""SELECT coalesce(application, '(untagged)') AS application, currency, count(*) AS facts,
                   sum(unblended_cost) AS unblended_cost
            FROM hourly_cost_facts WHERE billing_period = $billing_period
            GROUP BY ALL ORDER BY unblended_cost DESC, application LIMIT {OFFENDING_ROWS}""",
        {"billing_period": period}).df()
    return AssetCheckResult(
        passed=bool(in_scope) or not facts, severity=AssetCheckSeverity.WARN,
        metadata={"application": application, "facts_in_scope": in_scope, "facts": facts,
                  "application_tag_values": rows_table(found),
                  "hint": MetadataValue.text("" if in_scope or not facts else
                                             f"no fact is tagged application={application!r}: set BILLING_APPLICATION "
                                             "to the application tag's value, and check that the tag is activated "
                                             "as a cost allocation tag (the CUR only carries activated tags)")},
    )


application_in_scope = configured_check(
    "hourly_cost_facts", "application_in_scope", application_tag_values, BillingConfig.application_tag,
    description="Warns when the month has cost but none of it is tagged with the application (BILLING_APPLICATION): "
                "a wrong setting would otherwise bill every tenant nothing.")
