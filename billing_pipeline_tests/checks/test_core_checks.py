"""Every check of the core chain passes on a materialized month and fails, naming the rows, once the table is
broken: a row dropped, doubled, a cost changed."""

from __future__ import annotations

from decimal import Decimal as D

from billing_pipeline.checks import (
    cur_line_items,
    estimated_usage,
    hourly_cost_facts,
    reconciliation_report,
    tenant_costs,
    usage_shares,
)

ONE_UNIT = D("0.0000000001")  # the smallest change of a DECIMAL(38, 10) cost


def test_the_materialized_month_passed_every_blocking_check(checked_month):
    evaluations = {e.check_name: e.passed for e in checked_month.result.get_asset_check_evaluations()
                   if e.severity.value == "ERROR"}
    assert evaluations == {
        "one_delivery": True, "no_duplicate_line_items": True, "facts_add_up_to_line_items": True,
        "no_duplicate_facts": True, "shares_sum_to_one": True, "no_duplicate_shares": True,
        "no_duplicate_estimates": True, "attributed_plus_unattributed_equals_cur": True, "bill_conserved": True,
        "no_duplicate_tenant_costs": True, "no_duplicate_report_rows": True, "no_duplicate_pricing_feedback": True,
        "statement_cents_add_up": True, "no_duplicate_statement_lines": True, "month_from_one_delivery": True,
    }


def test_one_delivery_fails_when_a_second_delivery_is_added(broken):
    assert broken.check(cur_line_items.one_delivery).passed
    (delivery,) = broken.sql("SELECT DISTINCT delivery_id FROM cur_line_items")[0]
    broken.sql("""INSERT INTO cur_line_items SELECT * REPLACE ('restated-assembly' AS delivery_id)
                  FROM cur_line_items LIMIT 1""")
    result = broken.check(cur_line_items.one_delivery)
    assert not result.passed
    assert result.metadata["deliveries_in_month"].value == 2
    assert delivery in broken.text(result, "deliveries") and "restated-assembly" in broken.text(result, "deliveries")


def test_no_duplicate_line_items_fails_for_a_doubled_line_item_and_names_it(broken):
    assert broken.check(cur_line_items.no_duplicate_line_items).passed
    ((line_item_id, source_file),) = broken.sql(
        "SELECT line_item_id, source_file FROM cur_line_items ORDER BY line_item_id LIMIT 1")
    broken.sql("INSERT INTO cur_line_items SELECT * FROM cur_line_items WHERE line_item_id = ?", [line_item_id])
    result = broken.check(cur_line_items.no_duplicate_line_items)
    assert not result.passed
    assert result.metadata["rows_held"].value == result.metadata["rows_written"].value + 1
    assert line_item_id in broken.text(result, "duplicate_keys") and source_file in broken.text(result, "duplicate_keys")


def test_facts_add_up_fails_when_a_fact_cost_changes_by_one_unit(broken):
    assert broken.check(hourly_cost_facts.facts_add_up_to_line_items).passed
    broken.sql("""UPDATE hourly_cost_facts SET amortized_cost = amortized_cost + ?
                  WHERE rowid = (SELECT min(rowid) FROM hourly_cost_facts)""", [ONE_UNIT])
    result = broken.check(hourly_cost_facts.facts_add_up_to_line_items)
    assert not result.passed
    assert result.metadata["currencies_not_adding_up"].value == "USD"
    ((items,),) = broken.sql("SELECT sum(amortized_cost) FROM cur_line_items")
    assert str(items + ONE_UNIT) in broken.text(result, "mismatches")


def test_facts_add_up_fails_when_a_fact_is_dropped(broken):
    broken.sql("DELETE FROM hourly_cost_facts WHERE rowid = (SELECT min(rowid) FROM hourly_cost_facts)")
    assert not broken.check(hourly_cost_facts.facts_add_up_to_line_items).passed


def test_no_duplicate_facts_fails_for_a_doubled_fact_and_names_it(broken):
    assert broken.check(hourly_cost_facts.no_duplicate_facts).passed
    ((resource, usage_type),) = broken.sql(
        """SELECT resource_id, usage_type FROM hourly_cost_facts WHERE resource_id IS NOT NULL
           ORDER BY usage_hour, resource_id LIMIT 1""")
    broken.sql("""INSERT INTO hourly_cost_facts SELECT * FROM hourly_cost_facts
                  WHERE rowid = (SELECT min(rowid) FROM hourly_cost_facts WHERE resource_id = ? AND usage_type = ?)""",
               [resource, usage_type])
    result = broken.check(hourly_cost_facts.no_duplicate_facts)
    assert not result.passed
    assert result.metadata["rows_held"].value == result.metadata["rows_written"].value + 1
    assert resource in broken.text(result, "duplicate_keys")


