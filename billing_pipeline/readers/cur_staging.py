"""Staging a delivery's line items in DuckDB, in the shape of `cur_line_items` (warehouse.sql).

Each CSV file, and each set of Parquet files of one schema, goes through `cur_line_items.sql` in one statement
(an error names its file either way). What differs between files
(layout, CSV vs Parquet, which optional columns exist, how tags are stored) is settled here, in the `items`
projection that feeds that SQL: every column of `CUR_COLUMNS`, typed, or a typed NULL where the file lacks it.
The projection and that SQL are also what Spark runs (readers/cur_spark.py, transpiled by sqlglot), so they keep
to DuckDB SQL that sqlglot can write in Spark's dialect: no `* EXCLUDE`, no lambda indexes (Spark counts from 0),
`array_position`, `map['key']`.
"""

from __future__ import annotations

import re
import uuid

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from billing_pipeline.catalog import load_catalog
from billing_pipeline.readers.cur_columns import (
    CUR_COLUMNS,
    CUR_TAG_MAP_COLUMNS,
    FOCUS_COLUMNS,
    FOCUS_TAG_MAP_COLUMNS,
    FOCUS_MARKER,
    MONEY,
    NET_MARKER,
    NUMBER,
    PRODUCT_MAP_COLUMN,
    PRODUCT_MAP_KEYS,
    RESOURCE_TAG_SOURCE,
    TEXT,
    TIMESTAMP,
    USER_TAG_PREFIX,
    CurColumn,
    parquet_column_name,
    tag_key_sql,
)
from billing_pipeline.readers.cur_files import CurFile, open_cur_file
from billing_pipeline.readers.cur_types import CurDelivery, CurFormatError
from billing_pipeline.sql import column_definitions, read_sql, sql_string
from billing_pipeline.storage import Location


# cur_line_items.sql's `{product_code_services}`: each other product code a catalog service is billed under, as
# that service (catalog.json `product_codes`)
PRODUCT_CODE_BRANCHES = " ".join(f"WHEN line_item_product_code = {sql_string(code)} THEN {sql_string(service)}"
                                 for code, service in load_catalog().product_code_services().items())
LINE_ITEMS_SQL = read_sql("billing_pipeline.readers", "cur_line_items.sql").replace(
    "{product_code_services}", PRODUCT_CODE_BRANCHES)
INSERT_CLAUSE = "INSERT INTO {table} BY NAME"
if INSERT_CLAUSE not in LINE_ITEMS_SQL:
    raise RuntimeError(f"cur_line_items.sql: expected `{INSERT_CLAUSE}` before its query")

DECIMAL = "DECIMAL(38, 10)"
SQL_TYPES = {TEXT: "VARCHAR", MONEY: DECIMAL, NUMBER: DECIMAL, TIMESTAMP: "TIMESTAMP"}
# Below this a DOUBLE scaled by 1e10 is within 0.14 of the integer its 10-place decimal is (half an ulp of the
# double plus the product's rounding), so the plain cast is exact; from it up the double goes through its text.
DOUBLE_EXACT_BELOW = 100000
# An ISO-8601 time with a zone (`...T00:00:00Z`, `+05:00`): parsed as an instant and converted to UTC.
ZONED_TIME = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"
# Every time starts with a date (a LIKE, cheaper than a regexp): Spark's cast would also take 'yesterday', 'now'
# or a bare year, DuckDB's 'infinity'.
DATED = "____-%-%"


