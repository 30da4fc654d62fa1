"""Benchmark: the pipeline against the seed's pandas approach and the DuckDB floor, on one generated month.

    .venv/bin/python -m benchmarks.run_benchmark --rows 1000000              # one size
    nice -n 10 .venv/bin/python -m benchmarks.run_benchmark --rows 1000000 10000000 30000000 --profile

For each size it generates (or reuses) a month with `benchmarks.generate` under `--data-dir`, then runs, each in
a fresh subprocess whose process tree's RSS is sampled with psutil:

  (a) pipeline  the real Definitions' six assets materialized for the partition (raw CUR + logs + inventory +
                estimates -> cur_line_items -> hourly_cost_facts, usage_shares, estimated_usage -> tenant_costs ->
                reconciliation_report) into a fresh DuckDB warehouse, exactly as `dagster asset materialize` would;
  (b) seed      the seed's approach: pandas read_parquet of the month's files, filter on the application tag,
                group by accountant / service / date, sum the unblended cost;
  (c) floor     one DuckDB pass over the same files reading the columns the pipeline reads, summing cost by
                hour x service x usage type x resource x accountant_id into a table of a DuckDB file.

It prints a markdown table (wall time, line items per second, peak RSS, ratios a/b and a/c) and writes it, with
the raw figures as JSON, to `--results` (default `benchmarks/results/<date>-<sizes>.md`). With `--profile` it also
runs (a) once more with every DuckDB statement and reader call timed (not counted in the table) and prints where
the time goes, per asset and per statement. BILLING_DUCKDB_MEMORY_LIMIT / BILLING_DUCKDB_THREADS (or
`--memory-limit` / `--threads`) bound DuckDB in (a) and (c) alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APPLICATION = "tax-demo"
APPROACHES = {"pipeline": "(a) pipeline", "seed": "(b) seed (pandas)",
              "seed-columns": "(b') seed reading only its 5 columns", "floor": "(c) floor (DuckDB)",
              "spark": "(a) pipeline on Spark local[2]",
              "spark-cluster": "(a) pipeline on a Spark standalone cluster (2 workers x 1 core)"}
DEFAULT_APPROACHES = ["pipeline", "seed", "seed-columns", "floor"]  # spark is opt-in: a JVM and local mode on 2 cores
# --scaling: one month on DuckDB, Spark local[2] and a 2-worker standalone cluster, with 10x the generator's log lines
SCALING_APPROACHES = ["pipeline", "spark", "spark-cluster"]
SCALING_LOG_FACTOR = 10  # invocations = 10 x the default rows / 20: about 2.7 log lines per line item
# A process tree above this is stopped and reported as not fitting (the machine has no swap; the seed's whole-month
# frame outgrows it somewhere between 10M and 100M line items).
DEFAULT_RSS_LIMIT = "16GiB"
CORE_CHAIN = ["cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
              "reconciliation_report"]


# ------------------------------------------------------------------------------------------------------------
# The three approaches (each runs in its own subprocess: `python -m benchmarks.run_benchmark --worker ...`)


def cur_files(data: dict) -> list[str]:
    """The data files the month's manifest names (what every approach reads)."""
    cur = Path(data["cur_uri"])
    manifest = next(cur.rglob("*-Manifest.json"))
    keys = json.loads(manifest.read_text())["reportKeys"]
    return [str(cur / key) for key in keys]


