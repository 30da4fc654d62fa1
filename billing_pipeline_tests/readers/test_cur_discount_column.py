"""The discount column (legacy `discount/TotalDiscount`, CUR 2.0 `discount_total_discount`): read as stated, in no
cost (legacy CUR writes each discount as a line item too), and reported when a delivery holds discounts there only,
as a CUR 2.0 export without manual discount compatibility may (docs/attribution-rules.md)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.definitions import defs
from billing_pipeline_tests.readers.cur_builders import (
    cur2_table,
    key_of,
    legacy_row,
    read_all,
    write_csv,
    write_legacy_manifest,
    write_parquet,
)

from .test_cur import JAN

APP = [("user_application", "tax-demo"), ("user_accountant_id", "acme")]


def test_a_legacy_discount_column_is_read_and_counted_in_no_cost(tmp_path):
    root = tmp_path / "bucket"
    rows = [legacy_row(**{"identity/LineItemId": "li-1", "lineItem/UnblendedCost": "1.00",
                          "discount/TotalDiscount": "-0.25", "discount/BundledDiscount": "-0.25"}),
            legacy_row(**{"identity/LineItemId": "li-2", "lineItem/LineItemType": "BundledDiscount",
                          "lineItem/UnblendedCost": "-0.25"})]
    data = write_csv(root / "m" / "20260101-20260201" / "asm" / "m-1.csv.gz", rows)
    write_legacy_manifest(root / "m" / "20260101-20260201" / "m-Manifest.json", "m", [key_of(root, data)], "asm")
    _, staged = read_all(root)
    got = [(r["line_item_type"], r["unblended_cost"], r["amortized_cost"], r["column_discount"]) for r in staged[JAN]]
    assert got == [("Usage", Decimal("1"), Decimal("1"), Decimal("-0.25")),
                   ("BundledDiscount", Decimal("-0.25"), Decimal("-0.25"), None)]


def month_with(tmp_path, monkeypatch, table: pa.Table):
    root = tmp_path / "bucket"
    write_parquet(root / "e" / "data" / "BILLING_PERIOD=2026-01" / "e-1.snappy.parquet", table)
    monkeypatch.setenv("BILLING_CUR_URI", str(root))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("BILLING_APPLICATION", raising=False)  # tax-demo
    cur_line_items = next(a for a in defs.assets if a.key.to_user_string() == "cur_line_items")
    result = materialize([cur_line_items], resources=defs.resources, partition_key="2026-01-01",
                         instance=DagsterInstance.ephemeral())
    return result.asset_materializations_for_node("cur_line_items")[0].metadata


def test_discounts_only_in_the_column_are_reported_not_charged_away(tmp_path, monkeypatch):
    """A CUR 2.0 export without manual discount compatibility: the application's two lines state 0.05 and
    0.0000000001 of discount in the column and the delivery has no discount line item; another team's line states
    1.00. The costs stay as billed on the lines (0.25 each) and the metadata says how much was not deducted."""
    table = cur2_table(["a", "b", "c"], [APP, APP, []])
    table = table.append_column("discount_total_discount", pa.array([-0.05, -0.0000000001, -1.0]))
    metadata = month_with(tmp_path, monkeypatch, table)
    assert metadata["discounts_only_in_column/USD"].value == "-0.0500000001"
    assert metadata["in_scope_unblended"].value == 0.5


@pytest.mark.parametrize("also", ["BundledDiscount", "EdpDiscount"])
def test_discounts_also_written_as_line_items_are_not_reported(tmp_path, monkeypatch, also):
    table = cur2_table(["a", "b"], [APP, []])
    table = table.append_column("discount_total_discount", pa.array([-0.05, None], pa.float64()))
    kinds = table.column("line_item_line_item_type").to_pylist()
    table = table.set_column(table.schema.get_field_index("line_item_line_item_type"), "line_item_line_item_type",
                             pa.array([kinds[0], also]))
    metadata = month_with(tmp_path, monkeypatch, table)
    assert not any(key.startswith("discounts_only_in_column") for key in metadata)
