"""Chargeback statements (cents by largest remainder) and the CSV / Parquet exports; the generated month's
pricing feedback against the sample generator's oracle (one materialization serves both)."""

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal as D

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize

from billing_pipeline.catalog import load_catalog
from billing_pipeline.assets.statements import split_cents, statement_rows
from billing_pipeline.exports import arrow_schema, export_paths, to_csv, write_exports
from billing_pipeline.money import largest_remainder_cents
from billing_pipeline.pricing import parse_pricing
from billing_pipeline.resources.billing_config import BillingConfig
from billing_pipeline.storage import locate

JAN = dt.date(2026, 1, 1)
CENT = D("0.01")
E18 = D("0.000000000000000001")
RESOURCE_TYPES = {s.name: s.resource_type for s in load_catalog().services.values()}


def test_split_cents_hits_the_target_with_largest_remainders():
    assert split_cents({"lambda": D("1.005"), "s3": D("2.004"), "other": D("0.001")}, D("3.01")) == {
        "lambda": D("1.01"), "s3": D("2.00"), "other": D("0.00")}
    # the tenant got one cent more than its lines round to: the next largest remainder takes it
    assert split_cents({"lambda": D("1.005"), "s3": D("2.004"), "other": D("0.001")}, D("3.02")) == {
        "lambda": D("1.01"), "s3": D("2.01"), "other": D("0.00")}
    # credits: negative target by symmetry; a negative line inside a positive tenant
    assert split_cents({"lambda": D("-1.005"), "s3": D("-0.004")}, D("-1.01")) == {"lambda": D("-1.01"), "s3": D("0.00")}
    assert split_cents({"lambda": D("2.006"), "credit": D("-0.503")}, D("1.50")) == {"lambda": D("2.00"),
                                                                                   "credit": D("-0.50")}


def test_statement_rows_add_up_per_tenant_and_overall():
    lines = [
        ("a", "lambda", "USD", "unblended", D("1.0040000000"), D("0.0010000000"), D("1.0050000000")),
        ("a", "s3", "USD", "unblended", D("0"), D("2.0040000000"), D("2.0040000000")),
        ("b", "lambda", "USD", "unblended", D("0"), D("0.3330000000"), D("0.3330000000")),
        ("b", "other", "USD", "unblended", D("0.3340000000"), D("0"), D("0.3340000000")),
        ("unattributed", "other", "USD", "unblended", D("0"), D("0.3330000000"), D("0.3330000000")),
    ]
    rows = statement_rows(lines, JAN, False)
    amounts = {(r["accountant_id"], r["line"]): r["amount"] for r in rows}
    # tenants: 3.009 -> 3.00 (+1 by remainder .009) = 3.01; 0.667 -> 0.66 (+1 by .007) = 0.67; 0.333 -> 0.33
    # total 4.009 -> 4.01 = 3.01 + 0.67 + 0.33
    assert amounts == {
        ("a", "lambda"): D("1.01"), ("a", "s3"): D("2.00"), ("a", "total"): D("3.01"),
        ("b", "lambda"): D("0.33"), ("b", "other"): D("0.34"), ("b", "total"): D("0.67"),
        ("unattributed", "other"): D("0.33"), ("unattributed", "total"): D("0.33"),
    }
    total_a = next(r for r in rows if r["accountant_id"] == "a" and r["line"] == "total")
    assert (total_a["direct_cost"], total_a["shared_cost"], total_a["cost"]) == (D("1.004"), D("2.005"), D("3.009"))
    assert [r["line"] for r in rows if r["accountant_id"] == "a"] == ["lambda", "s3", "total"]


def test_csv_is_safe_against_formula_injection_and_keeps_numbers_numeric():
    table = pa.table({
        "accountant_id": ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "acc, \"quoted\"",
                          "plain", None],
        "cost": pa.array([D("-1.25"), D("0"), D("2.5000000000"), D("-0.0000000001"), D("1"), D("1"), D("1"), D("1"),
                          None], pa.decimal128(38, 10)),
        "flagged": [True, False, True, False, True, False, True, False, None],
        "usage_date": [JAN] * 9,
    })
    text = to_csv(table).decode("utf-8")
    assert text == (
        "accountant_id,cost,flagged,usage_date\r\n"
        "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-1.2500000000,true,2026-01-01\r\n"
        "'+1,0.0000000000,false,2026-01-01\r\n"
        "'-2+3,2.5000000000,true,2026-01-01\r\n"
        "'@SUM(A1),-0.0000000001,false,2026-01-01\r\n"
        "'\tx,1.0000000000,true,2026-01-01\r\n"
        "\"'\rx\",1.0000000000,false,2026-01-01\r\n"
        "\"acc, \"\"quoted\"\"\",1.0000000000,true,2026-01-01\r\n"
        "plain,1.0000000000,false,2026-01-01\r\n"
        ",,,2026-01-01\r\n"
    )
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[0] for row in parsed[1:]] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx",
                                              "'\rx", "acc, \"quoted\"", "plain", ""]
    assert all(not cell.startswith(("=", "+", "@", "\t", "\r")) for row in parsed for cell in row)


