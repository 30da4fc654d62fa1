"""Finding CUR deliveries: which files below a location are the current data of which billing month.

AWS delivers billing data in several layouts (all may sit at any depth below the location):

- legacy CUR with a manifest: `<prefix>/<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`. Its `reportKeys`
  are the current delivery: in `<assemblyId>/` folders ("create new report version") or in the period folder
  itself ("overwrite"). Older assemblies and the per-assembly manifests inside them are ignored.
- legacy CUR for Athena: `<prefix>/<report>/<report>/year=2026/month=1/*.parquet` plus
  `cost_and_usage_data_status/` (READY / UPDATING). A top-level manifest of the same report and month wins.
- Data Exports (CUR 2.0 and FOCUS): `<prefix>/<export>/data/BILLING_PERIOD=2026-01/...` with
  `<prefix>/<export>/metadata/BILLING_PERIOD=2026-01/<export>-Manifest.json` listing the `dataFiles`.

A file that looks like billing data but fits none of these is an error, as are two reports for one month. A
problem with one month's delivery (a manifest naming a missing key, two reports) is that month's: `discover`
returns it beside the other months' deliveries, so one broken month does not stop the others loading.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from billing_pipeline.readers.cur_columns import FOCUS_MARKER
from billing_pipeline.readers.cur_types import CurDelivery, CurFormatError, CurNotReady
from billing_pipeline.storage import Location, UnsafeLocation, optional_text, read_manifest_json

PERIOD_FOLDER = re.compile(r"^(\d{4})(\d{2})01-\d{8}$")  # 20260101-20260201
EXPORT_PARTITION = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{1,2})$")
YEAR_FOLDER = re.compile(r"^year=(\d{4})$")
MONTH_FOLDER = re.compile(r"^month=(\d{1,2})$")
STATUS_FOLDER = "cost_and_usage_data_status"
MANIFEST_SUFFIX = "-Manifest.json"
DATA_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".csv.zip", ".gz", ".zip")


def looks_like_data(path: str) -> bool:
    return path.lower().endswith(DATA_SUFFIXES)


@dataclass
class _Candidate:
    """A delivery being assembled; `origin` is the folder it was found in (for error messages)."""

    billing_period: datetime.date
    report: str
    layout: str
    files: list[str]
    origin: str
    manifest: str | None = None
    assembly_id: str | None = None
    status: str | None = None


@dataclass
class Discovery:
    """What lies below a CUR location: each month's current delivery, and the months whose delivery cannot be read
    as it stands (the problem naming the file), which are not in `deliveries`."""

    deliveries: dict[datetime.date, CurDelivery]
    problems: dict[datetime.date, CurFormatError]


def discover(location: Location) -> Discovery:
    """Every month delivered anywhere below the location (at any depth): the current delivery for each, or the
    month's problem (two different reports for the month, a manifest naming a missing or foreign key, ...).
    Problems of no particular month (the location cannot be listed, billing data in no known layout) raise."""
    found, stray = _discover(location)
    if stray:
        raise stray
    return found


def find_deliveries(location: Location) -> dict[datetime.date, CurDelivery]:
    """`discover`, strict: the first month's problem (in month order) raises, then a problem of no month."""
    found, stray = _discover(location)
    for problem in [*found.problems.values(), *([stray] if stray else [])]:
        raise problem
    return found.deliveries


