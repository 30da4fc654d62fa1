"""Local folders and S3 (over HTTP against the local server) look the same to the readers."""

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
