"""The benchmark (benchmarks/run_benchmark.py) at a tiny size, so it cannot rot: every approach, sane figures."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from benchmarks.run_benchmark import main


def test_benchmark_runs_the_three_approaches_on_a_tiny_month(tmp_path):
    results = tmp_path / "results.md"
    assert main(["--rows", "2000", "--tenants", "12", "--data-dir", str(tmp_path / "data"),
                 "--results", str(results), "--clean"]) == 0

    text = results.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "approach" not in line]
    assert [r.split("|")[2].strip() for r in rows] == [
        "(a) pipeline", "(b) seed (pandas)", "(b') seed reading only its 5 columns", "(c) floor (DuckDB)"]
    assert "a/b = " in text and "a/b' = " in text and "a/c = " in text

    figures = {r["approach"]: r for r in json.loads(results.with_suffix(".json").read_text())["results"]}
    assert set(figures) == {"pipeline", "seed", "seed-columns", "floor"}
    assert figures["seed"]["in_scope_cost"] == figures["seed-columns"]["in_scope_cost"]
    assert set(figures["pipeline"]["step_peak_rss_bytes"]) >= {"cur_line_items", "tenant_costs"}
    line_items = {r["line_items"] for r in figures.values()}
    assert len(line_items) == 1 and line_items.pop() >= 2000  # every approach read the same whole month
    for r in figures.values():
        assert 0 < r["seconds"] <= r["wall_seconds"] < 120
        assert 20 * 2**20 < r["peak_rss_bytes"] < 4 * 2**30
    # the pipeline's in-scope cost is the seed's (float) sum of the application's line items, to the cent
    assert abs(Decimal(figures["pipeline"]["in_scope_cost"]) - Decimal(figures["seed"]["in_scope_cost"])) < Decimal("0.01")
    assert figures["pipeline"]["rows"]["tenant_costs"] > 0 and figures["pipeline"]["rows"]["reconciliation_report"] > 0
    assert not (tmp_path / "data" / "rows-2000").exists()  # --clean


def test_an_approach_beyond_the_memory_limit_is_stopped_and_reported(tmp_path):
    results = tmp_path / "results.md"
    assert main(["--rows", "2000", "--tenants", "12", "--data-dir", str(tmp_path / "data"), "--approaches", "seed",
                 "--rss-limit", "20MiB", "--results", str(results), "--clean"]) == 0
    (seed,) = json.loads(results.with_suffix(".json").read_text())["results"]
    assert seed["did_not_fit"] is True and seed["peak_rss_bytes"] > 20 * 2**20
    assert "| (b) seed (pandas) | did not fit: stopped at" in results.read_text()


def test_the_profile_times_what_each_asset_and_its_readers_run(tmp_path):
    """--profile-only times the warehouse's statements, the readers' own DuckDB (scratch) statements and their
    file reading, attributed to the asset or check that ran them: none of it may silently go untimed."""
    results = tmp_path / "results.md"
    assert main(["--rows", "2000", "--tenants", "12", "--data-dir", str(tmp_path / "data"), "--profile-only",
                 "--results", str(results), "--clean"]) == 0
    (profile,) = json.loads(results.with_suffix(".json").read_text())["profiles"]
    timed = {(p["asset"], p["what"]) for p in profile["profile"]}
    for asset, what in [("cur_line_items", "python: discover()"),
                        ("usage_shares", "python: read_usage_evidence()"),
                        ("usage_shares", "python: log_line_tables()"),
                        ("usage_shares", "python: read_inventory_usage()"),
                        ("estimated_usage", "python: read_estimates()")]:
        assert (asset, what) in timed
    by_asset = {asset for asset, what in timed if what.startswith("sql: ")}
    assert {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
            "check:tenant_costs", "check:hourly_cost_facts"} <= by_asset
    # the readers' scratch DuckDB: the log parsing's statements are timed inside usage_shares
    assert sum(1 for asset, what in timed if asset == "usage_shares" and what.startswith("sql: ")) >= 3


@pytest.mark.slow
@pytest.mark.xdist_group("spark-cluster")  # a cluster of its own: after the Spark Connect cluster test
def test_the_scaling_figure_runs_on_a_two_worker_cluster(tmp_path):
    """--scaling at a tiny size: DuckDB and the standalone cluster the script starts (its driver this script's
    worker process, each executor a JVM of its own on a worker) write the same rows, to the digit, and the
    cluster's master and each worker (with its executor) have their memory sampled. This is the suite's run of the
    classic driver on a cluster (engines/test_spark_cluster.py runs the whole Definitions through Spark Connect)."""
    from benchmarks.run_benchmark import CORE_CHAIN
    from billing_pipeline_tests.engines.spark_support import all_duckdb_rows, all_spark_rows

    results, runs = tmp_path / "results.md", tmp_path / "runs"
    assert main(["--scaling", "--approaches", "pipeline", "spark-cluster", "--rows", "2000", "--tenants", "12",
                 "--spark-memory", "1g", "--data-dir", str(tmp_path / "data"), "--results", str(results),
                 "--keep-runs", str(runs), "--clean"]) == 0
    figures = {r["approach"]: r for r in json.loads(results.with_suffix(".json").read_text())["results"]}
    duckdb_run, cluster = figures["pipeline"], figures["spark-cluster"]
    assert cluster["in_scope_cost"] == duckdb_run["in_scope_cost"]
    assert {t: cluster["rows"][t] for t in cluster["rows"]} == {t: duckdb_run["rows"][t] for t in cluster["rows"]}
    for table in CORE_CHAIN:  # each approach's warehouse, kept under runs/rows-2000/<approach>/
        on_duckdb = all_duckdb_rows(runs / "rows-2000" / "pipeline", table)
        assert on_duckdb, table
        assert all_spark_rows(runs / "rows-2000" / "spark-cluster", table) == on_duckdb, table
    assert duckdb_run["log_lines"] > 2 * 2000  # 10x the generator's default log lines: ~2.7 per requested row
    assert set(cluster["other_peak_rss_bytes"]) == {"master", "worker-1", "worker-2"}
    # a daemon alone (256 MiB heap) stays near 240 MiB, as the master does; a worker's tree includes the executor
    # JVM it launched for the run
    peaks = cluster["other_peak_rss_bytes"]
    assert 50 * 2**20 < peaks["master"] < 400 * 2**20
    assert peaks["worker-1"] > 400 * 2**20 and peaks["worker-2"] > 400 * 2**20
    assert cluster["total_peak_rss_bytes"] > cluster["peak_rss_bytes"]
    text = results.read_text()
    assert "| (a) pipeline on a Spark standalone cluster (2 workers x 1 core) |" in text
    assert "driver peak RSS MiB | workers' peak RSS MiB (each)" in text


def test_the_realtime_refresh_benchmark_runs_on_a_tiny_month(tmp_path, capsys, monkeypatch):
    """benchmarks/realtime_refresh.py: the chain, the CUR cut, the hourly refresh (which reads only the evidence
    after the cut, and republishes), the whole-month re-read it replaces, the sensor's tick."""
    from benchmarks.realtime_refresh import main as refresh_main

    for name in ("BILLING_CUR_URI", "BILLING_LOGS_URI", "BILLING_S3_INVENTORY_URI", "BILLING_USAGE_URI",
                 "BILLING_WAREHOUSE"):
        monkeypatch.setenv(name, "")  # set by the script; restored after the test
    assert refresh_main(["--data", str(tmp_path / "month"), "--rows", "2000", "--tenants", "12",
                         "--covered-through", "2026-01-30T18", "2026-01-20T18"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["covered_through"] for r in out["refreshes"]] == ["2026-01-30 18:00:00", "2026-01-20 18:00:00"]
    late, early = out["refreshes"]
    # the evidence is read from the day the CUR does not cover whole; the earlier cut reads more of it
    assert (late["read_from"], early["read_from"]) == ("2026-01-30 00:00:00", "2026-01-20 00:00:00")
    assert 0 < late["files_read"] < early["files_read"] and 0 < late["log_lines_read"] < early["log_lines_read"]
    assert (late["hours_estimated"], early["hours_estimated"]) == (30, 270)
    assert {"usage_shares", "month_to_date", "published_billing"} <= set(late["step_seconds"])
    assert out["month_log_files"] > 0 and out["sensor_interval_seconds"] == 60