def run_pipeline(data: dict, work: Path, profile: bool) -> dict:
    """(a): the real Definitions' assets for the partition, in this process (in-process executor, as defs)."""
    os.environ.update({
        "BILLING_CUR_URI": data["cur_uri"], "BILLING_LOGS_URI": data["logs_uri"],
        "BILLING_S3_INVENTORY_URI": data["inventory_uri"], "BILLING_USAGE_URI": data["usage_uri"],
        "BILLING_WAREHOUSE": str(work / "warehouse.duckdb"),
    })
    from dagster import DagsterEventType, DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    resources = dict(defs.resources)
    timings = None
    if profile:
        timings = Timings()
        resources["warehouse"] = timings.instrument()
    partition = f"{data['month'][:7]}-01"
    began = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        result = materialize([*defs.assets, *defs.asset_checks], resources=resources, partition_key=partition, instance=instance)
        seconds = time.perf_counter() - began
        assert result.success
        starts, steps, windows = {}, {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                steps[event.step_key] = round(entry.timestamp - starts[event.step_key], 3)
                windows[event.step_key] = [starts[event.step_key], entry.timestamp]
    import duckdb

    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in (
            "cur_line_items", "hourly_cost_facts", "usage_shares", "estimated_usage", "tenant_costs",
            "reconciliation_report")}
        # the tagged cost only (the tenants' part of untagged tax and credits is not in the seed's figure)
        in_scope = con.execute(
            "SELECT sum(cost) FROM tenant_costs WHERE allocation <> 'proportional'").fetchall()[0][0]
    out = {"seconds": seconds, "line_items": counts["cur_line_items"], "steps": steps, "rows": counts,
           "in_scope_cost": str(in_scope), "step_windows": windows}
    if timings:
        out["profile"] = timings.report()
    return out


def run_spark(data: dict, work: Path, profile: bool) -> dict:
    """(a) with BILLING_ENGINE=spark: the core chain (cur_line_items .. reconciliation_report), the same assets and
    SQL, tables as Parquet datasets under the run's folder. In local mode unless the parent named a cluster's
    master (spark-cluster: BILLING_SPARK_MASTER=spark://127.0.0.1:...)."""
    os.environ.update({
        "BILLING_CUR_URI": data["cur_uri"], "BILLING_LOGS_URI": data["logs_uri"],
        "BILLING_S3_INVENTORY_URI": data["inventory_uri"], "BILLING_USAGE_URI": data["usage_uri"],
        "BILLING_ENGINE": "spark", "BILLING_SPARK_WAREHOUSE": str(work / "spark-warehouse"),
    })
    os.environ.setdefault("BILLING_SPARK_MASTER", "local[2]")
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from dagster import AssetSelection, DagsterInstance, materialize

    from billing_pipeline.definitions import defs

    began = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        result = materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, selection=AssetSelection.assets(*CORE_CHAIN),
                             partition_key=f"{data['month'][:7]}-01", instance=instance)
    seconds = time.perf_counter() - began
    assert result.success
    tables = {t: ds.dataset(str(work / "spark-warehouse" / t), format="parquet", partitioning="hive")
              for t in CORE_CHAIN}
    counts = {t: d.count_rows() for t, d in tables.items()}
    in_scope = pc.sum(tables["tenant_costs"].to_table(columns=["cost"],
                                                      filter=pc.field("allocation") != "proportional")["cost"]).as_py()
    return {"seconds": seconds, "line_items": counts["cur_line_items"], "steps": {}, "rows": counts,
            "in_scope_cost": str(in_scope)}


SEED_COLUMNS = ["line_item_usage_start_date", "line_item_product_code", "line_item_unblended_cost",
                "resource_tags_user_accountant_id", "resource_tags_user_application"]


def run_seed(data: dict, work: Path, profile: bool, columns: list[str] | None = None) -> dict:
    """(b): what the seed did: the month's files read whole into one pandas frame (as wide as AWS's files, 137
    columns here), filtered on the application tag, grouped by accountant / service / date."""
    import pandas as pd

    began = time.perf_counter()
    frame = pd.read_parquet(cur_files(data), columns=columns)
    line_items = len(frame)
    app = frame[frame["resource_tags_user_application"] == APPLICATION]
    app = app.assign(usage_date=app["line_item_usage_start_date"].dt.date)
    costs = (app.groupby(["resource_tags_user_accountant_id", "line_item_product_code", "usage_date"])
             ["line_item_unblended_cost"].sum().reset_index())
    costs.to_csv(work / "seed_costs.csv", index=False)
    return {"seconds": time.perf_counter() - began, "line_items": line_items, "rows": {"costs": len(costs)},
            "in_scope_cost": f"{costs['line_item_unblended_cost'].sum():.10f}"}


