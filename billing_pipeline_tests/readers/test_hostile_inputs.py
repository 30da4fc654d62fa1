"""Bounded memory on hostile compressed input (issue 16, item 4): log exports are streamed, an over-long line is a
counted bad line, a compression bomb fails naming its file, and a CUR CSV header is read within 1 MiB.

The memory tests run the reader in a subprocess under a DuckDB memory limit and read its peak RSS
(`resource.getrusage`): at 256 MiB of decompressed input the whole-file reader took ~5 times the input (1.4 GB for
300 MiB of lines, 2.9 GB for one 300 MiB line); streamed, the peak stays within the DuckDB limit plus a bounded
batch above the interpreter's own size.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from billing_pipeline.readers import log_streams
from billing_pipeline.readers.cur import CurFormatError, find_deliveries, stage_line_items
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.storage import locate
from billing_pipeline_tests.readers.cur_builders import key_of, legacy_row, write_csv, write_legacy_manifest

JANUARY = dt.date(2026, 1, 1)
MIB = 2**20
DUCKDB_LIMIT_MB = 256
# Above the interpreter's own peak before reading (imports: ~140 MB): the DuckDB limit plus one batch of lines
# (32 MiB) in its Arrow copies and the decompression chunks.
HEADROOM_MB = DUCKDB_LIMIT_MB + 160


def report_line(time: str, request: str) -> str:
    return (f"{time} REPORT RequestId: {request}\tDuration: 1.00 ms\tBilled Duration: 1000 ms\t"
            "Memory Size: 1024 MB\tMax Memory Used: 56 MB")


def app_line(time: str, request: str, accountant: str) -> str:
    return f'{time} {{"accountant_id": "{accountant}", "requestId": "{request}"}}'


def write_gzip(path: Path, blocks) -> Path:
    """A gzip file written block by block (the test never holds the decompressed content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=6) as out:
        for block in blocks:
            out.write(block)
    return path