def test_exports_to_s3_overwrite_the_same_objects(aws):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="billing-exports")
    location = locate("s3://billing-exports/tax-demo")
    table = pa.table({"accountant_id": ["=a"], "amount": pa.array([D("1.50")], pa.decimal128(38, 2))})
    first = write_exports(location, "statements", JAN, table)
    assert first == ["s3://billing-exports/tax-demo/statements/statements-2026-01.csv",
                     "s3://billing-exports/tax-demo/statements/statements-2026-01.parquet"]
    table = pa.table({"accountant_id": ["b"], "amount": pa.array([D("2.00")], pa.decimal128(38, 2))})
    assert write_exports(location, "statements", JAN, table) == first
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="billing-exports")["Contents"])
    assert keys == ["tax-demo/statements/statements-2026-01.csv", "tax-demo/statements/statements-2026-01.parquet"]
    body = s3.get_object(Bucket="billing-exports", Key=keys[0])["Body"].read()
    assert body == b"accountant_id,amount\r\nb,2.00\r\n"
    parquet = pq.read_table(io.BytesIO(s3.get_object(Bucket="billing-exports", Key=keys[1])["Body"].read()))
    assert parquet.to_pylist() == [{"accountant_id": "b", "amount": D("2.00")}]


# --- one generated month through the real Definitions --------------------------------------------------------

OUTPUT_ASSETS = {"cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
                 "reconciliation_report", "pricing_feedback", "statements"}


def run(env, names, monkeypatch_context):
    from billing_pipeline.definitions import defs

    for variable, value in env.items():
        monkeypatch_context.setenv(variable, value)
    checks = [c for c in defs.asset_checks if {k.asset_key.to_user_string() for k in c.check_keys} <= set(names)]
    return materialize([a for a in defs.assets if a.key.to_user_string() in names] + checks, resources=defs.resources,
                       partition_key="2026-01-01", instance=DagsterInstance.ephemeral())


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    from billing_pipeline.sample_data import generate_month

    root = tmp_path_factory.mktemp("outputs")
    sample = generate_month(root / "sample", JAN, tenants=3, rows=1200, seed=23)
    env = {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
           "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
           "BILLING_WAREHOUSE": str(root / "w.duckdb"), "BILLING_EXPORT_URI": str(root / "exports")}
    with pytest.MonkeyPatch.context() as mp:
        result = run(env, OUTPUT_ASSETS, mp)
    assert result.success
    return sample, root, env, result


def rows_of(root, sql):
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_statements_of_a_generated_month(month):
    sample, root, _, result = month
    tenant_cost = defaultdict(D)
    for (accountant, _service), cost in sample.expected_costs.items():
        tenant_cost[accountant] += cost
    rows = {(r[0], r[1]): r[2:] for r in rows_of(
        root, "SELECT accountant_id, line, cost, amount, direct_cost + shared_cost, currency, is_final FROM statements")}
    totals = {a: v for (a, line), v in rows.items() if line == "total"}
    assert {a: v[0] for a, v in totals.items()} == {a: c for a, c in tenant_cost.items()}
    assert {a: v[1] for a, v in totals.items()} == largest_remainder_cents(tenant_cost)
    assert sum(v[1] for v in totals.values()) == (sample.in_scope_total + sample.account_level_to_tenants).quantize(
        CENT, rounding=ROUND_HALF_UP)
    assert all(abs(v[1] - v[0]) < CENT for v in totals.values())
    lines = {k: v for k, v in rows.items() if k[1] != "total"}
    expected_lines = defaultdict(D)
    for (accountant, service), cost in sample.expected_costs.items():
        expected_lines[(accountant, RESOURCE_TYPES.get(service, "other"))] += cost
    assert {k: v[0] for k, v in lines.items()} == {k: v for k, v in expected_lines.items()}
    for accountant, total in totals.items():
        assert sum(v[1] for (a, _), v in lines.items() if a == accountant) == total[1]
    assert all(v[0] == v[2] and v[3:] == ("USD", False) for v in rows.values())
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["statement_cents_add_up"] and checks["no_duplicate_statement_lines"]