# 21 of the 28 columns the pipeline's CUR reader projects from these files (cur_staging._Projection.read_columns);
# the other 7 are reservation / savings-plan columns, all NULL in the generated data.
FLOOR_SQL = """
CREATE OR REPLACE TABLE hourly_cost AS
SELECT date_trunc('hour', line_item_usage_start_date AT TIME ZONE 'UTC') AS usage_hour,
       line_item_product_code AS service, line_item_usage_type AS usage_type,
       line_item_resource_id AS resource_id, resource_tags_user_accountant_id AS accountant_id,
       sum(CAST(line_item_unblended_cost AS DECIMAL(38, 10))) AS unblended_cost,
       sum(CAST(line_item_usage_amount AS DECIMAL(38, 10))) AS usage_amount,
       count(*) AS line_items,
       max(line_item_usage_end_date) AS usage_end, max(bill_billing_period_start_date) AS billing_period,
       max(bill_payer_account_id) AS payer, max(bill_invoice_id) AS invoice_id,
       max(identity_line_item_id) AS line_item_id, max(line_item_usage_account_id) AS usage_account_id,
       max(line_item_line_item_type) AS line_item_type, max(line_item_operation) AS operation,
       max(line_item_line_item_description) AS description, max(line_item_currency_code) AS currency,
       max(reservation_reservation_a_r_n) AS reservation, max(resource_tags_user_application) AS application,
       max(resource_tags_user_environment) AS environment, max(resource_tags_user_cost_center) AS cost_center
FROM read_parquet($files)
GROUP BY ALL
"""


def run_floor(data: dict, work: Path, profile: bool) -> dict:
    """(c): one DuckDB pass, same memory/thread settings as the pipeline's warehouse."""
    import duckdb

    config = {}
    if os.environ.get("BILLING_DUCKDB_MEMORY_LIMIT"):
        config["memory_limit"] = os.environ["BILLING_DUCKDB_MEMORY_LIMIT"]
    if os.environ.get("BILLING_DUCKDB_THREADS"):
        config["threads"] = int(os.environ["BILLING_DUCKDB_THREADS"])
    path = work / "floor.duckdb"
    config["temp_directory"] = str(path) + ".tmp"
    began = time.perf_counter()
    with duckdb.connect(str(path), config=config) as con:
        con.execute("SET TimeZone = 'UTC'")
        files = cur_files(data)
        con.execute(FLOOR_SQL, {"files": files})
        (rows,) = con.execute("SELECT count(*) FROM hourly_cost").fetchall()[0]
        (line_items,) = con.execute("SELECT sum(line_items) FROM hourly_cost").fetchall()[0]
    return {"seconds": time.perf_counter() - began, "line_items": int(line_items), "rows": {"hourly_cost": rows}}


def run_seed_columns(data: dict, work: Path, profile: bool) -> dict:
    """(b'): the seed's approach with one improvement it did not have: only its five columns are read."""
    return run_seed(data, work, profile, columns=SEED_COLUMNS)


WORKERS = {"pipeline": run_pipeline, "seed": run_seed, "seed-columns": run_seed_columns, "floor": run_floor,
           "spark": run_spark, "spark-cluster": run_spark}


# ------------------------------------------------------------------------------------------------------------
# Profiling (a): every DuckDB statement and reader call timed, attributed to the asset that ran it


