"""A real CUR 2.0 export (April 2026, 1,882 line items: usage, 358 credits that cancel it, zero tax, net columns
present but empty) through the chain, against the oracle: the credits reach the application in proportion, the
bill is conserved exactly, and net_amortized falls back to the non-net figures instead of 0."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import shutil
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline import sample_data_oracle as oracle
from billing_pipeline.definitions import defs
from billing_pipeline_tests.conftest import SAMPLES

# SHARED_SAMPLES_DIR points elsewhere when the repository is not checked out beside `shared/`
SOURCE = Path(os.environ.get("SHARED_SAMPLES_DIR") or SAMPLES) / "extra" / "ola-raji-cur2-csv"
APRIL = "2026-04-01"
APPLICATION = "ha-web-portal"


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """The export laid out as AWS delivers it. The sample tags its application `project`; this pipeline's scope tag
    is `application`, so the copy renames that one tag key (nothing else changes)."""
    if not SOURCE.is_dir():
        pytest.skip("shared samples not present")
    root = tmp_path_factory.mktemp("cur2") / "bucket"
    manifest = json.loads((SOURCE / "ha-project-CUR-daily-1-Manifest.json").read_text())
    key = manifest["dataFiles"][0].split("/", 3)[3]
    data = root / key
    data.parent.mkdir(parents=True)
    text = (SOURCE / "ha-project-CUR-daily-1-00001.csv").read_text(encoding="utf-8")
    data.write_bytes(gzip.compress(text.replace("user_project", "user_application").encode()))
    meta = (root / key.split("/data/")[0] / "metadata" / "BILLING_PERIOD=2026-04"
            / "ha-project-CUR-daily-1-Manifest.json")
    meta.parent.mkdir(parents=True)
    shutil.copy(SOURCE / "ha-project-CUR-daily-1-Manifest.json", meta)
    return root, list(csv.DictReader(text.splitlines()))


def run(tmp_path, monkeypatch, root, metric):
    warehouse = tmp_path / f"{metric}.duckdb"
    (tmp_path / "none").mkdir(exist_ok=True)  # no logs, inventory or estimates: empty folders
    for name, value in {"BILLING_CUR_URI": str(root), "BILLING_LOGS_URI": str(tmp_path / "none"),
                        "BILLING_S3_INVENTORY_URI": str(tmp_path / "none"), "BILLING_USAGE_URI": str(tmp_path / "none"),
                        "BILLING_WAREHOUSE": str(warehouse), "BILLING_APPLICATION": APPLICATION,
                        "BILLING_COST_METRIC": metric}.items():
        monkeypatch.setenv(name, value)
    selected = [a for a in defs.assets if a.key.to_user_string() in
                {"cur_line_items", "hourly_cost_facts", "usage_shares", "tenant_costs"}]
    result = materialize(selected, resources=defs.resources, partition_key=APRIL, instance=DagsterInstance.ephemeral())
    assert result.success
    return warehouse, result


def oracle_costs(rows):
    """The oracle's answer from the raw CSV rows (read here with the csv module, not the pipeline's reader)."""
    items = []
    for r in rows:
        tags = json.loads(r["resource_tags"] or "{}")
        start = dt.datetime.fromisoformat(r["line_item_usage_start_date"].replace("Z", ""))
        end = dt.datetime.fromisoformat(r["line_item_usage_end_date"].replace("Z", ""))
        items.append(oracle.LineItem(start, end, r["line_item_usage_account_id"], r["line_item_line_item_type"],
                                     r["line_item_product_code"], r["line_item_usage_type"], r["line_item_operation"],
                                     r["line_item_resource_id"], tags.get("user_accountant_id", ""),
                                     tags.get("user_project", ""), "", "", r["line_item_currency_code"],
                                     oracle.decimal_to_units(D(r["line_item_unblended_cost"]))))
    allocations, in_scope, _ = oracle.attribute(items, [], {}, APPLICATION)
    parts, apportioned, kept = oracle.attribute_account_level(items, allocations, APPLICATION)
    by_service = defaultdict(int)
    for a in allocations + parts:
        by_service[(a.accountant_id, a.service or None, a.allocation)] += a.cost_units
    return {k: oracle.units_to_decimal(v) for k, v in by_service.items() if v}, in_scope, apportioned


def test_credits_reach_the_application_in_proportion_and_the_bill_is_conserved(delivery, tmp_path, monkeypatch):
    root, rows = delivery
    warehouse, result = run(tmp_path, monkeypatch, root, "amortized")
    expected, in_scope, apportioned = oracle_costs(rows)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        got = {(a, s, k): c for a, s, k, c in con.execute(
            """SELECT accountant_id, service, allocation, sum(cost) FROM tenant_costs GROUP BY ALL
               HAVING sum(cost) <> 0""").fetchall()}
    assert got == expected
    # the application's EC2, RDS, ELB... usage is credited in proportion: it pays a small fraction of its usage
    assert apportioned < 0 and -apportioned < in_scope
    assert sum(got.values()) == oracle.units_to_decimal(in_scope + apportioned)
    metadata = result.get_asset_materialization_events()[-1].materialization.metadata
    assert metadata["bill/USD"].value == "-0.0000000676"
    assert D(metadata["tenants/USD"].value) + D(metadata["unattributed/USD"].value) + D(
        metadata["kept_by_company/USD"].value) + D(metadata["out_of_scope/USD"].value) == D("-0.0000000676")
    assert next(c for c in result.get_asset_check_evaluations() if c.check_name == "bill_conserved").passed


def test_empty_net_columns_fall_back_to_the_non_net_figures(delivery, tmp_path, monkeypatch):
    root, _ = delivery
    warehouse, _ = run(tmp_path, monkeypatch, root, "net_amortized")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (net, amortized, nulls) = con.execute(
            """SELECT sum(net_amortized_cost), sum(amortized_cost), count(*) FILTER (net_amortized_cost IS NULL)
               FROM cur_line_items""").fetchone()
        (attributed,) = con.execute("SELECT sum(cost) FROM tenant_costs").fetchone()
    assert (net, nulls) == (amortized, 0)
    assert net == D("-0.0000000676")
    expected, in_scope, apportioned = oracle_costs(delivery[1])
    assert attributed == oracle.units_to_decimal(in_scope + apportioned) != 0
