"""The billing API for the API tests (api/conftest.py) and the load benchmark (benchmarks/api_load.py): a generated
month's environment, and the API served by its documented command on a free loopback port. No tests here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from billing_pipeline.sample_data import SampleMonth
from billing_pipeline_tests.stripe_support import free_port


def sample_environment(sample: SampleMonth, warehouse: Path, published: Path) -> dict[str, str]:
    """The BILLING_* variables of a run over a generated month: its inputs, the warehouse, where it publishes and
    exports (beside the snapshots)."""
    return {"BILLING_CUR_URI": sample.cur_uri, "BILLING_LOGS_URI": sample.logs_uri,
            "BILLING_S3_INVENTORY_URI": sample.inventory_uri, "BILLING_USAGE_URI": sample.usage_uri,
            "BILLING_WAREHOUSE": str(warehouse), "BILLING_PUBLISH_URI": str(published),
            "BILLING_EXPORT_URI": str(published.parent / "exports")}


@contextmanager
def serving(published: Path, tokens_file: Path, log_file: Path | None = None,
            refresh_seconds: str = "0") -> Iterator[str]:
    """`python -m billing_pipeline.api` on a free loopback port, over `published` with `tokens_file`; yields its
    base URL once /healthz answers, and stops it after. Its output goes to `log_file` (else ours)."""
    port = free_port()
    env = {**os.environ, "BILLING_API_REFRESH_SECONDS": refresh_seconds}
    log = open(log_file, "wb") if log_file else None
    process = subprocess.Popen(
        [sys.executable, "-m", "billing_pipeline.api", "--host", "127.0.0.1", "--port", str(port),
         "--published", str(published), "--tokens", str(tokens_file), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT if log else None, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start" + (": " + log_file.read_text() if log_file else ""))
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if log:
            log.close()


def in_process_client(published: Path, tokens_file: Path):
    """FastAPI's TestClient over create_app (imported here: it warns about its httpx backend on import)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from billing_pipeline.api.app import create_app

    return TestClient(create_app(published=str(published), tokens_file=str(tokens_file), refresh_seconds=0))
