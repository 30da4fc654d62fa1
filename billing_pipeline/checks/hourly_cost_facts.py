"""Checks of hourly_cost_facts: every cost metric adds up to the line items, never written twice."""

from dagster import AssetCheckResult

from billing_pipeline.checks.common import query_check, rows_table, written_once

GRAIN = ["usage_hour", "span_hours", "usage_account_id", "line_item_type", "service", "usage_type", "operation",
         "resource_id", "accountant_id", "application", "environment", "cost_center", "currency"]


def facts_match_line_items(con, period) -> AssetCheckResult:
    mismatches = con.execute(
        """WITH facts AS (SELECT currency, sum(unblended_cost) u, sum(amortized_cost) a, sum(net_amortized_cost) n,
                                 sum(line_items) items
                          FROM hourly_cost_facts WHERE billing_period = $billing_period GROUP BY currency),
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
