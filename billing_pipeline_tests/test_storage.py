"""Local folders and S3 (over HTTP against the local server) look the same to the readers."""

from pathlib import Path

import boto3

from billing_pipeline.storage import locate


def test_local_folder_lists_files_at_any_depth(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.txt").write_text("x")
    (tmp_path / "y.txt").write_text("y")
    location = locate(str(tmp_path))
    assert [info.path for info in location.list_files()] == [str(tmp_path / "a/b/x.txt"), str(tmp_path / "y.txt")]
    assert locate(str(tmp_path / "missing")).list_files() == []


def test_s3_prefix_lists_and_reads_through_the_endpoint_override(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="billing")
    s3.put_object(Bucket="billing", Key="cur/report/20260101-20260201/report-Manifest.json", Body=b"{}")
    s3.put_object(Bucket="billing", Key="other/file", Body=b"no")
    location = locate("s3://billing/cur")
    files = location.list_files()
    assert [info.path for info in files] == ["billing/cur/report/20260101-20260201/report-Manifest.json"]
    with location.filesystem.open_input_stream(files[0].path) as stream:
        assert stream.read() == b"{}"
    assert location.display(files[0].path) == "s3://billing/cur/report/20260101-20260201/report-Manifest.json"


# write_whole of a statements file in a process of its own that is killed (SIGKILL) once the new file is written
# in full beside the target, before its rename: no `finally` runs, the temporary file stays
KILLED_BEFORE_RENAME = """
import os, signal, sys
import pyarrow as pa, pyarrow.fs as pafs, pyarrow.parquet as pq
from billing_pipeline.storage import Location, write_whole

class KilledBeforeRename(pafs.LocalFileSystem):
    def move(self, src, dest):
        os.kill(os.getpid(), signal.SIGKILL)

folder = sys.argv[1]
sink = pa.BufferOutputStream()
pq.write_table(pa.table({"accountant_id": ["acc-1"], "amount": [pa.scalar(2, pa.int64())]}), sink)
write_whole(Location(KilledBeforeRename(), folder, folder), folder + "/statements-2026-01.parquet",
            sink.getvalue().to_pybytes())
"""


def test_a_file_of_a_write_killed_before_its_rename_is_hidden_from_folder_readers(tmp_path):
    """January's statements file holds acc-1's 1; a restatement (2) is killed after writing its temporary file whole,
    before the rename. Whoever reads the folder as a dataset (pyarrow, Spark, Athena skip names starting with `.`
    or `_`) must still see one row of 1: the temporary file, named `statements-2026-01.parquet.<hex>.tmp`, was read
    as a second month file (acc-1 twice: 1 and 2)."""
    import os
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    folder = tmp_path / "statements"
    folder.mkdir()
    pq.write_table(pa.table({"accountant_id": ["acc-1"], "amount": [pa.scalar(1, pa.int64())]}),
                   folder / "statements-2026-01.parquet")
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_RENAME, str(folder)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(list(folder.iterdir())) == 2  # the temporary file is left behind
    dataset = pads.dataset(str(folder), format="parquet", exclude_invalid_files=True)
    assert dataset.to_table().to_pylist() == [{"accountant_id": "acc-1", "amount": 1}]