def test_shares_sum_to_one_fails_when_a_tenants_share_is_dropped(broken):
    assert broken.check(usage_shares.shares_sum_to_one).passed
    ((hour, service, driver),) = broken.sql(
        """SELECT usage_hour, service, driver FROM usage_shares WHERE share < 1
           ORDER BY usage_hour, service, driver, accountant_id LIMIT 1""")
    broken.sql("""DELETE FROM usage_shares WHERE rowid = (SELECT min(rowid) FROM usage_shares
                  WHERE usage_hour = ? AND service = ? AND driver = ? AND share < 1)""", [hour, service, driver])
    result = broken.check(usage_shares.shares_sum_to_one)
    assert not result.passed
    assert service in broken.text(result, "uneven_groups") and driver in broken.text(result, "uneven_groups")
    assert hour.strftime("%Y-%m-%d %H:%M:%S") in broken.text(result, "uneven_groups")


def test_no_duplicate_shares_fails_for_a_doubled_row(broken):
    assert broken.check(usage_shares.no_duplicate_shares).passed
    ((tenant,),) = broken.sql("SELECT min(accountant_id) FROM usage_shares WHERE accountant_id <> 'unattributed'")
    broken.sql("""INSERT INTO usage_shares SELECT * FROM usage_shares
                  WHERE rowid = (SELECT min(rowid) FROM usage_shares WHERE accountant_id = ?)""", [tenant])
    result = broken.check(usage_shares.no_duplicate_shares)
    assert not result.passed and tenant in broken.text(result, "duplicate_keys")


def test_no_duplicate_estimates_fails_for_a_doubled_row(broken):
    assert broken.check(estimated_usage.no_duplicate_estimates).passed
    ((tenant, resource_type),) = broken.sql(
        "SELECT accountant_id, resource_type FROM estimated_usage ORDER BY ALL LIMIT 1")
    broken.sql("""INSERT INTO estimated_usage SELECT * FROM estimated_usage
                  WHERE rowid = (SELECT min(rowid) FROM estimated_usage WHERE accountant_id = ? AND resource_type = ?)""",
               [tenant, resource_type])
    result = broken.check(estimated_usage.no_duplicate_estimates)
    assert not result.passed and tenant in broken.text(result, "duplicate_keys") and resource_type in broken.text(result, "duplicate_keys")


def test_attributed_plus_unattributed_fails_when_a_tenants_cost_changes(broken):
    assert broken.check(tenant_costs.attributed_plus_unattributed_equals_cur).passed
    ((day, service),) = broken.sql(
        "SELECT usage_date, service FROM tenant_costs WHERE allocation = 'shared_hour' ORDER BY ALL LIMIT 1")
    broken.sql("""UPDATE tenant_costs SET cost = cost + ? WHERE rowid = (SELECT min(rowid) FROM tenant_costs
                  WHERE usage_date = ? AND service = ? AND allocation = 'shared_hour')""", [ONE_UNIT, day, service])
    result = broken.check(tenant_costs.attributed_plus_unattributed_equals_cur)
    assert not result.passed
    mismatches = broken.text(result, "mismatches")
    assert str(day) in mismatches and service in mismatches and mismatches.count("\n") == 2  # header, rule, 1 row


def test_attributed_plus_unattributed_fails_when_the_unattributed_rows_are_dropped(broken):
    ((unattributed,),) = broken.sql("SELECT count(*) FROM tenant_costs WHERE accountant_id = 'unattributed'")
    assert unattributed > 0
    broken.sql("DELETE FROM tenant_costs WHERE accountant_id = 'unattributed'")
    assert not broken.check(tenant_costs.attributed_plus_unattributed_equals_cur).passed


def test_bill_conserved_fails_when_a_tenants_cost_changes(broken):
    assert broken.check(tenant_costs.bill_conserved).passed
    broken.sql("""UPDATE tenant_costs SET cost = cost + ? WHERE rowid = (SELECT min(rowid) FROM tenant_costs
                  WHERE accountant_id <> 'unattributed')""", [ONE_UNIT])
    result = broken.check(tenant_costs.bill_conserved)
    assert not result.passed
    unbalanced = broken.text(result, "unbalanced")
    assert unbalanced.startswith("- USD: tenants ") and unbalanced.count("\n") == 0


def test_no_duplicate_tenant_costs_fails_for_a_doubled_row(broken):
    assert broken.check(tenant_costs.no_duplicate_tenant_costs).passed
    ((tenant,),) = broken.sql("SELECT min(accountant_id) FROM tenant_costs")
    broken.sql("""INSERT INTO tenant_costs SELECT * FROM tenant_costs
                  WHERE rowid = (SELECT min(rowid) FROM tenant_costs WHERE accountant_id = ?)""", [tenant])
    result = broken.check(tenant_costs.no_duplicate_tenant_costs)
    assert not result.passed and tenant in broken.text(result, "duplicate_keys")