def stage_line_items(con: duckdb.DuckDBPyConnection, location: Location, delivery: CurDelivery, table: str) -> int:
    """(Re)create TEMP table `table` in `con` holding the delivery's line items with exactly the columns of
    cur_line_items in warehouse.sql, in that order and with those types. Returns the row count.
    Any bad input -> CurFormatError naming the file and the problem (nothing is written outside the temp table)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise ValueError(f"not a plain table name: {table!r}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({_line_item_columns()})").fetchall()
    try:
        insert_line_items(con, location, delivery, table)
    except BaseException:
        # Half a month is worse than none: leave no partial staging table behind.
        con.execute(f"DROP TABLE IF EXISTS temp.{table}").fetchall()
        raise
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def insert_line_items(con: duckdb.DuckDBPyConnection, location: Location, delivery: CurDelivery, table: str) -> None:
    """Append the delivery's line items to the existing table `table` (cur_line_items' columns). Run it inside a
    transaction to make a failure leave nothing behind.

    Parquet files of one schema are read by one statement: AWS writes each file as a single row group, and DuckDB
    scans a file's row groups, not its rows, in parallel, so file by file would use one core. CSV files stream one
    at a time (pyarrow's CSV reader is parallel itself). An error names its file either way."""
    for group in _scan_groups(location, delivery.files):
        _stage_files(con, location, delivery, group, table)


def _scan_groups(location: Location, paths: list[str]) -> list[list[CurFile]]:
    """The delivery's files (their footers or headers read, an unreadable one named) in groups that one statement
    can read: Parquet files with the same columns and types, all local or all remote; every CSV file alone."""
    groups: dict[object, list[CurFile]] = {}
    for path in paths:
        try:
            cur_file = open_cur_file(location, path)
        except Exception as error:
            raise CurFormatError(f"{location.display(path)}: unreadable CUR file: {error}") from error
        is_parquet = cur_file.header is None
        key = (tuple((name, str(kind)) for name, kind in cur_file.columns.items()), cur_file.local_parquet is not None) \
            if is_parquet else path
        groups.setdefault(key, []).append(cur_file)
    return list(groups.values())


def _line_item_columns() -> str:
    """The column list of cur_line_items, as DuckDB reads warehouse.sql, so the staging table cannot drift from it."""
    return column_definitions("cur_line_items")


def _stage_files(con: duckdb.DuckDBPyConnection, location: Location, delivery: CurDelivery, group: list[CurFile],
                 table: str) -> None:
    """One file, or Parquet files of one schema, through cur_line_items.sql in one statement; each row's
    `source_file` is its own file's."""
    displays = {cur_file.path: location.display(cur_file.path) for cur_file in group}
    first = group[0]
    view = f"cur_files_{uuid.uuid4().hex}"
    path_column = "cur_source_path"  # with several files: the file each row came from, as the scan names it
    if len(group) == 1:
        source_file_sql = None  # the one file's name
    else:
        by_path = "MAP {" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in displays.items()) + "}"
        source_file_sql = f"{by_path}[{path_column}]"
    projection = _Projection(first, view, displays[first.path], source_file_sql=source_file_sql)
    sql = LINE_ITEMS_SQL.replace("{table}", table).replace("{source}", projection.sql)
    try:
        if first.local_parquet:
            # DuckDB scans local Parquet itself, in parallel, reading only the projected columns.
            paths = "[" + ", ".join(sql_string(f.local_parquet) for f in group) + "]"
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS "
                        f"SELECT * FROM read_parquet({paths}, filename = '{path_column}')").fetchall()
        elif len(group) == 1:
            con.register(view, first.read(projection.read_columns))
        else:
            scan = pads.dataset([f.path for f in group], format="parquet", filesystem=location.filesystem)
            batches = scan.scanner(columns=projection.read_columns + ["__filename"]).to_reader()
            con.register(view, _renamed(batches, "__filename", path_column))
        con.execute(sql, _parameters(delivery, projection)).fetchall()
    except Exception as error:  # corrupt gzip / Parquet pages, ragged CSV, bad values, NOT NULL violations
        problem = _problem(error)
        if any(problem.startswith(f"{display}: ") for display in displays.values()):
            raise CurFormatError(problem) from error  # a bad value: its message names its file (as on Spark)
        if len(group) == 1:
            raise CurFormatError(f"{displays[first.path]}: {problem}") from error
        # Anything else (a corrupt page, a NOT NULL violation) does not say which of the files: each is read on
        # its own, on the side, until one fails with its name.
        _name_the_bad_file(location, delivery, group, error)
    finally:
        try:
            if first.local_parquet:
                con.execute(f"DROP VIEW IF EXISTS temp.{view}").fetchall()
            else:
                con.unregister(view)
        except Exception:
            pass


def _renamed(batches: pa.RecordBatchReader, old: str, new: str) -> pa.RecordBatchReader:
    schema = pa.schema([field.with_name(new) if field.name == old else field for field in batches.schema])
    return pa.RecordBatchReader.from_batches(
        schema, (pa.RecordBatch.from_arrays(batch.columns, schema=schema) for batch in batches))


