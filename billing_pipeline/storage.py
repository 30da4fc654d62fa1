"""Where the inputs live: a local folder or an S3 prefix, behind one pyarrow filesystem.

Every reader takes a URI (`/some/folder`, `file:///some/folder` or `s3://bucket/prefix`) and asks this module for
a `pyarrow.fs.FileSystem` plus the base path inside it. S3 goes through `pyarrow.fs.S3FileSystem`, which honours
`AWS_ENDPOINT_URL` (a local S3-compatible server in tests), `AWS_REGION` and the normal credentials chain.
DuckDB's httpfs extension is not used: DuckDB scans the Arrow data that pyarrow reads.
"""

from __future__ import annotations

import json
import os
import posixpath
import reprlib
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs


@dataclass(frozen=True)
class Location:
    """A folder-like place: a filesystem and the path of the folder inside it (no trailing slash)."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def join(self, *parts: str) -> str:
        return "/".join([self.path.rstrip("/"), *(p.strip("/") for p in parts)])

    def display(self, path: str) -> str:
        """The URI a person can paste to find `path` (used in error messages and `source_file`)."""
        if isinstance(self.filesystem, pafs.S3FileSystem):
            return f"s3://{path}"
        return path

    def list_files(self) -> list[pafs.FileInfo]:
        """Every file below the folder, at any depth, sorted by path; [] when the folder does not exist; the file
        itself when the location is one file (a usage export given as one .jsonl, say). A symbolic link below a
        local folder is refused (UnsafeLocation naming it): it could make the pipeline read /etc/passwd or another
        report as billing data, and pyarrow follows a link to a parent folder round and round."""
        info = self.filesystem.get_file_info(self.path)
        if info.type == pafs.FileType.File:
            return [info]
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            refuse_links(self.path)
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        infos = self.filesystem.get_file_info(selector)
        return sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path)

    def confined(self, path: str) -> str:
        """`path` if it lies below the location once `.` and `..` are resolved (and, locally, no link leads out);
        else UnsafeLocation. For paths built from what an input file says (a manifest's keys)."""
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            root, real = os.path.realpath(self.path), os.path.realpath(path)
        else:
            root, real = posixpath.normpath(self.path), posixpath.normpath(path)
        if real != root and not real.startswith(root.rstrip("/") + "/"):
            raise UnsafeLocation(f"{self.display(path)}: lies outside {self.uri} (resolves to {real}): refused")
        return path


class UnsafeLocation(ValueError):
    """An input path that leads out of its folder (a symbolic link, `..`); the message names it."""


def refuse_links(root: str) -> None:
    """UnsafeLocation for the first symbolic link below the local folder `root` (the folder itself may be one)."""
    for folder, folders, files in os.walk(root, followlinks=False):
        for name in sorted(folders + files):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                raise UnsafeLocation(
                    f"{path}: a symbolic link (to {os.readlink(path)}) below the input folder {root}: refused, "
                    "links are not followed (copy the file into the folder, or point the URI at the real folder)")


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem from the standard AWS environment (region, endpoint override, credentials chain)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict = {"region": region}
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**options)


def locate(uri: str) -> Location:
    """Resolve a URI to a Location. Relative local paths are taken from the current working directory."""
    if uri.startswith("s3://"):
        return Location(s3_filesystem(), uri[len("s3://") :].rstrip("/"), uri)
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return Location(pafs.LocalFileSystem(), os.path.abspath(path), uri)


# A manifest (CUR, Data Exports, S3 Inventory, DynamoDB export) is read whole: AWS's are kilobytes to a few
# megabytes (a month of thousands of files and hundreds of columns), so a bigger one is not AWS's.
MAX_MANIFEST_BYTES = 64 * 2**20


def read_manifest_json(location: Location, path: str, limit: int = MAX_MANIFEST_BYTES):
    """A JSON manifest (an object: every manifest AWS writes is one), read up to `limit` bytes: larger, not JSON,
    not an object, or nested too deeply to parse is a ValueError naming the file and the problem (never an
    out-of-memory, a RecursionError or a caller's AttributeError)."""
    name = location.display(path)
    try:
        with location.filesystem.open_input_stream(path, compression=None) as stream:
            raw = stream.read(limit + 1)
    except OSError as error:
        raise ValueError(f"{name}: cannot be read ({error})") from error
    if len(raw) > limit:
        raise ValueError(f"{name}: a manifest of more than {limit} bytes, larger than any AWS writes: refused")
    try:
        manifest = json.loads(raw)
    except RecursionError:
        raise ValueError(f"{name}: JSON nested too deeply to be a manifest") from None
    except ValueError as error:
        raise ValueError(f"{name}: not valid JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise ValueError(f"{name}: manifest is not a JSON object")
    return manifest


JSON_KINDS = {dict: "an object", list: "a list", str: "text"}
# a wrong value is quoted in errors, shortened (a manifest may be megabytes): one level deep, 6 items, 30 characters
SHORT = reprlib.Repr()
SHORT.maxlevel = 1


def require_json(value, kind: type, name: str, field: str):
    """`value` when it is of the JSON type `kind` (dict, list or str); else a ValueError naming the file (`name`)
    and the field. A manifest field of another type than AWS writes would otherwise fail further on, as a bare
    AttributeError or TypeError that names no file."""
    if not isinstance(value, kind):
        found = "missing" if value is None else f"{type(value).__name__} {SHORT.repr(value)}"
        raise ValueError(f"{name}: {field} is {found}, not {JSON_KINDS[kind]}")
    return value


def optional_text(manifest: dict, field: str, name: str) -> str | None:
    """A manifest's text field, None when absent or null; any other JSON type is a ValueError naming the file."""
    value = manifest.get(field)
    return None if value is None else require_json(value, str, name, field)


def write_whole(location: Location, path: str, data: bytes) -> None:
    """Write a file that readers see whole or not at all (replacing an earlier one): locally written beside the
    target and renamed into place; on S3 one PutObject (pyarrow's S3 output stream always uploads in parts)."""
    filesystem = location.filesystem
    if isinstance(filesystem, pafs.LocalFileSystem):
        parent, name = path.rsplit("/", 1)
        filesystem.create_dir(parent, recursive=True)
        # a hidden name (`.`): folder readers (pyarrow datasets, Spark, Athena) skip it, so a run killed before the
        # rename leaves no second copy of the month for them to read
        temporary = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with filesystem.open_output_stream(temporary) as stream:
                stream.write(data)
            filesystem.move(temporary, path)  # atomic rename: readers see the old file or the new one
        finally:
            if filesystem.get_file_info(temporary).type != pafs.FileType.NotFound:
                filesystem.delete_file(temporary)
    else:
        import boto3  # same AWS environment as s3_filesystem

        bucket, key = path.split("/", 1)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        boto3.client("s3", region_name=region).put_object(Bucket=bucket, Key=key, Body=data)
