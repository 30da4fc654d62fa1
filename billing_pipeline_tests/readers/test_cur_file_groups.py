"""Parquet files of one schema are read by one statement (AWS writes each file as one row group, which DuckDB
reads on one core); each row keeps its own file as source_file and an error still names the file it is in."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.readers.cur_staging import _scan_groups
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import BUCKET, athena_table, upload, write_legacy_manifest, write_parquet

JAN = dt.date(2026, 1, 1)
MONTH = ("r", "r", "year=2026", "month=1")


def three_files(root, second: dict | None = None) -> list:
    """An Athena-layout month of three files: a, b (or `second`) and c, plus a file of another schema."""
    folder = root.joinpath(*MONTH)
    files = [write_parquet(folder / "r-00001.snappy.parquet", athena_table(["a1", "a2"], cost=1.25)),
             write_parquet(folder / "r-00002.snappy.parquet", second or athena_table(["b1"], cost=2.5)),
             write_parquet(folder / "r-00003.snappy.parquet", athena_table(["c1", "c2", "c3"], cost=0.5))]
    wider = athena_table(["d1"], cost=10)
    wider["resource_tags_user_team"] = ["blue"]
    files.append(write_parquet(folder / "r-00004.snappy.parquet", wider))
    return files


def staged(root, location=None):
    location = location or locate(str(root))
    con = duckdb.connect()
    stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    return con


def test_files_of_one_schema_form_one_group_and_rows_keep_their_file(tmp_path):
    files = three_files(tmp_path)
    location = locate(str(tmp_path))
    groups = _scan_groups(location, find_deliveries(location)[JAN].files)
    assert sorted(len(g) for g in groups) == [1, 3]

    rows = staged(tmp_path).execute(
        "SELECT source_file, count(*), sum(unblended_cost), string_agg(line_item_id, ',' ORDER BY line_item_id), "
        "any_value(tags) FROM staged GROUP BY source_file ORDER BY source_file").fetchall()
    assert rows == [
        (str(files[0]), 2, Decimal("2.5"), "a1,a2", {"accountant_id": "acme"}),
        (str(files[1]), 1, Decimal("2.5"), "b1", {"accountant_id": "acme"}),
        (str(files[2]), 3, Decimal("1.5"), "c1,c2,c3", {"accountant_id": "acme"}),
        (str(files[3]), 1, Decimal("10"), "d1", {"accountant_id": "acme", "team": "blue"}),
    ]


def test_a_bad_value_in_a_group_names_its_file(tmp_path):
    bad = athena_table(["b1"])
    bad["line_item_unblended_cost"] = ["twelve dollars"]
    bad = {**athena_table(["x"]), **bad}
    folder = tmp_path.joinpath(*MONTH)
    write_parquet(folder / "r-00001.snappy.parquet", {**athena_table(["a1"]), "line_item_unblended_cost": ["1.5"]})
    write_parquet(folder / "r-00002.snappy.parquet", bad)
    write_parquet(folder / "r-00003.snappy.parquet", {**athena_table(["c1"]), "line_item_unblended_cost": ["2"]})
    with pytest.raises(CurFormatError, match=r'r-00002\.snappy\.parquet: column line_item_unblended_cost: '
                                             r'"twelve dollars" is not a number'):
        staged(tmp_path)


def test_a_missing_required_value_in_a_group_names_its_file(tmp_path):
    """A NOT NULL violation does not say which file: each is then read on its own until one fails."""
    no_currency = athena_table(["b1"])
    no_currency["line_item_currency_code"] = pa.array([None], pa.string())
    three_files(tmp_path, second=no_currency)
    with pytest.raises(CurFormatError, match=r"r-00002\.snappy\.parquet: .*currency"):
        staged(tmp_path)


def test_a_group_on_s3_keeps_each_rows_file(s3, tmp_path):  # noqa: F811
    files = three_files(tmp_path / "cur")
    keys = [f.relative_to(tmp_path).as_posix() for f in files]
    write_legacy_manifest(tmp_path / "cur" / "r" / "20260101-20260201" / "r-Manifest.json", "r", keys, "asm-1",
                          content_type="Parquet")
    upload(s3, tmp_path)
    location = locate(f"s3://{BUCKET}/cur")
    rows = staged(None, location).execute(
        "SELECT source_file, count(*), sum(unblended_cost) FROM staged GROUP BY ALL ORDER BY source_file").fetchall()
    assert rows == [(f"s3://{BUCKET}/{keys[0]}", 2, Decimal("2.5")), (f"s3://{BUCKET}/{keys[1]}", 1, Decimal("2.5")),
                    (f"s3://{BUCKET}/{keys[2]}", 3, Decimal("1.5")), (f"s3://{BUCKET}/{keys[3]}", 1, Decimal("10"))]