def test_an_over_long_line_is_a_counted_bad_line_and_the_others_still_count(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_MAX_LOG_LINE_BYTES", "1000")
    monkeypatch.setattr(log_streams, "CHUNK_BYTES", 256)  # lines straddle chunks, one spans many
    lines = [
        app_line("2026-01-05T10:00:00Z", "r1", "acc-a"),
        "2026-01-05T10:00:00Z " + "x" * 5000,  # spans ~20 chunks
        report_line("2026-01-05T10:00:01Z", "r1"),
        "2026-01-05T10:00:02Z " + "y" * 1001,
        app_line("2026-01-05T10:00:03Z", "r2", "acc-b"),
        report_line("2026-01-05T10:00:04Z", "r2"),
        "z" * 3000,  # the last line, no newline after it
    ]
    write_gzip(tmp_path / "task" / "stream" / "000000.gz", ["\n".join(lines).encode()])
    evidence = read_usage_evidence(locate(str(tmp_path)), None, JANUARY)
    usage = {(r["driver"], r["accountant_id"]): r["quantity"] for r in evidence.usage.to_pylist()}
    # log_bytes: each tenant's application and REPORT lines (message + 26 bytes each); dropped lines count for nobody
    assert usage == {("gb_seconds", "acc-a"): 1, ("requests", "acc-a"): 1, ("log_bytes", "acc-a"): 204,
                     ("gb_seconds", "acc-b"): 1, ("requests", "acc-b"): 1, ("log_bytes", "acc-b"): 204}
    assert evidence.problems == {"line_too_long": 3}
    assert evidence.lines_read == 7


def test_line_numbers_survive_dropped_lines(monkeypatch):
    monkeypatch.setattr(log_streams, "CHUNK_BYTES", 8)
    counts = log_streams.LineCounts()
    chunks = [b"ab\nccccccccccccccccccccccccc\nd", b"e\n", b"ffffffffffffffffffff", b"ffff\ng"]
    got = [(line, int(no)) for lines, numbers in log_streams.file_line_chunks(
        iter(chunks), log_streams.Limits(max_line_bytes=10), counts) for line, no in zip(lines.to_pylist(), numbers)]
    assert got == [("ab", 1), ("de", 3), ("g", 5)]
    assert counts.problems == {"line_too_long": 2}


def test_a_compression_bomb_fails_naming_the_file(tmp_path):
    bomb = write_gzip(tmp_path / "task" / "stream" / "000000.gz", [(b"0" * 1023 + b"\n") * 1024] * 80)  # 80 MiB
    assert bomb.stat().st_size < MIB // 4
    with pytest.raises(ValueError, match=rf"^{bomb}: expands more than 100 times its size"):
        read_usage_evidence(locate(str(tmp_path)), None, JANUARY)


def test_a_corrupt_gzip_still_names_the_file(tmp_path):
    good = write_gzip(tmp_path / "a" / "000000.gz", [b"2026-01-05T10:00:00Z hello\n" * 1000])
    good.write_bytes(good.read_bytes()[:-12])
    with pytest.raises(ValueError, match=rf"^{good}: not a readable gzip file"):
        read_usage_evidence(locate(str(tmp_path)), None, JANUARY)


def test_a_cur_csv_gz_without_newline_fails_after_a_bounded_read(tmp_path):
    period = tmp_path / "cur" / "r" / "20260101-20260201"
    data = write_gzip(period / "asm" / "r-1.csv.gz", [b"a" * MIB] * 64)  # 64 MiB, one "line"
    write_legacy_manifest(period / "r-Manifest.json", "r", ["cur/r/20260101-20260201/asm/r-1.csv.gz"], "asm")
    location = locate(str(tmp_path))
    (delivery,) = find_deliveries(location).values()
    with pytest.raises(CurFormatError, match=rf"^{data}: unreadable CUR file: no CSV header line in the first 1048576 "
                                             "bytes"):
        stage_line_items(duckdb.connect(), location, delivery, "staged")



@pytest.mark.parametrize("compression", ["gzip", "zip"])
def test_a_cur_csv_compression_bomb_fails_naming_the_file(tmp_path, monkeypatch, compression):
    """CUR CSVs had no expansion bound (logs, estimates and inventory had one): a bomb was read to its end."""
    monkeypatch.setattr(log_streams, "EXPANSION_FLOOR", MIB)  # the bound from 1 MiB out, not 64
    period = tmp_path / "cur" / "r" / "20260101-20260201"
    data = write_csv(period / "asm" / "r-1.csv", [legacy_row()] * 20_000, compression=None)  # ~8 MiB of rows
    if compression == "gzip":
        data = write_gzip(data.with_name("r-1.csv.gz"), [data.read_bytes()])
    else:
        with zipfile.ZipFile(data.with_name("r-1.csv.zip"), "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(data, "r-1.csv")
        data = data.with_name("r-1.csv.zip")
    data.with_name("r-1.csv").unlink()
    write_legacy_manifest(period / "r-Manifest.json", "r", [key_of(tmp_path, data)], "asm")
    location = locate(str(tmp_path))
    (delivery,) = find_deliveries(location).values()
    with pytest.raises(CurFormatError, match=rf"^{data}: expands more than 100 times its size \(\d+ bytes, already "
                                             r"\d+ decompressed\): refused as a compression bomb"):
        stage_line_items(duckdb.connect(), location, delivery, "staged")
    monkeypatch.setenv("BILLING_MAX_EXPANSION", "0")  # off: the same file loads
    assert stage_line_items(duckdb.connect(), location, delivery, "staged") == 20_000


# -- peak memory, measured in a subprocess ----------------------------------------------------------------------

MEASURE = """
import json, resource, sys, datetime as dt
from billing_pipeline.readers.usage_logs import read_usage_evidence
from billing_pipeline.readers.cur import find_deliveries, stage_line_items
from billing_pipeline.engines.duckdb_engine import scratch_connection
from billing_pipeline.storage import locate
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    if sys.argv[1] == "logs":
        evidence = read_usage_evidence(locate(sys.argv[2]), None, dt.date(2026, 1, 1))
        out = {"problems": evidence.problems, "lines": evidence.lines_read}
    else:
        location = locate(sys.argv[2])
        (delivery,) = find_deliveries(location).values()
        stage_line_items(scratch_connection(), location, delivery, "staged")
        out = {}
except Exception as error:
    out = {"error": str(error)}
out.update(before_mb=before, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"""


def measure(kind: str, root: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, kind, str(root)], capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "BILLING_DUCKDB_MEMORY_LIMIT": f"{DUCKDB_LIMIT_MB}MB",
             "BILLING_DUCKDB_THREADS": "1", **env},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_bomb_of_256_mib_of_lines_streams_within_the_memory_bound(tmp_path):
    """The expansion limit off, so the whole bomb goes through the parser: memory holds one batch, not the file."""
    line = b"2026-01-05T10:00:00Z " + b"x" * (16 * 1024 - 22) + b"\n"
    bomb = write_gzip(tmp_path / "task" / "stream" / "000000.gz", [line * 64] * (256 * MIB // (64 * len(line))))
    assert bomb.stat().st_size < 2 * MIB
    result = measure("logs", tmp_path, BILLING_MAX_EXPANSION="0")
    assert result["problems"] == {"unrecognized_line": 16384}
    assert result["peak_mb"] < result["before_mb"] + HEADROOM_MB, result


def test_one_256_mib_line_streams_within_the_memory_bound(tmp_path):
    write_gzip(tmp_path / "task" / "stream" / "000000.gz", [b"2026-01-05T10:00:00Z "] + [b"y" * MIB] * 256)
    result = measure("logs", tmp_path, BILLING_MAX_EXPANSION="0")
    assert result["problems"] == {"line_too_long": 1}
    assert result["peak_mb"] < result["before_mb"] + HEADROOM_MB, result


def test_a_cur_csv_gz_of_256_mib_without_newline_is_refused_within_the_memory_bound(tmp_path):
    period = tmp_path / "cur" / "r" / "20260101-20260201"
    write_gzip(period / "asm" / "r-1.csv.gz", [b"a" * MIB] * 256)
    write_legacy_manifest(period / "r-Manifest.json", "r", ["cur/r/20260101-20260201/asm/r-1.csv.gz"], "asm")
    result = measure("cur", tmp_path)
    assert "no CSV header line in the first 1048576 bytes" in result["error"]
    assert result["peak_mb"] < result["before_mb"] + 64, result


@pytest.mark.parametrize("file_format", ["Parquet", "ORC"])
def test_an_inventory_parquet_or_orc_bomb_fails_naming_the_file(tmp_path, monkeypatch, file_format):
    """An S3 Inventory data file in Parquet or ORC was decoded whole with no bound (its gzip CSV had one): 228 KB
    of Parquet (10M rows of one key, zstd) took 2 GB of memory, 1 MB would take 10 GB."""
    import pyarrow as pa
    import pyarrow.orc as paorc
    import pyarrow.parquet as pq

    monkeypatch.setattr(log_streams, "EXPANSION_FLOOR", MIB)  # the bound from 1 MiB out, not 64
    rows = 200_000
    table = pa.table({"bucket": ["tax-demo-docs"] * rows, "key": ["clients/acc-a/" + "x" * 100] * rows,
                      "size": pa.array([1] * rows, pa.int64())})
    data = tmp_path / "tax-demo-docs" / "daily" / "data" / f"a.{file_format.lower()}"
    data.parent.mkdir(parents=True)
    if file_format == "Parquet":
        pq.write_table(table, data, compression="zstd")
    else:
        paorc.write_table(table, data, compression="zstd")
    assert data.stat().st_size < 100 * MIB // 100  # ~21 MiB of keys come out of it
    manifest = tmp_path / "tax-demo-docs" / "daily" / "2026-01-05T00-00Z" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"sourceBucket": "tax-demo-docs", "fileFormat": file_format,
                                    "files": [{"key": f"tax-demo-docs/daily/data/{data.name}"}]}))
    with pytest.raises(ValueError, match=rf"^{data}: expands more than 100 times its size"):
        read_usage_evidence(None, locate(str(tmp_path)), JANUARY)
