"""read_estimates: the application's usage-table items from JSON Lines and DynamoDB exports."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from decimal import Decimal as D

import pytest

from billing_pipeline.readers import estimates
from billing_pipeline.readers.estimates import ESTIMATES_SCHEMA, read_estimates
from billing_pipeline.storage import locate

JANUARY = dt.date(2026, 1, 1)


def item(accountant, timestamp, quantity, unit_cost, estimated_cost, month="2026-01", resource_type="lambda",
         operation="compute_tax"):
    return {"accountant_id": accountant, "timestamp": timestamp, "month": month, "operation": operation,
            "resource_type": resource_type, "quantity": quantity, "unit_cost": unit_cost,
            "estimated_cost": estimated_cost}


def dynamodb_json(fields: dict) -> dict:
    """An item as ExportTableToPointInTime writes it: {"Item": {name: {"S"|"N": "..."}}}."""
    typed = {k: ({"N": str(v)} if isinstance(v, (int, float, D)) else {"S": v}) for k, v in fields.items()}
    return {"Item": typed}


def write_export(root, export_id, items, table="tax-agent-usage", export_time="2026-01-20T00:00:00.000Z",
                 export_type="FULL_EXPORT", finished=True):
    """An export as AWS lays it out; `finished=False`: still running (`_started` and data, no manifests yet)."""
    folder = root / "AWSDynamoDB" / export_id
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "abcd1234.json.gz").write_bytes(
        gzip.compress("".join(json.dumps(dynamodb_json(i)) + "\n" for i in items).encode())
    )
    (folder / "_started").write_text("")
    if not finished:
        return
    (folder / "manifest-summary.json").write_text(json.dumps({
        "version": "2020-06-30", "tableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
        "exportTime": export_time, "exportType": export_type, "outputFormat": "DYNAMODB_JSON", "itemCount": len(items),
    }))
    (folder / "manifest-files.json").write_text(json.dumps({"itemCount": len(items), "dataFileS3Key": "x"}) + "\n")


def rows(table):
    return [tuple(r.values()) for r in table.to_pylist()]


def test_json_lines_items_of_the_month(tmp_path):
    (tmp_path / "usage.jsonl").write_text("\n".join(json.dumps(i) for i in [
        item("acc-a", "2026-01-05T10:00:00Z", 1.5, 0.0000166667, 0.000025),
        item("acc-b", "2026-01-31T23:59:59.999Z", "3", "0.25", None, resource_type="dynamodb", operation="put"),
        item("acc-a", "2025-12-31T23:00:00Z", 1, 1, 1, month="2025-12"),  # another month: skipped
        {"accountant_id": "acc-c", "timestamp": 1767621600, "estimated_cost": "0.003",  # epoch s, no month
         "resource_type": "agentcore", "operation": "session"},
    ]) + "\n\n")
    table = read_estimates(locate(str(tmp_path)), JANUARY)
    assert table.schema == ESTIMATES_SCHEMA
    assert rows(table) == [
        ("acc-a", dt.datetime(2026, 1, 5, 10), "2026-01", "compute_tax", "lambda", D("1.5"), D("0.0000166667"),
         D("0.000025")),
        ("acc-c", dt.datetime(2026, 1, 5, 14), "2026-01", "session", "agentcore", None, None, D("0.003")),
        # estimated_cost missing: quantity x unit_cost
        ("acc-b", dt.datetime(2026, 1, 31, 23, 59, 59, 999000), "2026-01", "put", "dynamodb", D("3"), D("0.25"),
         D("0.75")),
    ]


def test_dynamodb_export_newest_full_export_only(tmp_path):
    january_item = item("acc-a", "2026-01-07T08:00:00Z", D("2"), D("0.0000002"), D("0.0000004"))
    write_export(tmp_path, "01700000000000-aaaa", [january_item], export_time="2026-01-19T00:00:00.000Z")
    write_export(tmp_path, "01700000000001-bbbb",
                 [january_item, item("acc-b", "2026-01-20T08:00:00Z", 1, D("1.25"), D("1.25"), resource_type="s3"),
                  item("acc-b", "2026-02-01T00:00:00Z", 1, 1, 1, month="2026-02")],
                 export_time="2026-01-21T00:00:00.000Z")
    write_export(tmp_path, "01700000000002-cccc", [january_item], export_time="2026-01-22T00:00:00.000Z",
                 export_type="INCREMENTAL_EXPORT")

    table = read_estimates(locate(str(tmp_path)), JANUARY)
    assert rows(table) == [
        ("acc-a", dt.datetime(2026, 1, 7, 8), "2026-01", "compute_tax", "lambda", D("2"), D("0.0000002"),
         D("0.0000004")),
        ("acc-b", dt.datetime(2026, 1, 20, 8), "2026-01", "compute_tax", "s3", D("1"), D("1.25"), D("1.25")),
    ]


def test_gzip_json_lines_with_an_offset(tmp_path):
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "extra.json.gz").write_bytes(gzip.compress(
        json.dumps(item("acc-c", "2026-01-09T00:00:00+01:00", 1, 1, 1)).encode()))
    assert rows(read_estimates(locate(str(tmp_path)), JANUARY)) == [
        ("acc-c", dt.datetime(2026, 1, 8, 23), "2026-01", "compute_tax", "lambda", D("1"), D("1"), D("1"))]


def test_dynamodb_export_still_running_is_not_read(tmp_path):
    """AWS writes manifest-summary.json last: the export without one (newer, half written) was read on top of the
    finished one, counting acc-a twice."""
    january_item = item("acc-a", "2026-01-07T08:00:00Z", D("2"), D("0.0000002"), D("0.0000004"))
    write_export(tmp_path, "01700000000000-aaaa", [january_item], export_time="2026-01-19T00:00:00.000Z")
    write_export(tmp_path, "01700000090000-bbbb", [january_item], finished=False)

    table = read_estimates(locate(str(tmp_path)), JANUARY)
    assert rows(table) == [("acc-a", dt.datetime(2026, 1, 7, 8), "2026-01", "compute_tax", "lambda", D("2"),
                            D("0.0000002"), D("0.0000004"))]
    assert estimates.usage_table_files(locate(str(tmp_path)))[1] == [
        str(tmp_path / "AWSDynamoDB" / "01700000090000-bbbb")]


def test_dynamodb_export_still_running_and_none_finished_is_an_error(tmp_path):
    write_export(tmp_path, "01700000090000-bbbb", [item("acc-a", "2026-01-07T08:00:00Z", 1, 1, 1)], finished=False)
    with pytest.raises(ValueError, match=r"AWSDynamoDB/01700000090000-bbbb: DynamoDB export without "
                                         r"manifest-summary\.json \(AWS writes it last: the export is still running"):
        read_estimates(locate(str(tmp_path)), JANUARY)


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"accountant_id": "acc-a", "timestamp": "2026-01-05T10:00:00Z", "estimated_cost": 1}\n{"accountant_id": ',
         "line 2: not a JSON object"),
        ('{"timestamp": "2026-01-05T10:00:00Z", "estimated_cost": 1}\n', "line 1: no accountant_id"),
        ('{"accountant_id": "a", "timestamp": "yesterday", "estimated_cost": 1}\n', "line 1: no readable timestamp"),
        ('{"accountant_id": "a", "timestamp": "2026-01-05T10:00:00Z"}\n', "line 1: no estimated_cost"),
        # an estimated_cost that does not read was replaced by quantity x unit_cost
        ('{"accountant_id": "a", "timestamp": "2026-01-05T10:00:00Z", "estimated_cost": "NaN", "quantity": 1, '
         '"unit_cost": 2}\n', "line 1: estimated_cost is not a number"),
        ('{"accountant_id": "a", "timestamp": "2026-01-05T10:00:00Z", "estimated_cost": "abc", "quantity": 1, '
         '"unit_cost": 2}\n', "line 1: estimated_cost is not a number"),
        # a month not written YYYY-MM matched no month: the item was dropped
        ('{"accountant_id": "a", "timestamp": "2026-01-05T10:00:00Z", "month": "2026-01", "estimated_cost": 1}\n'
         '{"accountant_id": "a", "timestamp": "2026-01-05T10:00:00Z", "month": "2026-1", "estimated_cost": 1}\n',
         "line 2: month is not YYYY-MM"),
    ],
)
def test_malformed_file_is_an_error_naming_the_file(tmp_path, content, problem):
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(ValueError, match=rf"bad\.jsonl: {problem}"):
        read_estimates(locate(str(tmp_path)), JANUARY)


@pytest.mark.parametrize("name, compress", [("bad.jsonl", lambda b: b), ("bad.jsonl.gz", gzip.compress)])
def test_invalid_utf8_is_an_error_naming_the_file_and_line(tmp_path, name, compress):
    """An id with a byte that is not UTF-8 was read with U+FFFD in its place: a tenant no one is."""
    good = json.dumps(item("acc-1", "2026-01-05T10:00:00Z", 1, 1, 1)).encode()
    (tmp_path / name).write_bytes(compress(good + b"\n" + good.replace(b"acc-1", b"acc-\xff1") + b"\n"))
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: line 2: not valid UTF-8 \(byte 0xff"):
        read_estimates(locate(str(tmp_path)), JANUARY)


def test_corrupt_gzip_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "items.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n')[:-10])
    with pytest.raises(ValueError, match=r"items\.jsonl\.gz"):
        read_estimates(locate(str(tmp_path)), JANUARY)


def test_empty_or_missing_folder_gives_no_items(tmp_path):
    assert read_estimates(locate(str(tmp_path / "missing")), JANUARY).num_rows == 0
    assert read_estimates(locate(str(tmp_path)), JANUARY).schema == ESTIMATES_SCHEMA


def test_a_dynamodb_export_summary_that_is_not_an_object_fails_naming_it(tmp_path):
    """A manifest-summary.json that is a JSON array gave a bare AttributeError naming no file."""
    write_export(tmp_path, "01700000000000-aaaa", [])
    summary = tmp_path / "AWSDynamoDB" / "01700000000000-aaaa" / "manifest-summary.json"
    summary.write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"{re.escape(str(summary))}: .*manifest is not a JSON object"):
        read_estimates(locate(str(tmp_path)), dt.date(2026, 1, 1))


def test_a_dynamodb_export_summary_field_of_the_wrong_type_fails_naming_it(tmp_path):
    write_export(tmp_path, "01700000000000-aaaa", [])
    summary = tmp_path / "AWSDynamoDB" / "01700000000000-aaaa" / "manifest-summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "tableArn": {"x": 1}}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(summary))}: tableArn is dict \{{'x': 1\}}, not text"):
        read_estimates(locate(str(tmp_path)), dt.date(2026, 1, 1))


def test_the_newest_export_is_chosen_by_time_not_by_text(tmp_path):
    """'10:00:00.500Z' sorts before '10:00:00Z' as text: the older export's items were read instead of the newer."""
    old_item = item("acc-a", "2026-01-07T08:00:00Z", 1, 1, 1)
    new_item = item("acc-a", "2026-01-07T08:00:00Z", 2, 1, 2)
    write_export(tmp_path, "01700000000000-aaaa", [old_item], export_time="2026-01-20T10:00:00Z")
    write_export(tmp_path, "01700000000500-bbbb", [new_item], export_time="2026-01-20T10:00:00.500Z")
    assert [r[-1] for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [D(2)]
    # the same instant with an offset: still the newer one's; a time that does not read fails naming the summary
    write_export(tmp_path, "01700000000900-cccc", [old_item], export_time="2026-01-20T09:00:00+00:00")
    assert [r[-1] for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [D(2)]
    write_export(tmp_path, "01700000001000-dddd", [old_item], export_time="20 January")
    with pytest.raises(ValueError, match=r"01700000001000-dddd/manifest-summary\.json: exportTime '20 January' is "
                                         r"not an ISO 8601 time"):
        read_estimates(locate(str(tmp_path)), JANUARY)


@pytest.mark.parametrize("name", ["usage.jsonl", "usage.ndjson", "usage.json"])
def test_a_file_beside_its_compressed_copy_is_an_error_naming_both(tmp_path, name):
    """`usage.jsonl` left beside `usage.jsonl.gz`: both were read and every item counted twice (acc-a's 1.25
    estimated as 2.50, and charged twice where the price list charges the usage table's quantities)."""
    lines = json.dumps(item("acc-a", "2026-01-07T08:00:00Z", 1, "1.25", "1.25")) + "\n"
    (tmp_path / "daily").mkdir()
    (tmp_path / "daily" / f"{name}.gz").write_bytes(gzip.compress(lines.encode()))
    # one source: the month reads as before
    assert [r[-1] for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [D("1.25")]
    (tmp_path / "daily" / name).write_text(lines)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'daily' / name))} and "
                                         rf"{re.escape(str(tmp_path / 'daily' / name))}\.gz: the same file, plain and "
                                         r"compressed: its items would count twice; remove one of them$"):
        read_estimates(locate(str(tmp_path)), JANUARY)
    with pytest.raises(ValueError, match=r"the same file, plain and compressed"):
        estimates.usage_table_files(locate(str(tmp_path)))
    # other names beside each other are different files, read both
    (tmp_path / "daily" / name).rename(tmp_path / "daily" / f"other-{name}")
    assert [r[-1] for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [D("1.25"), D("1.25")]


def test_a_decompressed_copy_inside_an_export_is_an_error_naming_both(tmp_path):
    write_export(tmp_path, "01700000000000-aaaa", [item("acc-a", "2026-01-07T08:00:00Z", 1, 1, 1)])
    data = tmp_path / "AWSDynamoDB" / "01700000000000-aaaa" / "data"
    (data / "abcd1234.json").write_bytes(gzip.decompress((data / "abcd1234.json.gz").read_bytes()))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(data / 'abcd1234.json'))} and "
                                         rf"{re.escape(str(data / 'abcd1234.json.gz'))}: the same file, plain and "
                                         r"compressed"):
        read_estimates(locate(str(tmp_path)), JANUARY)


