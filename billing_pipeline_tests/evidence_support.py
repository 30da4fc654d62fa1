"""Usage evidence as it arrives over a month, for the refresh-after-coverage tests on both engines."""

import datetime as dt
import os
import re
from pathlib import Path


def deliver_at_end_of_day(folder: Path) -> None:
    """Each log file as if exported at the end of its stream's day, each inventory manifest when it was taken."""
    for path in (folder / "logs").rglob("*.gz"):
        y, m, d = re.search(r"/(\d{4})/(\d{2})/(\d{2})/", str(path)).groups()
        at = (dt.datetime(int(y), int(m), int(d), tzinfo=dt.timezone.utc) + dt.timedelta(days=1)).timestamp()
        os.utime(path, (at, at))
    for path in (folder / "inventory").rglob("manifest.json"):
        y, m, d = re.search(r"/(\d{4})-(\d{2})-(\d{2})T", str(path)).groups()
        at = dt.datetime(int(y), int(m), int(d), tzinfo=dt.timezone.utc).timestamp()
        os.utime(path, (at, at))


def make_unreadable(paths: list[Path]) -> None:
    """Overwrite each file with garbage, its modification time kept: whoever opens one of them fails."""
    for path in paths:
        stat = os.stat(path)
        path.write_bytes(b"not what it was")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
