"""Shared fixtures: an empty in-memory warehouse with every table of warehouse.sql."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from billing_pipeline.resources.warehouse import warehouse_ddl

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture
def warehouse_con():
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(warehouse_ddl())
    yield con
    con.close()
