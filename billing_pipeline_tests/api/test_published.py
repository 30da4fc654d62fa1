"""Publish, then serve: the API serves the statements as published, a failed or half-done run changes nothing it
serves, and a restated month is served whole or not at all."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal as D

import duckdb
import httpx
import pyarrow as pa
import pytest

from billing_pipeline import publishing
from billing_pipeline.assets import published_billing as publisher
from billing_pipeline.assets import statements as statements_module
from billing_pipeline.publishing import publish_month, read_pointer, read_snapshot
from billing_pipeline.sample_data import generate_month
from billing_pipeline.storage import locate

from .conftest import CORE_TABLES, JAN, OTHER_LOGS, in_process_client, publish, run_month, sample_env

A, B = "acct-0001", "acct-0002"


def auth(built, accountant):
    return {"Authorization": f"Bearer {built.tokens[accountant]}"}


def pointer_bytes(published) -> bytes:
    return (published / "current" / "2026-01.json").read_bytes()


def test_the_api_serves_the_statements_cents_as_published(client, built):
    """One source of cents: every amount the API shows is the `statements` row's, nothing recomputed."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        rows = con.execute("SELECT accountant_id, line, cost, amount FROM statements WHERE billing_period = ?",
                           [JAN]).fetchall()
        delivery = con.execute("SELECT any_value(delivery_id) FROM cur_line_items WHERE billing_period = ?",
                               [JAN]).fetchone()[0]
    for accountant in (A, B):
        doc = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, accountant)).json()
        mine = {line: (cost, amount) for a, line, cost, amount in rows if a == accountant}
        assert (D(doc["total_cost"]["exact"]), D(doc["total_cost"]["rounded"])) == mine.pop("total")
        assert doc["total_cost"]["cents"] == int(D(doc["total_cost"]["rounded"]) * 100)
        assert {t: (D(u["cost"]["exact"]), D(u["cost"]["rounded"])) for t, u in doc["usage_by_type"].items()} == mine
        assert doc["published"]["cur_delivery"] == delivery
        assert doc["published"]["at"].endswith("Z") and doc["published"]["snapshot"]


def test_a_run_that_fails_half_way_leaves_the_served_month_unchanged(built, copy, tmp_path, monkeypatch):
    before = pointer_bytes(copy.published)
    client = in_process_client(copy.published, built.tokens_file)
    served = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    restated = generate_month(tmp_path / "restated", JAN, tenants=3, rows=1200, seed=12)
    sample_env(monkeypatch, restated, copy.warehouse, copy.published)

    # the restated delivery gets through tenant_costs and the report, then statements fails
    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as broken:
        broken.setattr(statements_module, "statement_rows", disk_full)
        assert not run_month(CORE_TABLES, "2026-01-01", raise_on_error=False, run_config=OTHER_LOGS).success
    with duckdb.connect(str(copy.warehouse), read_only=True) as con:
        (cost,) = con.execute("SELECT sum(cost) FROM tenant_costs WHERE billing_period = ? AND accountant_id = ?",
                              [JAN, A]).fetchone()
    assert cost == built.total_of(restated, A) != built.total(JAN, A)  # the warehouse is half updated ...
    assert pointer_bytes(copy.published) == before  # ... and nothing of it is served
    assert client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json() == served

    # publishing the half-updated month alone is refused, naming what disagrees and what to re-run
    result = run_month(["published_billing"], "2026-01-01", raise_on_error=False)
    assert not result.success
    failure = str([e.event_specific_data.error.message for e in result.all_events if e.is_step_failure])
    assert "not published" in failure and "reconciliation_report: acct-0001 (USD) actual" in failure
    assert "re-run reconciliation_report and statements" in failure
    assert pointer_bytes(copy.published) == before

    # the month re-run whole: the restated month is served, with its delivery
    assert run_month(CORE_TABLES, "2026-01-01").success
    doc = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    assert doc["total_cost"]["exact"] == f"{built.total_of(restated, A):f}"
    assert doc["published"]["cur_delivery"] != served["published"]["cur_delivery"]


