"""Usage evidence as it arrives over a month, for the refresh-after-coverage tests on both engines."""

import os
from pathlib import Path

from benchmarks.realtime_refresh import deliver_at_end_of_day as _deliver_at_end_of_day


def deliver_at_end_of_day(folder: Path) -> None:
    """Each log file of a generated month under `folder` as if exported at the end of its stream's day, each
    inventory manifest when it was taken (the refresh benchmark's dating of the same layout)."""
    _deliver_at_end_of_day({"logs_uri": str(folder / "logs"), "inventory_uri": str(folder / "inventory")})


def make_unreadable(paths: list[Path]) -> None:
    """Overwrite each file with garbage, its modification time kept: whoever opens one of them fails."""
    for path in paths:
        stat = os.stat(path)
        path.write_bytes(b"not what it was")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
