"""A manifest is believed only as far as it agrees with where it lies, and its fields are of the types AWS writes:
a month's data is never loaded as another month's, a second report of the same name is never dropped silently,
and a field of the wrong JSON type fails that month naming the manifest (other months load)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries
from billing_pipeline.readers.cur_discovery import discover
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import (
    athena_table,
    cur2_table,
    legacy_row,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

DEC, JAN, FEB = dt.date(2025, 12, 1), dt.date(2026, 1, 1), dt.date(2026, 2, 1)


def legacy(root, folder="20260101-20260201", report="rep", prefix="cur", **manifest):
    period = root / prefix / report / folder
    data = write_csv(period / "asm" / f"{report}-1.csv.gz", [legacy_row()])
    path = write_legacy_manifest(period / f"{report}-Manifest.json", report,
                                 [f"{prefix}/{report}/{folder}/asm/{data.name}"], "asm")
    if manifest:
        path.write_text(json.dumps({**json.loads(path.read_text()), **manifest}))
    return path


def test_a_manifest_whose_billing_period_is_not_its_folders_month_is_refused(tmp_path):
    """February's folder holding a manifest that says January: its rows loaded as January's (and February had no
    delivery). Refused as February's problem; a Data Exports manifest likewise against its BILLING_PERIOD=."""
    manifest = legacy(tmp_path, folder="20260201-20260301", billingPeriod={"start": "20260101T000000.000Z",
                                                                            "end": "20260201T000000.000Z"})
    found = discover(locate(str(tmp_path)))
    assert found.deliveries == {}
    assert str(found.problems[FEB]) == (
        f"{manifest}: billingPeriod '20260101T000000.000Z' says 2026-01, but the manifest lies in the folder of "
        "2026-02: refused, which month its data is cannot be told (the month's last load is kept)")

    export = tmp_path / "exports" / "exp"
    data = write_parquet(export / "data" / "BILLING_PERIOD=2026-01" / "exp-1.parquet", cur2_table(["a"], [[]]))
    exported = write_export_manifest(export / "metadata" / "BILLING_PERIOD=2026-01" / "exp-Manifest.json", "exp",
                                     [f"exports/exp/data/BILLING_PERIOD=2026-01/{data.name}"], period="2025-12")
    found = discover(locate(str(export.parent)))
    assert found.deliveries == {} and "billingPeriod '2025-12' says 2025-12, but the manifest lies in the " \
        "folder of 2026-01" in str(found.problems[JAN])
    # agreeing forms load: legacy yyyymmdd, ISO, a bare month, none at all
    for period in ({"start": "2026-01-01T00:00:00.000Z", "end": "2026-02-01T00:00:00.000Z"}, "2026-01", None):
        exported.write_text(json.dumps({**json.loads(exported.read_text()), "billingPeriod": period}))
        assert set(find_deliveries(locate(str(export.parent)))) == {JAN}


def test_a_second_report_of_the_same_name_in_the_athena_layout_is_not_dropped(tmp_path):
    """`prefix-a/rep` (legacy CSV, a manifest) and `prefix-b/rep/rep/year=2026/month=1` (another report, Athena
    layout, 1,000.00): the Athena folder deferred to any manifest of a report named `rep`, so January read 1 row.
    Two reports deliver January: the error names both. The manifest's own Athena data still defers to it."""
    legacy(tmp_path, prefix="prefix-a")
    write_parquet(tmp_path / "prefix-b" / "rep" / "rep" / "year=2026" / "month=1" / "rep-1.snappy.parquet",
                  athena_table(["b1", "b2"], cost=500.0))
    problem = str(discover(locate(str(tmp_path))).problems[JAN])
    assert "prefix-a/rep" in problem and "prefix-b/rep/rep" in problem

    own = tmp_path / "own"
    data = write_parquet(own / "cur" / "rep" / "rep" / "year=2026" / "month=1" / "rep-1.snappy.parquet",
                         athena_table(["a1"]))
    write_legacy_manifest(own / "cur" / "rep" / "20260101-20260201" / "rep-Manifest.json", "rep",
                          [f"cur/rep/rep/year=2026/month=1/{data.name}"], "asm", content_type="application/parquet")
    assert find_deliveries(locate(str(own)))[JAN].files == (str(data),)


@pytest.mark.parametrize("fields, problem", [
    ({"billingPeriod": "2026-01"}, "billingPeriod is str '2026-01', not an object with start and end"),
    ({"billingPeriod": {"start": "January"}}, "billingPeriod 'January' is not a date"),
    ({"billingPeriod": ["20260101"]}, "billingPeriod is list ['20260101'], not an object with start and end"),
    ({"billingPeriod": {"start": 20260101}}, "start is int 20260101, not text"),
    ({"reportKeys": [5]}, "reportKeys holds 5, not a key (text)"),
    ({"reportName": {"x": 1}}, "reportName is dict {'x': 1}, not text"),
    ({"assemblyId": 7}, "assemblyId is int 7, not text"),
    ({"contentType": ["text/csv"]}, "contentType is list ['text/csv'], not text"),
    ({"bucket": 5}, "bucket is int 5, not text"),
])
def test_a_manifest_field_of_the_wrong_type_fails_its_month_naming_the_file(tmp_path, fields, problem):
    """A bare AttributeError or TypeError named no file and stopped every month's discovery; now it is the
    month's problem, and December loads."""
    manifest = legacy(tmp_path, **fields)
    legacy(tmp_path, folder="20251201-20260101", billingPeriod={"start": "20251201T000000.000Z"})
    found = discover(locate(str(tmp_path)))
    assert set(found.deliveries) == {DEC}
    assert isinstance(found.problems[JAN], CurFormatError)
    assert str(found.problems[JAN]).startswith(f"{manifest}: ") and problem in str(found.problems[JAN])


def test_a_manifest_that_is_not_a_json_object_fails_its_month_naming_the_file(tmp_path):
    manifest = legacy(tmp_path)
    manifest.write_text("[]")
    assert str(discover(locate(str(tmp_path))).problems[JAN]) == f"{manifest}: manifest is not a JSON object"


def test_an_athena_folder_inside_a_report_folder_but_not_its_own_data_does_not_defer(tmp_path):
    """`cur/rep/other/year=2026/month=1` lies in report `rep`'s folder but is not its Athena data (that is
    `cur/rep/rep/year=...`): it deferred to rep's manifest and was silently dropped. Two reports deliver January."""
    manifest = legacy(tmp_path)
    write_parquet(tmp_path / "cur" / "rep" / "other" / "year=2026" / "month=1" / "other-1.snappy.parquet",
                  athena_table(["o1"]))
    assert str(discover(locate(str(tmp_path))).problems[JAN]) == (
        f"{tmp_path}: two reports deliver 2026-01: 'rep' ({manifest.parent}) and 'other' "
        f"({tmp_path / 'cur' / 'rep' / 'other'}); point the CUR URI at one of them")
