"""Reading usage-evidence files (local or S3) into Arrow text lines, fast.

Nothing here loops over lines in Python: a file is read, decompressed when it is gzip, and split into an Arrow
string array by pyarrow's C++ kernels. Small inputs (estimates, inventory manifests) are read whole, their
decompression bounded by the expansion limit; log exports, which may be large or hostile, are streamed instead
(log_streams.py). The SQL that
recognizes the lines (`usage_logs.sql`) then runs in DuckDB over that Arrow data.

A file that says it is gzip but does not decompress is bad input, not a bad line: it raises `ValueError`
naming the file. Invalid UTF-8 is replaced in logs (a few bad bytes in one line), but is an error naming the file
and line where the lines name tenants and money (`strict_utf8`: the estimates).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_pipeline.storage import Location

GZIP_MAGIC = b"\x1f\x8b"

# Files that live among exported logs but are not logs: CloudWatch Logs writes a permission probe
# (`aws-logs-write-test`) at the top of every export prefix.
NOT_LOG_FILES = ("aws-logs-write-test",)


def read_bytes(location: Location, path: str) -> bytes:
    """The file's content, decompressed when it is gzip (by content, or by a `.gz` name that must then be gzip)."""
    try:
        with location.filesystem.open_input_stream(path, compression=None) as stream:  # we decompress
            raw = stream.read()
    except OSError as exc:
        raise ValueError(f"{location.display(path)}: cannot be read ({exc})") from exc
    if raw[:2] == GZIP_MAGIC or path.endswith(".gz"):
        # decompressed a chunk at a time, so a compression bomb stops at the expansion limit, naming the file
        from billing_pipeline.readers.log_streams import Limits, decompressed_chunks  # (it imports this module)

        return b"".join(decompressed_chunks(location, path, Limits.from_env(), size=len(raw), data=raw))
    return raw


def split_lines(data: bytes, strict_utf8_of: str | None = None) -> pa.Array:
    """The text's lines as a large_string array (no line ends, CRLF's '\\r' removed, inner empty lines kept).
    `strict_utf8_of`: the file's name, when invalid UTF-8 is a ValueError naming it and the line."""
    if not data:
        return pa.array([], pa.large_string())
    whole = pa.array([data], pa.large_binary())
    try:
        text = whole.cast(pa.large_string())
    except pa.ArrowInvalid:
        if strict_utf8_of is not None:
            raise ValueError(invalid_utf8(strict_utf8_of, data)) from None
        # Invalid UTF-8 is a few bad bytes in one line, not a reason to lose the file: replace them.
        text = pa.array([data.decode("utf-8", errors="replace")], pa.large_string())
    lines = pc.list_flatten(pc.split_pattern(text, "\n"))
    if data.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)  # the end of the last line, not an empty line after it
    return pc.utf8_rtrim(lines, "\r")


def invalid_utf8(name: str, data: bytes) -> str:
    """Where `data` (which does not decode) stops being UTF-8, as `<name>: line <n>: ...`."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"{name}: line {line}: not valid UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})"
    return f"{name}: not valid UTF-8"


def is_log_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name not in NOT_LOG_FILES and not name.startswith(".")


def read_lines_of_files(location: Location | None, paths: Iterable[str], max_workers: int = 8,
                        first_line_no: int = 0, first_file_index: int = 0, strict_utf8: bool = False) -> pa.Table:
    """All lines of the files as one table: `line` (large_string), `line_no` (int64, unique across the files,
    from `first_line_no`), `file_index` (int32, position in `paths` + `first_file_index`) and `line_in_file`
    (int64, 1-based, for error messages). The offsets let a caller read many files in batches with unique ids.
    `strict_utf8`: invalid UTF-8 is a ValueError naming the file and line, not replaced.

    Files are read in parallel threads: S3 round trips and zlib both release the GIL.
    """
    paths = list(paths)
    if not paths:
        return pa.table(
            {
                "line": pa.array([], pa.large_string()),
                "line_no": pa.array([], pa.int64()),
                "file_index": pa.array([], pa.int32()),
                "line_in_file": pa.array([], pa.int64()),
            }
        )
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(paths)))) as pool:
        chunks = list(pool.map(
            lambda p: split_lines(read_bytes(location, p), location.display(p) if strict_utf8 else None), paths))
    sizes = [len(c) for c in chunks]
    return pa.table(
        {
            "line": pa.chunked_array(chunks, pa.large_string()),
            "line_no": pa.array(np.arange(first_line_no, first_line_no + sum(sizes), dtype=np.int64)),
            "file_index": pa.array(np.repeat(np.arange(first_file_index, first_file_index + len(paths),
                                                       dtype=np.int32), sizes)),
            "line_in_file": pa.array(np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in sizes])),
        }
    )
