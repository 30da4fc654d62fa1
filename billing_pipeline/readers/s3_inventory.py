"""S3 storage per client from S3 Inventory reports: the `gb_months` driver of AmazonS3 `TimedStorage`.

Layout (as S3 Inventory writes it, DESIGN.md Inputs 4):

    <dest>/<source bucket>/<config id>/<YYYY-MM-DDTHH-MMZ>/manifest.json
    <dest>/<source bucket>/<config id>/data/<uuid>.csv.gz          (or .parquet / .orc)

The manifest names its data files in `files[].key` (keys of the destination bucket), their format in
`fileFormat` (CSV, Parquet or ORC) and, for CSV, the columns in `fileSchema` ("Bucket, Key, Size, ..."; CSV keys
are URL-encoded). Only the files a manifest lists are read; a listed file that is missing is an error.

Each object's bytes count for the client in its key, `clients/<accountant_id>/...`, under the driver of its
`StorageClass` (the catalog's `storage_classes`: STANDARD -> `gb_months`, STANDARD_IA -> `gb_months_standard_ia`,
GLACIER -> `gb_months_glacier`, ...; a report without the field, or a class the catalog does not name, counts as
STANDARD); other keys are not a
client's and are counted in `problems['inventory_key_outside_clients']`. A snapshot stands for the 24 hours after
it (from its hour), or until the next snapshot of the same bucket and configuration if that comes sooner, so
overlapping or re-run reports never count an hour twice. Each of those hours gets
bytes / 2^30 / (hours in the month), so a month of hourly rows sums to GB-months (scope = the source bucket).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from billing_pipeline.catalog import load_catalog
from billing_pipeline.engines.duckdb_engine import scratch_connection
from billing_pipeline.readers.usage_files import read_bytes
from billing_pipeline.storage import Location, UnsafeLocation

SNAPSHOT_FOLDER = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})Z$")
SNAPSHOT_HOURS = 24

OBJECTS_SCHEMA = pa.schema([("snapshot_id", pa.int32()), ("key", pa.string()), ("size", pa.int64()),
                            ("storage_class", pa.string())])
USAGE_SCHEMA = pa.schema(
    [
        ("usage_hour", pa.timestamp("us")),
        ("service", pa.string()),
        ("driver", pa.string()),
        ("scope", pa.string()),
        ("accountant_id", pa.string()),
        ("quantity", pa.decimal128(38, 16)),
    ]
)

HOURLY_STORAGE_SQL = """
-- Bytes per (snapshot, client), spread over the hours the snapshot stands for that fall in the month.
WITH objects AS (
    SELECT o.snapshot_id, CASE WHEN s.url_encoded THEN url_decode(o.key) ELSE o.key END AS key, o.size,
           o.storage_class
    FROM inventory_objects AS o JOIN inventory_snapshots AS s USING (snapshot_id)
),
client_bytes AS (
    -- the client folder as a tenant id (docs/attribution-rules.md, "Tenant ids"): trimmed; a reserved word or a
    -- control character is never a tenant; each storage class is its own driver (the catalog's
    -- `storage_classes`); none or an unknown one: the first's
    SELECT o.snapshot_id,
           CASE WHEN lower(trim(regexp_extract(o.key, '^clients/([^/]+)/', 1))) IN ('unattributed', 'total')
                  OR regexp_matches(regexp_extract(o.key, '^clients/([^/]+)/', 1), '[\\x00-\\x1f\\x7f]')
                THEN 'unattributed' ELSE trim(regexp_extract(o.key, '^clients/([^/]+)/', 1)) END AS accountant_id,
           coalesce(c.driver, $default_driver) AS driver, CAST(sum(o.size) AS HUGEINT) AS bytes
    FROM objects AS o
    LEFT JOIN storage_class_drivers AS c ON c.storage_class = upper(o.storage_class)
    GROUP BY ALL
)
SELECT
    hour AS usage_hour,
    'AmazonS3' AS service,
    b.driver,
    s.bucket AS scope,
    b.accountant_id,
    -- bytes / 2^30 / hours-in-month, rounded half up at 16 places (integer arithmetic: exact)
    CAST((b.bytes * 10000000000000000 + $divisor // 2) // $divisor AS DECIMAL(38, 0))
        * CAST(0.0000000000000001 AS DECIMAL(18, 16)) AS quantity
FROM client_bytes AS b
JOIN inventory_snapshots AS s USING (snapshot_id)
CROSS JOIN LATERAL generate_series(s.start_hour, s.end_hour - INTERVAL 1 HOUR, INTERVAL 1 HOUR) AS hours(hour)
WHERE b.accountant_id <> '' AND b.bytes <> 0 AND hour >= $period_start AND hour < $period_end
"""

OUTSIDE_CLIENTS_SQL = """
WITH clients AS (
    SELECT regexp_extract(CASE WHEN s.url_encoded THEN url_decode(o.key) ELSE o.key END, '^clients/([^/]+)/', 1) AS c
    FROM inventory_objects AS o JOIN inventory_snapshots AS s USING (snapshot_id)
)
SELECT count(*) FILTER (trim(c) = ''),
       count(*) FILTER (lower(trim(c)) IN ('unattributed', 'total') OR regexp_matches(c, '[\\x00-\\x1f\\x7f]'))
FROM clients
"""


@dataclass
class InventoryUsage:
    usage: pa.Table  # USAGE_SCHEMA: hourly gb_months rows (quantity at 16 places; the caller rounds once)
    problems: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    files_read: int = 0


@dataclass
class Snapshot:
    manifest_path: str
    bucket: str
    config: str
    taken_at: dt.datetime
    start_hour: dt.datetime = None  # type: ignore[assignment]
    end_hour: dt.datetime = None  # type: ignore[assignment]


def month_bounds(billing_period: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(billing_period.year, billing_period.month, 1)
    end = dt.datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def read_inventory_usage(location: Location | None, billing_period: dt.date,
                         since: dt.datetime | None = None) -> InventoryUsage:
    """The month's hourly `gb_months` rows per (bucket, client) from the inventory reports under `location`
    (with `since`: only the snapshots that stand for hours from `since` on are read)."""
    empty = InventoryUsage(USAGE_SCHEMA.empty_table())
    if location is None:
        return empty
    period_start, period_end = month_bounds(billing_period)
    snapshots = [s for s in find_snapshots(location) if s.start_hour < period_end and s.end_hour > period_start
                 and (since is None or s.end_hour > since)]
    if not snapshots:
        return empty

    objects, url_encoded, files_read = [], [], 0
    for snapshot_id, snapshot in enumerate(snapshots):
        table, is_csv, files = read_snapshot_objects(location, snapshot)
        objects.append(
            pa.table(
                {
                    "snapshot_id": pa.array([snapshot_id] * table.num_rows, pa.int32()),
                    "key": table["key"],
                    "size": table["size"],
                    "storage_class": table["storage_class"],
                },
                schema=OBJECTS_SCHEMA,
            )
        )
        url_encoded.append(is_csv)
        files_read += files
    inventory_objects = pa.concat_tables(objects)
    inventory_snapshots = pa.table(
        {
            "snapshot_id": pa.array(range(len(snapshots)), pa.int32()),
            "bucket": [s.bucket for s in snapshots],
            "start_hour": pa.array([s.start_hour for s in snapshots], pa.timestamp("us")),
            "end_hour": pa.array([s.end_hour for s in snapshots], pa.timestamp("us")),
            "url_encoded": url_encoded,
        }
    )

    hours_in_month = int((period_end - period_start).total_seconds() // 3600)
    con = scratch_connection()
    try:
        con.register("inventory_objects", inventory_objects)
        con.register("inventory_snapshots", inventory_snapshots)
        classes = load_catalog().storage_class_drivers()
        con.register("storage_class_drivers", pa.table({"storage_class": list(classes),
                                                        "driver": list(classes.values())}))
        params = {"divisor": 2**30 * hours_in_month, "period_start": period_start, "period_end": period_end,
                  "default_driver": next(iter(classes.values()))}
        usage = con.sql(HOURLY_STORAGE_SQL, params=params).to_arrow_table().cast(USAGE_SCHEMA)
        outside, invalid = con.execute(OUTSIDE_CLIENTS_SQL).fetchone()
    finally:
        con.close()
    problems = {"inventory_key_outside_clients": outside} if outside else {}
    if invalid:
        problems["invalid_accountant_id"] = invalid  # objects under a folder that is never a tenant
    return InventoryUsage(usage, problems, inventory_objects.num_rows, files_read)


def find_snapshots(location: Location) -> list[Snapshot]:
    """Every inventory manifest under the location, with the hours each one stands for."""
    snapshots = []
    for info in location.list_files():
        parts = info.path.split("/")
        if parts[-1] != "manifest.json" or len(parts) < 4:
            continue
        folder = SNAPSHOT_FOLDER.match(parts[-2])
        if not folder:
            continue  # e.g. the hive/ symlink folders
        year, month, day, hour, minute = (int(g) for g in folder.groups())
        snapshots.append(
            Snapshot(info.path, parts[-4], parts[-3], dt.datetime(year, month, day, hour, minute))
        )
    by_report: dict[tuple[str, str], list[Snapshot]] = {}
    for snapshot in snapshots:
        by_report.setdefault((snapshot.bucket, snapshot.config), []).append(snapshot)
    for report in by_report.values():
        report.sort(key=lambda s: s.taken_at)
        for current, following in zip(report, report[1:] + [None]):
            current.start_hour = current.taken_at.replace(minute=0)
            current.end_hour = current.start_hour + dt.timedelta(hours=SNAPSHOT_HOURS)
            if following is not None:
                current.end_hour = min(current.end_hour, following.taken_at.replace(minute=0))
    return [s for s in snapshots if s.end_hour > s.start_hour]


def read_snapshot_objects(location: Location, snapshot: Snapshot) -> tuple[pa.Table, bool, int]:
    """(key, size) of every object a snapshot lists, whether keys are URL-encoded (CSV), and files read."""
    manifest_name = location.display(snapshot.manifest_path)
    try:
        manifest = json.loads(read_bytes(location, snapshot.manifest_path))
        file_format = str(manifest.get("fileFormat", "CSV")).upper()
        keys = [f["key"] for f in manifest["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest_name}: not a readable S3 Inventory manifest ({exc})") from exc
    if manifest.get("sourceBucket"):
        snapshot.bucket = manifest["sourceBucket"]

    tables = []
    for key in keys:
        path = resolve_data_file(location, snapshot, manifest, key)
        tables.append(read_data_file(location, path, file_format, manifest.get("fileSchema", ""), manifest_name))
    table = pa.concat_tables(tables) if tables else pa.table({"key": pa.array([], pa.string()),
                                                            "size": pa.array([], pa.int64()),
                                                            "storage_class": pa.array([], pa.string())})
    return table, file_format == "CSV", 1 + len(keys)


def resolve_data_file(location: Location, snapshot: Snapshot, manifest: dict, key: str) -> str:
    """Where a manifest's data key is: beside the report folder (wherever the destination was copied), else the
    key under the location, else the key in the destination bucket (S3)."""
    candidates = []
    report_folder = "/".join(snapshot.manifest_path.split("/")[:-4])  # the folder holding <bucket>/<config>/
    marker = f"{snapshot.manifest_path.split('/')[-4]}/{snapshot.config}/"
    if marker in key:
        candidates.append(f"{report_folder}/{key[key.index(marker):]}")
    candidates.append(location.join(key))
    destination = str(manifest.get("destinationBucket", "")).rsplit(":", 1)[-1]
    if destination and isinstance(location.filesystem, pafs.S3FileSystem):
        candidates.append(f"{destination}/{key}")
    for candidate in candidates:
        if location.filesystem.get_file_info(candidate).type == pafs.FileType.File:
            if candidate != f"{destination}/{key}":  # a key with '..' must not lead out of the inventory folder
                try:
                    location.confined(candidate)
                except UnsafeLocation as error:
                    raise ValueError(f"{location.display(snapshot.manifest_path)}: lists data file {key!r}: "
                                     f"{error}") from None
            return candidate
    raise ValueError(
        f"{location.display(snapshot.manifest_path)}: lists data file {key!r}, which is missing "
        f"(looked for {', '.join(location.display(c) for c in candidates)})"
    )


def read_data_file(location: Location, path: str, file_format: str, file_schema: str, manifest_name: str) -> pa.Table:
    """One inventory data file as (key string, size int64)."""
    name = location.display(path)
    try:
        if file_format == "CSV":
            columns = [c.strip() for c in file_schema.split(",") if c.strip()]
            lowered = [c.lower() for c in columns]
            if "key" not in lowered or "size" not in lowered:
                raise ValueError(f"{manifest_name}: fileSchema {file_schema!r} has no Key and Size fields")
            key_column, size_column = columns[lowered.index("key")], columns[lowered.index("size")]
            wanted = [key_column, size_column]
            if "storageclass" in lowered:
                wanted.append(columns[lowered.index("storageclass")])
            table = pacsv.read_csv(
                pa.BufferReader(read_bytes(location, path)),
                read_options=pacsv.ReadOptions(column_names=columns),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={name: pa.string() for name in wanted} | {size_column: pa.int64()},
                ),
            )
        elif file_format == "PARQUET":
            table = pq.read_table(pa.BufferReader(read_bytes(location, path)))
        elif file_format == "ORC":
            import pyarrow.orc as paorc

            table = paorc.ORCFile(pa.BufferReader(read_bytes(location, path))).read()
        else:
            raise ValueError(f"{manifest_name}: unknown inventory fileFormat {file_format!r}")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{name}: not a readable S3 Inventory {file_format} file ({exc})") from exc
    by_name = {c.lower(): c for c in table.column_names}
    if "key" not in by_name or "size" not in by_name:
        raise ValueError(f"{name}: inventory data has no key and size columns ({table.column_names})")
    # StorageClass (CSV) / storage_class (Parquet, ORC), when the report has the field
    storage_class = by_name.get("storageclass", by_name.get("storage_class"))
    return pa.table({
        "key": table[by_name["key"]].cast(pa.string()),
        "size": table[by_name["size"]].cast(pa.int64()),
        "storage_class": table[storage_class].cast(pa.string()) if storage_class
        else pa.nulls(table.num_rows, pa.string()),
    })