def _name_the_bad_file(location: Location, delivery: CurDelivery, group: list[CurFile], error: Exception):
    from billing_pipeline.engines.duckdb_engine import scratch_connection

    with scratch_connection() as scratch:
        scratch.execute(f"CREATE TEMP TABLE diagnosis ({_line_item_columns()})")
        for cur_file in group:
            _stage_files(scratch, location, delivery, [cur_file], "diagnosis")  # raises, naming it
            scratch.execute("DELETE FROM diagnosis")
    names = ", ".join(location.display(f.path) for f in group[:3])
    raise CurFormatError(f"one of {len(group)} files ({names}{', ...' if len(group) > 3 else ''}): "
                         f"{_problem(error)}") from error


def line_items_query(cur_file: CurFile, view: str, display: str, delivery: CurDelivery,
                     names: dict[str, str] | None = None) -> tuple[str, dict]:
    """One file's rows of cur_line_items as a query over `view` (DuckDB dialect: cur_line_items.sql without its
    INSERT) and its parameters. `names`: the file's columns as `view` names them, when not by their own names."""
    projection = _Projection(cur_file, view, display, names)
    sql = LINE_ITEMS_SQL.replace(INSERT_CLAUSE, "").replace("{source}", projection.sql)
    return sql, _parameters(delivery, projection)


def _parameters(delivery: CurDelivery, projection: _Projection) -> dict:
    return {
        "billing_period": delivery.billing_period,
        "has_net": projection.has_net,
        "delivery_id": delivery.delivery_id,
        **load_catalog().tag_parameters(),
    }


def _problem(error: Exception) -> str:
    """DuckDB's message without its SQL excerpt (the statement is ours, not the user's)."""
    message = str(error).split("\n\nLINE ", 1)[0].strip()
    # a ValueError of the Python stream DuckDB was reading (a compression bomb) arrives inside its traceback
    raised = re.findall(r"^ValueError: (.+)$", message, flags=re.M) if "Python exception" in message else []
    if raised:
        return raised[-1].strip()
    return re.sub(r"^(Invalid Input|Conversion|Constraint) Error: ", "", message)


