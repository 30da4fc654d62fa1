"""Real time on generated months: a provisional month whose CUR stops before its logs, the refresh without the CUR
(job, schedule, sensor), and the backtest's replays of final months against the generator's exact answers."""

import datetime as dt
import os
import re
import shutil
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest
from dagster import (
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from billing_pipeline.api.auth import issue_token
from billing_pipeline.assets.nowcast_accuracy import REPLAY_CUR_LAG, replay, summary
from billing_pipeline.definitions import defs
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.publishing import publish_location, read_pointer, read_snapshot
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.sample_data import generate_month
from billing_pipeline.schedules import hourly_month_to_date
from billing_pipeline.sensors import evidence_run_request, usage_evidence_sensor
from billing_pipeline_tests.api.test_dashboard import CHROMIUM, chromium, money_text
from billing_pipeline_tests.api_support import in_process_client, serving
from billing_pipeline_tests.evidence_support import deliver_at_end_of_day, make_unreadable

DEC, JAN, FEB = dt.date(2025, 12, 1), dt.date(2026, 1, 1), dt.date(2026, 2, 1)
CUT = dt.datetime(2026, 1, 20, 18)


def point_at(monkeypatch, folder: Path, warehouse: Path):
    monkeypatch.setenv("BILLING_CUR_URI", str(folder / "cur"))
    monkeypatch.setenv("BILLING_LOGS_URI", str(folder / "logs"))
    monkeypatch.setenv("BILLING_S3_INVENTORY_URI", str(folder / "inventory"))
    monkeypatch.setenv("BILLING_USAGE_URI", str(folder / "usage"))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(warehouse))


def run(partition_key, selection=None):
    assets = list(defs.assets) if selection is None else [a for a in defs.assets if a.key.to_user_string() in selection]
    result = materialize(assets, resources=defs.resources, partition_key=partition_key,
                         instance=DagsterInstance.ephemeral())
    assert result.success
    return result


@pytest.fixture(scope="module")
def cut_sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut")
    return folder, generate_month(folder, JAN, tenants=4, rows=4000, seed=11, cur_through=CUT)


