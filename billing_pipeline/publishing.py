"""Published billing: what the API serves, as one immutable snapshot per month behind a pointer.

The API never reads the warehouse (DuckDB admits no reader while a writer holds the file, and Spark's warehouse is
a set of Parquet datasets). The pipeline's last step, `published_billing`, writes the month's figures as Parquet
files into a new snapshot folder, then replaces the month's pointer file in one atomic step:

    <BILLING_PUBLISH_URI>/months/YYYY-MM/<snapshot id>/<table>.parquet   written once, never changed
    <BILLING_PUBLISH_URI>/current/YYYY-MM.json                           the pointer: which snapshot is served

A pointer names a snapshot whose files were all written before it; locally it is renamed into place, on S3 it is
one PutObject, so a reader sees the old snapshot or the new one, whole. A run that fails before the pointer is
replaced leaves the served month as it was. Snapshot ids sort by publication time; the newest few of a month are
kept (a reader may still be loading the previous one), older ones deleted. Two overlapping runs of one month each
write a complete snapshot of their own; the pointer names one of them.

This module only moves files (pyarrow, no Dagster): the asset (assets/published_billing.py) and the API
(api/published.py) share it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import secrets
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from billing_pipeline.storage import Location, locate, write_whole

DEFAULT_PUBLISH_URI = "data/published"
# The snapshot's tables, the contract between the pipeline and the API (columns: assets/published_billing.py)
TABLES = ("statements", "reconciliation_report", "estimated_lines", "estimates", "drivers",
          "usage_lines", "usage_days", "daily", "cost_parts", "month_to_date")
# added after the first snapshots were published: a snapshot without them is still served (without that detail)
LATER_TABLES = ("usage_lines", "usage_days", "daily", "cost_parts", "month_to_date")
KEEP_SNAPSHOTS = 3
# matched whole (fullmatch): `$` alone would let a trailing newline through, `\d` any script's digits
SNAPSHOT_ID = re.compile(r"[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}")
POINTER_NAME = re.compile(r"([0-9]{4}-[0-9]{2})\.json")


class PublishedError(Exception):
    """A pointer or snapshot that cannot be read as published (names the file)."""


def publish_location(uri: str | None = None) -> Location:
    return locate(uri or os.environ.get("BILLING_PUBLISH_URI") or DEFAULT_PUBLISH_URI)


def month_key(billing_period: dt.date) -> str:
    return f"{billing_period:%Y-%m}"


def new_snapshot_id(now: dt.datetime) -> str:
    """Sorts by publication time (microseconds, UTC); the random tail keeps overlapping runs apart."""
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def publish_month(location: Location, billing_period: dt.date, tables: dict[str, pa.Table], info: dict,
                  now: dt.datetime | None = None) -> dict:
    """Write the month's snapshot, then switch the month's pointer to it. Returns the pointer document."""
    missing = set(TABLES) - set(tables)
    if missing:
        raise ValueError(f"snapshot of {month_key(billing_period)} lacks {sorted(missing)}")
    now = now or dt.datetime.now(dt.timezone.utc)
    month = month_key(billing_period)
    snapshot = new_snapshot_id(now)
    folder = location.join("months", month, snapshot)
    for name in TABLES:
        write_whole(location, f"{folder}/{name}.parquet", _parquet(tables[name]))
    pointer = {
        "month": month,
        "snapshot": snapshot,
        "published_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        **info,
        "rows": {name: tables[name].num_rows for name in TABLES},
    }
    text = (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_whole(location, f"{folder}/manifest.json", text)  # the snapshot describes itself, for people
    write_whole(location, location.join("current", f"{month}.json"), text)  # the switch
    prune(location, month, keep_also=snapshot)
    return pointer


def prune(location: Location, month: str, keep: int = KEEP_SNAPSHOTS, keep_also: str | None = None) -> list[str]:
    """Delete all but the newest `keep` snapshots of the month (never the one served, never `keep_also`)."""
    folder = location.join("months", month)
    infos = location.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    snapshots = sorted((i.base_name for i in infos if i.type == pafs.FileType.Directory
                        and SNAPSHOT_ID.fullmatch(i.base_name)), reverse=True)
    served = read_pointer(location, month)
    protected = {keep_also, served.snapshot if served else None}
    deleted = []
    for snapshot in snapshots[keep:]:
        if snapshot in protected:
            continue
        try:
            location.filesystem.delete_dir(f"{folder}/{snapshot}")
            deleted.append(snapshot)
        except (FileNotFoundError, OSError):
            pass  # an overlapping run deleted it first
    return deleted


# ----------------------------------------------------------------------------------------------------------------
# Reading (the API)


@dataclass(frozen=True)
class Pointer:
    month: str
    snapshot: str
    stamp: tuple  # what changes when the pointer file is replaced (mtime, size)
    document: dict

    @property
    def billing_period(self) -> dt.date:
        return dt.date.fromisoformat(self.month + "-01")


def _parse_pointer(location: Location, path: str, month: str, stamp: tuple) -> Pointer:
    """The pointer file of `month`, or PublishedError naming the file and what is wrong with it."""
    with location.filesystem.open_input_stream(path) as stream:
        raw = stream.read()
    where = location.display(path)
    try:
        dt.date.fromisoformat(month + "-01")
    except ValueError:
        raise PublishedError(f"{where}: {month!r} is not a month") from None
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise PublishedError(f"{where}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise PublishedError(f"{where}: not a pointer (a JSON object), a JSON {type(document).__name__}")
    snapshot = document.get("snapshot")
    if document.get("month") != month or not isinstance(snapshot, str) or not SNAPSHOT_ID.fullmatch(snapshot):
        raise PublishedError(f"{where}: not a pointer of {month} to a snapshot id")
    if not isinstance(document.get("published_at"), str):
        raise PublishedError(f"{where}: published_at is not a time")
    if not isinstance(document.get("delivery_id"), (str, type(None))):
        raise PublishedError(f"{where}: delivery_id is not text")
    if not isinstance(document.get("is_final", False), bool):
        raise PublishedError(f"{where}: is_final is not true or false")
    return Pointer(month, snapshot, stamp, document)


def pointer_stamps(location: Location) -> dict[str, tuple]:
    """month -> (mtime, size) of every pointer file: one listing, cheap enough to do often."""
    selector = pafs.FileSelector(location.join("current"), allow_not_found=True)
    stamps = {}
    for info in location.filesystem.get_file_info(selector):
        match = POINTER_NAME.fullmatch(info.base_name)
        if match and info.type == pafs.FileType.File:
            stamps[match[1]] = (info.mtime_ns, info.size)
    return stamps


def read_pointer(location: Location, month: str, stamp: tuple = ()) -> Pointer | None:
    path = location.join("current", f"{month}.json")
    try:
        return _parse_pointer(location, path, month, stamp)
    except FileNotFoundError:
        return None


def read_snapshot(location: Location, pointer: Pointer) -> dict[str, pa.Table]:
    folder = location.join("months", pointer.month, pointer.snapshot)
    tables = {}
    for name in TABLES:
        path = f"{folder}/{name}.parquet"
        if name in LATER_TABLES and not location.filesystem.get_file_info(path).type == pafs.FileType.File:
            continue
        try:
            with location.filesystem.open_input_file(path) as handle:
                tables[name] = pq.read_table(io.BytesIO(handle.read()))
        except (OSError, pa.ArrowException) as error:
            raise PublishedError(f"{location.display(path)}: {error}") from error
    return tables