class Timings:
    def __init__(self):
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, label: str, seconds: float, call: bool = True) -> None:
        key = (_calling_asset(), label)
        self.seconds[key] += seconds
        self.calls[key] += call

    def timed(self, label: str, fn):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            result = fn(*args, **kwargs)
            if inspect.isgenerator(result):  # a streaming reader: its work happens as it is iterated
                return self._timed_iteration(label, result, time.perf_counter() - began)
            self.add(label, time.perf_counter() - began)
            return result
        return wrapper

    def _timed_iteration(self, label: str, generator, seconds: float):
        """The generator's items, the time spent producing them added once, when it is done."""
        try:
            while True:
                began = time.perf_counter()
                try:
                    item = next(generator)
                except StopIteration:
                    return
                finally:
                    seconds += time.perf_counter() - began
                yield item
        finally:
            self.add(label, seconds)

    def instrument(self):
        """A DuckDBWarehouse whose connections time each statement; the readers' own DuckDB connections
        (scratch_connection) and their file reading functions are wrapped too, in every module that imported them
        by name (in this subprocess only). A name found nowhere stops the run: a profile that silently times
        nothing is worse than none."""
        from billing_pipeline.engines import duckdb_engine
        from billing_pipeline.resources.warehouse import DuckDBWarehouse

        timings = self

        class TimedWarehouse(DuckDBWarehouse):
            @contextmanager
            def connect(self):
                with DuckDBWarehouse.connect(self) as con:
                    if hasattr(con, "con"):  # an engine wrapping the DuckDB connection (billing_pipeline.engines)
                        con.con = _TimedConnection(con.con, timings)
                        yield con
                    else:
                        yield _TimedConnection(con, timings)

        scratch = duckdb_engine.scratch_connection

        def timed_scratch_connection():
            return _TimedConnection(scratch(), timings)

        _replace_everywhere("scratch_connection", scratch, timed_scratch_connection)
        for name in PROFILED_FUNCTIONS:
            original = _defined(name)
            _replace_everywhere(name, original, self.timed(f"python: {name}()", original))
        return TimedWarehouse()

    def report(self) -> list[dict]:
        return [{"asset": asset, "what": label, "calls": self.calls[(asset, label)], "seconds": round(s, 3)}
                for (asset, label), s in sorted(self.seconds.items(), key=lambda kv: -kv[1])]


# The readers' functions that read files or services, timed wherever they are called from
PROFILED_FUNCTIONS = ["discover", "read_usage_evidence", "read_inventory_usage", "read_lines_of_files",
                      "log_line_tables", "read_estimates"]


def _pipeline_modules():
    return [m for name, m in list(sys.modules.items()) if name.startswith("billing_pipeline.") and m is not None]


def _defined(name: str):
    """The function `name` from the module that defines it."""
    for module in _pipeline_modules():
        value = getattr(module, name, None)
        if callable(value) and getattr(value, "__module__", None) == module.__name__:
            return value
    raise RuntimeError(f"profiler: no billing_pipeline module defines {name}(): update PROFILED_FUNCTIONS")


def _replace_everywhere(name: str, original, replacement) -> None:
    patched = [m for m in _pipeline_modules() if getattr(m, name, None) is original]
    if not patched:
        raise RuntimeError(f"profiler: no billing_pipeline module uses {name}: the profile would measure nothing")
    for module in patched:
        setattr(module, name, replacement)


def _calling_asset() -> str:
    """The asset (or `check:<table>`) whose code is on the stack."""
    frame = sys._getframe(2)
    while frame is not None:
        match = re.search(r"billing_pipeline/(assets|checks)/(\w+)\.py$", frame.f_code.co_filename)
        if match and match.group(2) != "common":
            return match.group(2) if match.group(1) == "assets" else f"check:{match.group(2)}"
        frame = frame.f_back
    return "?"


