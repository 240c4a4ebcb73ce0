"""Where a run's reports are: the `report.html` pages its actions wrote under its metadata directory."""

from __future__ import annotations

from flyte_celery._storage import find_sync
from flyte_celery.report import REPORT_FILE

ACTION_DEPTH = 2  # <run_base_dir>/<action>/report.html


def report_pages(run_base_dir: str) -> list[str]:
    """The URLs (or local paths) of the report pages under `run_base_dir`, sorted; [] when it is "" or empty.

    Raises:
        StorageError: If the directory cannot be listed (naming it and why).
    """
    if not run_base_dir:
        return []
    found = find_sync(run_base_dir, maxdepth=ACTION_DEPTH)
    return [path for path in found if path.rsplit("/", 1)[-1] == REPORT_FILE]
