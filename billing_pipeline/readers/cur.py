"""Reading AWS Cost and Usage Reports as AWS delivers them (../shared/DESIGN.md, "Inputs" 1 and 2).

    deliveries = find_deliveries(location)            # {first of month: CurDelivery}
    rows = stage_line_items(con, location, deliveries[month], "staged_cur")

`find_deliveries` looks at everything below a local folder or S3 prefix (at any depth) and picks, for each
billing month, the current delivery: the files the top-level manifest names (legacy CUR "create new report
version" and "overwrite", CSV or Parquet), the `year=/month=` folders of the Athena layout (with its
READY/UPDATING status), or a Data Exports partition (CUR 2.0 or FOCUS 1.x) and its manifest.

`stage_line_items` streams those files, one at a time, into a DuckDB temp table with exactly the columns of
`cur_line_items` (warehouse.sql): AWS's column names normalized by its Parquet rule, money as DECIMAL(38, 10),
times in UTC, user tags in a MAP, and unblended / amortized / net amortized cost computed the way the AWS CUR
query library does. Any bad input raises `CurFormatError` naming the file and the problem.

Modules: cur_discovery (layouts), cur_files (Arrow streams), cur_columns (the column map and naming rule),
cur_staging with cur_line_items.sql (the normalization), cur_spark (the same normalization inside Spark, where
Spark reads the files itself).
"""

from billing_pipeline.readers.cur_discovery import Discovery, discover, find_deliveries
from billing_pipeline.readers.cur_staging import insert_line_items, stage_line_items
from billing_pipeline.readers.cur_types import LAYOUTS, CurDelivery, CurFormatError

__all__ = ["LAYOUTS", "CurDelivery", "CurFormatError", "Discovery", "discover", "find_deliveries", "insert_line_items",
           "stage_line_items"]
