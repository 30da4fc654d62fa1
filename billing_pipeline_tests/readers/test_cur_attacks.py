"""Attacks on the CUR reader that issue 16 did not list (its "attacks it has never seen"), as an attacker who can
write a manifest or a data file, or a careless operator, would try them. Each is refused with an error naming the
file and the problem, or read correctly.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from decimal import Decimal as D
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

import duckdb

from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.storage import locate, read_manifest_json
from billing_pipeline_tests.readers.cur_builders import (
    BUCKET,
    athena_table,
    focus_columns,
    key_of,
    legacy_row,
    write_csv,
    write_export_manifest,
    write_legacy_manifest,
    write_parquet,
)

JAN = dt.date(2026, 1, 1)
PERIOD = "20260101-20260201"


def report(root: Path, keys: list[str] | None = None, report: str = "r1", prefix: str = "cur") -> Path:
    """A legacy CSV delivery of `report` below <root>/<prefix>; its top-level manifest lists `keys` (default:
    its own file)."""
    period = root / prefix / report / PERIOD
    write_csv(period / "asm" / f"{report}-1.csv.gz", [legacy_row(**{"identity/LineItemId": f"{prefix}-li"})])
    own = f"{prefix}/{report}/{PERIOD}/asm/{report}-1.csv.gz"
    return write_legacy_manifest(period / f"{report}-Manifest.json", report, [own] if keys is None else keys, "asm")


def raw_delivery(root: Path, text: str) -> Path:
    """A one-file legacy delivery whose CSV is exactly `text` (gzip)."""
    period = root / "bad" / PERIOD
    data = period / "asm" / "bad-1.csv.gz"
    data.parent.mkdir(parents=True)
    data.write_bytes(gzip.compress(text.encode()))
    write_legacy_manifest(period / "bad-Manifest.json", "bad", [key_of(root, data)], "asm")
    return data


def line_items(root: Path) -> list[tuple]:
    location = locate(str(root))
    con = duckdb.connect()
    stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    return con.execute("SELECT line_item_id, unblended_cost, description FROM staged ORDER BY line_item_id").fetchall()


HEADER = list(legacy_row())


def csv_text(rows: list[dict], header=HEADER, newline="\n") -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows([[row.get(name, "") for name in header] for row in rows])
    return out.getvalue()


# -- manifest keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    f"cur/r1/{PERIOD}/%2e%2e/%2e%2e/r2/{PERIOD}/asm/r2-1.csv.gz",   # URL-encoded '..' (never decoded)
    f"cur/r1/{PERIOD}/..%2f..%2fr2/{PERIOD}/asm/r2-1.csv.gz",
    f"cur%2fr2%2f{PERIOD}%2fasm%2fr2-1.csv.gz",
    "s3:///etc/passwd",                                                # an empty bucket name
    "\\\\server\\share\\cur.csv.gz",                                    # a UNC path
    "C:/Windows/win.ini",
    f"cur-evil/r1/{PERIOD}/asm/evil-1.csv.gz",                          # another prefix that starts like ours
    f"s3://{BUCKET}-evil/cur-evil/r1/{PERIOD}/asm/evil-1.csv.gz",       # another bucket that starts like ours
    f"s3://{BUCKET[:-1]}/cur-evil/r1/{PERIOD}/asm/evil-1.csv.gz",       # ... or that ours starts like
])
def test_a_disguised_key_outside_the_report_is_refused_naming_manifest_and_key(tmp_path, key):
    manifest = report(tmp_path, [key])
    report(tmp_path, report="r2")
    report(tmp_path, prefix="cur-evil")
    write_csv(tmp_path / "cur-evil" / "r1" / PERIOD / "asm" / "evil-1.csv.gz", [legacy_row()])
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(str(tmp_path / "cur")))
    assert str(error.value).startswith(f"{manifest}: ")
    assert repr(key) in str(error.value)


def test_a_sibling_prefix_that_starts_like_the_cur_prefix_is_not_read_on_s3(aws, tmp_path):
    """s3://bucket/cur must not list s3://bucket/cur-evil/: its manifests and files are another report's."""
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    report(tmp_path)
    report(tmp_path, prefix="cur-evil", report="evil")
    manifest = report(tmp_path / "second", [f"cur-evil/evil/{PERIOD}/asm/evil-1.csv.gz"], report="r2")
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file() and "second" not in p.parts):
        client.upload_file(str(path), BUCKET, path.relative_to(tmp_path).as_posix())

    (delivery,) = find_deliveries(locate(f"s3://{BUCKET}/cur")).values()
    assert (delivery.report, delivery.files) == ("r1", (f"{BUCKET}/cur/r1/{PERIOD}/asm/r1-1.csv.gz",))

    # and a manifest of ours naming a file there is refused
    client.upload_file(str(manifest), BUCKET, f"cur/r1/{PERIOD}/r1-Manifest.json")
    with pytest.raises(CurFormatError, match=re.escape(
            f"s3://{BUCKET}/cur/r1/{PERIOD}/r1-Manifest.json: report key 'cur-evil/evil/{PERIOD}/asm/evil-1.csv.gz'")):
        find_deliveries(locate(f"s3://{BUCKET}/cur"))


