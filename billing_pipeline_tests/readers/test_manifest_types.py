"""An S3 Inventory manifest field of another JSON type than AWS writes fails naming the manifest and the field,
never as a bare AttributeError or TypeError that names no file. (A manifest that is not an object:
test_s3_inventory.py, test_estimates.py; CUR manifests: test_cur_manifest_fields.py.)"""

from __future__ import annotations

import json

import pytest

from billing_pipeline_tests.readers.usage_builders import GIB, read_january, write_snapshot


@pytest.mark.parametrize("change, problem", [
    (lambda m: {**m, "files": {"key": "x"}}, "files is dict {'key': 'x'}, not a list"),
    (lambda m: {k: v for k, v in m.items() if k != "files"}, "files is missing, not a list"),
    (lambda m: {**m, "files": ["inventory/x.csv.gz"]}, "files[0] is str 'inventory/x.csv.gz', not an object"),
    (lambda m: {**m, "files": [{"key": 5}]}, "files[0].key is int 5, not text"),
    (lambda m: {**m, "fileFormat": 1}, "fileFormat is int 1, not text"),
    (lambda m: {**m, "fileSchema": ["Key", "Size"]}, "fileSchema is list ['Key', 'Size'], not text"),
    (lambda m: {**m, "sourceBucket": {"name": "b"}}, "sourceBucket is dict {'name': 'b'}, not text"),
])
def test_an_inventory_manifest_field_of_the_wrong_type_names_the_manifest_and_field(tmp_path, change, problem):
    manifest = write_snapshot(tmp_path, "2026-01-10T01-00Z", [("clients/acc-a/x", GIB)])
    manifest.write_text(json.dumps(change(json.loads(manifest.read_text()))))
    with pytest.raises(ValueError) as raised:
        read_january(inventory=tmp_path)
    assert type(raised.value) is ValueError and str(raised.value) == f"{manifest}: {problem}"

