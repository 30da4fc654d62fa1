"""The load test (benchmarks/api_load.py) at smoke size, so it cannot rot: concurrent clients with their own tokens
while the month is re-materialized and re-published; every answer 2xx, the new snapshot served."""

from __future__ import annotations

import json

from benchmarks.api_load import main


def test_clients_get_only_2xx_while_the_month_is_republished(tmp_path):
    results = tmp_path / "api_load.json"
    assert main(["--clients", "8", "--runs", "1", "--seconds", "120", "--tenants", "3", "--rows", "1500",
                 "--pipeline-nice", "0", "--data-dir", str(tmp_path / "data"), "--results", str(results)]) == 0
    figures = json.loads(results.read_text())
    assert figures["non_2xx"] == 0 and set(figures["statuses"]) == {"200"}
    assert figures["rematerializations"] == 1 and figures["failed_rematerializations"] == 0
    assert figures["snapshots_served"] == 2  # the first publication, then the one published under load
    assert figures["requests"] > 8
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