def test_variance_within_threshold_names_the_flagged_tenants(broken):
    broken.sql("UPDATE reconciliation_report SET flagged = false")
    assert broken.check(reconciliation_report.variance_within_threshold).passed
    ((tenant, resource_type),) = broken.sql(
        """SELECT accountant_id, resource_type FROM reconciliation_report WHERE resource_type <> 'total'
           ORDER BY ALL LIMIT 1""")
    broken.sql("UPDATE reconciliation_report SET flagged = true WHERE accountant_id = ? AND resource_type = ?",
               [tenant, resource_type])
    result = broken.check(reconciliation_report.variance_within_threshold)
    assert not result.passed and result.severity.value == "WARN"
    assert result.metadata["flagged_accountants"].value == tenant
    assert resource_type in broken.text(result, "flagged")


def test_no_duplicate_report_rows_fails_for_a_doubled_row(broken):
    assert broken.check(reconciliation_report.no_duplicate_report_rows).passed
    broken.sql("""INSERT INTO reconciliation_report SELECT * FROM reconciliation_report
                  WHERE resource_type = 'total' ORDER BY accountant_id LIMIT 1""")
    ((tenant,),) = broken.sql("SELECT min(accountant_id) FROM reconciliation_report WHERE resource_type = 'total'")
    result = broken.check(reconciliation_report.no_duplicate_report_rows)
    assert not result.passed and tenant in broken.text(result, "duplicate_keys") and "total" in broken.text(result, "duplicate_keys")


def test_application_in_scope_warns_when_no_fact_carries_the_application_and_names_the_tag_values(broken):
    result = broken.check(hourly_cost_facts.application_in_scope)
    assert result.passed and result.metadata["facts_in_scope"].value > 0
    # as if BILLING_APPLICATION named another application than the bill's tag: nothing of the month is in scope
    broken.sql("UPDATE hourly_cost_facts SET in_scope = false, application = 'tax-demo-prod' WHERE in_scope")
    result = broken.check(hourly_cost_facts.application_in_scope)
    assert (result.passed, result.severity.value, result.metadata["facts_in_scope"].value) == (False, "WARN", 0)
    assert "tax-demo-prod" in broken.text(result, "application_tag_values")
    assert broken.text(result, "hint").startswith("no fact is tagged application='tax-demo': set BILLING_APPLICATION")


def test_covered_usage_without_effective_cost_warns_under_the_amortized_metrics_only(broken, monkeypatch):
    """An export without the Savings Plan effective cost (a CUR 2.0 column selection) counts its covered usage 0
    under amortized: the check names the lines' type, currency, on-demand cost and file."""
    result = broken.check(cur_line_items.covered_usage_has_effective_cost)
    assert result.passed and result.metadata["covered_lines_without_effective_cost"].value == 0
    ((lines, on_demand, first_file),) = broken.sql(
        """SELECT count(*), sum(unblended_cost), min(source_file) FROM cur_line_items
           WHERE line_item_type = 'SavingsPlanCoveredUsage' AND unblended_cost <> 0""")
    assert lines > 0
    broken.sql("""UPDATE cur_line_items SET amortized_cost = 0, net_amortized_cost = NULL
                  WHERE line_item_type = 'SavingsPlanCoveredUsage'""")
    result = broken.check(cur_line_items.covered_usage_has_effective_cost)
    assert (result.passed, result.severity.value) == (False, "WARN")
    assert result.metadata["covered_lines_without_effective_cost"].value == lines
    table = broken.text(result, "lines")
    assert "SavingsPlanCoveredUsage" in table and first_file in table and str(on_demand.normalize()) in table
    assert broken.text(result, "hint").startswith("amortized counts these commitment-covered lines as 0")
    # billing on unblended reads no effective cost: the same lines pass
    monkeypatch.setenv("BILLING_COST_METRIC", "unblended")
    result = broken.check(cur_line_items.covered_usage_has_effective_cost)
    assert result.passed and result.metadata["covered_lines_without_effective_cost"].value == lines


