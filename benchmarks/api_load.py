"""Load test of the billing API while the pipeline re-materializes the month (issue 18).

    python -m benchmarks.api_load [--clients 50] [--runs 3] [--seconds 300] [--max-requests 1000000] [--pipeline-nice 10]
                                  [--tenants 5] [--rows 20000] [--data-dir data/api-load]
                                  [--results benchmarks/results/api_load.json]

Generates the demo's month (5 tenants, 20,000 line items by default), runs the month once through the real
Definitions (which publish it), issues one token per client (round-robin over the tenants), serves the API with its
documented command on 127.0.0.1; then `--clients` concurrent clients, each with its own token, ask for their
statement, history and CSV back to back (no pause: the worst case) for as long as a second process re-materializes
the whole month in a loop (`--runs` times every asset of billing_month_job, each publishing a new snapshot).
Bounded in time (no run starts after `--seconds`; every request times out after 30 s) and in count
(`--max-requests`), loopback only, and it stops by itself. Prints and writes the figures; exits 1 on any non-2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

MONTH = dt.date(2026, 1, 1)
REQUEST_TIMEOUT = 30
SETTLE_SECONDS = 3  # > the API's BILLING_API_REFRESH_SECONDS (1)
PATHS = ["/billing?month=2026-01", "/billing/history", "/billing.csv?month=2026-01"]


def _env(data: Path, sample) -> dict[str, str]:
    from billing_pipeline_tests.api_support import sample_environment

    return {**os.environ, **sample_environment(sample, data / "warehouse.duckdb", data / "published"),
            "BILLING_API_TOKENS": str(data / "tokens.json"), "BILLING_API_REFRESH_SECONDS": "1"}


def rematerialize(until: float, max_runs: int) -> int:
    """The pipeline side: the whole month, again and again, until the deadline (monotonic clock) or max_runs."""
    from dagster import DagsterInstance

    from billing_pipeline.definitions import defs

    job = defs.resolve_job_def("billing_month_job")
    runs = 0
    while runs < max_runs and time.monotonic() < until:
        result = job.execute_in_process(partition_key=MONTH.isoformat(), instance=DagsterInstance.ephemeral(),
                                        raise_on_error=False)
        runs += 1
        print(f"rematerialized: {'ok' if result.success else 'FAILED'}", flush=True)
    time.sleep(SETTLE_SECONDS)  # the clients go on until the API has switched to the last snapshot
    return runs


async def _get(reader, writer, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection (a minimal client: the clients share the 2 cores with
    the server and the pipeline, so they must cost little; uvicorn always sends Content-Length)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def _clients(port: int, tokens: list[str], done: asyncio.Event, max_requests: int) -> list[tuple[float, int, str]]:
    samples: list[tuple[float, int, str]] = []
    budget = [max_requests]

    async def client(token: str, seed: int):
        chooser = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not done.is_set() and budget[0] > 0:
                budget[0] -= 1
                path = chooser.choice(PATHS)
                request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
                           .encode())
                started = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(_get(reader, writer, request), REQUEST_TIMEOUT)
                except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError):
                    samples.append((time.perf_counter() - started, 0, ""))  # counted as a failed answer
                    return
                elapsed = time.perf_counter() - started
                snapshot = ""
                if path.startswith("/billing?") and status == 200:
                    snapshot = json.loads(body)["published"]["snapshot"]
                samples.append((elapsed, status, snapshot))
        finally:
            writer.close()

    await asyncio.gather(*(client(token, i) for i, token in enumerate(tokens)))
    return samples


async def _load(port: int, tokens: list[str], env: dict, args) -> tuple[list, str]:
    """The clients ask for as long as the pipeline loop runs: `--runs` re-materializations of the month, or
    `--seconds` (then the run in progress finishes and the loop ends itself), or `--max-requests` answers."""
    pipeline = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.api_load", "_rematerialize", "--seconds", str(args.seconds), "--runs",
        str(args.runs), "--pipeline-nice", str(args.pipeline_nice), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    done = asyncio.Event()

    async def pipeline_loop() -> str:
        try:
            out, _ = await pipeline.communicate()
            return out.decode()
        finally:
            done.set()

    try:
        out, samples = await asyncio.gather(pipeline_loop(), _clients(port, tokens, done, args.max_requests))
    finally:
        if pipeline.returncode is None:
            pipeline.kill()
    return samples, out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run(args) -> dict:
    from billing_pipeline.api.auth import issue_token
    from billing_pipeline.sample_data import generate_month

    data = Path(args.data_dir).absolute()
    sample = generate_month(data / "sample", MONTH, tenants=args.tenants, rows=args.rows, seed=7)
    env = _env(data, sample)
    # the month once, published, before any client asks
    first = subprocess.run([sys.executable, "-m", "benchmarks.api_load", "_rematerialize", "--runs", "1",
                            "--seconds", "600", "--pipeline-nice", "0"], env=env, capture_output=True, text=True)
    if "rematerialized: ok" not in first.stdout:
        raise SystemExit("the first run of the month failed:\n" + first.stderr[-3000:])
    (data / "tokens.json").unlink(missing_ok=True)
    tokens = [issue_token(sample.tenants[i % len(sample.tenants)], str(data / "tokens.json"), days=1)
              for i in range(args.clients)]

    from billing_pipeline_tests.api_support import serving

    # the API as the tests serve it (its documented command, on a free loopback port)
    with serving(data / "published", data / "tokens.json", refresh_seconds="1") as base:
        started = time.monotonic()
        samples, out = asyncio.run(_load(int(base.rsplit(":", 1)[1]), tokens, env, args))
        wall = time.monotonic() - started

    latencies = [s[0] for s in samples]
    statuses: dict[str, int] = {}
    for _, status, _ in samples:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "clients": args.clients, "seconds": round(wall, 1), "runs": args.runs, "pipeline_nice": args.pipeline_nice, "tenants": args.tenants, "rows": args.rows,
        "cpus": os.cpu_count(), "requests": len(samples), "requests_per_second": round(len(samples) / wall, 1),
        "non_2xx": sum(1 for s in samples if not 200 <= s[1] < 300), "statuses": statuses,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1), "max_ms": round(max(latencies) * 1000, 1),
        "rematerializations": out.count("rematerialized: ok"), "failed_rematerializations": out.count("FAILED"),
        "snapshots_served": len({s[2] for s in samples if s[2]}),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="re-materializations of the month under load")
    parser.add_argument("--seconds", type=float, default=300, help="no run starts after this (the bound in time)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="the bound in count")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--data-dir", default="data/api-load")
    parser.add_argument("--results", default="benchmarks/results/api_load.json")
    parser.add_argument("--pipeline-nice", type=int, default=10,
                        help="the pipeline loop's niceness: a batch job below the interactive API (0: same priority)")
    if argv and argv[0] == "_rematerialize":
        args = parser.parse_args(argv[1:])
        os.nice(args.pipeline_nice)
        rematerialize(time.monotonic() + args.seconds, args.runs)
        return 0
    args = parser.parse_args(argv)
    figures = run(args)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0 if figures["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
