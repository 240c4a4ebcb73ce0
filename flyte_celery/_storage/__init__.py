"""The storage layer: the one place that turns an fsspec URL (or a local path) into filesystem calls.

`filesystem()` gives the configured fsspec filesystem for a URL; the operations (`put_bytes`, `get_bytes`,
`exists`, `put_path`, `get_path`, `delete`, `size`, `ls`, `find`, and their `*_sync` twins) raise `StorageError`
naming the URL and the cause. Configuration: the `storage:` settings, then the standard AWS variables.
"""

from __future__ import annotations

from flyte_celery._storage.errors import Reason, StorageError
from flyte_celery._storage.filesystems import filesystem
from flyte_celery._storage.operations import (
    delete,
    delete_sync,
    errors_named,
    exists,
    exists_sync,
    find,
    find_sync,
    get_bytes,
    get_bytes_sync,
    get_path,
    get_path_sync,
    ls,
    ls_sync,
    open_sync,
    put_bytes,
    put_bytes_sync,
    put_path,
    put_path_sync,
    size,
    size_sync,
)
from flyte_celery._storage.urls import is_local, join, protocol_of

__all__ = [
    "Reason",
    "StorageError",
    "delete",
    "delete_sync",
    "errors_named",
    "exists",
    "exists_sync",
    "filesystem",
    "find",
    "find_sync",
    "get_bytes",
    "get_bytes_sync",
    "get_path",
    "get_path_sync",
    "is_local",
    "join",
    "ls",
    "ls_sync",
    "open_sync",
    "protocol_of",
    "put_bytes",
    "put_bytes_sync",
    "put_path",
    "put_path_sync",
    "size",
    "size_sync",
]
