"""Reading log files as a stream of line chunks, in bounded memory whatever the files hold.

A log export is untrusted input: a 4.5 MB `.gz` can expand to 1 GiB, a file can be one 512 MiB line. So a file is
never decompressed whole nor held whole: it is read and decompressed a chunk at a time (zlib with an output
bound), cut into lines at the last newline of each chunk (the rest carried to the next), and handed on in chunks.

- A line longer than the line limit (`BILLING_MAX_LOG_LINE_BYTES`, default 1 MiB; CloudWatch events are at most
  1 MB) is dropped while it streams past and counted as a bad line (`line_too_long`), like the other bad lines.
- A gzip file that expands more than the expansion limit (`BILLING_MAX_EXPANSION`, default 100 times its size,
  once past 64 MiB; 0 turns it off) is refused with an error naming the file: real logs compress 5-20 times.
- A file that says it is gzip but does not decompress (corrupt, truncated) is refused naming the file.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_pipeline.readers.usage_files import GZIP_MAGIC, split_lines
from billing_pipeline.storage import Location

CHUNK_BYTES = 8 * 2**20  # decompressed bytes cut into lines at a time
DEFAULT_MAX_LINE_BYTES = 2**20
DEFAULT_MAX_EXPANSION = 100
EXPANSION_FLOOR = 64 * 2**20  # below this much output no file is too expanded: small files compress well
SMALL_FILE_BYTES = 2**20  # files up to this size are fetched whole, several at once (S3 round trips overlap)
PREFETCH_BYTES = 4 * 2**20  # compressed bytes of small files fetched ahead at most
TOO_LONG = "line_too_long"


@dataclass(frozen=True)
class Limits:
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_expansion: float = DEFAULT_MAX_EXPANSION  # 0: no limit

    @classmethod
    def from_env(cls) -> Limits:
        """BILLING_MAX_LOG_LINE_BYTES and BILLING_MAX_EXPANSION, read when a run reads its logs."""
        line = os.environ.get("BILLING_MAX_LOG_LINE_BYTES")
        expansion = os.environ.get("BILLING_MAX_EXPANSION")
        return cls(int(line) if line else DEFAULT_MAX_LINE_BYTES,
                   float(expansion) if expansion else DEFAULT_MAX_EXPANSION)

    def check_expansion(self, display: str, written: int, compressed: int) -> None:
        if self.max_expansion and written > EXPANSION_FLOOR and written > self.max_expansion * max(compressed, 1):
            raise ValueError(f"{display}: expands more than {self.max_expansion:g} times its size "
                             f"({compressed} bytes, already {written} decompressed): refused as a compression bomb "
                             "(BILLING_MAX_EXPANSION raises the limit)")


@dataclass
class LineCounts:
    problems: dict[str, int] = field(default_factory=dict)  # lines dropped while reading, by reason

    def add(self, reason: str, lines: int) -> None:
        if lines:
            self.problems[reason] = self.problems.get(reason, 0) + lines


def decompressed_chunks(location: Location, path: str, limits: Limits, size: int | None = None,
                        data: bytes | None = None) -> Iterator[bytes]:
    """The file's bytes, decompressed when it is gzip (by content, or by a `.gz` name that must then be gzip), at
    most CHUNK_BYTES at a time. `data`: the file's raw bytes when already fetched."""
    display = location.display(path) if location is not None else path
    try:
        stream = None if data is not None else location.filesystem.open_input_stream(path, compression=None)
    except OSError as exc:
        raise ValueError(f"{display}: cannot be read ({exc})") from exc

    def raw_pieces() -> Iterator[bytes]:
        if data is not None:
            for start in range(0, len(data), CHUNK_BYTES):
                yield data[start : start + CHUNK_BYTES]
            return
        with stream:
            while True:
                try:
                    piece = stream.read(CHUNK_BYTES)
                except OSError as exc:
                    raise ValueError(f"{display}: cannot be read ({exc})") from exc
                if not piece:
                    return
                yield piece

    pieces = raw_pieces()
    first = next(pieces, b"")
    if not (first[:2] == GZIP_MAGIC or path.endswith(".gz")):
        if first:
            yield first
        yield from pieces
        return
    compressed_total = size if size is not None else (len(data) if data is not None else 0)
    consumed = written = 0
    inflater = zlib.decompressobj(wbits=31)
    in_member = False  # bytes fed to the current gzip member, which has not ended yet
    try:
        for piece in _chain(first, pieces):
            consumed += len(piece)
            pending = piece
            while pending:
                in_member = True
                out = inflater.decompress(pending, CHUNK_BYTES)
                pending = inflater.unconsumed_tail
                if inflater.eof:  # a multi-member gzip: the next member starts in unused_data
                    pending = pending + inflater.unused_data if pending else inflater.unused_data
                    inflater, in_member = zlib.decompressobj(wbits=31), False
                if out:
                    written += len(out)
                    limits.check_expansion(display, written, max(compressed_total, consumed))
                    yield out
        if in_member:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
    except (zlib.error, EOFError) as exc:
        raise ValueError(f"{display}: not a readable gzip file ({exc})") from exc


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def file_line_chunks(chunks: Iterator[bytes], limits: Limits, counts: LineCounts) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """The lines of a stream of bytes, as (large_string lines, their 1-based numbers in the file) chunk by chunk.
    Lines over the limit are left out and counted (they keep their number, so the others keep theirs)."""
    carry = b""
    skipping = False  # inside a line already over the limit: drop bytes up to its end
    line_no = 0
    for data in chunks:
        if skipping:
            newline = data.find(b"\n")
            if newline < 0:
                continue
            data, skipping = data[newline + 1 :], False
            line_no += 1
            counts.add(TOO_LONG, 1)
        last = data.rfind(b"\n")
        if last < 0:
            carry += data
            if len(carry) > limits.max_line_bytes:
                carry, skipping = b"", True
            continue
        complete, carry = carry + data[: last + 1], data[last + 1 :]
        if len(carry) > limits.max_line_bytes:
            carry, skipping = b"", True
        lines = split_lines(complete)
        numbers = np.arange(line_no + 1, line_no + 1 + len(lines), dtype=np.int64)
        line_no += len(lines)
        yield _within_limit(lines, numbers, limits, counts)
    if skipping:
        counts.add(TOO_LONG, 1)
    elif carry:
        lines = split_lines(carry)
        yield _within_limit(lines, np.arange(line_no + 1, line_no + 1 + len(lines), dtype=np.int64), limits, counts)


