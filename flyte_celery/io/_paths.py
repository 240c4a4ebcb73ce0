"""Where `File`, `Dir` and `DataFrame` put new data: under the running task's raw data path, else the configured one.

Paths are random (`<raw data path>/<32 hex digits>[/<name>]`), except `named_path`, which is the same for the same
name in the same action (so a retry writes where the failed attempt did).
"""

from __future__ import annotations

import os
import secrets
import tempfile

from flyte_celery._context import ctx
from flyte_celery._init import current_settings
from flyte_celery._storage import is_local, join

RANDOM_PART_BYTES = 16
DOWNLOAD_DIR_PREFIX = "flyte-celery-"


def raw_data_prefix() -> str:
    """The running task's raw data path; outside a task, the configured `run.raw_data_path` (or its default)."""
    task = ctx()
    if task is not None and task.raw_data_path.path:
        return task.raw_data_path.path
    return current_settings().run.raw_data_path_resolved()


def raw_data_is_local_in_task() -> bool:
    """True inside a task whose raw data path is on this machine's disk: local files can stay where they are."""
    task = ctx()
    return task is not None and bool(task.raw_data_path.path) and is_local(task.raw_data_path.path)


def new_path(name: str | None = None) -> str:
    """A fresh path under the raw data prefix, ending in `name` when given."""
    return absolute(join(raw_data_prefix(), secrets.token_hex(RANDOM_PART_BYTES), name or ""))


def named_path(name: str) -> str:
    """`<run_base_dir>/<action>/<name>`: the same path for every attempt of the running action.

    Raises:
        ValueError: Outside a task, or if `name` is not a plain file name.
    """
    task = ctx()
    if task is None:
        raise ValueError("named_remote() needs a running task: call it inside a task")
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"named_remote() takes a plain file name without separators, not {name!r}")
    action = task.task_action or task.action
    return absolute(join(task.run_base_dir, action.name, name))


def absolute(url: str) -> str:
    """Plain local paths made absolute (they may be read from another working directory); URLs unchanged."""
    return os.path.abspath(url) if is_local(url) and "://" not in url else url


def local_target(local_path: str | os.PathLike[str] | None, name: str) -> str:
    """Where a download goes: a new temporary directory, inside a given directory, or the given path."""
    if local_path is None:
        return os.path.join(tempfile.mkdtemp(prefix=DOWNLOAD_DIR_PREFIX), name)
    text = os.fspath(local_path)
    if text.endswith(os.sep) or os.path.isdir(text):
        return os.path.join(os.path.abspath(text), name)
    return os.path.abspath(text)
