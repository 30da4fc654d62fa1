"""The checks of the output tables fail, naming the rows, once the table is broken."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from billing_pipeline.checks import (
    cost_explorer_costs,
    implausible_money,
    month_to_date_calibration,
    nowcast_accuracy,
    pricing_feedback,
    statements,
    tenant_registry,
    usage_table_writeback,
)


def test_statement_cents_add_up_fails_when_a_line_is_off_by_a_cent(broken):
    assert broken.check(statements.statement_cents_add_up).passed
    ((tenant,),) = broken.sql(
        "SELECT min(accountant_id) FROM statements WHERE line <> 'total' AND accountant_id <> 'unattributed'")
    broken.sql("""UPDATE statements SET amount = amount + 0.01 WHERE rowid = (SELECT min(rowid) FROM statements
                  WHERE accountant_id = ? AND line <> 'total')""", [tenant])
    result = broken.check(statements.statement_cents_add_up)
    assert not result.passed
    assert f"{tenant} (USD): lines do not add up to the total" in broken.text(result, "problems")


def test_no_duplicate_statement_lines_fails_for_a_doubled_line(broken):
    assert broken.check(statements.no_duplicate_statement_lines).passed
    broken.sql("""INSERT INTO statements SELECT * FROM statements
                  WHERE accountant_id = 'unattributed' AND line = 'total'""")
    result = broken.check(statements.no_duplicate_statement_lines)
    assert not result.passed and "unattributed" in broken.text(result, "duplicate_keys")


def test_pricing_constants_within_threshold_names_the_flagged_drivers(broken):
    broken.sql("UPDATE pricing_feedback SET flagged = false")
    assert broken.check(pricing_feedback.pricing_constants_within_threshold).passed
    broken.sql("""UPDATE pricing_feedback SET flagged = true
                  WHERE service = 'AWSLambda' AND driver = 'gb_seconds' AND accountant_id = 'total'""")
    result = broken.check(pricing_feedback.pricing_constants_within_threshold)
    assert not result.passed and result.severity.value == "WARN"
    assert "| AWSLambda " in broken.text(result, "flagged") and "gb_seconds" in broken.text(result, "flagged")


def test_no_duplicate_pricing_feedback_fails_for_a_doubled_row(broken):
    assert broken.check(pricing_feedback.no_duplicate_pricing_feedback).passed
    broken.sql("""INSERT INTO pricing_feedback SELECT * FROM pricing_feedback
                  WHERE service = 'AWSLambda' AND driver = 'gb_seconds' AND accountant_id = 'total'""")
    result = broken.check(pricing_feedback.no_duplicate_pricing_feedback)
    assert not result.passed and "gb_seconds" in broken.text(result, "duplicate_keys")


def test_no_duplicate_writeback_items_fails_for_a_doubled_item(broken):
    row = [dt.date(2026, 1, 1), "tax-agent-usage", "acct-7", "2026-01-03T00:00:00Z#cur#AWSLambda",
           dt.date(2026, 1, 3), "AWSLambda", "lambda", "USD", "unblended", D("1.5")]
    broken.sql("INSERT INTO usage_table_writeback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    assert broken.check(usage_table_writeback.no_duplicate_writeback_items).passed
    broken.sql("INSERT INTO usage_table_writeback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    result = broken.check(usage_table_writeback.no_duplicate_writeback_items)
    assert not result.passed and "acct-7" in broken.text(result, "duplicate_keys")


def test_no_duplicate_cost_explorer_rows_fails_for_a_doubled_day(broken):
    row = [dt.date(2026, 1, 1), dt.date(2026, 1, 4), "acct-9", "UnblendedCost", D("2.25"), "USD", False]
    broken.sql("INSERT INTO cost_explorer_costs VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    assert broken.check(cost_explorer_costs.no_duplicate_cost_explorer_rows).passed
    broken.sql("INSERT INTO cost_explorer_costs VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    result = broken.check(cost_explorer_costs.no_duplicate_cost_explorer_rows)
    assert not result.passed and "acct-9" in broken.text(result, "duplicate_keys") and "2026-01-04" in broken.text(result, "duplicate_keys")


def test_no_duplicate_registry_rows_fails_for_a_doubled_tenant(broken):
    row = [dt.date(2026, 1, 1), "acct-7", "USD", "known", None, D("1.5"), D("1.5"), "test"]
    broken.sql("INSERT INTO tenant_registry VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
    broken.sql("INSERT INTO tenant_registry VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row[:2] + ["EUR"] + row[3:])
    assert broken.check(tenant_registry.no_duplicate_registry_rows).passed
    broken.sql("INSERT INTO tenant_registry VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
    result = broken.check(tenant_registry.no_duplicate_registry_rows)
    assert not result.passed and "acct-7" in broken.text(result, "duplicate_keys")
    assert "EUR" not in broken.text(result, "duplicate_keys")


def test_no_duplicate_implausible_lines_fails_for_a_doubled_line(broken):
    broken.sql("""INSERT INTO implausible_money
                  SELECT billing_period, source_file, line_item_id, line_item_type, service, usage_type, resource_id,
                         accountant_id, currency, unblended_cost, amortized_cost, net_amortized_cost, 'beyond the bound'
                  FROM cur_line_items ORDER BY line_item_id LIMIT 2""")
    assert broken.check(implausible_money.no_duplicate_implausible_lines).passed
    ((line_item_id,),) = broken.sql("SELECT min(line_item_id) FROM implausible_money")
    broken.sql("INSERT INTO implausible_money SELECT * FROM implausible_money WHERE line_item_id = ?", [line_item_id])
    result = broken.check(implausible_money.no_duplicate_implausible_lines)
    assert not result.passed and line_item_id in broken.text(result, "duplicate_keys")


def test_no_duplicate_accuracy_rows_fails_for_a_doubled_replay(broken):
    jan = dt.date(2026, 1, 1)
    row = [jan, 7, dt.datetime(2026, 1, 8), dt.datetime(2026, 1, 8), "acct-3", "USD"] + [D("1")] * 6 + [
        None, None, True, D("1"), D("1"), None, None]
    broken.sql(f"INSERT INTO nowcast_accuracy VALUES ({', '.join('?' * len(row))})", row)
    broken.sql(f"INSERT INTO nowcast_accuracy VALUES ({', '.join('?' * len(row))})", row[:1] + [14] + row[2:])
    assert broken.check(nowcast_accuracy.no_duplicate_accuracy_rows).passed
    broken.sql(f"INSERT INTO nowcast_accuracy VALUES ({', '.join('?' * len(row))})", row)
    result = broken.check(nowcast_accuracy.no_duplicate_accuracy_rows)
    assert not result.passed and "acct-3" in broken.text(result, "duplicate_keys")


def test_no_duplicate_calibrations_fails_for_a_doubled_unit_cost(broken):
    row = [dt.date(2026, 1, 1), dt.datetime(2026, 1, 22), "unit_cost", "last_7_covered_days", dt.date(2026, 1, 1),
           "AWSLambda", "gb_seconds", "*", None, None, "USD", "hour", None, None, D("1"), D("60000"),
           D("0.0000166667")]
    insert = f"INSERT INTO month_to_date_calibration VALUES ({', '.join('?' * len(row))})"
    broken.sql(insert, row)
    broken.sql(insert, row[:6] + ["requests"] + row[7:])
    assert broken.check(month_to_date_calibration.no_duplicate_calibrations).passed
    broken.sql(insert, row)
    result = broken.check(month_to_date_calibration.no_duplicate_calibrations)
    assert not result.passed and "gb_seconds" in broken.text(result, "duplicate_keys")
    assert "requests" not in broken.text(result, "duplicate_keys")