def test_item_files_beside_a_dynamodb_export_are_an_error_naming_both(tmp_path):
    """A JSON Lines copy of the table beside an export of it: both were read, acc-a's 2 estimated as 4."""
    january_item = item("acc-a", "2026-01-07T08:00:00Z", 2, 1, 2)
    write_export(tmp_path / "exports", "01700000000000-aaaa", [january_item])
    assert [r[-1] for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [D(2)]  # one source: as before
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "tax-agent-usage.jsonl").write_text(json.dumps(january_item) + "\n")
    (tmp_path / "copy" / "z.jsonl").write_text(json.dumps(january_item) + "\n")
    folder = tmp_path / "exports" / "AWSDynamoDB" / "01700000000000-aaaa"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'copy' / 'tax-agent-usage.jsonl'))} \(and 1 "
                                         rf"more item file\) and the DynamoDB export {re.escape(str(folder))}: two "
                                         r"sources of the usage table under one location, whose items would count "
                                         r"twice; keep one of them$"):
        read_estimates(locate(str(tmp_path)), JANUARY)


def test_item_files_beside_exports_that_are_not_read_are_read_as_before(tmp_path):
    """An incremental export (changes, not items) is not read: the item files beside it are the one source."""
    write_export(tmp_path, "01700000000000-aaaa", [item("acc-a", "2026-01-07T08:00:00Z", 2, 1, 2)],
                 export_type="INCREMENTAL_EXPORT")
    (tmp_path / "usage.jsonl").write_text(json.dumps(item("acc-b", "2026-01-08T08:00:00Z", 1, 3, 3)) + "\n")
    assert [(r[0], r[-1]) for r in rows(read_estimates(locate(str(tmp_path)), JANUARY))] == [("acc-b", D(3))]