def test_an_empty_delivery_is_refused_not_loaded_as_an_empty_month(tmp_path):
    manifest = report(tmp_path, [])
    with pytest.raises(CurFormatError, match=re.escape(f"{manifest}: an empty delivery (reportKeys lists no file): "
                                                       "refused, the month's last load is kept")):
        find_deliveries(locate(str(tmp_path)))
    data = tmp_path / "exports" / "e1" / "data" / "BILLING_PERIOD=2026-01"
    write_parquet(data / "e1-00001.snappy.parquet", {"x": [1]})
    export_manifest = tmp_path / "exports" / "e1" / "metadata" / "BILLING_PERIOD=2026-01" / "e1-Manifest.json"
    write_export_manifest(export_manifest, "e1", [])
    with pytest.raises(CurFormatError, match=re.escape(f"{export_manifest}: an empty delivery (dataFiles lists no "
                                                       "file)")):
        find_deliveries(locate(str(tmp_path / "exports")))


# -- CSV shape ------------------------------------------------------------------------------------------------


def test_a_duplicated_header_column_is_refused_naming_file_and_column(tmp_path):
    header = [*HEADER, "lineItem/UnblendedCost"]
    row = legacy_row(**{"lineItem/UnblendedCost": "1.00"})
    data = raw_delivery(tmp_path, ",".join(header) + "\n" + ",".join([*[row[h] for h in HEADER], "999.00"]) + "\n")
    position = HEADER.index("lineItem/UnblendedCost") + 1
    with pytest.raises(CurFormatError, match=re.escape(
            f"{data}: unreadable CUR file: the header names a column more than once ('lineItem/UnblendedCost' at "
            f"columns {position}, {len(header)}): which one holds the value is ambiguous")):
        line_items(tmp_path)


def test_two_headers_for_one_cur_column_are_refused(tmp_path):
    header = [*HEADER, "line_item_unblended_cost"]  # the Parquet spelling of lineItem/UnblendedCost
    row = legacy_row()
    data = raw_delivery(tmp_path, ",".join(header) + "\n" + ",".join([*[row[h] for h in HEADER], "999.00"]) + "\n")
    with pytest.raises(CurFormatError, match=re.escape(
            f"{data}: columns 'lineItem/UnblendedCost' and 'line_item_unblended_cost' both hold "
            "line_item_unblended_cost")):
        line_items(tmp_path)


@pytest.mark.parametrize(("column", "value", "first", "holds"), [
    ("billedcost", 999.0, "BilledCost", "BilledCost"),
    ("BILLINGCURRENCY", "EUR", "BillingCurrency", "BillingCurrency"),
    ("tags", pa.array([[("accountant_id", "evil")]], pa.map_(pa.string(), pa.string())), "Tags", "Tags"),
])
def test_two_focus_columns_of_one_name_in_two_cases_are_refused(tmp_path, column, value, first, holds):
    """FOCUS names are matched in any case: BilledCost 1.5 beside billedcost 999 silently took one of them."""
    columns = focus_columns(1)
    columns["Tags"] = pa.array([[("accountant_id", "acme")]], pa.map_(pa.string(), pa.string()))
    columns[column] = value if isinstance(value, pa.Array) else [value]
    data = write_parquet(tmp_path / "focus" / "data" / "BILLING_PERIOD=2026-01" / "focus-00001.snappy.parquet",
                         columns)
    with pytest.raises(CurFormatError, match=re.escape(
            f"{data}: columns {first!r} and {column!r} both hold {holds}: which one holds the value is ambiguous")):
        line_items(tmp_path)


