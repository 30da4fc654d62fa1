"""Opening one CUR data file (Parquet, or CSV plain / gzip / zip) as a stream of Arrow record batches.

Files are read through the Location's pyarrow filesystem (DuckDB cannot reach S3 here), only the needed columns,
batch by batch, so a month of any size streams into DuckDB without being held in memory.
CSV values stay text (the normalization SQL casts them: money straight to DECIMAL, so it stays exact).
A compressed CSV that expands more than BILLING_MAX_EXPANSION times its size fails naming the file, as logs do.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from billing_pipeline.readers.log_streams import Limits
from billing_pipeline.storage import Location

BATCH_ROWS = 128 * 1024
CSV_BLOCK_BYTES = 16 << 20
# A CUR header names a few hundred columns (tens of KB); more than this without a newline is not a header.
MAX_HEADER_BYTES = 1 << 20
GLOB_CHARS = re.compile(r"[*?\[\]{}]")  # DuckDB would read such a path as a glob pattern


@dataclass
class CurFile:
    """A data file's column names and types, and a way to stream some of its columns."""

    path: str
    columns: dict[str, pa.DataType]  # source column name -> Arrow type (CSV: always string)
    read: Callable[[list[str]], pa.RecordBatchReader]
    # A local Parquet file DuckDB can scan itself (its own reader costs ~20% less CPU than streaming Arrow
    # batches into it); None for S3 and CSV, which go through `read`.
    local_parquet: str | None = None
    # CSV: the header's names in file order, repeats included (Spark reads the columns by position)
    header: tuple[str, ...] | None = None


def open_cur_file(location: Location, path: str) -> CurFile:
    lowered = path.lower()
    if lowered.endswith(".parquet"):
        return _open_parquet(location, path)
    if lowered.endswith((".csv", ".csv.gz", ".gz", ".csv.zip", ".zip")):
        return _open_csv(location, path)
    raise ValueError("not a CUR data file (expected .parquet, .csv, .csv.gz or .csv.zip)")


def _open_parquet(location: Location, path: str) -> CurFile:
    source = location.filesystem.open_input_file(path)
    parquet = pq.ParquetFile(source)  # reads the footer: a truncated file fails here
    schema = parquet.schema_arrow
    refuse_repeated_columns(schema.names)

    def read(columns: list[str]) -> pa.RecordBatchReader:
        projected = pa.schema([schema.field(name) for name in columns])
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=True)
        return pa.RecordBatchReader.from_batches(projected, batches)

    local = path if isinstance(location.filesystem, pafs.LocalFileSystem) and not GLOB_CHARS.search(path) else None
    return CurFile(path, {field.name: field.type for field in schema}, read, local)


def _open_csv(location: Location, path: str) -> CurFile:
    header = next(csv.reader([_first_line(text_stream(location, path))]), [])
    header = [name.lstrip("\ufeff") for name in header]
    refuse_repeated_columns(header)

    def read(columns: list[str]) -> pa.RecordBatchReader:
        return pacsv.open_csv(
            text_stream(location, path),
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={name: pa.string() for name in columns},
                # Only '' is missing: 'NA' or 'null' could be real values (a resource id, a tag).
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    return CurFile(path, {name: pa.string() for name in header}, read, header=tuple(header))


def text_stream(location: Location, path: str):
    """The decompressed bytes of a CSV file: gzip through Arrow, zip (one CSV member) through zipfile; either
    bounded by the expansion limit (a compression bomb fails naming the file)."""
    lowered = path.lower()
    if lowered.endswith(".zip"):
        archive = zipfile.ZipFile(location.filesystem.open_input_file(path))
        members = [m for m in archive.namelist() if m.lower().endswith(".csv")] or archive.namelist()
        if len(members) != 1:
            raise ValueError(f"zip holds {len(members)} CSV files, expected one")
        member = archive.getinfo(members[0])
        return _ExpansionBounded(archive.open(member), location.display(path), member.compress_size)
    if lowered.endswith(".gz"):
        compressed = location.filesystem.get_file_info(path).size
        return _ExpansionBounded(location.filesystem.open_input_stream(path, compression="gzip"),
                                 location.display(path), compressed)
    return location.filesystem.open_input_stream(path, compression=None)


class _ExpansionBounded:
    """A decompressing stream that fails once its output passes the expansion limit (log_streams.Limits: the
    bound of logs, estimates and inventory) for `compressed` bytes of input. Read as a file by Arrow's CSV reader."""

    def __init__(self, stream, display: str, compressed: int | None):
        self._stream, self._display, self._compressed = stream, display, compressed or 0
        self._limits, self._written = Limits.from_env(), 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._written += len(data)
        self._limits.check_expansion(self._display, self._written, self._compressed)
        return data

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self.close()


def refuse_repeated_columns(names: list[str]) -> None:
    """A column named twice: which copy holds the line item's value would be a guess (AWS never repeats one)."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        where = "; ".join(f"{name!r} at columns {', '.join(str(i + 1) for i, n in enumerate(names) if n == name)}"
                          for name in repeated[:5])
        raise ValueError(f"the header names a column more than once ({where}): which one holds the value is "
                         "ambiguous")


def _first_line(stream) -> str:
    """The header line, reading no more of the file than needed and at most MAX_HEADER_BYTES: a file with no
    newline (or a compression bomb) fails after 1 MiB instead of being read whole."""
    chunks, held = [], 0
    with stream:
        while True:
            chunk = stream.read(64 * 1024)
            if not chunk:
                break
            newline = chunk.find(b"\n")
            if newline >= 0:
                chunks.append(chunk[:newline])
                break
            chunks.append(chunk)
            held += len(chunk)
            if held > MAX_HEADER_BYTES:
                raise ValueError(f"no CSV header line in the first {MAX_HEADER_BYTES} bytes (no newline): not a CUR file")
    return b"".join(chunks).decode("utf-8").rstrip("\r")