def test_the_cut_month_is_actual_through_the_cut_and_estimated_to_the_end_of_its_logs(cut_sample, tmp_path, monkeypatch):
    folder, sample = cut_sample
    warehouse = tmp_path / "w.duckdb"
    point_at(monkeypatch, folder, warehouse)
    result = run("2026-01-01")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "month_to_date"}
    assert checks == {"actual_equals_tenant_costs": True, "parts_add_up": True, "no_duplicate_month_to_date": True}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("""SELECT accountant_id, resource_type, actual_cost, estimated_cost, cost_to_date,
                                     covered_through, as_of FROM month_to_date ORDER BY ALL""").fetchall()
        (tenant_cost,) = con.execute("SELECT sum(cost) FROM tenant_costs").fetchone()
        calibrations = con.execute("SELECT kind, basis, count(*) FROM month_to_date_calibration GROUP BY ALL ORDER BY ALL").fetchall()
    # the actual part is exactly the generator's answer for the cut CUR, tenants and unattributed alike
    assert {(a, r): actual for a, r, actual, *_ in rows if actual} == sample.expected_actuals
    assert sum(r[2] for r in rows) == tenant_cost == sample.in_scope_total
    assert {(r[5], r[6]) for r in rows} == {(CUT, dt.datetime(2026, 2, 1))}
    assert all(r[4] == r[2] + r[3] for r in rows)
    # every tenant that used anything after the cut has an estimate; the estimates cover 10 days and 6 hours
    assert all(r[3] > 0 for r in rows if r[0] != "unattributed")
    # the tenants' worker functions log REPORT lines: priced by them at their own unit cost
    assert {(k, b) for k, b, _ in calibrations} == {("run_rate", "last_7_covered_days"),
                                                    ("direct_unit_cost", "last_7_covered_days"),
                                                    ("unit_cost", "last_7_covered_days")}

    # the refresh without the CUR: only usage_shares and month_to_date run (and the month is republished), and
    # give the same rows
    job = defs.resolve_job_def("month_to_date_job")
    refreshed = job.execute_in_process(partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert refreshed.success
    assert sorted(e.asset_key.to_user_string() for e in refreshed.get_asset_materialization_events()) == [
        "month_to_date", "published_billing", "usage_shares"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("""SELECT accountant_id, resource_type, actual_cost, estimated_cost, cost_to_date,
                                     covered_through, as_of FROM month_to_date ORDER BY ALL""").fetchall() == rows


def test_the_refresh_opens_only_the_evidence_after_coverage(cut_sample, tmp_path, monkeypatch):
    folder = tmp_path / "sample"
    shutil.copytree(cut_sample[0], folder)
    deliver_at_end_of_day(folder)
    warehouse = tmp_path / "w.duckdb"
    point_at(monkeypatch, folder, warehouse)
    run("2026-01-01")
    query = """SELECT accountant_id, resource_type, actual_cost, estimated_cost, cost_to_date, forecast_cost,
                      covered_through, as_of FROM month_to_date ORDER BY ALL"""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        full_rows = con.execute(query).fetchall()
        shares = con.execute("SELECT * FROM usage_shares ORDER BY ALL").fetchall()
    # the CUR covers hourly lines through 18:00 on the 20th, daily ones (S3 storage) through the 19th: the
    # evidence is needed from the 20th 00:00. Every file that cannot hold it is made unreadable garbage (its
    # modification time kept): the refresh must not open one of them.
    since = dt.datetime(2026, 1, 20)
    old_logs = [p for p in (folder / "logs").rglob("*.gz") if os.stat(p).st_mtime < since.replace(tzinfo=dt.timezone.utc).timestamp()]
    old_manifests = [p for p in (folder / "inventory").rglob("manifest.json")
                     if re.search(r"/2026-01-(0\d|1\d)T|/2025-", str(p))]
    make_unreadable(old_logs + old_manifests)
    # the 15th's export was lost
    assert {int(re.search(r"/2026/01/(\d\d)/", str(p)).group(1)) for p in old_logs} == set(range(1, 19)) - {15}
    with pytest.raises(ValueError, match="not a readable gzip file"):  # whoever opens one of them fails
        read_usage_evidence(locate(str(folder / "logs")), None, JAN)

    refreshed = defs.resolve_job_def("month_to_date_job").execute_in_process(
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert refreshed.success
    metadata = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
                for e in refreshed.get_asset_materialization_events()}["usage_shares"]
    assert metadata["read_from"].value == "2026-01-20 00:00:00"
    new_logs = [p for p in (folder / "logs").rglob("*.gz") if p not in old_logs]
    # the log files of the 19th to the 31st, and the inventory snapshots of the 21st to the 31st (the 20th's was
    # not delivered; the 19th's stands for the 19th alone), a manifest and a data file each
    assert metadata["files_read"].value == len(new_logs) + 11 * 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # the same usage_shares and month to date as the full read, the earlier hours kept as they were
        assert con.execute("SELECT * FROM usage_shares ORDER BY ALL").fetchall() == shares
        assert con.execute(query).fetchall() == full_rows


def published_month(month: str) -> dict:
    location = publish_location()
    pointer = read_pointer(location, month)
    return {"snapshot": pointer.snapshot, **read_snapshot(location, pointer)}


def test_the_hourly_refresh_republishes_the_month_to_date(cut_sample, tmp_path, monkeypatch):
    """The API serves what the hourly refresh estimated, not what the last CUR run did: the logs of the 25th on
    arrive after the CUR run; the refresh reads them and the month's snapshot switches to the new month to date,
    with the same statements."""
    folder = tmp_path / "sample"
    shutil.copytree(cut_sample[0], folder)
    late = sorted(p for p in (folder / "logs").rglob("*.gz") if re.search(r"/2026/01/(2[5-9]|3\d)/", str(p)))
    held = tmp_path / "held"
    for path in late:
        (held / path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
        path.rename(held / path.relative_to(folder))
    warehouse = tmp_path / "w.duckdb"
    point_at(monkeypatch, folder, warehouse)
    run("2026-01-01")
    before = published_month("2026-01")
    for path in late:  # the late exports arrive (modified now: after the CUR's coverage)
        (held / path.relative_to(folder)).rename(path)

    refreshed = defs.resolve_job_def("month_to_date_job").execute_in_process(
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert refreshed.success
    after = published_month("2026-01")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = con.execute("""SELECT accountant_id, sum(actual_cost), sum(estimated_cost), sum(cost_to_date),
                                          sum(forecast_cost), max(covered_through), max(as_of)
                                   FROM month_to_date GROUP BY ALL ORDER BY ALL""").fetchall()
    columns = ["accountant_id", "actual_cost", "estimated_cost", "cost_to_date", "forecast_cost", "covered_through",
               "as_of"]

    def served(snapshot):
        return [tuple(r[c] for c in columns) for r in snapshot["month_to_date"].to_pylist()]

    assert after["snapshot"] != before["snapshot"]
    assert served(after) == expected  # exactly the refreshed table
    # ... which is what a CUR run that had every log file from the start computes
    monkeypatch.setenv("BILLING_WAREHOUSE", str(tmp_path / "reference.duckdb"))
    monkeypatch.setenv("BILLING_LOGS_URI", str(cut_sample[0] / "logs"))
    run("2026-01-01", {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
                       "month_to_date"})
    with duckdb.connect(str(tmp_path / "reference.duckdb"), read_only=True) as con:
        reference = con.execute("""SELECT accountant_id, sum(actual_cost), sum(estimated_cost), sum(cost_to_date),
                                           sum(forecast_cost), max(covered_through), max(as_of)
                                    FROM month_to_date GROUP BY ALL ORDER BY ALL""").fetchall()
    # the estimated part is the same; the actual part is tenant_costs as the CUR run left it (month-long lines,
    # the Lambda credit, are split by the month's usage, which that run saw without the late week: the next CUR
    # run re-reads it)
    assert [(r[0], r[2], r[5], r[6]) for r in served(after)] == [(r[0], r[2], r[5], r[6]) for r in reference]
    # before, the week of logs missing: the same actual part, less estimated for every tenant that used the agent
    assert [r[1] for r in served(before)] == [r[1] for r in served(after)]
    less = {r[0] for r, a in zip(served(before), served(after)) if r[2] < a[2]}
    assert less == {"acct-0001", "acct-0002", "acct-0003", "unattributed"}
    for name in ("statements", "reconciliation_report"):  # the bill itself is the same rows
        assert after[name].equals(before[name])


def test_before_the_months_first_cur_delivery_the_refresh_publishes_estimates_only(tmp_path, monkeypatch):
    """The first hours of a month, before AWS's first delivery of it: the hourly refresh estimates everything from
    the previous month's calibration and publishes that month to date (no statements yet), instead of failing
    because the month has no bill to publish."""
    folder = tmp_path / "sample"
    generate_month(folder, DEC, tenants=3, rows=1500, seed=5, final=True)
    generate_month(folder, JAN, tenants=3, rows=1500, seed=5, cur_through=CUT)
    report = folder / "cur" / "cur" / "tax-demo-cur"
    shutil.rmtree(report / "20260101-20260201")  # January's delivery has not arrived
    shutil.rmtree(report / "tax-demo-cur" / "year=2026")
    point_at(monkeypatch, folder, tmp_path / "w.duckdb")
    run(DEC.isoformat())

    refreshed = defs.resolve_job_def("month_to_date_job").execute_in_process(
        partition_key="2026-01-01", instance=DagsterInstance.ephemeral())
    assert refreshed.success
    january = published_month("2026-01")
    assert january["statements"].num_rows == 0
    served = january["month_to_date"].to_pylist()
    assert {r["accountant_id"] for r in served} == {"acct-0001", "acct-0002", "acct-0003", "unattributed"}
    assert {(r["covered_through"], r["as_of"]) for r in served} == {(dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1))}
    assert all(r["actual_cost"] == 0 and r["estimated_cost"] == r["cost_to_date"] > 0 for r in served
               if r["accountant_id"] != "unattributed")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert {b for (b,) in con.execute("SELECT DISTINCT basis FROM month_to_date_calibration WHERE "
                                          "billing_period = DATE '2026-01-01'").fetchall()} == {"previous_month"}

    # the API serves the month from its month to date: a tenant sees the month so far, not a 404
    tokens_file = tmp_path / "tokens.json"
    token = issue_token("acct-0002", str(tokens_file))
    mine = next(r for r in served if r["accountant_id"] == "acct-0002")
    client = in_process_client(tmp_path / "published", tokens_file)
    headers = {"Authorization": f"Bearer {token}"}
    latest = client.get("/billing", headers=headers).json()  # the newest month with data is January
    assert latest == client.get("/billing?month=2026-01", headers=headers).json()
    assert {k: latest[k] for k in ("month", "status", "is_final", "actual_available", "total_source",
                                   "actual_cost", "estimated_cost", "variance", "usage_by_type",
                                   "estimated_vs_actual", "usage_lines")} == {
        "month": "2026-01", "status": "estimated", "is_final": False, "actual_available": False,
        "total_source": "month_to_date", "actual_cost": None, "estimated_cost": None, "variance": None,
        "usage_by_type": {}, "estimated_vs_actual": [], "usage_lines": []}
    to_date = {"exact": f"{mine['cost_to_date']:f}", "rounded": f"{mine['cost_to_date_amount']:f}",
               "cents": int(mine["cost_to_date_amount"] * 100)}
    assert latest["total_cost"] == latest["month_to_date"]["cost_to_date"] == to_date
    assert latest["month_to_date"]["actual_cost"] == {"exact": "0.0000000000", "rounded": "0.00", "cents": 0}
    assert latest["published"]["cur_delivery"] is None
    history = client.get("/billing/history", headers=headers).json()["months"]
    assert [(m["month"], m["status"], m["total_cost"]) for m in history][0] == ("2026-01", "estimated", to_date)
    assert [m["month"] for m in history] == ["2026-01", "2025-12"]
    if os.path.exists(CHROMIUM):  # installed by .ci/run; the dashboard tests skip without it too
        with serving(tmp_path / "published", tokens_file, tmp_path / "server.log") as base:
            dom = chromium(tmp_path / "profile", "--dump-dom", f"{base}/#token={token}").stdout
        (tmp_path / "dashboard.html").write_text(dom)  # kept for looking at
        assert 'data-loaded="2026-01"' in dom
        assert f'<div id="total-cost" class="amount">{money_text(mine["cost_to_date_amount"])}</div>' in dom
        assert "the month so far, estimated from measured usage at the unit costs of last month's bill" in dom
        assert '<span id="mtd-covered" class="muted">actual through 2026-01-01 00:00 UTC</span>' in dom


def test_hourly_schedule_requests_the_current_month_each_hour():
    context = build_schedule_context(scheduled_execution_time=dt.datetime(2026, 1, 20, 19, 10, tzinfo=dt.timezone.utc))
    request = hourly_month_to_date(context)
    assert (request.partition_key, request.run_key, request.job_name) == ("2026-01-01", "2026-01-01@2026-01-20T19", None)
    assert defs.resolve_schedule_def("hourly_month_to_date").job_name == "month_to_date_job"


def test_evidence_sensor_runs_once_per_new_state_of_the_logs(tmp_path):
    sample = generate_month(tmp_path / "s", JAN, tenants=2, rows=300, seed=3)
    config = BillingConfig(logs_uri=sample.logs_uri, s3_inventory_uri=sample.inventory_uri)
    assert usage_evidence_sensor.minimum_interval_seconds == 60
    first = usage_evidence_sensor(build_sensor_context(cursor=None, resources={"billing_config": config}))
    assert len(first.run_requests) == 1 and first.run_requests[0].partition_key == dt.datetime.now(dt.timezone.utc).date().replace(day=1).isoformat()
    again = usage_evidence_sensor(build_sensor_context(cursor=first.cursor, resources={"billing_config": config}))
    assert (again.run_requests, again.cursor) == ([], first.cursor)
    new_log = Path(sample.logs_uri) / "exportedlogs" / "task" / "stream" / "000001.gz"
    new_log.parent.mkdir(parents=True)
    new_log.write_bytes(b"")
    later = usage_evidence_sensor(build_sensor_context(cursor=first.cursor, resources={"billing_config": config}))
    assert len(later.run_requests) == 1 and later.cursor != first.cursor
    request = evidence_run_request(None, "ab" * 32, dt.datetime(2026, 1, 20, 19, tzinfo=dt.timezone.utc))
    assert (request.partition_key, request.run_key) == ("2026-01-01", "2026-01-01:evidence:abababababababab")
    assert evidence_run_request("ab" * 32, "ab" * 32, dt.datetime(2026, 1, 20, 19, tzinfo=dt.timezone.utc)) is None


@pytest.fixture(scope="module")
def final_months(tmp_path_factory):
    folder = tmp_path_factory.mktemp("final")
    warehouse = folder / "w.duckdb"
    with pytest.MonkeyPatch.context() as monkeypatch:
        for month in (DEC, JAN):
            generate_month(folder, month, tenants=4, rows=4000, seed=11, final=True)
        point_at(monkeypatch, folder, warehouse)
        for month in (DEC, JAN):
            run(month.isoformat(), {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage",
                                    "tenant_costs", "nowcast_accuracy"})
    return warehouse


def test_replays_attribute_the_cut_cur_exactly_as_the_generator_does(final_months, tmp_path):
    pricing = parse_pricing((Path(__file__).parents[1] / "billing_pipeline" / "pricing.json").read_text())
    for day in (7, 14):
        covered = dt.datetime(2026, 1, 1) + dt.timedelta(days=day) - REPLAY_CUR_LAG
        oracle = generate_month(tmp_path / f"day{day}", JAN, tenants=4, rows=4000, seed=11, cur_through=covered)
        with duckdb.connect(str(final_months)) as con:
            con.execute("SET TimeZone = 'UTC'")
            nowcast = replay(con, JAN, FEB, day, "unblended", pricing)
            tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
        assert (nowcast.covered_through, nowcast.as_of) == (covered, covered + REPLAY_CUR_LAG)
        # the generator's cut delivery has no tax; the replay adds the month's tax so far (as AWS delivers it)
        tax = {key: sum(slots[3] for slots in days.values()) for key, days in nowcast.daily.items()}
        assert {(r["accountant_id"], r["resource_type"]): r["actual_cost"] - tax[(r["accountant_id"],
                                                                                  r["resource_type"], "USD")]
                for r in nowcast.rows if r["actual_cost"]} == oracle.expected_actuals
        assert sum(tax.values()) == expected_tax_so_far(final_months, covered) > 0
        assert tables == set()  # the replay's stand-ins are gone


def expected_tax_so_far(warehouse, covered: dt.datetime) -> D:
    """The application's part of January's tax as a delivery stopping at `covered` held it, from the final
    month's facts in plain Decimal: each Tax line x its account's and product code's charges delivered by then /
    the month's, then the application's part by its share of the product code's delivered cost."""
    def rounded(value: D) -> D:
        return value.quantize(D("1e-10"), rounding="ROUND_HALF_UP")  # half away from zero

    account_level = "line_item_type IN ('Tax', 'Credit', 'Refund', 'Adjustment') OR line_item_type LIKE '%Discount'"
    delivered = "usage_hour + span_hours * INTERVAL 1 HOUR <= ?"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        lines = con.execute("""SELECT usage_account_id, service, unblended_cost FROM hourly_cost_facts
                               WHERE billing_period = ? AND line_item_type = 'Tax'""", [JAN]).fetchall()
        total = D(0)
        for account, service, cost in lines:
            so_far, month = con.execute(
                f"""SELECT sum(unblended_cost) FILTER (WHERE {delivered}), sum(unblended_cost) FROM hourly_cost_facts
                    WHERE billing_period = ? AND usage_account_id = ? AND service = ? AND NOT ({account_level})""",
                [covered, JAN, account, service]).fetchall()[0]
            app, bill = con.execute(
                f"""SELECT sum(unblended_cost) FILTER (WHERE in_scope), sum(unblended_cost) FROM hourly_cost_facts
                    WHERE billing_period = ? AND service = ? AND {delivered} AND NOT ({account_level})""",
                [JAN, service, covered]).fetchall()[0]
            if app and app > 0:
                total += rounded(rounded(cost * so_far / month) * min(app, bill) / bill)
    return total


def test_backtest_measures_each_final_month_against_its_final_cost(final_months):
    with duckdb.connect(str(final_months), read_only=True) as con:
        rows = [dict(zip([d[0] for d in con.description], r)) for r in con.execute(
            "SELECT * FROM nowcast_accuracy ORDER BY billing_period, replay_day, accountant_id").fetchall()]
        finals = dict(con.execute("""SELECT billing_period || accountant_id, sum(cost) FROM tenant_costs
                                     GROUP BY ALL""").fetchall())
    assert {(r["billing_period"], r["replay_day"]) for r in rows} == {(m, d) for m in (DEC, JAN) for d in (7, 14, 21, 28)}
    assert len(rows) == 2 * 4 * 5  # 4 tenants and unattributed
    for r in rows:
        assert r["final_cost"] == finals[f"{r['billing_period']}{r['accountant_id']}"]
        assert r["covered_through"] == r["as_of"] - REPLAY_CUR_LAG
        assert r["in_interval"] == (r["forecast_low"] <= r["final_cost"] <= r["forecast_high"])
    # what the method achieves on this sample (docs/realtime.md, where the misses are explained): the replays are
    # deterministic, so these are the exact figures
    result = summary(rows)
    assert result["targets"] == {"cost_to_date_within_1pct": True, "forecast_within_5pct_from_day_14": False,
                                 "interval_hit_rate": D("0.9500"),
                                 "application_forecast_within_5pct_from_day_14": True}
    # cost to date: worst absolute % per replay day (target 1 %: met on every day; the 21st's 12 hours after
    # coverage hold an hour of lost logs, 14:00, estimated from the same hour of the days before: 1.0589 % without)
    assert {day: max(abs(r["cost_to_date_error_pct"]) for r in rows if r["replay_day"] == day)
            for day in (7, 14, 21, 28)} == {7: D("0.8081"), 14: D("0.4904"), 21: D("0.7417"), 28: D("0.7187")}
    # the interval holds the final 19 times of 20 in each month: December's replays hold the month's tax so far as
    # AWS delivers it (replayed_cost_facts.sql), so its forecast levies the tax on the rest of the month too
    assert [summary([r for r in rows if r["billing_period"] == m])["targets"]["interval_hit_rate"]
            for m in (DEC, JAN)] == [D("0.9500"), D("0.9500")]
    assert sorted((r["billing_period"], r["replay_day"], r["accountant_id"]) for r in rows if not r["in_interval"]) == [
        (DEC, 7, "acct-0003"), (JAN, 21, "acct-0004")]
    # the application's forecast from day 14: within 5 % in both months (the last 7 days' rate follows the
    # sample's memory change on the 10th; all whole weeks since the 1st gave -5.99 % on December 14)
    assert {(m, day): e["forecast_error_pct"] for (m, day, _), e in result["application"].items() if day >= 14} == {
        (DEC, 14): D("-2.8550"), (DEC, 21): D("0.1990"), (DEC, 28): D("-0.3571"),
        (JAN, 14): D("1.6847"), (JAN, 21): D("2.0313"), (JAN, 28): D("0.4590")}
    # per tenant from day 14: 25 of 30 within 5 %; the 5 beyond it were all inside their interval (a small tenant's
    # daily cost varies by 60-85 %: the days left alone vary by more than 5 % of its month)
    beyond = [(r["billing_period"], r["replay_day"], r["accountant_id"], r["forecast_error_pct"], r["in_interval"])
              for r in rows if r["replay_day"] >= 14 and abs(r["forecast_error_pct"]) > 5]
    assert beyond == [(DEC, 14, "acct-0001", D("-9.2470"), True), (DEC, 21, "acct-0002", D("21.3417"), True),
                      (JAN, 14, "acct-0002", D("8.8002"), True), (JAN, 14, "acct-0003", D("5.0951"), True),
                      (JAN, 21, "acct-0003", D("11.6615"), True)]
    assert {t: stats["forecast_from_day_14"][0] for t, stats in result["tenants"].items()} == {
        "acct-0001": D("3.7319"), "acct-0002": D("6.1518"), "acct-0003": D("3.9414"), "acct-0004": D("0.7332"),
        "unattributed": D("1.1681")}
    # the seed's constant prices are 5 to 100 times further off
    for tenant, stats in result["tenants"].items():
        assert stats["seed_cost_to_date"][0] > 5 * stats["cost_to_date"][0], tenant


def test_a_final_month_cannot_be_cut(tmp_path):
    with pytest.raises(ValueError, match="final month's CUR covers the whole month"):
        generate_month(tmp_path, JAN, tenants=2, rows=300, seed=3, final=True, cur_through=CUT)