def test_a_byte_order_mark_crlf_and_quoted_newlines_are_read_as_aws_means_them(tmp_path):
    rows = [legacy_row(**{"identity/LineItemId": "li-1", "lineItem/UnblendedCost": "1.25",
                          "lineItem/LineItemDescription": 'first line\r\nsecond, "quoted"'}),
            legacy_row(**{"identity/LineItemId": "li-2", "lineItem/UnblendedCost": "-0.25"})]
    raw_delivery(tmp_path, "\ufeff" + csv_text(rows, newline="\r\n"))
    assert line_items(tmp_path) == [("li-1", D("1.25"), 'first line\r\nsecond, "quoted"'),
                                    ("li-2", D("-0.25"), "Lambda GB-seconds")]


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e400", "1,25", "0x10", "$1.25"])
def test_a_cost_that_is_not_a_finite_number_fails_naming_file_column_and_value(tmp_path, value):
    data = raw_delivery(tmp_path, csv_text([legacy_row(**{"lineItem/UnblendedCost": value})]))
    with pytest.raises(CurFormatError, match=re.escape(f"{data}") + ".*"
                       + re.escape(f'lineItem/UnblendedCost: "{value}" is not a number')):
        line_items(tmp_path)


def test_a_negative_cost_is_kept_as_it_is(tmp_path):
    """Credits and refunds are negative; negative Usage lines are held by implausible_money, not here."""
    raw_delivery(tmp_path, csv_text([legacy_row(**{"lineItem/UnblendedCost": "-12.3400000001"})]))
    assert line_items(tmp_path)[0][1] == D("-12.3400000001")


# -- Parquet cost types ---------------------------------------------------------------------------------------