def _discover(location: Location) -> tuple[Discovery, CurFormatError | None]:
    try:
        infos = {info.path: info for info in location.list_files()}
    except UnsafeLocation as error:  # a symbolic link below a local CUR folder
        raise CurFormatError(str(error)) from None
    scan = _Scan(location, infos)
    candidates = scan.legacy_manifests() + scan.athena_folders() + scan.data_exports()
    stray = scan.unclaimed_data()

    by_month: dict[datetime.date, list[_Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_month[candidate.billing_period].append(candidate)
    deliveries, problems = {}, dict(scan.problems)
    for month, found in sorted(by_month.items()):
        if month in problems:
            continue  # a broken report and a good one for the same month: the month is not readable either way
        if len(found) > 1:
            names = " and ".join(f"{c.report!r} ({location.display(c.origin)})" for c in found)
            problems[month] = CurFormatError(
                f"{location.display(location.path)}: two reports deliver {month:%Y-%m}: {names}; "
                "point the CUR URI at one of them"
            )
            continue
        deliveries[month] = _finish(location, infos, found[0])
    return Discovery(deliveries, dict(sorted(problems.items()))), stray


def _finish(location: Location, infos: dict[str, pafs.FileInfo], c: _Candidate) -> CurDelivery:
    files = tuple(sorted(dict.fromkeys(c.files)))
    delivery_id = c.assembly_id or _fingerprint(location, infos, [*files, *([c.manifest] if c.manifest else [])])
    return CurDelivery(c.billing_period, c.report, c.layout, delivery_id, files, c.manifest, c.status)


def _fingerprint(location: Location, infos: dict[str, pafs.FileInfo], paths: list[str]) -> str:
    """A stable id for deliveries without an assemblyId: sha256 of each file's path, size and mtime."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        info = infos.get(path) or location.filesystem.get_file_info(path)
        digest.update(f"{path}\t{info.size}\t{info.mtime_ns}\n".encode())
    return digest.hexdigest()


def _month(year: str | int, month: str | int, where: str) -> datetime.date:
    """The month a folder names; `where` (the file's display name) for the CurFormatError when it names none
    (`month=13`, `year=0000`, `BILLING_PERIOD=2026-00`): a bare ValueError named no file."""
    try:
        return datetime.date(int(year), int(month), 1)
    except ValueError:
        raise CurFormatError(f"{where}: its folder says year {year} month {month}, which is no month") from None


class _Scan:
    """One pass over the listing; remembers which data files some layout has claimed."""

    def __init__(self, location: Location, infos: dict[str, pafs.FileInfo]):
        self.location = location
        self.infos = infos
        self.claimed: set[str] = set()
        # (report folder, month) of legacy manifests: an Athena folder of that very report and month defers to
        # them (a report of the same name elsewhere does not: it is another delivery of the month).
        self.manifest_reports: set[tuple[str, datetime.date]] = set()
        # the first problem found with each month's delivery
        self.problems: dict[datetime.date, CurFormatError] = {}

    def month_problem(self, month: datetime.date, error: CurFormatError) -> None:
        self.problems.setdefault(month, error)

    def display(self, path: str) -> str:
        return self.location.display(path)

    # -- legacy CUR with a top-level manifest ------------------------------------------------------------

    def legacy_manifests(self) -> list[_Candidate]:
        candidates, period_folders = [], set()
        for path in self.infos:
            parts = path.split("/")
            if len(parts) < 3 or not parts[-1].endswith(MANIFEST_SUFFIX):
                continue
            period = PERIOD_FOLDER.match(parts[-2])
            # Only the top-level manifest: `<report>/<period>/<report>-Manifest.json`. The per-assembly copies
            # one folder deeper (`<period>/<assemblyId>/...`) are not the current delivery's pointer.
            if not period or parts[-1] != parts[-3] + MANIFEST_SUFFIX:
                continue
            period_folders.add(path.rsplit("/", 1)[0])
            folder_month = _month(period[1], period[2], self.display(path))
            try:
                candidates.append(self._legacy_manifest(path, folder_month))
            except CurFormatError as error:
                self.month_problem(folder_month, error)
        # Everything below a period folder that has a manifest is that report's (older assemblies included).
        for path in self.infos:
            if any(path.startswith(folder + "/") for folder in period_folders):
                self.claimed.add(path)
        return candidates

    def _legacy_manifest(self, path: str, folder_month: datetime.date) -> _Candidate:
        manifest = self._read_json(path)
        report = self._text(path, manifest, "reportName") or path.split("/")[-1][: -len(MANIFEST_SUFFIX)]
        month = self._manifest_month(path, manifest, folder_month)
        # the report's folder: `<report>/` above the period folder the manifest sits in
        report_root = path.rsplit("/", 2)[0]
        files = self._listed_files(path, manifest, "reportKeys", report_root)
        content_type = (self._text(path, manifest, "contentType") or "").lower()
        if "parquet" in content_type or any(f.endswith(".parquet") for f in files):
            in_athena_folders = any(YEAR_FOLDER.match(p) for f in files for p in f.split("/"))
            layout = "athena_parquet" if in_athena_folders else "legacy_parquet"
        else:
            layout = "legacy_csv"
        self.claimed.update(files)
        self.manifest_reports.add((report_root, month))
        status = self._status_for(files) if layout == "athena_parquet" else None
        return _Candidate(
            month, report, layout, files, origin=path.rsplit("/", 1)[0], manifest=path,
            assembly_id=self._text(path, manifest, "assemblyId") or None, status=status,
        )

    def _text(self, path: str, manifest: dict, field: str) -> str | None:
        """A manifest's text field, None when absent; any other JSON type is an error naming the file."""
        try:
            return optional_text(manifest, field, self.display(path))
        except ValueError as error:
            raise CurFormatError(str(error)) from None

    def _manifest_month(self, path: str, manifest: dict, folder_month: datetime.date,
                        bare_month: bool = False) -> datetime.date:
        """The month of the folder the manifest lies in, which its billingPeriod (legacy `{"start": "20260101T..."}`,
        Data Exports `{"start": "2026-01-01T..."}` or, `bare_month`, `"2026-01"`), when it has one, must agree
        with: a manifest saying another month than its folder would load one month's data as another's."""
        period = manifest.get("billingPeriod")
        if isinstance(period, dict):
            start = self._text(path, period, "start")
        elif period is None or (bare_month and isinstance(period, str)):
            start = period
        else:
            raise CurFormatError(f"{self.display(path)}: billingPeriod is {type(period).__name__} {period!r}, not "
                                 "an object with start and end")
        if not start:
            return folder_month
        found = re.match(r"^(\d{4})-?(\d{2})", start)
        if not found or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
            raise CurFormatError(f"{self.display(path)}: billingPeriod {start!r} is not a date")
        month = datetime.date(int(found[1]), int(found[2]), 1)
        if month != folder_month:
            raise CurFormatError(f"{self.display(path)}: billingPeriod {start!r} says {month:%Y-%m}, but the "
                                 f"manifest lies in the folder of {folder_month:%Y-%m}: refused, which month its "
                                 "data is cannot be told (the month's last load is kept)")
        return month

    def _listed_files(self, manifest_path: str, manifest: dict, field: str, report_root: str) -> list[str]:
        """The files a manifest lists in `field` (a legacy manifest's reportKeys, a Data Exports one's dataFiles),
        each resolved inside the report (`_resolve_key`)."""
        keys = manifest.get(field)
        if not isinstance(keys, list):
            raise CurFormatError(f"{self.display(manifest_path)}: manifest has no {field} list")
        not_text = [key for key in keys if not isinstance(key, str)]
        if not_text:
            raise CurFormatError(f"{self.display(manifest_path)}: {field} holds {not_text[0]!r}, not a key (text)")
        if not keys:
            # AWS lists at least one file (a month without usage still has its header); replacing the month with
            # nothing would erase its last good delivery
            raise CurFormatError(f"{self.display(manifest_path)}: an empty delivery ({field} lists no file): "
                                 "refused, the month's last load is kept")
        bucket = self._text(manifest_path, manifest, "bucket")
        return [self._resolve_key(manifest_path, key, bucket, report_root) for key in keys]

    def _resolve_key(self, manifest_path: str, key: str, bucket: str | None, report_root: str) -> str:
        """A manifest key (bucket-relative, or an s3:// URI) as a path in the location's filesystem, confined to
        the manifest's own report: its bucket and `report_root` (the folder of the report the manifest belongs
        to). On S3 it is `<own bucket>/<key>`; below a local folder (or a copied bucket) it is the longest tail of
        the key that exists below the report folder. The bucket an `s3://` key names is never read: a delivery
        copied elsewhere (S3 Replication to a central account, a restore) keeps the name of the bucket AWS wrote it
        to in its manifest, so the key is looked up in the bucket the manifest sits in. A key that is absolute,
        climbs (`..`) or lands outside the report is refused: a manifest must not make the pipeline read a foreign
        object."""
        raw = str(key)
        where = f"{self.display(manifest_path)}: report key {raw!r}"
        named_bucket, relative = None, raw
        if raw.startswith("s3://"):
            named_bucket, _, relative = raw[len("s3://") :].partition("/")
        elif "://" in raw or raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw):
            raise CurFormatError(f"{where} is not a key of the report's bucket (an absolute path or another scheme)")
        if "\x00" in raw:
            # the S3 client ends a key at its NUL: `<key>\x00x` reads `<key>`, a second time if listed too
            raise CurFormatError(f"{where} holds a NUL character: not a key")
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts) or "\\" in relative:
            raise CurFormatError(f"{where} is not a plain key below the report (empty, '.' or '..' segments)")
        on_s3 = isinstance(self.location.filesystem, pafs.S3FileSystem)
        # S3: the bucket the manifest itself sits in; a local copy: the bucket the manifest says it was written to
        own_bucket = self.location.path.split("/", 1)[0] if on_s3 else bucket
        if named_bucket is not None and named_bucket != own_bucket:
            # said in every refusal below, so that a key meant for another bucket reads as what it is
            where += (f" (it names bucket {named_bucket!r}; only its copy in the manifest's own "
                      f"{'bucket ' + repr(own_bucket) if on_s3 else 'folder'} is read)")
        inside = report_root.rstrip("/") + "/"
        if on_s3:
            direct = f"{own_bucket}/{relative}"
            if direct.startswith(inside) and (direct in self.infos or self.location.filesystem.get_file_info(direct).is_file):
                return direct
        outside = None
        for start in range(len(parts)):
            candidate = self.location.join("/".join(parts[start:]))
            if candidate in self.infos:
                if candidate.startswith(inside):
                    return candidate
                outside = outside or candidate
        if outside or (on_s3 and not f"{own_bucket}/{relative}".startswith(inside)):
            raise CurFormatError(f"{where} lies outside the manifest's report {self.display(report_root)}")
        # name the missing file where the delivery should have it (on S3 the key is exact; a local copy: the key
        # below the folder the reader was pointed at, when that lies inside the report)
        missing = f"{own_bucket}/{relative}" if on_s3 else self.location.join(relative)
        if missing.startswith(inside):
            raise CurFormatError(f"{where} is missing: {self.display(missing)} does not exist (an incomplete "
                                 "delivery)")
        raise CurFormatError(f"{where} does not exist below {self.display(report_root)}")

    def _read_json(self, path: str) -> dict:
        try:
            return read_manifest_json(self.location, path)
        except ValueError as error:  # (it names the file)
            raise CurFormatError(str(error)) from error

    # -- legacy CUR, Athena layout --------------------------------------------------------------------------

    def athena_folders(self) -> list[_Candidate]:
        months: dict[tuple[str, datetime.date], list[str]] = defaultdict(list)
        for path in self.infos:
            parts = path.split("/")
            for i in range(1, len(parts) - 2):
                year, month = YEAR_FOLDER.match(parts[i]), MONTH_FOLDER.match(parts[i + 1])
                if year and month and looks_like_data(path):
                    months[("/".join(parts[:i]), _month(year[1], month[1], self.display(path)))].append(path)
                    break
        # the months AWS rewrites while the report says UPDATING: the current one and the one before (not final
        # yet); older months are closed, and a backfill of them is not held by each refresh
        open_months = defaultdict(list)
        for root, month in sorted(months):
            open_months[root] = (open_months[root] + [month])[-2:]
        candidates = []
        for (root, month), files in sorted(months.items()):
            report = root.rsplit("/", 1)[-1]
            self.claimed.update(files)
            # the report's top-level manifest says which files are current: its Athena data lies in
            # `<report folder>/<report>/year=...` (or, copied, `<report folder>/year=...`); another folder inside
            # the report folder is not its data
            parent, _, name = root.rpartition("/")
            own_data = parent.rsplit("/", 1)[-1] == name and (parent, month) in self.manifest_reports
            if own_data or (root, month) in self.manifest_reports:
                continue
            try:
                status = self._status(root)
                if (status or "").upper() == "UPDATING" and month in open_months[root]:
                    # no manifest pins the files: while AWS rewrites the month its folder may hold some of them
                    raise CurNotReady(f"{self.display(root)}: cost_and_usage_data_status says UPDATING (AWS is "
                                      "rewriting the report, and no manifest says which files are the month's): "
                                      "not read, the month's last load is kept; it loads once the status is READY")
                candidates.append(_Candidate(month, report, "athena_parquet", files, origin=root, status=status))
            except CurFormatError as error:
                self.month_problem(month, error)
        # The status files themselves are bookkeeping, not line items.
        self.claimed.update(p for p in self.infos if f"/{STATUS_FOLDER}/" in p)
        return candidates

    def _status_for(self, files: list[str]) -> str | None:
        for path in files:
            parts = path.split("/")
            for i, part in enumerate(parts):
                if YEAR_FOLDER.match(part):
                    return self._status("/".join(parts[:i]))
        return None

    def _status(self, root: str) -> str | None:
        """READY / UPDATING from `cost_and_usage_data_status/*.parquet`, None without one. AWS writes it
        beside the inner report folder (`<prefix>/<report>/cost_and_usage_data_status/`, the data being in
        `<prefix>/<report>/<report>/year=...`); copies like the workshop sample keep it beside `year=`."""
        prefixes = (f"{root}/{STATUS_FOLDER}/", f"{root.rsplit('/', 1)[0]}/{STATUS_FOLDER}/")
        for path in sorted(p for p in self.infos if p.startswith(prefixes) and p.endswith(".parquet")):
            try:
                with self.location.filesystem.open_input_file(path) as source:
                    values = pq.read_table(source, columns=["status"]).column("status").to_pylist()
            except Exception as error:  # truncated file, no status column, ...
                raise CurFormatError(f"{self.display(path)}: unreadable CUR status file: {error}") from error
            return str(values[0]) if values and values[0] is not None else None
        return None

    # -- Data Exports: CUR 2.0 and FOCUS --------------------------------------------------------------------

    def data_exports(self) -> list[_Candidate]:
        data: dict[tuple[str, datetime.date], list[str]] = defaultdict(list)
        manifests: dict[tuple[str, datetime.date], str] = {}
        for path in self.infos:
            parts = path.split("/")
            for i in range(2, len(parts) - 1):
                partition = EXPORT_PARTITION.match(parts[i])
                if not partition or parts[i - 1] not in ("data", "metadata"):
                    continue
                key = ("/".join(parts[: i - 1]), _month(partition[1], partition[2], self.display(path)))
                if parts[i - 1] == "metadata" and parts[-1].endswith(MANIFEST_SUFFIX) and i == len(parts) - 2:
                    manifests[key] = path
                elif parts[i - 1] == "data" and looks_like_data(path):
                    data[key].append(path)
                break
        candidates = []
        for root, month in sorted(set(data) | set(manifests)):
            export = root.rsplit("/", 1)[-1]
            manifest = manifests.get((root, month))
            files = data.get((root, month), [])
            self.claimed.update(files)
            try:
                candidates.append(self._data_export(root, month, export, manifest, files))
            except CurFormatError as error:
                self.month_problem(month, error)
        return candidates

    def _data_export(self, root: str, month: datetime.date, export: str, manifest: str | None,
                     files: list[str]) -> _Candidate:
        if manifest:
            content = self._read_json(manifest)
            self._manifest_month(manifest, content, month, bare_month=True)
            files = self._listed_files(manifest, content, "dataFiles", root)
            export = self._text(manifest, content, "exportName") or export
        elif len({f.rsplit("/", 1)[0] for f in files}) > 1:
            raise CurFormatError(
                f"{self.display(files[0].rsplit('/', 1)[0])}: data files in several folders and no "
                f"{export}{MANIFEST_SUFFIX} to say which is current"
            )
        layout = "focus" if files and self._is_focus(sorted(files)[0]) else "cur2"
        return _Candidate(month, export, layout, files, origin=root, manifest=manifest)

    def _is_focus(self, path: str) -> bool:
        from billing_pipeline.readers.cur_files import open_cur_file  # here to keep module imports one-way

        try:
            columns = open_cur_file(self.location, path).columns
        except Exception as error:
            raise CurFormatError(f"{self.display(path)}: unreadable CUR file: {error}") from error
        return FOCUS_MARKER.lower() in {name.lower() for name in columns}

    # -- everything else ----------------------------------------------------------------------------------

    def unclaimed_data(self) -> CurFormatError | None:
        """Data files no layout claimed: a problem of their month when they lie in a legacy period folder, else
        the error returned (billing data in no known layout, which concerns no month in particular)."""
        unknown = []
        for path in sorted(p for p in self.infos if looks_like_data(p) and p not in self.claimed):
            period = next((m for m in map(PERIOD_FOLDER.match, path.split("/")[:-1]) if m), None)
            if period is None:
                unknown.append(path)
            else:  # the month's (e.g. a new month whose manifest AWS has not written yet)
                self.month_problem(_month(period[1], period[2], self.display(path)), CurFormatError(
                    f"{self.display(path)}: in a legacy CUR period folder without a top-level "
                    "<report>-Manifest.json, so nothing says which files are the current delivery"))
        if unknown:
            shown = ", ".join(self.display(p) for p in unknown[:3])
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            # a Data Exports download laid flat (manifest beside its data): say how AWS lays it out
            flat = sorted(p for p in self.infos if p.endswith(MANIFEST_SUFFIX)
                          and not any(PERIOD_FOLDER.match(f) for f in p.split("/")[-3:-1])
                          and not EXPORT_PARTITION.match(p.split("/")[-2]))
            hint = (f"; {self.display(flat[0])} is a manifest outside its layout: a Data Exports delivery is "
                    "<export>/data/BILLING_PERIOD=YYYY-MM/<files> with <export>/metadata/BILLING_PERIOD=YYYY-MM/"
                    "<export>-Manifest.json, as AWS writes it") if flat else ""
            return CurFormatError(
                f"{shown}{more}: billing data in no known CUR layout (legacy manifest period folder, "
                f"year=/month= folders, or a Data Exports BILLING_PERIOD= partition){hint}"
            )
        return None
