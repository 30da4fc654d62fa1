"""S3 storage per client from S3 Inventory reports: the `gb_months` driver of AmazonS3 `TimedStorage`.

Layout (as S3 Inventory writes it, DESIGN.md Inputs 4):

    <dest>/<source bucket>/<config id>/<YYYY-MM-DDTHH-MMZ>/manifest.json
    <dest>/<source bucket>/<config id>/data/<uuid>.csv.gz          (or .parquet / .orc)

The manifest names its data files in `files[].key` (keys of the destination bucket), their format in
`fileFormat` (CSV, Parquet or ORC) and, for CSV, the columns in `fileSchema` ("Bucket, Key, Size, ..."; CSV keys
are URL-encoded, a space as `+`). Only the files a manifest lists are read; a listed file that is missing is an error.

Each object's bytes count for the client in its key, `clients/<accountant_id>/...`, under the driver of its
`StorageClass` (the catalog's `storage_classes`: STANDARD -> `gb_months`, STANDARD_IA -> `gb_months_standard_ia`,
GLACIER -> `gb_months_glacier`, ...; a report without the field, or a class the catalog does not name, counts as
STANDARD; an INTELLIGENT_TIERING object whose report has `IntelligentTieringAccessTier` counts under its tier's
driver, `gb_months_int_frequent` ... `gb_months_int_deep_archive`, as S3 bills each tier apart); other keys are no
client's: their bytes count for `unattributed` (the application's own objects, inventory and log files delivered
into the bucket: the tenants never pay for them) and the objects are counted in
`problems['inventory_key_outside_clients']`. An object counts the bytes S3 bills for it:
under 128 KB in STANDARD_IA, ONEZONE_IA or GLACIER_IR, 128 KB; in GLACIER or DEEP_ARCHIVE its size + 32 KB, and
8 KB more under STANDARD's driver (the "40 KB of additional metadata for each archived object"). A snapshot stands
for the 24 hours after it (from its hour), or until the next snapshot of the same bucket and configuration if that
comes sooner, so
overlapping or re-run reports of one configuration never count an hour twice. Each of those hours gets
bytes / 2^30 / (hours in the month), so a month of hourly rows sums to GB-months (scope = the source bucket).

A bucket with several inventory configurations (a daily and a weekly one; current versions only and all versions;
the whole bucket and a prefix) has, for an hour that snapshots of more than one of them stand for, each (client,
driver)'s LARGEST bytes among those snapshots, never their sum (which counted a tenant inside a prefix
configuration twice): whole-bucket configurations list the same objects (the largest is either); a prefix-filtered
one lists a subset of a whole-bucket one (the largest is the superset's); an all-versions one also lists the
noncurrent versions, which S3 bills as storage too (the largest is the billed bytes). Known limit: where the only
configurations of an hour are filtered to disjoint prefixes inside ONE client's folder (`clients/a/x/` and
`clients/a/y/`, no whole-bucket one), that client counts the larger prefix's bytes, not their sum (undercounted).
Such bucket-hours (from `since`, in the month) are counted in
`problems['inventory_hours_overlapping_configurations']`.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections import Counter
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from billing_pipeline.catalog import load_catalog
from billing_pipeline.engines.duckdb_engine import scratch_connection
from billing_pipeline.readers.usage_files import read_bytes
from billing_pipeline.storage import Location, UnsafeLocation, optional_text, read_manifest_json, require_json

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

CLIENT_BYTES_SQL = """
-- Bytes per (snapshot, client, driver) of the objects read, with how many keys lie outside clients/<id>/ or
-- name a folder that is never a tenant. On Spark each executor runs this over its data files and the sums are
-- added up before HOURLY_STORAGE_SQL spreads them over hours.
WITH objects AS (
    -- (form-encoded: a space is `+`, a `+` is `%2B`; url_decode alone left `clients/Acme+Corp/`)
    SELECT o.snapshot_id, CASE WHEN s.url_encoded THEN url_decode(replace(o.key, '+', ' ')) ELSE o.key END AS key,
           o.size,
           o.storage_class
    FROM inventory_objects AS o JOIN inventory_snapshots AS s USING (snapshot_id)
),
clients AS (
    SELECT snapshot_id, regexp_extract(key, '^clients/([^/]+)/', 1) AS client, size, storage_class,
           split_part(upper(storage_class), '/', 1) AS class
    FROM objects
),
-- The bytes S3 bills for each object (S3 User Guide, storage classes): Standard-IA, One Zone-IA and Glacier Instant
-- Retrieval bill an object under 128 KB as 128 KB; Glacier Flexible Retrieval and Deep Archive add "40 KB of
-- additional metadata for each archived object": 32 KB at the class's rate, and 8 KB at the S3 Standard rate
-- (`standard_bytes`). Intelligent-Tiering has no minimum.
billed AS (
    SELECT *,
           CASE WHEN size IS NULL THEN NULL  -- (no object: greatest() would make one of 128 KB)
                WHEN class IN ('STANDARD_IA', 'ONEZONE_IA', 'GLACIER_IR') THEN greatest(size, 131072)
                WHEN class IN ('GLACIER', 'DEEP_ARCHIVE') THEN size + 32768
                ELSE size END AS billed_size,
           CASE WHEN class IN ('GLACIER', 'DEEP_ARCHIVE') AND size IS NOT NULL THEN 8192 END AS standard_bytes
    FROM clients
),
-- the client folder as a tenant id (docs/attribution-rules.md, "Tenant ids"): trimmed; a reserved word or a
-- control character is never a tenant; an object outside `clients/<id>/` is stored bytes nobody owns: its own
-- share, `unattributed`, never spread over the tenants (DESIGN: usage with no known owner); each storage class is
-- its own driver (the catalog's `storage_classes`); none or an unknown one: the first's (STANDARD's)
per_object AS (
    SELECT o.snapshot_id,
           CASE WHEN trim(o.client) = '' OR lower(trim(o.client)) IN ('unattributed', 'total')
                     OR regexp_matches(o.client, '[\\x00-\\x1f\\x7f]')
                THEN 'unattributed' ELSE trim(o.client) END AS accountant_id,
           coalesce(c.driver, k.driver, $default_driver) AS driver, o.billed_size, o.standard_bytes, o.client
    FROM billed AS o
    LEFT JOIN storage_class_drivers AS c ON c.storage_class = upper(o.storage_class)
    -- an Intelligent-Tiering access tier the catalog does not name: the class's own driver
    LEFT JOIN storage_class_drivers AS k ON k.storage_class = o.class
)
SELECT snapshot_id, accountant_id, driver, CAST(sum(billed_size) AS HUGEINT) AS bytes,
       count(*) AS objects,
       count(*) FILTER (trim(client) = '') AS outside_clients,
       count(*) FILTER (lower(trim(client)) IN ('unattributed', 'total')
                        OR regexp_matches(client, '[\\x00-\\x1f\\x7f]')) AS invalid_clients
FROM per_object
GROUP BY ALL
UNION ALL
-- an archived object's 8 KB at the Standard rate: bytes of STANDARD's driver (its object counted above)
SELECT snapshot_id, accountant_id, $default_driver, CAST(sum(standard_bytes) AS HUGEINT), 0, 0, 0
FROM per_object
WHERE standard_bytes IS NOT NULL
GROUP BY ALL
"""

HOURLY_STORAGE_SQL = """
-- Bytes per (snapshot, client) (`client_bytes`, from CLIENT_BYTES_SQL), spread over the hours the snapshot stands
-- for that fall in the month. An hour that snapshots of several configurations of the bucket stand for counts
-- each (client, driver)'s largest bytes among them, never their sum (one configuration's snapshots never overlap:
-- see find_snapshots).
SELECT
    hour AS usage_hour,
    'AmazonS3' AS service,
    b.driver,
    s.bucket AS scope,
    b.accountant_id,
    -- bytes / 2^30 / hours-in-month, rounded half up at 16 places (integer arithmetic: exact)
    CAST((max(b.bytes) * 10000000000000000 + $divisor // 2) // $divisor AS DECIMAL(38, 0))
        * CAST(0.0000000000000001 AS DECIMAL(18, 16)) AS quantity
FROM (SELECT snapshot_id, accountant_id, driver, CAST(sum(bytes) AS HUGEINT) AS bytes
      FROM client_bytes GROUP BY ALL) AS b
JOIN inventory_snapshots AS s USING (snapshot_id)
CROSS JOIN LATERAL generate_series(s.start_hour, s.end_hour - INTERVAL 1 HOUR, INTERVAL 1 HOUR) AS hours(hour)
WHERE b.accountant_id <> '' AND b.bytes <> 0 AND hour >= $period_start AND hour < $period_end
GROUP BY hour, b.driver, s.bucket, b.accountant_id
"""

OVERLAPPING_HOURS_SQL = """
-- Hours of a bucket (from $hours_from, in the month) that snapshots of more than one configuration stand for.
SELECT count(*) FROM (
    SELECT s.bucket, hour
    FROM inventory_snapshots AS s
    CROSS JOIN LATERAL generate_series(s.start_hour, s.end_hour - INTERVAL 1 HOUR, INTERVAL 1 HOUR) AS hours(hour)
    WHERE hour >= $hours_from AND hour < $period_end
    GROUP BY s.bucket, hour
    HAVING count(DISTINCT s.config) > 1
)
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
    plan = plan_inventory(location, billing_period, since)
    if plan is None:
        return InventoryUsage(USAGE_SCHEMA.empty_table())
    parts = [client_bytes(read_data_file(location, path, f.file_format, f.file_schema, f.manifest_name),
                          snapshot_id, f.url_encoded)
             for snapshot_id, f, path in plan.data_files()]
    return plan.usage(pa.concat_tables([empty_client_bytes(), *parts]), billing_period)


@dataclass
class SnapshotFiles:
    """What a snapshot's manifest says: its data files (resolved paths) and how to read them."""

    file_format: str
    file_schema: str
    manifest_name: str
    paths: list[str]

    @property
    def url_encoded(self) -> bool:
        return self.file_format == "CSV"  # CSV keys are URL-encoded


@dataclass
class InventoryPlan:
    """The month's snapshots and their data files, from the manifests (read where the plan is made); the data
    files themselves are read by `read_data_file` + `client_bytes`, on the driver (DuckDB) or on Spark's
    executors (readers/evidence_spark.py), and `usage` turns the summed client bytes into hourly rows."""

    snapshots: list[Snapshot]
    files: list[SnapshotFiles]
    since: dt.datetime | None = None  # the refresh's first hour (plan_inventory's `since`): the hours counted

    def data_files(self) -> list[tuple[int, SnapshotFiles, str]]:
        return [(i, f, path) for i, f in enumerate(self.files) for path in f.paths]

    def snapshots_table(self) -> pa.Table:
        return pa.table({
            "snapshot_id": pa.array(range(len(self.snapshots)), pa.int32()),
            "bucket": [s.bucket for s in self.snapshots],
            "config": [s.config for s in self.snapshots],
            "start_hour": pa.array([s.start_hour for s in self.snapshots], pa.timestamp("us")),
            "end_hour": pa.array([s.end_hour for s in self.snapshots], pa.timestamp("us")),
            "url_encoded": [f.url_encoded for f in self.files],
        })

    def usage(self, bytes_by_client: pa.Table, billing_period: dt.date) -> InventoryUsage:
        """The hourly rows from `client_bytes` rows (any number per key: they are summed), with the problems."""
        period_start, period_end = month_bounds(billing_period)
        hours_in_month = int((period_end - period_start).total_seconds() // 3600)
        con = scratch_connection()
        try:
            con.register("client_bytes", bytes_by_client)
            con.register("inventory_snapshots", self.snapshots_table())
            params = {"divisor": 2**30 * hours_in_month, "period_start": period_start, "period_end": period_end}
            usage = con.sql(HOURLY_STORAGE_SQL, params=params).to_arrow_table().cast(USAGE_SCHEMA)
            objects, outside, invalid = con.execute(
                "SELECT sum(objects), sum(outside_clients), sum(invalid_clients) FROM client_bytes").fetchone()
            hours_from = max(period_start, self.since) if self.since else period_start
            overlapping, = con.execute(OVERLAPPING_HOURS_SQL, {"hours_from": hours_from,
                                                               "period_end": period_end}).fetchone()
        finally:
            con.close()
        problems = {"inventory_key_outside_clients": int(outside)} if outside else {}
        if invalid:
            problems["invalid_accountant_id"] = int(invalid)  # objects under a folder that is never a tenant
        if overlapping:  # bucket-hours counted at the largest configuration's bytes (the module's docstring)
            problems["inventory_hours_overlapping_configurations"] = int(overlapping)
        files_read = sum(1 + len(f.paths) for f in self.files)
        return InventoryUsage(usage, problems, int(objects or 0), files_read)


def plan_inventory(location: Location | None, billing_period: dt.date,
                   since: dt.datetime | None = None) -> InventoryPlan | None:
    """The snapshots that stand for hours of the month and their manifests' data files; None when there are none."""
    if location is None:
        return None
    period_start, period_end = month_bounds(billing_period)
    snapshots = [s for s in find_snapshots(location) if s.start_hour < period_end and s.end_hour > period_start
                 and (since is None or s.end_hour > since)]
    if not snapshots:
        return None
    return InventoryPlan(snapshots, [snapshot_files(location, s) for s in snapshots], since)


CLIENT_BYTES_SCHEMA = pa.schema([("snapshot_id", pa.int32()), ("accountant_id", pa.string()),
                                 ("driver", pa.string()), ("bytes", pa.decimal128(38, 0)), ("objects", pa.int64()),
                                 ("outside_clients", pa.int64()), ("invalid_clients", pa.int64())])


def empty_client_bytes() -> pa.Table:
    return CLIENT_BYTES_SCHEMA.empty_table()


def client_bytes(objects: pa.Table, snapshot_id: int, url_encoded: bool) -> pa.Table:
    """CLIENT_BYTES_SQL over one data file's objects (`read_data_file`) of snapshot `snapshot_id`."""
    classes = load_catalog().storage_class_drivers()
    con = scratch_connection()
    try:
        con.register("inventory_objects", pa.table({
            "snapshot_id": pa.array([snapshot_id] * objects.num_rows, pa.int32()),
            "key": objects["key"], "size": objects["size"], "storage_class": objects["storage_class"],
        }, schema=OBJECTS_SCHEMA))
        con.register("inventory_snapshots", pa.table({"snapshot_id": pa.array([snapshot_id], pa.int32()),
                                                      "url_encoded": [url_encoded]}))
        con.register("storage_class_drivers", pa.table({"storage_class": list(classes),
                                                        "driver": list(classes.values())}))
        table = con.sql(CLIENT_BYTES_SQL, params={"default_driver": next(iter(classes.values()))}).to_arrow_table()
    finally:
        con.close()
    return table.cast(CLIENT_BYTES_SCHEMA)


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
        try:
            taken_at = dt.datetime(*(int(g) for g in folder.groups()))
        except ValueError:  # 2026-13-01T00-00Z: a bare `month must be in 1..12` named no file
            raise ValueError(f"{location.display(info.path)}: its folder {parts[-2]!r} names no time (S3 Inventory "
                             "writes YYYY-MM-DDTHH-MMZ)") from None
        snapshots.append(Snapshot(info.path, parts[-4], parts[-3], taken_at))
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


def snapshot_files(location: Location, snapshot: Snapshot) -> SnapshotFiles:
    """The snapshot's manifest: its data files (each resolved to where it is), their format and schema."""
    manifest_name = location.display(snapshot.manifest_path)
    try:
        manifest = read_manifest_json(location, snapshot.manifest_path)
    except ValueError as exc:
        raise ValueError(f"{manifest_name}: not a readable S3 Inventory manifest ({exc})") from exc
    # each field as the type S3 writes, else an error naming the manifest and the field
    file_format = (optional_text(manifest, "fileFormat", manifest_name) or "CSV").upper()
    file_schema = optional_text(manifest, "fileSchema", manifest_name) or ""
    entries = require_json(manifest.get("files"), list, manifest_name, "files")
    keys = [require_json(require_json(entry, dict, manifest_name, f"files[{i}]").get("key"), str, manifest_name,
                         f"files[{i}].key") for i, entry in enumerate(entries)]
    source_bucket = optional_text(manifest, "sourceBucket", manifest_name)
    if source_bucket and source_bucket != snapshot.bucket:
        # the bucket is the scope its bytes are evidence for: believed only as far as it agrees with the folder
        raise ValueError(f"{manifest_name}: sourceBucket {source_bucket!r} is not the bucket its folder names "
                         f"({snapshot.bucket!r}; S3 Inventory writes <destination>/<source bucket>/<config>/): "
                         "which bucket's objects it lists cannot be told")
    paths = [resolve_data_file(location, snapshot, key) for key in keys]
    times_listed = Counter(paths)
    repeated = sorted({key for key, path in zip(keys, paths) if times_listed[path] > 1})
    if repeated:  # counted twice, the bytes stored would be too
        raise ValueError(f"{manifest_name}: lists the data file {repeated[0]!r} more than once")
    return SnapshotFiles(file_format, file_schema, manifest_name, paths)


def resolve_data_file(location: Location, snapshot: Snapshot, key: str) -> str:
    """Where a manifest's data key is: beside the report folder (wherever the destination was copied), else the
    key under the location. Never in the bucket the manifest names as its destination: AWS writes the data files
    beside the manifests (`<source bucket>/<config>/data/`), so a data file only that bucket holds is another
    bucket's object, which a manifest must not make the pipeline read (as CUR manifests, docs/input-integrity.md)."""
    manifest_name = location.display(snapshot.manifest_path)
    if "\x00" in key:  # the S3 client ends a key at its NUL: `<key>\x00` was `<key>` once more, its bytes twice
        raise ValueError(f"{manifest_name}: lists data file {key!r}, which holds a NUL character: not a key")
    candidates = []
    report_folder = "/".join(snapshot.manifest_path.split("/")[:-4])  # the folder holding <bucket>/<config>/
    marker = f"{snapshot.manifest_path.split('/')[-4]}/{snapshot.config}/"
    if marker in key:
        candidates.append(f"{report_folder}/{key[key.index(marker):]}")
    candidates.append(location.join(key))
    # the manifest's own report: `<destination>/<source bucket>/<config>/`, where AWS writes its data files
    own_report = "/".join(snapshot.manifest_path.split("/")[:-2]) + "/"
    for candidate in candidates:
        try:
            found = location.filesystem.get_file_info(candidate).type == pafs.FileType.File
        except (pa.ArrowInvalid, OSError) as error:  # `a//b`, `s3://...` below the folder: a bare pyarrow error
            raise ValueError(f"{manifest_name}: lists data file {key!r}, which is not a path ({error})") from None
        if found:
            try:  # a key with '..' must not lead out of the inventory folder
                location.confined(candidate)
            except UnsafeLocation as error:
                raise ValueError(f"{manifest_name}: lists data file {key!r}: {error}") from None
            # another bucket's (or configuration's) inventory, `..` resolved as the filesystem would
            if not posixpath.normpath(candidate).startswith(own_report):
                raise ValueError(f"{manifest_name}: lists data file {key!r}, which lies "
                                 f"outside its own inventory report {location.display(own_report.rstrip('/'))}")
            return candidate
    raise ValueError(
        f"{manifest_name}: lists data file {key!r}, which is missing "
        f"(looked for {', '.join(location.display(c) for c in candidates)})"
    )


def _read_columnar(raw: bytes, file_format: str, name: str) -> pa.Table:
    """A Parquet or ORC data file's key, size and storage class columns (matched in any case; no other column is
    decoded) under the expansion limit of gzip files (log_streams.Limits): a few hundred KB of one key repeated,
    encoded, decoded whole into gigabytes. Refused before decoding when its row count alone (each row at least a
    size and a key offset, 12 bytes) passes the limit; then checked as it decodes, Parquet a batch of rows at a
    time, ORC a stripe at a time."""
    from billing_pipeline.readers.log_streams import Limits  # (it imports usage_files, as this module does)

    limits = Limits.from_env()
    if file_format == "PARQUET":
        source = pq.ParquetFile(pa.BufferReader(raw))
        names, rows = source.schema_arrow.names, source.metadata.num_rows
    else:
        import pyarrow.orc as paorc

        source = paorc.ORCFile(pa.BufferReader(raw))
        names, rows = source.schema.names, source.nrows
    limits.check_expansion(name, rows * 12, len(raw))
    wanted = [n for n in names if n.lower() in ("key", "size", "storageclass", "storage_class",
                                                "intelligenttieringaccesstier", "intelligent_tiering_access_tier")]
    if file_format == "PARQUET":
        batches = source.iter_batches(batch_size=16 * 1024, columns=wanted)
    else:
        batches = (source.read_stripe(i, columns=wanted) for i in range(source.nstripes))
    held, pieces = 0, []
    for batch in batches:
        held += batch.nbytes
        limits.check_expansion(name, held, len(raw))
        pieces.append(batch)
    schema = source.schema_arrow if file_format == "PARQUET" else source.schema
    return pa.Table.from_batches(pieces, pa.schema([schema.field(n) for n in wanted]))


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
            for optional in ("storageclass", "intelligenttieringaccesstier"):
                if optional in lowered:
                    wanted.append(columns[lowered.index(optional)])
            table = pacsv.read_csv(
                pa.BufferReader(read_bytes(location, path)),
                read_options=pacsv.ReadOptions(column_names=columns),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={name: pa.string() for name in wanted} | {size_column: pa.int64()},
                ),
            )
        elif file_format in ("PARQUET", "ORC"):
            table = _read_columnar(read_bytes(location, path), file_format, name)
        else:
            raise ValueError(f"{manifest_name}: unknown inventory fileFormat {file_format!r}")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{name}: not a readable S3 Inventory {file_format} file ({exc})") from exc
    by_name = {c.lower(): c for c in table.column_names}
    if "key" not in by_name or "size" not in by_name:
        raise ValueError(f"{name}: inventory data has no key and size columns ({table.column_names})")
    # StorageClass (CSV) / storage_class (Parquet, ORC), when the report has the field
    storage_class = by_name.get("storageclass", by_name.get("storage_class"))
    access_tier = by_name.get("intelligenttieringaccesstier", by_name.get("intelligent_tiering_access_tier"))
    if not pa.types.is_integer(table[by_name["size"]].type):  # S3 writes a count of bytes (long)
        raise ValueError(f"{name}: inventory key or size of the wrong type (size is {table[by_name['size']].type}, "
                         "not an integer count of bytes)")
    try:
        sizes = table[by_name["size"]].cast(pa.int64())
        classes = table[storage_class].cast(pa.string()) if storage_class else pa.nulls(table.num_rows, pa.string())
        if storage_class and access_tier:
            # S3 bills each Intelligent-Tiering access tier as its own usage type (TimedStorage-INT-FA, -IA, -AIA,
            # -AA, -DAA): the object's tier rides on its class, `INTELLIGENT_TIERING/DEEP_ARCHIVE_ACCESS`, which the
            # catalog's storage_classes name (CLIENT_BYTES_SQL falls back to the class alone)
            tiers = pc.utf8_upper(pc.utf8_trim_whitespace(table[access_tier].cast(pa.string())))
            tiered = pc.and_(pc.equal(pc.utf8_upper(classes), "INTELLIGENT_TIERING"), pc.not_equal(tiers, ""))
            classes = pc.if_else(pc.fill_null(tiered, False),
                                 pc.binary_join_element_wise(classes, tiers, "/"), classes)
        columns = {"key": table[by_name["key"]].cast(pa.string()), "size": sizes, "storage_class": classes}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"{name}: inventory key or size of the wrong type ({exc})") from None
    if pc.any(pc.less(sizes, 0)).as_py():
        raise ValueError(f"{name}: an object of negative size (a size is a count of bytes)")
    return pa.table(columns)
