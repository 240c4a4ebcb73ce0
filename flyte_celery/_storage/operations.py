"""What the rest of the package does with storage: bytes, paths, listings; each failure a `StorageError`.

Every operation has a blocking form (`*_sync`) and an async one that runs it on a worker thread, so an event loop
never waits on the network. Local paths and `file://` URLs get their parent directories created as needed.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flyte_celery._storage.errors import StorageError, names_missing_bucket, storage_error
from flyte_celery._storage.filesystems import filesystem
from flyte_celery._storage.urls import is_local, protocol_of

if TYPE_CHECKING:
    from flyte_celery._config_model import Settings


@contextmanager
def errors_named(url: str, action: str) -> Iterator[None]:
    """Within the block, any failure becomes a `StorageError` naming `url` and `action`."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(exc, url, action) from exc


def put_bytes_sync(url: str, data: bytes, *, settings: Settings | None = None) -> None:
    """Write `data` to `url`, replacing what was there."""
    with errors_named(url, "write"):
        fs, path = filesystem(url, settings)
        fs.pipe_file(path, data)


def get_bytes_sync(url: str, *, settings: Settings | None = None) -> bytes:
    """The content of the object or file at `url`."""
    with errors_named(url, "read"):
        fs, path = filesystem(url, settings)
        return bytes(fs.cat_file(path))


def exists_sync(url: str, *, settings: Settings | None = None) -> bool:
    """Whether a file, object or directory (a prefix holding objects) exists at `url`.

    Raises:
        StorageError: If the answer is unknown: the endpoint is unreachable, the credentials are refused, or the
            bucket itself does not exist (most likely a misconfiguration, so it is not reported as False).
    """
    with errors_named(url, "check"):
        fs, path = filesystem(url, settings)
        try:
            fs.info(path)
        except FileNotFoundError as exc:
            if names_missing_bucket(exc):
                raise
            return False
        return True


def put_path_sync(local: str | Path, url: str, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """Upload the local file `local` to `url`; with `recursive`, the files under the local directory `local`
    go under `url` at the same relative paths."""
    source = os.path.abspath(local)
    if not (os.path.isdir(source) if recursive else os.path.isfile(source)):
        kind = "directory" if recursive else "file"
        raise StorageError(str(local), "not_found", f"no such local {kind}", f"upload to {url} from")
    with errors_named(url, "upload to"):
        fs, path = filesystem(url, settings)
        if not recursive:
            fs.put_file(source, path)
            return
        if is_local(url):
            os.makedirs(path, exist_ok=True)  # an empty directory is still a directory
        pairs = [
            (os.path.join(folder, name), posixpath.join(path, Path(folder, name).relative_to(source).as_posix()))
            for folder, _, names in os.walk(source)
            for name in names
        ]
        if pairs:
            fs.put([local_file for local_file, _ in pairs], [target for _, target in pairs])


def get_path_sync(url: str, local: str | Path, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """Download the file or object at `url` to the local path `local`; with `recursive`, every file under `url`
    goes under the local directory `local` at the same relative path."""
    target = os.path.abspath(local)
    with errors_named(url, "download"):
        fs, path = filesystem(url, settings)
        if not recursive:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fs.get_file(path, target)
            return
        remote_files = [str(name) for name in fs.find(path)]
        if not remote_files and not fs.exists(path):
            raise FileNotFoundError(path)
        os.makedirs(target, exist_ok=True)
        locals_ = [os.path.join(target, _relative(name, path)) for name in remote_files]
        for local_file in locals_:
            os.makedirs(os.path.dirname(local_file), exist_ok=True)
        if remote_files:
            fs.get(remote_files, locals_)


def delete_sync(url: str, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """Delete the file or object at `url` (with `recursive`, everything under it); deleting nothing is no error."""
    with errors_named(url, "delete"):
        fs, path = filesystem(url, settings)
        try:
            fs.rm(path, recursive=recursive)
        except FileNotFoundError as exc:
            if names_missing_bucket(exc):
                raise


def size_sync(url: str, *, settings: Settings | None = None) -> int:
    """The size in bytes of the file or object at `url`."""
    with errors_named(url, "get the size of"):
        fs, path = filesystem(url, settings)
        return int(fs.size(path))


def ls_sync(url: str, *, settings: Settings | None = None) -> list[str]:
    """The entries directly under `url` (files and directories), sorted, written the way `url` is written
    (URLs with their protocol, plain local paths without)."""
    with errors_named(url, "list"):
        fs, path = filesystem(url, settings)
        return sorted(_spelled_like(url, fs, str(name)) for name in fs.ls(path, detail=False))


def find_sync(url: str, maxdepth: int | None = None, *, settings: Settings | None = None) -> list[str]:
    """Every file under `url` (down to `maxdepth` levels; 1 = directly under it), sorted, spelled like `url`."""
    with errors_named(url, "list"):
        fs, path = filesystem(url, settings)
        return sorted(_spelled_like(url, fs, str(name)) for name in fs.find(path, maxdepth=maxdepth))


def open_sync(url: str, mode: str = "rb", *, settings: Settings | None = None, **options: Any) -> IO[Any]:
    """An open file for `url`, read or written as a stream; `options` go to fsspec (`block_size`, `encoding`, ...).

    Failures to open become `StorageError`s; failures while reading or writing are fsspec's own.
    """
    with errors_named(url, "write" if any(flag in mode for flag in "wax") else "read"):
        fs, path = filesystem(url, settings)
        return fs.open(path, mode, **options)  # type: ignore[no-any-return]


async def put_bytes(url: str, data: bytes, *, settings: Settings | None = None) -> None:
    """`put_bytes_sync` on a worker thread."""
    await asyncio.to_thread(put_bytes_sync, url, data, settings=settings)


async def get_bytes(url: str, *, settings: Settings | None = None) -> bytes:
    """`get_bytes_sync` on a worker thread."""
    return await asyncio.to_thread(get_bytes_sync, url, settings=settings)


async def exists(url: str, *, settings: Settings | None = None) -> bool:
    """`exists_sync` on a worker thread."""
    return await asyncio.to_thread(exists_sync, url, settings=settings)


async def put_path(local: str | Path, url: str, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """`put_path_sync` on a worker thread."""
    await asyncio.to_thread(put_path_sync, local, url, recursive, settings=settings)


async def get_path(url: str, local: str | Path, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """`get_path_sync` on a worker thread."""
    await asyncio.to_thread(get_path_sync, url, local, recursive, settings=settings)


async def delete(url: str, recursive: bool = False, *, settings: Settings | None = None) -> None:
    """`delete_sync` on a worker thread."""
    await asyncio.to_thread(delete_sync, url, recursive, settings=settings)


async def size(url: str, *, settings: Settings | None = None) -> int:
    """`size_sync` on a worker thread."""
    return await asyncio.to_thread(size_sync, url, settings=settings)


async def ls(url: str, *, settings: Settings | None = None) -> list[str]:
    """`ls_sync` on a worker thread."""
    return await asyncio.to_thread(ls_sync, url, settings=settings)


async def find(url: str, maxdepth: int | None = None, *, settings: Settings | None = None) -> list[str]:
    """`find_sync` on a worker thread."""
    return await asyncio.to_thread(find_sync, url, maxdepth, settings=settings)


def _relative(name: str, root: str) -> str:
    relative = posixpath.relpath(name, root.rstrip("/") or "/")
    return posixpath.basename(name) if relative == "." else relative


def _spelled_like(url: str, fs: Any, name: str) -> str:
    if protocol_of(url) == "file" and "://" not in url:
        return name
    return str(fs.unstrip_protocol(name))