def test_exports_match_the_tables_and_reruns_overwrite(month, monkeypatch):
    _, root, env, _ = month
    exports = root / "exports"
    location = locate(str(exports))
    files = {}
    for name, order in (("statements", "currency, accountant_id, line = 'total', line"),
                        ("reconciliation_report", "accountant_id, resource_type = 'total', resource_type, currency")):
        paths = export_paths(location, name, JAN)
        assert paths == {"csv": f"{exports}/{name}/{name}-2026-01.csv",
                         "parquet": f"{exports}/{name}/{name}-2026-01.parquet"}
        expected = rows_of(root, f"SELECT * FROM {name} ORDER BY {order}")
        parquet = pq.read_table(paths["parquet"])
        assert parquet.schema == arrow_schema(name)
        assert [tuple(r.values()) for r in parquet.to_pylist()] == expected
        with open(paths["csv"], newline="", encoding="utf-8") as handle:
            parsed = list(csv.reader(handle))
        assert parsed[0] == arrow_schema(name).names
        assert len(parsed) == len(expected) + 1
        money = parsed[0].index("actual_cost" if name == "reconciliation_report" else "cost")
        assert [D(r[money]) for r in parsed[1:]] == [row[money] for row in expected]
        files.update({p: open(p, "rb").read() for p in paths.values()})
    before = sorted(p.relative_to(exports) for p in exports.rglob("*"))

    assert run(env, {"statements"}, monkeypatch).success
    assert sorted(p.relative_to(exports) for p in exports.rglob("*")) == before
    assert {p: open(p, "rb").read() for p in files} == files


def test_pricing_feedback_of_a_generated_month_against_the_oracle(month):
    from billing_pipeline import sample_data_oracle as oracle

    sample, root, _, result = month
    pricing = parse_pricing(BillingConfig().pricing_text())
    expected_cost = defaultdict(int)
    for allocation in sample.allocations:
        if allocation.driver is not None:
            expected_cost[(allocation.service, allocation.driver)] += allocation.cost_units
    quantities = dict(((s, d), q) for s, d, q in rows_of(
        root, "SELECT service, driver, sum(quantity) FROM usage_shares GROUP BY ALL"))
    rows = {(r[0], r[1]): r[2:] for r in rows_of(
        root, """SELECT service, driver, quantity, actual_cost, implied_unit_cost, configured_unit_cost, flagged,
                        suggested_unit_cost, bill_quantity FROM pricing_feedback WHERE accountant_id = 'total'""")}
    assert {k: v[1] for k, v in rows.items() if v[1] != 0} == {
        k: D(v) / D(10**10) for k, v in expected_cost.items() if v != 0}
    for (service, driver), (quantity, _actual, implied, configured, flagged, suggested, billed) in rows.items():
        assert quantity == quantities.get((service, driver))
        if driver == "combined" or (service, driver) not in sample.bill_quantities:
            assert (implied, flagged, billed) == (None, False, None)
            continue
        # the oracle's bill: usage amount and cost of the driver's own usage types
        bill_quantity, bill_units = sample.bill_quantities[(service, driver)]
        exact = oracle.implied_unit_cost(bill_units, bill_quantity)
        assert (billed, implied) == (bill_quantity, exact)
        assert configured == pricing.driver_prices[(service, driver)]
        assert flagged == (abs(exact - configured) * 100 > 10 * configured)
        assert suggested == (exact.quantize(D("1e-12"), rounding=ROUND_HALF_UP) if flagged else None)
    # the sample bills every driver at the pricing constants: whatever the logs missed, nothing is flagged
    assert [k for k, r in rows.items() if r[4]] == []

    check = next(e for e in result.get_asset_check_evaluations()
                 if e.check_name == "pricing_constants_within_threshold")
    assert check.passed
    metadata = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.materialization.asset_key.to_user_string() == "pricing_feedback")
    # nothing flagged: the suggestion is every driver's current constant (the catalog's, the file sets none)
    current = defaultdict(dict)
    for (service, driver), price in pricing.driver_prices.items():
        current[service][driver] = format(price.normalize(), "f")
    assert metadata["suggested_pricing"].value["drivers"] == current
    assert (root / "exports/pricing_feedback/pricing_feedback-2026-01.csv").is_file()
    assert (root / "exports/pricing_feedback/pricing_feedback-2026-01.parquet").is_file()


