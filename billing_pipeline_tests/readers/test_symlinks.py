"""Symbolic links in local input folders are refused, naming the link (issue 16): a CUR, log or usage folder
must not make the pipeline read /etc/passwd, another report, or loop round a link to its own parent. Paths that an
input file names (S3 Inventory data keys) stay below their folder too."""

from __future__ import annotations

import json
import os
import re

import pytest

from billing_pipeline.readers.cur import CurFormatError, find_deliveries
from billing_pipeline.readers.estimates import read_estimates
from billing_pipeline.storage import UnsafeLocation, locate
from billing_pipeline_tests.readers.cur_builders import legacy_row, write_csv, write_legacy_manifest
from billing_pipeline_tests.readers.usage_builders import JANUARY, read_january, report, write_export, write_snapshot

PERIOD = "20260101-20260201"


def legacy_delivery(root):
    period = root / "cur" / "r1" / PERIOD
    data = write_csv(period / "asm" / "r1-1.csv.gz", [legacy_row()])
    write_legacy_manifest(period / "r1-Manifest.json", "r1", [f"cur/r1/{PERIOD}/asm/r1-1.csv.gz",
                                                               f"cur/r1/{PERIOD}/asm/r1-2.csv.gz"], "asm")
    return data.parent


def test_a_cur_file_that_links_to_etc_passwd_is_refused_naming_the_link(tmp_path):
    link = legacy_delivery(tmp_path) / "r1-2.csv.gz"
    link.symlink_to("/etc/passwd")
    with pytest.raises(CurFormatError, match=re.escape(f"{link}: a symbolic link (to /etc/passwd) below the input "
                                                       f"folder {tmp_path / 'cur'}: refused")):
        find_deliveries(locate(str(tmp_path / "cur")))


def test_a_cur_folder_that_links_to_another_report_or_to_itself_is_refused(tmp_path):
    assembly = legacy_delivery(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_csv(other / "r1-2.csv.gz", [legacy_row()])
    (assembly / "more").symlink_to(other)
    with pytest.raises(CurFormatError, match=re.escape(f"{assembly / 'more'}: a symbolic link (to {other})")):
        find_deliveries(locate(str(tmp_path / "cur")))
    (assembly / "more").unlink()
    (assembly / "loop").symlink_to("..")  # pyarrow would list loop/loop/loop/... until the OS gives up
    with pytest.raises(CurFormatError, match=re.escape(f"{assembly / 'loop'}: a symbolic link (to ..)")):
        find_deliveries(locate(str(tmp_path / "cur")))


def test_a_cur_folder_that_is_itself_a_link_is_the_operators_choice(tmp_path):
    legacy_delivery(tmp_path)
    (tmp_path / "r1-2.csv.gz").write_bytes((tmp_path / "cur" / "r1" / PERIOD / "asm" / "r1-1.csv.gz").read_bytes())
    os.replace(tmp_path / "r1-2.csv.gz", tmp_path / "cur" / "r1" / PERIOD / "asm" / "r1-2.csv.gz")
    (tmp_path / "current").symlink_to(tmp_path / "cur")
    (delivery,) = find_deliveries(locate(str(tmp_path / "current"))).values()
    assert len(delivery.files) == 2


def test_a_log_export_that_links_outside_is_refused_naming_the_link(tmp_path):
    logs = tmp_path / "logs"
    write_export(logs, "stream-a", [report("2026-01-05T10:00:00.000Z", "r-1", 100, 128)])
    link = logs / "task-0001" / "stream-b"
    link.mkdir()
    (link / "000000.gz").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeLocation, match=re.escape(f"{link / '000000.gz'}: a symbolic link (to /etc/passwd)")):
        read_january(logs=logs)


def test_a_usage_export_that_links_outside_is_refused_naming_the_link(tmp_path):
    usage = tmp_path / "usage"
    usage.mkdir()
    (usage / "items.jsonl").write_text(json.dumps({"accountant_id": "acct-1"}) + "\n")
    (usage / "more.jsonl").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeLocation, match=re.escape(f"{usage / 'more.jsonl'}: a symbolic link (to /etc/passwd)")):
        read_estimates(locate(str(usage)), JANUARY)


def test_an_inventory_manifest_key_that_climbs_out_of_the_folder_is_refused(tmp_path):
    inventory = tmp_path / "inventory"
    manifest = write_snapshot(inventory, "2026-01-01T01-00Z", [("clients/acc-a/w2.pdf", 1024)])
    secret = tmp_path / "secret.csv.gz"
    secret.write_bytes((inventory / "tax-demo-docs" / "daily" / "data" / "2026-01-01T01-00Z.csv.gz").read_bytes())
    content = json.loads(manifest.read_text())
    content["files"][0]["key"] = "../secret.csv.gz"
    manifest.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=re.escape(f"{manifest}: lists data file '../secret.csv.gz': ") + ".*"
                       + re.escape(f"lies outside {inventory}")):
        read_january(inventory=inventory)