def test_a_snapshot_written_half_way_is_never_served(built, copy, monkeypatch):
    before = pointer_bytes(copy.published)
    client = in_process_client(copy.published, built.tokens_file)
    served = client.get("/billing/history", headers=auth(built, A)).json()
    written = []

    def fails_on_the_third_file(location, path, data):
        if len(written) == 2:
            raise OSError("connection reset")
        written.append(path)
        real_write(location, path, data)

    real_write = publishing.write_whole
    monkeypatch.setattr(publishing, "write_whole", fails_on_the_third_file)
    with pytest.raises(OSError, match="connection reset"):
        publish(copy.warehouse, copy.published, JAN)
    assert len(written) == 2 and pointer_bytes(copy.published) == before
    assert client.get("/billing/history", headers=auth(built, A)).json() == served


def doubled(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """A restatement every number of which differs: each statement and report amount times two."""
    return {**tables,
            "statements": with_rows(tables["statements"], lambda r: {**r, "cost": r["cost"] * 2, "amount": r["amount"] * 2}),
            "reconciliation_report": with_rows(tables["reconciliation_report"],
                                               lambda r: {**r, "actual_cost": r["actual_cost"] * 2})}


def test_a_restated_month_is_served_whole_or_not_at_all(built, copy, server_for):
    """Tenants read while the month is switched back and forth between two snapshots: every answer is one
    snapshot's, whole (total, lines, history and report agree with the snapshot it names)."""
    location = locate(str(copy.published))
    first = read_pointer(location, "2026-01")
    tables = read_snapshot(location, first)
    base = server_for(copy.published)
    expected: dict[str, int] = {first.snapshot: 1}
    stop, answers, failures = threading.Event(), [], []

    def tenant(accountant):
        with httpx.Client(base_url=base, timeout=20, headers=auth(built, accountant)) as http:
            while not stop.is_set():
                response = http.get("/billing", params={"month": "2026-01"})
                if response.status_code != 200:
                    failures.append(response.status_code)
                    continue
                answers.append((accountant, response.json()))

    threads = [threading.Thread(target=tenant, args=(accountant,)) for accountant in (A, B) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(8):
            factor = 2 if round_ % 2 == 0 else 1
            pointer = publish_month(location, JAN, doubled(tables) if factor == 2 else tables,
                                    {"delivery_id": f"delivery-{factor}", "is_final": False, "engine": "duckdb"})
            expected[pointer["snapshot"]] = factor
            served_after = len(answers)
            deadline = time.monotonic() + 20  # a loaded machine: wait until the tenants were served this one
            while time.monotonic() < deadline and not any(
                    doc["published"]["snapshot"] == pointer["snapshot"] for _a, doc in answers[served_after:]):
                stop.wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures
    seen = set()
    for accountant, doc in answers:
        factor = expected[doc["published"]["snapshot"]]
        seen.add(factor)
        cents = built.cents(JAN)[accountant] * factor
        assert D(doc["total_cost"]["rounded"]) == cents
        assert sum(D(u["cost"]["rounded"]) for u in doc["usage_by_type"].values()) == cents
        report_total = next(r for r in doc["estimated_vs_actual"] if r["resource_type"] == "total")
        assert D(report_total["actual_cost"]["exact"]) == built.total(JAN, accountant) * factor
        if doc["published"]["cur_delivery"].startswith("delivery-"):
            assert doc["published"]["cur_delivery"] == f"delivery-{factor}"
    assert seen == {1, 2} and len({doc['published']['snapshot'] for _a, doc in answers}) >= 8


def test_old_snapshots_are_pruned_but_never_the_served_one(built, copy):
    location = locate(str(copy.published))
    tables = read_snapshot(location, read_pointer(location, "2026-01"))
    pointers = [publish_month(location, JAN, tables, {"delivery_id": "d", "is_final": False}) for _ in range(5)]
    kept = sorted(p.name for p in (copy.published / "months" / "2026-01").iterdir())
    assert kept == sorted(p["snapshot"] for p in pointers[-3:])
    assert read_pointer(location, "2026-01").snapshot == pointers[-1]["snapshot"]


# ---------------------------------------------------------------------------------------------------------------
# What is checked before the switch: each broken table is named


@pytest.fixture(scope="module")
def january(built):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        return publisher.month_snapshot(con, JAN)


def with_rows(table: pa.Table, change) -> pa.Table:
    return pa.Table.from_pylist([change(dict(row)) for row in table.to_pylist()], schema=table.schema)


def test_the_month_as_built_is_consistent(january):
    tables, in_scope, cur = january
    assert publisher.consistency_problems(tables, in_scope, cur) == []
    assert cur[0] == 1 and cur[3] > 0


@pytest.mark.parametrize("breakage, message", [
    (lambda t, s, c: ({**t, "statements": with_rows(t["statements"], lambda r: {
        **r, "amount": r["amount"] + D("0.01") if (r["accountant_id"], r["line"]) == (A, "s3") else r["amount"]})},
        s, c), "statements: the lines of acct-0001 (USD) do not add up to its total"),
    (lambda t, s, c: (t, {"USD": s["USD"] + D("0.02")}, c), "tenant_costs holds"),
    (lambda t, s, c: ({**t, "reconciliation_report": with_rows(t["reconciliation_report"], lambda r: {
        **r, "actual_cost": r["actual_cost"] + 1 if (r["accountant_id"], r["resource_type"]) == (B, "total")
        else r["actual_cost"]})}, s, c), "reconciliation_report: acct-0002 (USD) actual"),
    (lambda t, s, c: (t, s, (2, *c[1:])), "cur_line_items holds 2 deliveries"),
    (lambda t, s, c: (t, s, (c[0], c[1], True, c[3])), "statements: is_final differs from the CUR's (True)"),
    (lambda t, s, c: ({**t, "statements": t["statements"].slice(0, 0)}, s, c),
     "tenant_costs holds the month's cost but statements has no rows (re-run statements)"),
])
def test_a_disagreeing_table_is_not_published(january, breakage, message):
    problems = publisher.consistency_problems(*breakage(*january))
    assert any(message in p for p in problems), problems


def test_a_month_with_nothing_of_the_application_has_no_statements_and_that_is_consistent(january):
    """Line items but nothing in scope (tenant_costs empty): no statements is the right answer, not a problem."""
    tables, _in_scope, cur = january
    empty = {**tables, "statements": tables["statements"].slice(0, 0),
             "reconciliation_report": tables["reconciliation_report"].slice(0, 0)}
    assert publisher.consistency_problems(empty, {}, cur) == []


def test_the_tables_record_their_delivery_and_a_stale_one_is_refused(january):
    """The tables record the delivery they were computed from (issue 16.6): a row of another delivery blocks."""
    tables, in_scope, cur = january
    assert set(tables["statements"]["delivery_id"].to_pylist()) == {cur[1]}
    stale = with_rows(tables["statements"], lambda r: {**r, "delivery_id": "older"})
    problems = publisher.consistency_problems({**tables, "statements": stale}, in_scope, cur)
    assert problems == [f"statements was computed from delivery ['older'], cur_line_items holds {cur[1]} "
                        "(re-run statements)"]


def test_estimates_get_the_statements_cents():
    rows = [dict(accountant_id=a, resource_type=t, estimated_cost=D(c))
            for a, t, c in [("a", "s3", "0.333"), ("a", "lambda", "0.333"), ("b", "s3", "0.334"), ("b", "other", "0")]]
    lines = {(r["accountant_id"], r["line"]): r["amount"] for r in publisher.estimated_lines(JAN, rows)}
    # tenants: a 0.666 -> 0.67, b 0.334 -> 0.33 (1.00 in all); a's lines tie: the first by name gets the cent
    assert lines == {("a", "lambda"): D("0.34"), ("a", "s3"): D("0.33"), ("a", "total"): D("0.67"),
                     ("b", "other"): D("0.00"), ("b", "s3"): D("0.33"), ("b", "total"): D("0.33")}


def test_nothing_to_publish_is_refused(built, tmp_path):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        with pytest.raises(publisher.NotPublishable, match="holds nothing of the month"):
            publisher.publish_from(con, locate(str(tmp_path / "published")), dt.date(2025, 6, 1), "duckdb")
    assert not (tmp_path / "published").exists()


def test_published_on_s3_is_served_and_switched(built, copy, aws):
    """BILLING_PUBLISH_URI=s3://...: the snapshot is written object by object, the pointer last (one PutObject),
    and the API lists, reads and switches it through pyarrow's S3 filesystem (the local AWS server)."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="billing-published")
    location = locate("s3://billing-published/api")
    local = locate(str(copy.published))
    tables = read_snapshot(local, read_pointer(local, "2026-01"))
    publish_month(location, JAN, tables, {"delivery_id": "d-1", "is_final": False})
    client = in_process_client("s3://billing-published/api", built.tokens_file)
    first = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    assert first["published"]["cur_delivery"] == "d-1"
    assert D(first["total_cost"]["rounded"]) == built.cents(JAN)[A]
    # within the same second: S3 keeps modification times to the second, the pointer's size is the same
    publish_month(location, JAN, doubled(tables), {"delivery_id": "d-2", "is_final": False})
    second = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    assert second["published"]["cur_delivery"] == "d-2"
    assert D(second["total_cost"]["rounded"]) == 2 * built.cents(JAN)[A]


def test_a_stale_month_to_date_is_not_published(january):
    """month_to_date's actual part is tenant_costs, as the statement: one computed from another delivery blocks."""
    tables, _in_scope, _cur = january
    statements = tables["statements"].to_pylist()
    assert publisher.month_to_date_problems(tables["month_to_date"], statements) == []
    stale = with_rows(tables["month_to_date"], lambda r: {
        **r, "actual_cost": r["actual_cost"] + D("0.01") if r["accountant_id"] == B else r["actual_cost"]})
    assert publisher.month_to_date_problems(stale, statements) == [
        "month_to_date: the actual part of acct-0002 differs from statements (re-run month_to_date)"]


def test_a_snapshot_published_before_the_detail_is_still_served(built, copy):
    """Snapshots published before usage lines, days, parts and the month to date existed: served without them."""
    pointer = read_pointer(locate(str(copy.published)), "2026-01")
    folder = copy.published / "months" / "2026-01" / pointer.snapshot
    for name in publishing.LATER_TABLES:
        (folder / f"{name}.parquet").unlink()
    doc = in_process_client(copy.published, built.tokens_file).get(
        "/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    assert D(doc["total_cost"]["rounded"]) == built.cents(JAN)[A]
    assert (doc["usage_lines"], doc["daily"], doc["parts"], doc["month_to_date"]) == ([], {}, {}, None)


# ---------------------------------------------------------------------------------------------------------------
# A broken publication is logged and the month keeps what it served: never an error for every request


def pointer_document(published) -> dict:
    import json

    return json.loads(pointer_bytes(published))


@pytest.mark.parametrize("broken, complaint", [
    (b"{", "2026-01.json: not JSON"),
    (b"[]", "2026-01.json: not a pointer (a JSON object), a JSON list"),
    (b'"20260101T000000000000Z-0000abcd"', "2026-01.json: not a pointer (a JSON object), a JSON str"),
    (lambda doc: {**doc, "snapshot": doc["snapshot"] + "\n"}, "2026-01.json: not a pointer of 2026-01 to a snapshot id"),
    (lambda doc: {**doc, "snapshot": "../2025-12/" + doc["snapshot"]}, "not a pointer of 2026-01 to a snapshot id"),
    (lambda doc: {**doc, "month": "2025-12"}, "2026-01.json: not a pointer of 2026-01 to a snapshot id"),
    (lambda doc: {**doc, "published_at": None}, "2026-01.json: published_at is not a time"),
    (lambda doc: {**doc, "is_final": "false"}, "2026-01.json: is_final is not true or false"),
    (lambda doc: {**doc, "delivery_id": 7}, "2026-01.json: delivery_id is not text"),
], ids=["not-json", "list", "string", "id-with-newline", "id-with-path", "other-month", "no-time", "final-as-text",
        "delivery-as-number"])
def test_a_broken_pointer_keeps_the_month_served_as_it_was(built, copy, caplog, broken, complaint):
    import json

    client = in_process_client(copy.published, built.tokens_file)
    served = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    text = broken if isinstance(broken, bytes) else json.dumps(broken(pointer_document(copy.published))).encode()
    (copy.published / "current" / "2026-01.json").write_bytes(text)
    with caplog.at_level("WARNING", logger="billing_pipeline.api"):
        for _ in range(3):  # every request refreshes (refresh_seconds=0): each one still answers, the same
            assert client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json() == served
        assert client.get("/billing/history", headers=auth(built, A)).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert len(warnings) == 1 and complaint in warnings[0]  # said once, not at every refresh


def test_a_pointer_of_a_month_that_does_not_exist_is_skipped(built, copy, caplog):
    import json

    client = in_process_client(copy.published, built.tokens_file)
    history = client.get("/billing/history", headers=auth(built, A)).json()
    (copy.published / "current" / "2026-13.json").write_text(
        json.dumps({**pointer_document(copy.published), "month": "2026-13"}))
    with caplog.at_level("WARNING", logger="billing_pipeline.api"):
        assert client.get("/billing/history", headers=auth(built, A)).json() == history
        assert client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).status_code == 200
    assert any("2026-13.json: '2026-13' is not a month" in r.getMessage() for r in caplog.records)


def without(table: pa.Table, column: str) -> pa.Table:
    return table.drop_columns([column])


def retyped(table: pa.Table, column: str, type_: pa.DataType) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, pa.field(column, type_), table.column(column).cast(type_))


@pytest.mark.parametrize("change, complaint", [
    (lambda t: without(t, "amount"), "statements.parquet: no column amount"),
    (lambda t: retyped(t, "cost", pa.string()), "statements.parquet: column cost is string, not decimal128(38, 10)"),
    (lambda t: retyped(t, "cost", pa.float64()), "statements.parquet: column cost is double, not decimal128(38, 10)"),
    # more places than the API keeps: loading it would round the money silently
    (lambda t: retyped(t, "cost", pa.decimal128(38, 12)),
     "statements.parquet: column cost is decimal128(38, 12), not decimal128(38, 10)"),
    (lambda t: retyped(t, "billing_period", pa.string()),
     "statements.parquet: column billing_period is string, not date32[day]"),
    (lambda t: retyped(t, "is_final", pa.string()), "statements.parquet: column is_final is string, not bool"),
], ids=["missing-column", "money-as-text", "money-as-float", "money-rounded", "date-as-text", "flag-as-text"])
def test_a_snapshot_of_the_wrong_shape_keeps_the_month_served_as_it_was(built, copy, caplog, change, complaint):
    location = locate(str(copy.published))
    served_snapshot = read_pointer(location, "2026-01")
    tables = read_snapshot(location, served_snapshot)
    client = in_process_client(copy.published, built.tokens_file)
    served = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    broken = publish_month(location, JAN, {**tables, "statements": change(tables["statements"])},
                           {"delivery_id": "broken", "is_final": False})
    with caplog.at_level("WARNING", logger="billing_pipeline.api"):
        assert client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json() == served
    (warning,) = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert f"{broken['snapshot']}/{complaint}" in warning
    # the next good snapshot is served
    publish_month(location, JAN, tables, {"delivery_id": "good again", "is_final": False})
    doc = client.get("/billing", params={"month": "2026-01"}, headers=auth(built, A)).json()
    assert doc["published"]["cur_delivery"] == "good again" and doc["total_cost"] == served["total_cost"]