def test_csv_writes_no_nan_and_no_float_noise():
    """A DOUBLE column (a share) and a missing value as NaN: exact shortest decimals, and '' for missing."""
    table = pa.table({"share": pa.array([0.000139644, float("nan"), 1e-7, None], pa.float64()),
                      "net_amortized_cost": pa.array([None, D("1E-10"), None, D("3")], pa.decimal128(38, 10))})
    assert to_csv(table).decode("utf-8") == (
        "share,net_amortized_cost\r\n0.000139644,\r\n,0.0000000001\r\n0.0000001,\r\n,3.0000000000\r\n")


# A one-off `statements` run in a process of its own whose exports wait, once written in memory, until the file
# `go` exists (announcing it with the file `exporting`): the older of two overlapping runs
SLOW_EXPORTER = """
import os, sys, time
from dagster import DagsterInstance, materialize
import billing_pipeline.assets.statements as statements_module
from billing_pipeline.definitions import defs
flags = sys.argv[1]
real_write_exports = statements_module.write_exports

def write_exports_when_told(*args, **kwargs):
    open(os.path.join(flags, "exporting"), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(flags, "go")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return real_write_exports(*args, **kwargs)

statements_module.write_exports = write_exports_when_told
result = materialize([a for a in defs.assets if a.key.to_user_string() == "statements"], resources=defs.resources,
                     partition_key="2026-01-01", instance=DagsterInstance.ephemeral(), raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def test_an_older_run_never_exports_over_a_newer_one(month, tmp_path, monkeypatch):
    """Two `statements` runs of January overlap (a one-off materialization beside the schedule, each on its own
    instance: no Dagster pool between them). The first has read the month and is about to write its files when
    the month is restated (the first tenant's cost doubled) and a second run writes its statements and exports.
    The files must end with what the warehouse holds, the second run's statements (acct-0001's total 19.8445791908,
    19.84 USD): the first run wrote its files after it had let go of the warehouse, so its older statements
    (9.9222895954, 9.92 USD) replaced the newer ones in both files and stayed."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    from pathlib import Path

    _, root, env, _ = month
    shutil.copy(root / "w.duckdb", tmp_path / "w.duckdb")
    env = {**env, "BILLING_WAREHOUSE": str(tmp_path / "w.duckdb"), "BILLING_EXPORT_URI": str(tmp_path / "exports")}
    flags = tmp_path / "flags"
    flags.mkdir()
    log = tmp_path / "first.log"
    with open(log, "w") as output:
        first = subprocess.Popen([sys.executable, "-c", SLOW_EXPORTER, str(flags)],
                                 env={**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                                 stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not (flags / "exporting").exists():
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.1)

    def restate():  # acct-0001's cost doubled: 9.9222895954 -> 19.8445791908
        with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
            con.execute("UPDATE tenant_costs SET cost = cost * 2 WHERE accountant_id = 'acct-0001'")

    try:
        restate()
    except duckdb.IOException:  # the first run still holds the warehouse while it exports: the second comes after
        (flags / "go").touch()
        assert first.wait(timeout=180) == 0, log.read_text()[-4000:]
        restate()
    assert run(env, {"statements"}, monkeypatch).success
    (flags / "go").touch()
    assert first.wait(timeout=180) == 0, log.read_text()[-4000:]

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        restated = con.execute("SELECT * FROM statements ORDER BY currency, accountant_id, line = 'total', line"
                               ).fetchall()
    exported = pq.read_table(tmp_path / "exports/statements/statements-2026-01.parquet")
    assert [(r["cost"], r["amount"]) for r in exported.to_pylist()
            if (r["accountant_id"], r["line"]) == ("acct-0001", "total")] == [(D("19.8445791908"), D("19.84"))]
    assert [tuple(r.values()) for r in exported.to_pylist()] == restated
    with open(tmp_path / "exports/statements/statements-2026-01.csv", newline="", encoding="utf-8") as handle:
        assert [D(r["amount"]) for r in csv.DictReader(handle)] == [r[8] for r in restated]
