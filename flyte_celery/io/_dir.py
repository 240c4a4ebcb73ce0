"""`Dir`: a reference to a directory of files, on this machine or under an object-storage prefix (`flyte.io.Dir`)."""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import PurePosixPath
from typing import Any, Generic, Optional, TypeVar, Union

from flyte_celery import _storage as storage
from flyte_celery.io._file import File
from flyte_celery.io._paths import absolute, local_target, new_path, raw_data_is_local_in_task
from flyte_celery.io._reference import PathReference

T = TypeVar("T")
# Flyte's path for "no directory was produced" (`Dir.empty()`), kept so such values mean the same thing.
EMPTY_DIR_PATH = "::flyte-empty-dir::"


class Dir(PathReference, Generic[T]):
    """A directory by reference: tasks pass its path; its files are listed, read or downloaded on demand.

    `Dir[T]` documents the files' format and is `Dir` itself. Every method has an async form and a blocking `_sync`
    twin (`walk_sync` for `walk`).

    Example:
        ```python
        @env.task
        async def count_lines(d: Dir) -> int:
            lines = 0
            async for f in d.walk():
                async with f.open("rb") as fh:
                    lines += (await fh.read()).count(b"\\n")
            return lines
        ```

    Attributes:
        path: Where the directory is: a local path or a URL prefix (`s3://bucket/prefix`).
        name: Its name; defaults to the last part of `path`.
        format: A free-form format label of its files.
        hash: A cache key for the content; when set, task caches key on it instead of on `path`.
    """

    @classmethod
    def new_remote(cls, dir_name: Optional[str] = None, hash: Optional[str] = None) -> Dir[T]:
        """A new directory under the raw data path, to write files into (e.g. `File(path=join(d.path, "a.txt"))`)."""
        return cls(path=new_path(dir_name), hash=hash)

    @classmethod
    def from_existing_remote(cls, remote_path: str, dir_cache_key: Optional[str] = None) -> Dir[T]:
        """A reference to a directory that already exists (nothing is copied); `dir_cache_key` sets `hash`."""
        return cls(path=remote_path, hash=dir_cache_key)

    @classmethod
    def empty(cls) -> Dir[T]:
        """A `Dir` meaning "no directory was produced" (see `is_empty`)."""
        return cls(path=EMPTY_DIR_PATH, name="")

    @property
    def is_empty(self) -> bool:
        """True for `Dir.empty()` / `EmptyDir()`."""
        return self.path == EMPTY_DIR_PATH

    @classmethod
    def from_local_sync(
        cls,
        local_path: Union[str, os.PathLike[str]],
        remote_destination: Optional[str] = None,
        dir_cache_key: Optional[str] = None,
        batch_size: Optional[int] = None,
    ) -> Dir[T]:
        """Upload a local directory with everything under it: to `remote_destination`, else to a new path under
        the raw data path. Inside a task whose raw data path is local, with no destination, it stays where it is.

        Args:
            local_path: The directory to upload.
            remote_destination: Where to put it.
            dir_cache_key: A precomputed cache key (sets `hash`).
            batch_size: Accepted for Flyte compatibility; s3fs sets its own upload concurrency.

        Raises:
            ValueError: If `local_path` is not a directory.
            StorageError: If the upload fails.
        """
        source = os.path.abspath(local_path)
        if not os.path.isdir(source):
            raise ValueError(f"Directory not found: {local_path}")
        name = os.path.basename(source)
        if remote_destination is None and raw_data_is_local_in_task():
            return cls(path=source, name=name, hash=dir_cache_key)
        target = absolute(remote_destination) if remote_destination else new_path(name)
        storage.put_path_sync(source, target, recursive=True)
        return cls(path=target, name=name, hash=dir_cache_key)

    @classmethod
    async def from_local(
        cls,
        local_path: Union[str, os.PathLike[str]],
        remote_destination: Optional[str] = None,
        dir_cache_key: Optional[str] = None,
        batch_size: Optional[int] = None,
    ) -> Dir[T]:
        """`from_local_sync` without blocking the event loop."""
        return await asyncio.to_thread(cls.from_local_sync, local_path, remote_destination, dir_cache_key, batch_size)

    async def walk(self, recursive: bool = True, max_depth: Optional[int] = None) -> AsyncIterator[File[T]]:
        """The files under the directory, as `File`s, in path order.

        Args:
            recursive: False lists only the files directly in the directory.
            max_depth: How many levels to descend (1 = directly in it); all when None.
        """
        for path in await storage.find(self.path, _depth(recursive, max_depth)):
            yield File(path=path)

    def walk_sync(
        self, recursive: bool = True, file_pattern: str = "*", max_depth: Optional[int] = None
    ) -> Iterator[File[T]]:
        """`walk`, blocking; `file_pattern` keeps the files whose name matches it (e.g. "*.csv")."""
        for path in storage.find_sync(self.path, _depth(recursive, max_depth)):
            if fnmatch.fnmatch(PurePosixPath(path).name, file_pattern):
                yield File(path=path)

    async def list_files(self) -> list[File[T]]:
        """The files directly in the directory (not in its subdirectories)."""
        return [file async for file in self.walk(recursive=False)]

    def list_files_sync(self) -> list[File[T]]:
        """`list_files`, blocking."""
        return list(self.walk_sync(recursive=False))

    async def get_file(self, file_name: str) -> Optional[File[T]]:
        """The file `file_name` in the directory, or None if there is none."""
        file: File[T] = File(path=storage.join(self.path, file_name))
        return file if await file.exists() else None

    def get_file_sync(self, file_name: str) -> Optional[File[T]]:
        """`get_file`, blocking."""
        file: File[T] = File(path=storage.join(self.path, file_name))
        return file if file.exists_sync() else None

    async def download(self, local_path: Union[str, os.PathLike[str], None] = None) -> str:
        """Copy the files under the directory into `local_path` (a new temporary directory if not given).

        A local directory asked for without a destination is not copied: its own path is returned.

        Returns:
            The absolute path of the local directory.
        """
        return await asyncio.to_thread(self.download_sync, local_path)

    def download_sync(self, local_path: Union[str, os.PathLike[str], None] = None) -> str:
        """`download`, blocking."""
        if local_path is None and storage.is_local(self.path):
            return self.path
        if local_path is None:
            target = local_target(None, self.name or PurePosixPath(self.path).name)
        else:
            target = os.path.abspath(local_path)
        storage.get_path_sync(self.path, target, recursive=True)
        return target

    async def exists(self) -> bool:
        """Whether the directory exists (for object storage: whether any object is under the prefix)."""
        return await storage.exists(self.path)

    def exists_sync(self) -> bool:
        """`exists`, blocking."""
        return storage.exists_sync(self.path)


class EmptyDir(Dir[Any]):
    """`Dir.empty()` as a class: a value meaning "no directory was produced"; check `Dir.is_empty`."""

    def __init__(self, **data: Any) -> None:
        super().__init__(**{**data, "path": EMPTY_DIR_PATH, "name": data.get("name", "")})


def _depth(recursive: bool, max_depth: Optional[int]) -> Optional[int]:
    return 1 if not recursive else max_depth