class _Projection:
    """The `items` SELECT for one file: each CUR column under its Parquet name, typed; `tags` a MAP; `source_file`.
    `names` maps a source column to its name in `view` where the reader renamed it (Spark reads CSV columns by
    position, c0, c1, ..., so that any header works); the SQL and its messages keep the source's own names.
    `source_file_sql`: where `view` holds several files of this one's schema, the expression naming each row's."""

    def __init__(self, cur_file: CurFile, view: str, display: str, names: dict[str, str] | None = None,
                 source_file_sql: str | None = None):
        self.file, self.display, self.names = cur_file, display, names or {}
        self.source_file_sql = source_file_sql or sql_string(display)
        self.read_columns: list[str] = []
        is_focus = FOCUS_MARKER.lower() in {name.lower() for name in cur_file.columns}
        source_of = self._focus_sources() if is_focus else self._cur_sources()
        self.has_net = NET_MARKER in source_of
        by_lower = {name.lower(): name for name in cur_file.columns}
        self.product_map = None if is_focus else by_lower.get(PRODUCT_MAP_COLUMN)  # CUR 2.0's `product` MAP

        selected = [self._column(column, source_of.get(column.name)) for column in CUR_COLUMNS.values()]
        selected.append(f"{self.source_file_sql} AS source_file")
        self._keys_unique = False  # set by _tag_entries when the keys cannot repeat (one column per key)
        tag_entries = self._tag_entries(is_focus)
        if tag_entries is None:
            self.sql = f"SELECT {', '.join(selected)}, CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS tags FROM {view}"
        elif self._keys_unique:
            # Tag columns: one column per normalized key, so the entries need no de-duplication.
            self.sql = f"SELECT {', '.join(selected)}, map_from_entries({tag_entries}) AS tags FROM {view}"
        else:
            # First occurrence of each normalized key wins (MAP keys must be unique): an entry is the first of
            # its key when that key's first position is the entry's own, found by its raw key (unique in a map).
            first = ("list_filter(tag_entries, lambda e: "
                     "array_position(list_transform(tag_entries, lambda x: x.key), e.key) = "
                     "array_position(list_transform(tag_entries, lambda x: x.raw), e.raw))")
            unique = f"list_transform({first}, lambda e: {{'key': e.key, 'value': e.value}})"
            self.sql = (f"SELECT {', '.join(CUR_COLUMNS)}, source_file, map_from_entries({unique}) AS tags "
                        f"FROM (SELECT {', '.join(selected)}, {tag_entries} AS tag_entries FROM {view})")

    # -- which source column feeds which CUR column --------------------------------------------------------

    def _cur_sources(self) -> dict[str, str]:
        """CUR column -> source column, by AWS's Parquet naming rule (CSV `lineItem/UnblendedCost` and Parquet
        `line_item_unblended_cost` alike). Two headers that normalize to the name of a column the pipeline reads
        are refused (which one holds the cost would be a guess); other repeats (tags) keep the first."""
        sources: dict[str, str] = {}
        for name in self.file.columns:
            key = parquet_column_name(name)
            self._add_source(sources, key, name, refuse_repeat=key in CUR_COLUMNS, holds=key)
        return sources

    def _focus_sources(self) -> dict[str, str]:
        """CUR column -> FOCUS column, names matched in any case. Two columns of one name in two cases
        (`BilledCost`, `billedcost`) are refused where the pipeline reads that name, as for legacy CUR."""
        read = {name.lower(): name for names in FOCUS_COLUMNS.values() for name in names}
        read.update({name.lower(): name for name in FOCUS_TAG_MAP_COLUMNS})
        by_lower: dict[str, str] = {}
        for name in self.file.columns:
            key = name.lower()
            self._add_source(by_lower, key, name, refuse_repeat=key in read, holds=read.get(key, key))
        sources = {}
        for cur_name, focus_names in FOCUS_COLUMNS.items():
            present = [by_lower[n.lower()] for n in focus_names if n.lower() in by_lower]
            if present:
                sources[cur_name] = present[0]
        return sources

    def _add_source(self, sources: dict[str, str], key: str, name: str, refuse_repeat: bool, holds: str) -> None:
        """`name` as the source of `key`, unless a column came first: then refused when the pipeline reads it
        (which one holds the value would be a guess), else the first kept."""
        if key in sources and refuse_repeat:
            raise CurFormatError(f"{self.display}: columns {sources[key]!r} and {name!r} both hold {holds}: which "
                                 "one holds the value is ambiguous")
        sources.setdefault(key, name)

    # -- typed columns -------------------------------------------------------------------------------------

    def _column(self, column: CurColumn, source: str | None) -> str:
        if source is None and column.name in PRODUCT_MAP_KEYS and self.product_map is not None:
            return f"{self._product_map_value(PRODUCT_MAP_KEYS[column.name])} AS {column.name}"
        if source is None:
            if column.required:
                raise CurFormatError(f"{self.display}: missing required column {column.name}")
            return f"CAST(NULL AS {SQL_TYPES[column.kind]}) AS {column.name}"
        return f"{self._typed(column, source)} AS {column.name}"

    def _product_map_value(self, key: str) -> str:
        """A product attribute CUR 2.0 holds in its `product` MAP (a JSON object in a CSV export), as text; '' and
        a missing key are NULL, and so is a map that is not of text (the attributes read this way are optional)."""
        arrow_type = self.file.columns[self.product_map]
        ref = self._read(self.product_map)
        if pa.types.is_map(arrow_type) and all(pa.types.is_string(t) or pa.types.is_large_string(t)
                                               for t in (arrow_type.key_type, arrow_type.item_type)):
            return f"NULLIF({ref}[{sql_string(key)}], '')"
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            parsed = f"TRY_CAST(TRY_CAST(NULLIF(TRIM({ref}), '') AS JSON) AS MAP(VARCHAR, VARCHAR))"
            return f"NULLIF({parsed}[{sql_string(key)}], '')"
        return "CAST(NULL AS VARCHAR)"

    def _typed(self, column: CurColumn, source: str) -> str:
        arrow_type = self.file.columns[source]
        ref = self._read(source)
        if pa.types.is_null(arrow_type):
            return f"CAST(NULL AS {SQL_TYPES[column.kind]})"
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return self._parsed_text(column, source, ref)
        if column.kind == TEXT and _is_binary(arrow_type):
            # Parquet BINARY without the UTF8 annotation: a cast would spell 'é' as '\xC3\xA9'; decoded strictly,
            # bytes that are not UTF-8 fail naming the column (try(decode()): Spark's is_valid_utf8, engines/)
            text = f"try(decode({ref}))"
            return (f"CASE WHEN {ref} IS NULL THEN NULL WHEN {text} IS NULL "
                    f"THEN error({self._label(source)} || 'not valid UTF-8 text') ELSE NULLIF({text}, '') END")
        if column.kind == TEXT and not pa.types.is_nested(arrow_type):
            return f"NULLIF(CAST({ref} AS VARCHAR), '')"
        if column.kind == MONEY and pa.types.is_floating(arrow_type) and arrow_type.bit_width < 64:
            # 7 significant digits: 0.1 reads 0.1000000015; AWS writes DOUBLE (15 digits) or text
            raise CurFormatError(f"{self.display}: column {source} has type {arrow_type}, too coarse for money "
                                 "(expected double, decimal or text)")
        if column.kind in (MONEY, NUMBER) and pa.types.is_floating(arrow_type):
            return _double_as_decimal(ref)  # Parquet DOUBLE -> exact decimal once; sums stay exact after
        if column.kind in (MONEY, NUMBER) and (pa.types.is_integer(arrow_type) or pa.types.is_decimal(arrow_type)):
            return f"CAST({ref} AS {DECIMAL})"
        if column.kind == TIMESTAMP and pa.types.is_timestamp(arrow_type):
            # A zoned Arrow timestamp is an instant: take its UTC wall clock. A naive one is UTC already.
            return f"({ref} AT TIME ZONE 'UTC')" if arrow_type.tz else f"CAST({ref} AS TIMESTAMP)"
        if column.kind == TIMESTAMP and pa.types.is_date(arrow_type):
            return f"CAST({ref} AS TIMESTAMP)"
        expected = {TEXT: "text", MONEY: "a number", NUMBER: "a number", TIMESTAMP: "a timestamp"}[column.kind]
        raise CurFormatError(f"{self.display}: column {source} has type {arrow_type}, expected {expected}")

    def _parsed_text(self, column: CurColumn, source: str, ref: str) -> str:
        """Text values: '' is NULL; numbers and times are parsed, and a value that does not parse fails the
        file with the column named (DuckDB's error() inside the CASE, so it costs one pass)."""
        value = f"NULLIF(TRIM({ref}), '')"
        if column.kind == TEXT:
            return f"NULLIF({ref}, '')"
        label = self._label(source)
        if column.kind in (MONEY, NUMBER):
            number = f"TRY_CAST({value} AS {DECIMAL})"  # CSV text straight to DECIMAL: exact
            return (f"CASE WHEN {value} IS NULL THEN NULL WHEN {number} IS NULL "
                    f"THEN error({label} || '\"' || {ref} || '\" is not a number') ELSE {number} END")
        zoned = f"(TRY_CAST({value} AS TIMESTAMPTZ) AT TIME ZONE 'UTC')"
        naive = f"TRY_CAST({value} AS TIMESTAMP)"
        time = (f"CASE WHEN {value} NOT LIKE '{DATED}' THEN NULL "
                f"WHEN regexp_matches({value}, '{ZONED_TIME}') THEN {zoned} ELSE {naive} END")
        return (f"CASE WHEN {value} IS NULL THEN NULL WHEN {time} IS NULL "
                f"THEN error({label} || '\"' || {ref} || '\" is not a timestamp') ELSE {time} END")

    # -- tags -------------------------------------------------------------------------------------------

    def _tag_entries(self, is_focus: bool) -> str | None:
        """A list of {key, value} user tags (keys by AWS's Parquet rule, without `user_`), or None when the
        file has no tag columns at all (then `tags` is NULL)."""
        by_lower = {name.lower(): name for name in self.file.columns}
        map_names = FOCUS_TAG_MAP_COLUMNS if is_focus else CUR_TAG_MAP_COLUMNS
        map_column = next((by_lower[n.lower()] for n in map_names if n.lower() in by_lower), None)
        if map_column is not None:
            return self._map_tag_entries(map_column)
        if is_focus:
            return None
        columns: dict[str, str] = {}  # tag key -> source column; first wins
        for name in self.file.columns:
            normalized = parquet_column_name(name)
            if normalized.startswith(USER_TAG_PREFIX):
                columns.setdefault(normalized[len(USER_TAG_PREFIX):], name)
        if not columns:
            return None
        entries = ", ".join(
            f"{{'key': {sql_string(key)}, 'value': {self._typed(CurColumn(key, TEXT), source)}}}"
            for key, source in columns.items()
        )
        self._keys_unique = True
        return f"list_filter([{entries}], lambda e: e.value IS NOT NULL)"

    def _map_tag_entries(self, source: str) -> str:
        """Tags held in one MAP column (CUR 2.0 `resource_tags`, FOCUS `Tags`) or a JSON object in text
        (FOCUS CSV). Keys are normalized by AWS's rule; `aws:`/`aws_` keys are AWS's, not user tags."""
        arrow_type = self.file.columns[source]
        ref = self._read(source)
        if pa.types.is_map(arrow_type):
            texts = [t for t in (arrow_type.key_type, arrow_type.item_type)
                     if pa.types.is_string(t) or pa.types.is_large_string(t)]
            if len(texts) < 2:
                # AWS writes MAP<STRING, STRING>; bytes (BINARY without UTF8) would match no tenant's tag value
                # and leave its cost unattributed, silently
                raise CurFormatError(f"{self.display}: column {source} maps {arrow_type.key_type} to "
                                     f"{arrow_type.item_type}, expected a map of text tags")
            tag_map = ref
        elif pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            # TRY_CAST and error() rather than DuckDB's own cast error: Spark's from_json gives NULL instead
            text = f"NULLIF(TRIM({ref}), '')"
            parsed = f"TRY_CAST(TRY_CAST({text} AS JSON) AS MAP(VARCHAR, VARCHAR))"
            label = self._label(source)
            tag_map = (f"CASE WHEN {text} IS NULL THEN NULL WHEN {parsed} IS NULL "
                       f"THEN error({label} || '\"' || {ref} || '\" is not a JSON object of tags') ELSE {parsed} END")
        else:
            raise CurFormatError(f"{self.display}: column {source} has type {arrow_type}, expected a map of tags")
        # a resource's tag under its own key, whatever map holds it (cur_columns.RESOURCE_TAG_SOURCE); `user:` /
        # `user_` is the user tags' prefix, dropped (not `userAttribute/`, the IAM Identity Center attributes')
        key = f"regexp_replace(e.key, '^{RESOURCE_TAG_SOURCE}', '')"
        normalized = tag_key_sql(key)
        unprefixed = f"CASE WHEN regexp_matches(lower({key}), '^user[:_]') THEN regexp_replace({normalized}, '^user_', '') " \
                     f"ELSE {normalized} END"
        return (
            "list_transform(list_filter(map_entries(" + tag_map + "), lambda e: NULLIF(e.value, '') IS NOT NULL "
            f"AND NOT starts_with({normalized}, 'aws_')), "
            f"lambda e: {{'key': {unprefixed}, 'value': e.value, 'raw': e.key}})"
        )

    def _label(self, source: str) -> str:
        """The start of a bad value's message: its file and column."""
        return f"{self.source_file_sql} || {sql_string(f': column {source}: ')}"

    def _read(self, source: str) -> str:
        if source not in self.read_columns:
            self.read_columns.append(source)
        name = self.names.get(source, source)
        return '"' + name.replace('"', '""') + '"'


def _double_as_decimal(ref: str) -> str:
    """A DOUBLE as the decimal AWS wrote (the shortest text that reads back as it), to 1e-10. DuckDB's own cast
    scales the double by 1e10 in floating point, so from about 1e5 up it invents digits (374633.962424 reads
    374633.9624240001, 1234567.89 reads 1234567.8899999998); below that its result is the same and costs a tenth.
    NaN and infinity (x - x is not 0) take the plain cast, which fails naming the value."""
    text = f"CAST(CAST({ref} AS VARCHAR) AS {DECIMAL})"
    return f"CASE WHEN abs({ref}) >= {DOUBLE_EXACT_BELOW} AND {ref} - {ref} = 0 THEN {text} ELSE CAST({ref} AS {DECIMAL}) END"


def _is_binary(arrow_type: pa.DataType) -> bool:
    return (pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)
            or pa.types.is_fixed_size_binary(arrow_type) or pa.types.is_binary_view(arrow_type))