def _within_limit(lines: pa.Array, numbers: np.ndarray, limits: Limits, counts: LineCounts):
    too_long = pc.greater(pc.binary_length(lines), limits.max_line_bytes)
    dropped = pc.sum(too_long).as_py() or 0
    if not dropped:
        return lines, numbers
    counts.add(TOO_LONG, dropped)
    keep = pc.invert(too_long)
    return lines.filter(keep), numbers[keep.to_numpy(zero_copy_only=False)]


def log_line_tables(location: Location, infos: list, limits: Limits, counts: LineCounts,
                    batch_bytes: int) -> Iterator[tuple[pa.Table, int]]:
    """The lines of the files as tables of about `batch_bytes` of text (at least one line each): `line`,
    `line_no` (unique across the tables), `file_index` (position in `infos`), `line_in_file`; with the number of
    files started in each. Small files are fetched a few at a time in threads, large ones streamed."""
    empty = pa.table({"line": pa.array([], pa.large_string()), "line_no": pa.array([], pa.int64()),
                      "file_index": pa.array([], pa.int32()), "line_in_file": pa.array([], pa.int64())})
    parts: list[tuple[pa.Array, np.ndarray, int]] = []
    held = started = 0
    next_line_no = 0

    def table() -> pa.Table:
        nonlocal next_line_no
        lines = [p[0] for p in parts]
        count = sum(len(line) for line in lines)
        result = pa.table({
            "line": pa.chunked_array(lines, pa.large_string()),
            "line_no": pa.array(np.arange(next_line_no, next_line_no + count, dtype=np.int64)),
            "file_index": pa.array(np.concatenate([np.full(len(p[0]), p[2], dtype=np.int32) for p in parts])),
            "line_in_file": pa.array(np.concatenate([p[1] for p in parts])),
        })
        next_line_no += count
        return result

    produced = False
    with ThreadPoolExecutor(max_workers=8) as pool:
        for index, info, data in _fetched(location, infos, pool):
            started += 1
            chunks = decompressed_chunks(location, info.path, limits, size=info.size, data=data)
            for lines, numbers in file_line_chunks(chunks, limits, counts):
                if not len(lines):
                    continue
                parts.append((lines, numbers, index))
                held += lines.nbytes
                if held >= batch_bytes:
                    yield table(), started
                    produced, parts, held, started = True, [], 0, 0
    if parts or not produced:
        yield (table() if parts else empty), started


def _fetched(location: Location, infos: list, pool: ThreadPoolExecutor):
    """(index, info, raw bytes or None) in order: small files fetched ahead in threads, at most PREFETCH_BYTES."""
    index = 0
    while index < len(infos):
        group, size = [], 0
        while index + len(group) < len(infos):
            info = infos[index + len(group)]
            small = (info.size or 0) <= SMALL_FILE_BYTES
            if not small or size + (info.size or 0) > PREFETCH_BYTES and group:
                break
            group.append(info)
            size += info.size or 0
        if not group:
            yield index, infos[index], None
            index += 1
            continue
        for offset, data in enumerate(pool.map(lambda i: _read_small(location, i.path), group)):
            yield index + offset, group[offset], data
        index += len(group)


def _read_small(location: Location, path: str) -> bytes | None:
    """The file's bytes; None when it grew past SMALL_FILE_BYTES since it was listed (then it is streamed)."""
    try:
        with location.filesystem.open_input_stream(path, compression=None) as stream:
            data = stream.read(SMALL_FILE_BYTES + 1)
            return data if len(data) <= SMALL_FILE_BYTES else None
    except OSError as exc:
        raise ValueError(f"{location.display(path)}: cannot be read ({exc})") from exc