def test_a_savings_plan_fee_counting_0_while_the_plan_covered_less_warns_under_the_amortized_metrics(
        broken, monkeypatch):
    """An export without savings_plan_total_commitment_to_date: the month's recurring fees (0.07 an hour, 0.06 of it
    used) count 0 under amortized, so 0.01 an hour of paid commitment is charged to no one; the check names the
    currency, hours, fees, covered cost and the unused amount lost. A fully used plan counting 0 passes."""
    result = broken.check(cur_line_items.savings_plan_unused_commitment_counted)
    assert result.passed and result.metadata["hours_with_unused_commitment_not_counted"].value == 0
    ((hours, fees, covered, first_file),) = broken.sql(
        """SELECT count(DISTINCT usage_start), sum(unblended_cost) FILTER (line_item_type = 'SavingsPlanRecurringFee'),
                  sum(amortized_cost) FILTER (line_item_type = 'SavingsPlanCoveredUsage'),
                  min(source_file) FILTER (line_item_type = 'SavingsPlanRecurringFee')
           FROM cur_line_items WHERE line_item_type IN ('SavingsPlanRecurringFee', 'SavingsPlanCoveredUsage')""")
    assert (hours, fees, covered) == (744, D("52.08"), D("44.64"))  # 744 x 0.07, 744 x 0.06
    broken.sql("UPDATE cur_line_items SET amortized_cost = 0 WHERE line_item_type = 'SavingsPlanRecurringFee'")
    result = broken.check(cur_line_items.savings_plan_unused_commitment_counted)
    assert (result.passed, result.severity.value) == (False, "WARN")
    assert result.metadata["hours_with_unused_commitment_not_counted"].value == 744
    table = broken.text(result, "lines")
    assert all(text in table for text in ("USD", "52.08", "44.64", "7.44", first_file))
    assert broken.text(result, "hint").startswith("amortized counts these hours' Savings Plan fees as 0")
    # billing on unblended counts the fee whole: the same hours pass
    monkeypatch.setenv("BILLING_COST_METRIC", "unblended")
    result = broken.check(cur_line_items.savings_plan_unused_commitment_counted)
    assert result.passed and result.metadata["hours_with_unused_commitment_not_counted"].value == 744
    # a plan that covered its whole commitment counts 0 rightly: no warning
    monkeypatch.delenv("BILLING_COST_METRIC")
    broken.sql("UPDATE cur_line_items SET amortized_cost = 0.07 WHERE line_item_type = 'SavingsPlanCoveredUsage'")
    result = broken.check(cur_line_items.savings_plan_unused_commitment_counted)
    assert result.passed and result.metadata["hours_with_unused_commitment_not_counted"].value == 0


def test_a_discount_counted_in_both_the_usages_net_and_its_own_line_warns_under_net_amortized(broken, monkeypatch):
    """A delivery whose usage lines' net cost holds a 10 % discount and whose EdpDiscount line counts its -1.25
    again under net_amortized: the check names the line, its currency, amounts and file."""
    monkeypatch.setenv("BILLING_COST_METRIC", "net_amortized")
    assert broken.check(cur_line_items.net_discounts_counted_once).passed
    ((usage_file,),) = broken.sql("SELECT min(source_file) FROM cur_line_items WHERE line_item_type = 'Usage'")
    # the discount line alone, next to usage whose net equals its amortized cost: nothing is taken off twice
    broken.sql("""INSERT INTO cur_line_items SELECT * REPLACE ('EdpDiscount' AS line_item_type, -1.25 AS unblended_cost,
                  -1.25 AS amortized_cost, -1.25 AS net_amortized_cost, 'edp.csv.gz' AS source_file)
                  FROM cur_line_items WHERE line_item_type = 'Usage' AND currency = 'USD' LIMIT 1""")
    result = broken.check(cur_line_items.net_discounts_counted_once)
    assert result.passed and result.metadata["discount_lines_with_net_cost"].value == 0
    # the usage's net cost holds the discount too
    broken.sql("""UPDATE cur_line_items SET net_amortized_cost = amortized_cost * 0.9
                  WHERE line_item_type = 'Usage' AND source_file = ?""", [usage_file])
    result = broken.check(cur_line_items.net_discounts_counted_once)
    assert (result.passed, result.severity.value) == (False, "WARN")
    assert result.metadata["discount_lines_with_net_cost"].value == 1
    table = broken.text(result, "lines")
    assert all(text in table for text in ("USD", "EdpDiscount", "-1.25", "edp.csv.gz"))
    assert broken.text(result, "hint").startswith("the usage's net costs already hold these discounts")
    # a discount line counting 0 under net (as Cost Explorer shows it) passes
    broken.sql("UPDATE cur_line_items SET net_amortized_cost = 0 WHERE line_item_type = 'EdpDiscount'")
    assert broken.check(cur_line_items.net_discounts_counted_once).passed
    # the other metrics read no net cost: the same lines pass
    broken.sql("UPDATE cur_line_items SET net_amortized_cost = -1.25 WHERE line_item_type = 'EdpDiscount'")
    monkeypatch.setenv("BILLING_COST_METRIC", "amortized")
    result = broken.check(cur_line_items.net_discounts_counted_once)
    assert result.passed and result.metadata["discount_lines_with_net_cost"].value == 1