def sql_label(sql: str) -> str:
    lines = [line.strip() for line in sql.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
    text = re.sub(r"\s+", " ", " ".join(lines[:2]))
    text = re.sub(r"cur_file_[0-9a-f]{32}", "cur_file_<n>", text)
    return "sql: " + (text[:110] + "..." if len(text) > 110 else text)


class _TimedResult:
    def __init__(self, result, label, timings):
        self._result, self._label, self._timings = result, label, timings

    def __getattr__(self, name):
        attr = getattr(self._result, name)
        if callable(attr) and name in ("fetchall", "df", "fetch_arrow_table", "to_arrow_table", "arrow", "fetchdf",
                                       "fetchmany", "pl"):
            def fetch(*args, **kwargs):
                began = time.perf_counter()
                try:
                    return attr(*args, **kwargs)
                finally:
                    self._timings.add(self._label, time.perf_counter() - began, call=False)
            return fetch
        return attr


class _TimedConnection:
    def __init__(self, con, timings):
        self._con, self._timings = con, timings

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

    def _run(self, method, sql, *args, **kwargs):
        label = sql_label(sql)
        began = time.perf_counter()
        result = getattr(self._con, method)(sql, *args, **kwargs)
        self._timings.add(label, time.perf_counter() - began)
        return _TimedResult(result, label, self._timings) if result is not None else result

    def execute(self, sql, *args, **kwargs):
        return self._run("execute", sql, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        return self._run("sql", sql, *args, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# The parent: generate, run each approach in a subprocess, sample its RSS, tabulate


def measure(approach: str, data_json: Path, work: Path, env: dict, profile: bool = False,
            rss_limit: int | None = None, others: dict[str, int] | None = None) -> dict:
    """Run one approach in a fresh subprocess; wall time and the peak RSS of its process tree (the driver). A tree
    that grows beyond `rss_limit` bytes is killed and reported as not fitting (`did_not_fit`), instead of the OOM
    killer taking the machine down. `others`: processes already running that the approach uses (a Spark cluster's
    master and workers, by name -> pid): the peak RSS of each one's tree (a worker's includes its executor JVM
    and Python workers) is sampled alongside, and the peak of everything together."""
    import psutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out_json = work / "result.json"
    cmd = [sys.executable, "-m", "benchmarks.run_benchmark", "--worker", approach, "--data-json", str(data_json),
           "--work", str(work), "--out-json", str(out_json)] + (["--profile"] if profile else [])
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    other_peaks = dict.fromkeys(others or {}, 0)
    total_peak = 0
    samples: list[tuple[float, int]] = []  # (epoch s, tree RSS): each step's peak, matched to its window
    killed = False
    stop = threading.Event()

    def tree_rss(pid: int) -> int:
        try:
            root = psutil.Process(pid)
            return sum(p.memory_info().rss for p in [root] + root.children(recursive=True))
        except psutil.Error:
            return 0

    def sample():
        nonlocal peak, killed, total_peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            together = 0
            for name, pid in (others or {}).items():
                rss = tree_rss(pid)
                other_peaks[name] = max(other_peaks[name], rss)
                together += rss
            try:
                tree = [root] + root.children(recursive=True)
                rss = sum(p.memory_info().rss for p in tree)
                peak = max(peak, rss)
                total_peak = max(total_peak, rss + together)
                samples.append((time.time(), rss))
                if rss_limit and rss > rss_limit and not killed:
                    killed = True
                    for p in reversed(tree):
                        p.kill()
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - began
    stop.set()
    sampler.join()
    if killed:
        data = json.loads(data_json.read_text())
        return {"approach": approach, "wall_seconds": wall, "peak_rss_bytes": peak, "seconds": wall,
                "line_items": data["rows"], "did_not_fit": True, "rows": {}}
    if proc.returncode != 0:
        # recorded, not raised: at 100M line items the floor's one GROUP BY may not fit DuckDB's memory limit,
        # and that is a result too
        text = output.decode(errors="replace").strip()
        (work / "output.log").write_text(text)  # whole: a JVM's stack trace can bury the Python error that caused it
        causes = [line for line in text.splitlines() if re.match(r"\s*(\w+\.)*\w*(Error|Exception)\b", line)]
        print("\n".join(causes[-12:]) + f"\n(whole output: {work / 'output.log'})", flush=True)
        data = json.loads(data_json.read_text())
        return {"approach": approach, "wall_seconds": wall, "peak_rss_bytes": peak, "seconds": wall,
                "line_items": data["rows"],
                "failed": (causes or text.splitlines())[-1][:300] if text else f"exit {proc.returncode}",
                "rows": {}}
    result = json.loads(out_json.read_text())
    result.update({"approach": approach, "wall_seconds": wall, "peak_rss_bytes": peak})
    if others:
        result.update({"other_peak_rss_bytes": other_peaks, "total_peak_rss_bytes": total_peak})
    result["step_peak_rss_bytes"] = {
        step: max((rss for t, rss in samples if start <= t <= end), default=0)
        for step, (start, end) in result.pop("step_windows", {}).items()
    }
    return result


def ensure_data(data_dir: Path, rows: int, tenants: int, invocations: int | None, seed: int) -> Path:
    """The generated month for this size, reused when its parameters match."""
    from benchmarks.generate import generate

    out = data_dir / f"rows-{rows}"
    info_path = out / "generated.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        wanted = {"rows": rows, "tenants": tenants, "seed": seed}
        if all(info.get(k) == v for k, v in wanted.items()) and (invocations is None or info["invocations"] == invocations):
            print(f"reusing {out} (generated in {info['seconds']} s)", flush=True)
            return info_path
    shutil.rmtree(out, ignore_errors=True)
    print(f"generating {rows:,} line items under {out} ...", flush=True)
    info = generate(out, rows, tenants=tenants, invocations=invocations, seed=seed)
    print(f"  {info['cur_files']} Parquet files ({info['cur_bytes'] / 2**20:.0f} MiB), {info['log_lines']:,} log lines "
          f"({info['log_bytes_gz'] / 2**20:.0f} MiB gz), {info['seconds']} s", flush=True)
    return info_path


def parse_bytes(text: str | None) -> int | None:
    """'16GiB' / '16GB' / '500MiB' / a plain number of bytes -> bytes."""
    if not text:
        return None
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?)B?\s*", text, re.I)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit, binary = match.groups()
    power = "KMGT".index(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def table(results: list[dict]) -> str:
    head = ("| line items | approach | wall s | in-process s | line items/s | peak RSS MiB | (a) wall ÷ this |\n"
            "|---:|---|---:|---:|---:|---:|---:|\n")
    rows = []
    for r in results:
        a = next(x for x in results if x["size"] == r["size"] and x["approach"] == "pipeline") \
            if any(x["size"] == r["size"] and x["approach"] == "pipeline" for x in results) else None
        ratio = f"{a['wall_seconds'] / r['wall_seconds']:.2f}" if a else "n/a"
        if r.get("failed"):
            rows.append(f"| {r['line_items']:,} | {APPROACHES[r['approach']]} | failed after {r['wall_seconds']:.1f} s: "
                        f"{r['failed'].replace('|', '/')} | | | {r['peak_rss_bytes'] / 2**20:,.0f} | |")
            continue
        if r.get("did_not_fit"):
            rows.append(f"| {r['line_items']:,} | {APPROACHES[r['approach']]} | did not fit: stopped at "
                        f"{r['wall_seconds']:.1f} s | | | > {r['peak_rss_bytes'] / 2**20:,.0f} | |")
            continue
        rows.append(f"| {r['line_items']:,} | {APPROACHES[r['approach']]} | {r['wall_seconds']:.1f} | "
                    f"{r['seconds']:.1f} | {r['line_items'] / r['wall_seconds']:,.0f} | "
                    f"{r['peak_rss_bytes'] / 2**20:,.0f} | {ratio} |")
    return head + "\n".join(rows) + "\n"


@contextmanager
def spark_for(approach: str, env: dict, folder: Path, args):
    """The environment an approach runs in, and the processes besides its own that it uses: for spark-cluster a
    standalone master and workers started here (1 core each; their start is not timed, a cluster is up before a
    run), stopped afterwards."""
    if not approach.startswith("spark"):
        yield env, None
        return
    from billing_pipeline_tests.engines.spark_cluster import StandaloneCluster, driver_environment

    memory = args.spark_memory
    env = {**env, **driver_environment(),
           "PYSPARK_SUBMIT_ARGS": f"--driver-memory {memory} --conf spark.executor.memory={memory} pyspark-shell"}
    if approach != "spark-cluster":
        yield {**env, "BILLING_SPARK_MASTER": "local[2]"}, None
        return
    shutil.rmtree(folder, ignore_errors=True)
    with StandaloneCluster(folder, workers=args.cluster_workers, cores=1, memory=memory) as cluster:
        yield {**env, "BILLING_SPARK_MASTER": cluster.master_url}, cluster.pids()


def scaling_table(results: list[dict]) -> str:
    """Wall time and peak RSS of the driver (the run's process tree: Python, Dagster, and in local mode the JVM
    that also runs the tasks) and of the cluster's processes (each worker with its executor)."""
    def mib(n: int | None) -> str:
        return "-" if n is None else f"{n / 2**20:,.0f}"

    lines = ["| line items | log lines | engine | wall s | driver peak RSS MiB | workers' peak RSS MiB (each) | "
             "master MiB | all together MiB | in-scope cost |", "|---:|---:|---|---:|---:|---|---:|---:|---:|"]
    for r in results:
        if r.get("failed") or r.get("did_not_fit"):
            continue
        others = r.get("other_peak_rss_bytes", {})
        workers = ", ".join(mib(v) for k, v in others.items() if k.startswith("worker")) or "-"
        lines.append(f"| {r['line_items']:,} | {r.get('log_lines', 0):,} | {APPROACHES[r['approach']]} | "
                     f"{r['wall_seconds']:.1f} | {mib(r['peak_rss_bytes'])} | {workers} | {mib(others.get('master'))} | "
                     f"{mib(r.get('total_peak_rss_bytes', r['peak_rss_bytes']))} | {r.get('in_scope_cost', '')} |")
    return "\n".join(lines) + "\n"


def profile_table(result: dict, top: int = 25) -> str:
    peaks = result.get("step_peak_rss_bytes", {})
    steps = " | ".join(f"{k} {v:.1f} s" + (f" (peak {peaks[k] / 2**20:,.0f} MiB)" if peaks.get(k) else "")
                       for k, v in sorted(result["steps"].items(), key=lambda kv: -kv[1]))
    lines = [f"Dagster step timings: {steps}", "", "| asset | statement / reader | calls | seconds |",
             "|---|---|---:|---:|"]
    for p in result.get("profile", [])[:top]:
        lines.append(f"| {p['asset']} | `{p['what'].replace('|', '/')}` | {p['calls']} | {p['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="CUR line items, one or more sizes")
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--invocations", type=int, default=None, help="Lambda invocations (default rows/20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--approaches", nargs="+", choices=list(WORKERS), default=None,
                        help="default: pipeline seed seed-columns floor; add spark for the Spark local-mode column, "
                             "spark-cluster for a 2-worker standalone cluster started for the run")
    parser.add_argument("--scaling", action="store_true",
                        help="the scaling figure: approaches pipeline spark spark-cluster, 10x the log lines "
                             "(--invocations rows/2), driver and worker peak RSS")
    parser.add_argument("--spark-memory", default="2g",
                        help="Spark's memory: the local[2] driver's, and each cluster worker's executor's")
    parser.add_argument("--cluster-workers", type=int, default=2, help="workers of the spark-cluster approach (1 core each)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench")
    parser.add_argument("--results", type=Path, default=None, help="markdown file for the table (and .json beside)")
    parser.add_argument("--memory-limit", default=None, help="BILLING_DUCKDB_MEMORY_LIMIT for (a) and (c)")
    parser.add_argument("--threads", type=int, default=None, help="BILLING_DUCKDB_THREADS for (a) and (c)")
    parser.add_argument("--profile", action="store_true", help="also run (a) instrumented and print where time goes")
    parser.add_argument("--profile-only", action="store_true", help="only the instrumented run of (a)")
    parser.add_argument("--clean", action="store_true", help="delete each size's generated data after its runs")
    parser.add_argument("--keep-runs", type=Path, default=None,
                        help="keep each approach's working folder (its warehouse) under DIR/rows-N/<approach>, to "
                             "inspect what it wrote; by default they are deleted after each size")
    parser.add_argument("--rss-limit", default=DEFAULT_RSS_LIMIT,
                        help="stop an approach whose process tree exceeds this (e.g. 16GiB) and report it as not fitting")
    # worker mode (internal)
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data-json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.approaches is None:
        args.approaches = SCALING_APPROACHES if args.scaling else DEFAULT_APPROACHES

    if args.worker:
        data = json.loads(args.data_json.read_text())
        result = WORKERS[args.worker](data, args.work, args.profile)
        args.out_json.write_text(json.dumps(result, indent=2, default=str))
        return 0

    env = dict(os.environ)
    if args.memory_limit:
        env["BILLING_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    if args.threads:
        env["BILLING_DUCKDB_THREADS"] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    results, profiles = [], []
    for rows in args.rows:
        invocations = args.invocations or (rows // 20 * SCALING_LOG_FACTOR if args.scaling else None)
        data_json = ensure_data(args.data_dir, rows, args.tenants, invocations, args.seed)
        runs = args.keep_runs / f"rows-{rows}" if args.keep_runs else data_json.parent / "runs"
        for approach in ([] if args.profile_only else args.approaches):
            print(f"  {rows:,}: running {APPROACHES[approach]} ...", flush=True)
            with spark_for(approach, env, runs / f"{approach}-cluster", args) as (run_env, others):
                r = measure(approach, data_json, runs / approach, run_env,
                            rss_limit=parse_bytes(args.rss_limit), others=others)
            r["size"] = rows
            r["log_lines"] = json.loads(data_json.read_text())["log_lines"]
            results.append(r)
            print(f"    {r['wall_seconds']:.1f} s wall, {r['peak_rss_bytes'] / 2**20:,.0f} MiB peak RSS"
                  + "".join(f", {n} {b / 2**20:,.0f} MiB" for n, b in r.get("other_peak_rss_bytes", {}).items())
                  + (" - DID NOT FIT, stopped" if r.get("did_not_fit") else "")
                  + (f" - FAILED: {r['failed']}" if r.get("failed") else ""), flush=True)
        if (args.profile and "pipeline" in args.approaches) or args.profile_only:
            print(f"  {rows:,}: profiling (a) ...", flush=True)
            p = measure("pipeline", data_json, runs / "profile", env, profile=True)
            p["size"] = rows
            profiles.append(p)
        if not args.keep_runs:
            shutil.rmtree(runs, ignore_errors=True)
        if args.clean:
            shutil.rmtree(data_json.parent, ignore_errors=True)

    machine = (f"{platform.node()}: {os.cpu_count()} CPUs, "
               f"{__import__('psutil').virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
               f"DuckDB {__import__('duckdb').__version__}, load avg {os.getloadavg()[0]:.1f}")
    settings = (f"BILLING_DUCKDB_MEMORY_LIMIT={env.get('BILLING_DUCKDB_MEMORY_LIMIT', '(DuckDB default)')}, "
                f"BILLING_DUCKDB_THREADS={env.get('BILLING_DUCKDB_THREADS', '(DuckDB default)')}")
    summary = []
    for rows in args.rows:
        by = {r["approach"]: r for r in results if r["size"] == rows}
        if "pipeline" in by and not by["pipeline"].get("failed"):
            parts = [f"{label} = {by['pipeline']['wall_seconds'] / by[k]['wall_seconds']:.2f}"
                     for k, label in (("seed", "a/b"), ("seed-columns", "a/b'"), ("floor", "a/c"))
                     if k in by and not by[k].get("did_not_fit") and not by[k].get("failed")]
            if parts:
                summary.append(f"- {rows:,}: " + ", ".join(parts) + " (wall time)")
    text = (f"# Benchmark {dt.datetime.now():%Y-%m-%d %H:%M}\n\n{machine}\n\n"
            f"`{' '.join(['python -m benchmarks.run_benchmark'] + (argv if argv is not None else sys.argv[1:]))}`; "
            f"{settings}\n\n" + table(results) + "\n" + "\n".join(summary) + "\n")
    if any(r["approach"].startswith("spark") for r in results):
        text += "\n" + scaling_table(results)
    for p in profiles:
        text += f"\n## Profile of (a) at {p['size']:,} line items ({p['seconds']:.1f} s in process)\n\n" + profile_table(p)
    print("\n" + text)
    out = args.results or REPO / "benchmarks" / "results" / (
        f"{dt.datetime.now():%Y%m%d-%H%M}-" + "-".join(str(r) for r in args.rows) + ".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"results": results, "profiles": profiles}, indent=2, default=str))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
