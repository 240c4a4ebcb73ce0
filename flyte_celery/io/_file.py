"""`File`: a reference to one file or object, on this machine or in object storage (Flyte's `flyte.io.File`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import PurePosixPath
from typing import IO, Any, Generic, Optional, TypeVar, Union, cast

from pydantic import PrivateAttr

from flyte_celery import _storage as storage
from flyte_celery.io._async_file import AsyncFile
from flyte_celery.io._hashing import HashingWriter, HashMethod, hash_local_file, split_hash_method
from flyte_celery.io._paths import absolute, local_target, named_path, new_path, raw_data_is_local_in_task
from flyte_celery.io._reference import PathReference

T = TypeVar("T")
WRITE_FLAGS = frozenset("wax+")


class File(PathReference, Generic[T]):
    """A file by reference: tasks pass its path, never its bytes; reading and writing stream.

    `File[T]` documents the format (`File[pd.DataFrame]`) and is `File` itself. Every method has an async form and a
    blocking `_sync` twin.

    Example:
        ```python
        @env.task
        async def write() -> File:
            f = File.new_remote("greeting.txt")
            async with f.open("wb") as fh:
                await fh.write(b"hello")
            return f

        @env.task
        def read(f: File) -> str:
            with f.open_sync("rb") as fh:
                return fh.read().decode()
        ```

    Attributes:
        path: Where the file is: a local path or a URL (`s3://bucket/key`).
        name: Its name; defaults to the last part of `path`.
        format: A free-form format label (e.g. "csv").
        hash: A cache key for the content; when set, task caches key on it instead of on `path`.
    """

    _hash_method: Optional[HashMethod] = PrivateAttr(default=None)

    def __getstate__(self) -> dict[Any, Any]:
        # A hash method belongs to the writing process (and may not pickle); its result is in `hash` by then.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_hash_method": None}
        return state

    @classmethod
    def new_remote(cls, file_name: Optional[str] = None, hash_method: Union[str, HashMethod, None] = None) -> File[T]:
        """A new file under the raw data path (the running task's, else the configured one), to write with `open`.

        Args:
            file_name: The file's name; a random one if not given.
            hash_method: A precomputed cache key (str), or a `HashMethod` fed every byte written through `open`.
        """
        key, method = split_hash_method(hash_method)
        file = cls(path=new_path(file_name), hash=key)
        file._hash_method = method
        return file

    @classmethod
    def named_remote(cls, name: str) -> File[T]:
        """A file at `<run_base_dir>/<action>/<name>`: the same path on every attempt of the running action.

        Raises:
            ValueError: Outside a task, or if `name` holds a path separator.
        """
        return cls(path=named_path(name))

    @classmethod
    def from_existing_remote(cls, remote_path: str, file_cache_key: Optional[str] = None) -> File[T]:
        """A reference to a file that already exists (nothing is copied); `file_cache_key` sets `hash`."""
        return cls(path=remote_path, hash=file_cache_key)

    @classmethod
    def from_local_sync(
        cls,
        local_path: Union[str, os.PathLike[str]],
        remote_destination: Optional[str] = None,
        hash_method: Union[str, HashMethod, None] = None,
    ) -> File[T]:
        """Upload a local file: to `remote_destination`, else to a new path under the raw data path.

        Inside a task whose raw data path is local, with no destination, the file stays where it is (no copy).

        Args:
            local_path: The file to upload.
            remote_destination: Where to put it.
            hash_method: A precomputed cache key (str), or a `HashMethod` fed the file's bytes.

        Raises:
            ValueError: If `local_path` is not a file.
            StorageError: If the upload fails.
        """
        source = os.path.abspath(local_path)
        if not os.path.isfile(source):
            raise ValueError(f"File not found: {local_path}")
        key, method = split_hash_method(hash_method)
        if method is not None:
            key = hash_local_file(source, method)
        name = os.path.basename(source)
        if remote_destination is None and raw_data_is_local_in_task():
            return cls(path=source, name=name, hash=key)
        target = absolute(remote_destination) if remote_destination else new_path(name)
        storage.put_path_sync(source, target)
        return cls(path=target, name=name, hash=key)

    @classmethod
    async def from_local(
        cls,
        local_path: Union[str, os.PathLike[str]],
        remote_destination: Optional[str] = None,
        hash_method: Union[str, HashMethod, None] = None,
    ) -> File[T]:
        """`from_local_sync` without blocking the event loop."""
        return await asyncio.to_thread(cls.from_local_sync, local_path, remote_destination, hash_method)

    def open(
        self,
        mode: str = "rb",
        block_size: Optional[int] = None,
        cache_type: str = "readahead",
        cache_options: Optional[dict[str, Any]] = None,
        compression: Optional[str] = None,
        **kwargs: Any,
    ) -> AbstractAsyncContextManager[AsyncFile]:
        """Open for streaming from async code: `async with f.open("rb") as fh: data = await fh.read()`.

        Args:
            mode: "rb", "wb", "r", "w", ... (text modes take `encoding=`).
            block_size: Bytes per request to object storage.
            cache_type: fsspec's read cache ("readahead", "bytes", "none", ...); remote reads only.
            cache_options: Options of that cache.
            compression: A compression to apply ("gzip", ...), or "infer" from the name.
            **kwargs: Passed to fsspec's `open`.

        Raises:
            StorageError: If the file cannot be opened (missing, unreachable, refused) or its upload fails at close.
        """
        return self._open_async(
            mode, self._open_options(mode, block_size, cache_type, cache_options, compression, kwargs)
        )

    @contextmanager
    def open_sync(
        self,
        mode: str = "rb",
        block_size: Optional[int] = None,
        cache_type: str = "readahead",
        cache_options: Optional[dict[str, Any]] = None,
        compression: Optional[str] = None,
        **kwargs: Any,
    ) -> Iterator[IO[Any]]:
        """Open for streaming as a plain file object: `with f.open_sync("rb") as fh: data = fh.read()`.

        Takes the same arguments as `open`.
        """
        raw = self._open_raw(mode, self._open_options(mode, block_size, cache_type, cache_options, compression, kwargs))
        try:
            yield cast(IO[Any], raw)
        finally:
            self._close(raw, mode)

    async def download(self, local_path: Union[str, os.PathLike[str], None] = None) -> str:
        """Copy the file to `local_path` (into it, when it is a directory; a new temporary one if not given).

        Returns:
            The absolute path of the local copy.
        """
        return await asyncio.to_thread(self.download_sync, local_path)

    def download_sync(self, local_path: Union[str, os.PathLike[str], None] = None) -> str:
        """`download`, blocking."""
        target = local_target(local_path, self.name or PurePosixPath(self.path).name)
        storage.get_path_sync(self.path, target)
        return target

    async def exists(self) -> bool:
        """Whether the file exists."""
        return await storage.exists(self.path)

    def exists_sync(self) -> bool:
        """`exists`, blocking."""
        return storage.exists_sync(self.path)

    @asynccontextmanager
    async def _open_async(self, mode: str, options: dict[str, Any]) -> AsyncIterator[AsyncFile]:
        raw = await asyncio.to_thread(self._open_raw, mode, options)
        try:
            yield AsyncFile(cast(IO[Any], raw))
        finally:
            await asyncio.to_thread(self._close, raw, mode)

    def _open_options(
        self,
        mode: str,
        block_size: Optional[int],
        cache_type: str,
        cache_options: Optional[dict[str, Any]],
        compression: Optional[str],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        options = dict(extra)
        if compression:
            options["compression"] = compression
        if not storage.is_local(self.path):
            if block_size:
                options["block_size"] = block_size
            if cache_type != "none" and "r" in mode:
                options["cache_type"] = cache_type
                options["cache_options"] = cache_options or {}
        return options

    def _open_raw(self, mode: str, options: dict[str, Any]) -> Union[IO[Any], HashingWriter]:
        raw = storage.open_sync(self.path, mode, **options)
        writing = bool(WRITE_FLAGS & set(mode))
        return HashingWriter(raw, self._hash_method) if writing and self._hash_method is not None else raw

    def _close(self, raw: Union[IO[Any], HashingWriter], mode: str) -> None:
        # Closing a file being written to object storage uploads its last part.
        with storage.errors_named(self.path, "write" if WRITE_FLAGS & set(mode) else "close"):
            raw.close()
        if isinstance(raw, HashingWriter):
            self.hash = raw.result()
