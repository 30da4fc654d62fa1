"""The Definitions users and outside checks rely on: names, partitions, job, schedule, sensor, resources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from billing_pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]

ASSETS = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
          "reconciliation_report", "invoices", "pricing_feedback", "statements", "usage_table_writeback",
          "cost_explorer_costs", "tenant_registry", "implausible_money", "published_billing", "month_to_date",
          "nowcast_accuracy"]


def test_asset_keys_and_lineage():
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == sorted(ASSETS)
    parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
               for k in graph.get_all_asset_keys()}
    assert parents == {
        "cur_line_items": [],
        "hourly_cost_facts": ["cur_line_items"],
        "usage_shares": [],
        "estimated_usage": [],
        "tenant_costs": ["hourly_cost_facts", "usage_shares"],
        "reconciliation_report": ["cur_line_items", "estimated_usage", "tenant_costs"],
        "invoices": ["implausible_money", "reconciliation_report", "tenant_costs", "tenant_registry"],
        "tenant_registry": ["estimated_usage", "tenant_costs"],
        "implausible_money": ["cur_line_items"],
        "pricing_feedback": ["cur_line_items", "estimated_usage", "tenant_costs", "usage_shares"],
        "statements": ["cur_line_items", "reconciliation_report", "tenant_costs"],
        "usage_table_writeback": ["cur_line_items", "tenant_costs", "tenant_registry"],
        "cost_explorer_costs": ["tenant_costs"],
        "published_billing": ["cur_line_items", "estimated_usage", "hourly_cost_facts", "month_to_date",
                              "reconciliation_report", "statements", "tenant_costs", "usage_shares"],
        "month_to_date": ["hourly_cost_facts", "tenant_costs", "usage_shares"],
        "nowcast_accuracy": ["estimated_usage", "hourly_cost_facts", "tenant_costs", "usage_shares"],
    }


def test_every_asset_is_monthly_partitioned_and_in_the_warehouse_pool():
    graph = defs.resolve_asset_graph()
    for name in ASSETS:
        node = graph.get(AssetKey(name))
        keys = node.partitions_def.get_partition_keys()
        assert keys[0] == "2018-01-01"
        assert all(key.endswith("-01") for key in keys)
        assert node.pools == {"duckdb_warehouse"}


def test_job_schedule_sensor():
    job = defs.resolve_job_def("billing_month_job")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("daily_billing_refresh")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "UTC")
    assert defs.resolve_sensor_def("cur_delivery_sensor").job_name == "billing_month_job"
    hourly = defs.resolve_schedule_def("hourly_month_to_date")
    assert (hourly.cron_schedule, hourly.execution_timezone, hourly.job_name) == ("10 * * * *", "UTC", "month_to_date_job")
    assert defs.resolve_sensor_def("usage_evidence_sensor").job_name == "month_to_date_job"
    check_names = sorted(key.name for key in defs.resolve_asset_graph().asset_check_keys)
    assert check_names == sorted([
        "one_delivery", "facts_add_up_to_line_items", "no_duplicate_facts", "shares_sum_to_one",
        "no_duplicate_shares", "attributed_plus_unattributed_equals_cur", "bill_conserved", "no_duplicate_tenant_costs",
        "variance_within_threshold", "no_duplicate_report_rows",
        "no_duplicate_invoice_items", "stripe_items_match_charges",
        "pricing_constants_within_threshold", "no_duplicate_pricing_feedback", "statement_cents_add_up",
        "no_duplicate_statement_lines", "cost_explorer_matches_cur", "month_from_one_delivery", "tenants_are_known",
        "money_is_plausible", "no_duplicate_line_items", "no_duplicate_estimates", "no_duplicate_writeback_items",
        "no_duplicate_cost_explorer_rows", "actual_equals_tenant_costs", "parts_add_up", "no_duplicate_month_to_date",
        "no_duplicate_registry_rows", "no_duplicate_implausible_lines", "no_duplicate_accuracy_rows",
        "no_duplicate_calibrations", "application_in_scope", "covered_usage_has_effective_cost",
        "savings_plan_unused_commitment_counted",
        "net_discounts_counted_once",
    ])


def test_dagster_definitions_validate_passes():
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "billing_pipeline.definitions"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_a_wrong_first_month_fails_validation_naming_the_variable():
    """BILLING_FIRST_MONTH is read when the definitions load: `2026-3` failed with a bare "Invalid isoformat
    string: '2026-3-01'" that named no variable."""
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "billing_pipeline.definitions"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "BILLING_FIRST_MONTH": "2026-3"},
    )
    assert result.returncode != 0
    assert "BILLING_FIRST_MONTH='2026-3' (set): not a month; expected a month as YYYY-MM" in result.stdout + result.stderr