def athena_file(root: Path, cost: pa.Array) -> Path:
    columns = athena_table(["a"])
    columns["line_item_unblended_cost"] = cost
    return write_parquet(root / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", columns)


@pytest.mark.parametrize(("cost", "expected"), [
    (pa.array([1.25], pa.float64()), D("1.25")),             # AWS writes DOUBLE: exact to the 1e-10
    (pa.array([0.0000166667], pa.float64()), D("0.0000166667")),
    # from about 1e5 up a DOUBLE scaled by 1e10 in floating point invents digits (DuckDB's own cast read these
    # 374633.9624240001, 1234567.8899999998 and -12345678.1234567792): read as the decimal AWS wrote
    (pa.array([374633.962424], pa.float64()), D("374633.962424")),
    (pa.array([1234567.89], pa.float64()), D("1234567.89")),
    (pa.array([-12345678.12345678], pa.float64()), D("-12345678.12345678")),
    (pa.array([1.5e20], pa.float64()), D("150000000000000000000")),
    (pa.array(["1.2500000001"]), D("1.2500000001")),          # text: parsed exactly
    (pa.array([D("3.1")], pa.decimal128(20, 4)), D("3.1")),
])
def test_a_parquet_cost_of_double_text_or_decimal_is_read_exactly(tmp_path, cost, expected):
    athena_file(tmp_path, cost)
    assert line_items(tmp_path)[0][1] == expected


@pytest.mark.parametrize(("cost", "problem"), [
    (pa.array([0.1], pa.float32()), "has type float, too coarse for money"),
    (pa.array([float("nan")]), "Could not cast value nan"),
    (pa.array([float("inf")]), "Could not cast value inf"),
    (pa.array(["NaN"]), '"NaN" is not a number'),
])
def test_a_parquet_cost_that_cannot_be_money_fails_naming_the_file(tmp_path, cost, problem):
    data = athena_file(tmp_path, cost)
    with pytest.raises(CurFormatError, match=re.escape(str(data)) + ".*" + re.escape(problem)):
        line_items(tmp_path)


def test_parquet_text_typed_binary_is_decoded_as_utf8(tmp_path):
    """BINARY without the UTF8 annotation was cast BLOB -> VARCHAR: 'café-ü' read as 'caf\\xC3\\xA9-\\xC3\\xBC'."""
    columns = athena_table(["a"])
    columns["resource_tags_user_accountant_id"] = pa.array(["café-ü".encode()], pa.binary())
    columns["line_item_currency_code"] = pa.array([b"USD"], pa.binary())
    write_parquet(tmp_path / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", columns)
    location = locate(str(tmp_path))
    con = duckdb.connect()
    stage_line_items(con, location, find_deliveries(location)[JAN], "staged")
    assert con.execute("SELECT accountant_id, tags, currency FROM staged").fetchall() == [
        ("café-ü", {"accountant_id": "café-ü"}, "USD")]


@pytest.mark.parametrize("column", ["resource_tags_user_accountant_id", "line_item_currency_code"])
def test_parquet_binary_text_that_is_not_utf8_fails_naming_file_and_column(tmp_path, column):
    columns = athena_table(["a"])
    columns[column] = pa.array([b"ac\xffme"], pa.binary())
    data = write_parquet(tmp_path / "r" / "r" / "year=2026" / "month=1" / "r-1.parquet", columns)
    with pytest.raises(CurFormatError, match=f"^{re.escape(str(data))}: column {column}: not valid UTF-8 text$"):
        line_items(tmp_path)


def test_a_key_listed_twice_in_any_spelling_is_read_once(tmp_path):
    key = f"cur/r1/{PERIOD}/asm/r1-1.csv.gz"
    report(tmp_path, [key, key, f"s3://{BUCKET}/{key}"])
    (delivery,) = find_deliveries(locate(str(tmp_path))).values()
    assert delivery.files == (str(tmp_path / key),)
    assert [row[0] for row in line_items(tmp_path)] == ["cur-li"]


# -- manifests that are not AWS's ---------------------------------------------------------------------------------


def test_a_manifest_nested_too_deeply_to_parse_fails_naming_it(tmp_path):
    """Python's JSON parser recurses: 100,000 nested lists would be a RecursionError, not a CurFormatError."""
    period = tmp_path / "cur" / "r1" / PERIOD
    period.mkdir(parents=True)
    (period / "r1-Manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CurFormatError) as error:
        find_deliveries(locate(str(tmp_path / "cur")))
    assert str(error.value) == f"{period / 'r1-Manifest.json'}: JSON nested too deeply to be a manifest"


def test_a_manifest_larger_than_any_aws_writes_is_refused_before_it_is_read_whole(tmp_path):
    manifest = tmp_path / "x-Manifest.json"
    manifest.write_text('{"reportKeys": ["' + "k" * 2000 + '"]}')
    location = locate(str(tmp_path))
    assert read_manifest_json(location, str(manifest), limit=4096) == {"reportKeys": ["k" * 2000]}
    with pytest.raises(ValueError) as error:
        read_manifest_json(location, str(manifest), limit=1024)
    assert str(error.value) == f"{manifest}: a manifest of more than 1024 bytes, larger than any AWS writes: refused"


@pytest.mark.parametrize("map_type", [pa.map_(pa.binary(), pa.binary()), pa.map_(pa.string(), pa.binary()),
                                      pa.map_(pa.binary(), pa.string())])
def test_a_tag_map_of_bytes_fails_naming_the_file(tmp_path, map_type):
    """A MAP of BINARY (no UTF8 annotation) read 'acme' as bytes that matched no tenant: its cost went to
    unattributed, silently. AWS writes MAP<STRING, STRING>."""
    columns = focus_columns(1)
    columns["Tags"] = pa.array([[("accountant_id", "acme")]], map_type)
    data = write_parquet(tmp_path / "focus" / "data" / "BILLING_PERIOD=2026-01" / "focus-00001.snappy.parquet",
                         columns)
    with pytest.raises(CurFormatError, match=re.escape(
            f"{data}: column Tags maps {map_type.key_type} to {map_type.item_type}, expected a map of text tags")):
        line_items(tmp_path)
