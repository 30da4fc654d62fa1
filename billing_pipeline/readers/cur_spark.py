"""Staging a delivery's line items inside Spark, for months beyond one machine.

Spark reads the files the delivery names itself (Parquet as it is; CSV, plain or gzip, every column as text) and
runs on each the same projection and normalization as the DuckDB path (cur_staging: `_Projection` and
cur_line_items.sql), transpiled by sqlglot. The driver only opens each file's header or footer, to build that
projection. A bad value fails the query with a message naming its file, as on DuckDB; an error of Spark's own
(a corrupt file) is mapped back to the file its message names.
"""

from __future__ import annotations

import re
import uuid

from billing_pipeline.readers.cur_files import open_cur_file, text_stream
from billing_pipeline.readers.cur_staging import line_items_query
from billing_pipeline.readers.cur_types import CurDelivery, CurFormatError
from billing_pipeline.storage import Location, locate

TABLE = "cur_line_items"
HADOOP_GLOB = re.compile(r"([*?\[\]{}\\])")  # Spark expands these in a path: a file's own are escaped
RAISED = re.compile(r"\[USER_RAISED_EXCEPTION\] (.*?) SQLSTATE: P0001", re.DOTALL)


def stage_line_items(engine, location: Location, delivery: CurDelivery, name: str) -> int:
    """Temp view `name` of `engine` (a SparkEngine) holding the delivery's line items in the shape of
    cur_line_items, computed once (checkpointed). Returns the row count. Bad input -> CurFormatError naming the
    file and the problem; then no view is left behind."""
    views: list[str] = []
    unzipped: list[str] = []
    try:
        files = {}  # Spark's URI -> the name a person knows the file by
        parts = []
        for path in delivery.files:
            uri, frame = _file_frame(engine, location, delivery, path, views, unzipped)
            files[uri] = location.display(path)
            parts.append(f"cur_part_{uuid.uuid4().hex}")
            frame.createOrReplaceTempView(parts[-1])
            views.append(parts[-1])
        # one n-ary UNION ALL (every part has cur_line_items.sql's columns in its order): DataFrame.union file by
        # file re-analyzes the growing plan, 38 s instead of 0.5 s for 100 files
        union = (engine.session.sql(" UNION ALL ".join(f"SELECT * FROM {part}" for part in parts)) if parts
                 else engine.session.table(TABLE).limit(0))
        try:
            union = union.localCheckpoint(eager=True)
        except Exception as error:
            raise CurFormatError(_problem(error, files)) from None
        union.createOrReplaceTempView(name)
    finally:
        for view in views:
            engine.session.catalog.dropTempView(view)
        for uri in unzipped:
            copy = locate(uri)
            copy.filesystem.delete_file(copy.path)
    try:
        return _check_required(engine, name)
    except BaseException:
        engine.drop(name)
        raise


def _file_frame(engine, location: Location, delivery: CurDelivery, path: str, views: list[str],
                unzipped: list[str]):
    """(Spark's URI of the file, its rows of cur_line_items as a DataFrame)."""
    display = location.display(path)
    try:
        cur_file = open_cur_file(location, path)  # the footer or header only, on the driver
    except Exception as error:
        raise CurFormatError(f"{display}: unreadable CUR file: {error}") from error
    # CSV columns are read by position, c0, c1, ...: headers such as `lineItem/UnblendedCost`, or one repeated,
    # need no renaming (the first of a repeated header wins, as in cur_staging)
    names = None if cur_file.header is None else {}
    for i, header in enumerate(cur_file.header or ()):
        names.setdefault(header, f"c{i}")
    view = f"cur_file_{uuid.uuid4().hex}"
    sql, parameters = line_items_query(cur_file, view, display, delivery, names)  # a wrong schema fails here
    uri = engine.spark_uri(display)
    if path.lower().endswith(".zip"):
        # Spark cannot read a zip archive: its one CSV is copied out under the warehouse, uncompressed
        uri = _unzip(engine, location, path)
        unzipped.append(uri)
    try:
        if cur_file.header is None:
            frame = engine.session.read.parquet(HADOOP_GLOB.sub(r"\\\1", uri))
        else:
            frame = _read_csv(engine, len(cur_file.header), uri)
        frame.createOrReplaceTempView(view)
        views.append(view)
        return uri, engine.execute(sql, parameters).frame
    except Exception as error:  # a file Spark cannot read, or types other than its footer said
        raise CurFormatError(_problem(error, {uri: display})) from error


def _read_csv(engine, columns: int, uri: str):
    """Every column as text, as cur_files reads a CSV: RFC 4180 quoting, '' is NULL, nothing trimmed, and a
    ragged row is an error."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(f"c{i}", StringType()) for i in range(columns)])
    return (engine.session.read.schema(schema)
            .options(header=True, enforceSchema=True, mode="FAILFAST", quote='"', escape='"', encoding="UTF-8")
            .csv(HADOOP_GLOB.sub(r"\\\1", uri)))


def _unzip(engine, location: Location, path: str) -> str:
    target_uri = f"{engine.warehouse_uri}/_staging/cur_files/{uuid.uuid4().hex}.csv"
    target = locate(target_uri)
    target.filesystem.create_dir(target.path.rsplit("/", 1)[0], recursive=True)
    try:
        with text_stream(location, path) as source, target.filesystem.open_output_stream(target.path) as out:
            while chunk := source.read(16 << 20):
                out.write(chunk)
    except Exception as error:
        raise CurFormatError(f"{location.display(path)}: unreadable CUR file: {error}") from error
    return engine.spark_uri(target_uri)


def _check_required(engine, name: str) -> int:
    """DuckDB refuses a NULL in a NOT NULL column of cur_line_items; Spark's Parquet does not, so it is checked
    here, naming the first file with one. Returns the row count."""
    required = engine.required[TABLE]
    ((rows, *first),) = engine.execute(
        f"SELECT count(*), {', '.join(f'min(source_file) FILTER (WHERE {c} IS NULL)' for c in required)} "
        f"FROM {name}"
    ).fetchall()
    for column, source_file in zip(required, first):
        if source_file is not None:
            raise CurFormatError(f"{source_file}: NOT NULL constraint failed: {TABLE}.{column}")
    return rows


def _problem(error: Exception, files: dict[str, str]) -> str:
    """A failed read or normalization as `<file>: <problem>`: a bad value's message names its file already;
    for Spark's own errors, the file its message names (or the only file) and the root cause."""
    text = str(error)
    raised = RAISED.search(text)
    if raised:
        return raised.group(1)
    causes = re.findall(r"Caused by: ([^\n]+)", text)
    lines = [line.strip(" :") for line in text.splitlines() if line.strip(" :")]
    summary = causes[-1] if causes else next(
        (line for line in lines if not line.startswith("An error occurred while calling")), text.strip())
    named = [display for uri, display in files.items() if uri.split("://", 1)[-1] in text]
    if len(files) == 1:
        named = list(files.values())
    if named:
        return f"{named[0]}: {summary}"
    return f"one of {len(files)} files ({', '.join(list(files.values())[:3])}, ...): {summary}"
