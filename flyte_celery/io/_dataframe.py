"""`DataFrame`: a table by reference, stored as parquet, opened as pandas or pyarrow (`flyte.io.DataFrame`).

pandas and pyarrow are the optional extra `flyte-celery[dataframe]`; without them the class still imports, and
reading or writing raises an ImportError naming the extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Optional, TypeVar, Union

from pydantic import BaseModel, PrivateAttr

from flyte_celery.io import _frames as frames
from flyte_celery.io._hashing import HashMethod, split_hash_method
from flyte_celery.io._paths import absolute, new_path

DF = TypeVar("DF")
PARQUET = frames.PARQUET
CSV = frames.CSV
GENERIC_FORMAT = ""


class DataFrame(BaseModel):
    """A data frame by reference: a `uri` of stored parquet (or csv), or a frame held in memory (`wrap_df`).

    Example:
        ```python
        @env.task
        async def make() -> DataFrame:
            return await DataFrame.from_local(pd.DataFrame({"a": [1, 2]}))

        @env.task
        async def total(df: DataFrame) -> int:
            frame = await df.open(pd.DataFrame).all()
            return int(frame["a"].sum())
        ```

    Attributes:
        uri: Where the table is stored: a directory holding `00000` (parquet) or `data.csv`, or one file.
        format: "parquet", "csv", or "" (parquet).
        hash: A cache key for the content; when set, task caches key on it.
    """

    uri: Optional[str] = None
    format: str = GENERIC_FORMAT
    hash: Optional[str] = None

    _raw_df: Any = PrivateAttr(default=None)
    _dataframe_type: Optional[type] = PrivateAttr(default=None)

    @classmethod
    def wrap_df(cls, val: Any = None, uri: Optional[str] = None) -> DataFrame:
        """Wrap an in-memory frame (pandas.DataFrame or pyarrow.Table); it travels with the value, unwritten.

        Use `from_local` to store it, so that only its `uri` travels.
        """
        instance = cls(uri=uri)
        instance._raw_df = val
        return instance

    @classmethod
    def from_df(cls, val: Any = None, uri: Optional[str] = None) -> DataFrame:
        """The older name of `wrap_df`."""
        return cls.wrap_df(val, uri)

    @classmethod
    def from_local_sync(
        cls,
        df: Any,
        columns: Optional[dict[str, type]] = None,
        remote_destination: Optional[str] = None,
        hash_method: Union[str, HashMethod, None] = None,
    ) -> DataFrame:
        """Store `df` as parquet: under `remote_destination`, else under a new path of the raw data path.

        Args:
            df: A pandas.DataFrame or pyarrow.Table.
            columns: Accepted for Flyte compatibility (column metadata); the stored schema is the frame's own.
            remote_destination: The directory to write into.
            hash_method: A precomputed cache key (str), or a `HashMethod` given the whole frame (`HashFunction`).

        Raises:
            ImportError: If pandas/pyarrow are not installed (`pip install 'flyte-celery[dataframe]'`).
            StorageError: If the upload fails.
        """
        key, method = split_hash_method(hash_method)
        if method is not None:
            method.update(df)
            key = method.result()
        uri = absolute(remote_destination) if remote_destination else new_path()
        frames.write(df, uri)
        return cls(uri=uri, format=PARQUET, hash=key)

    @classmethod
    async def from_local(
        cls,
        df: Any,
        columns: Optional[dict[str, type]] = None,
        remote_destination: Optional[str] = None,
        hash_method: Union[str, HashMethod, None] = None,
    ) -> DataFrame:
        """`from_local_sync` without blocking the event loop."""
        return await asyncio.to_thread(cls.from_local_sync, df, columns, remote_destination, hash_method)

    @classmethod
    def from_existing_remote(cls, remote_path: str, format: Optional[str] = None, **kwargs: Any) -> DataFrame:
        """A reference to a table that is already stored (nothing is copied)."""
        return cls(uri=remote_path, format=format or GENERIC_FORMAT, **kwargs)

    @property
    def val(self) -> Any:
        """The in-memory frame given to `wrap_df`, if any."""
        return self._raw_df

    def open(self, dataframe_type: type[DF]) -> DataFrame:
        """Choose the type `all()` and `iter()` return (pandas.DataFrame or pyarrow.Table); returns this object."""
        self._dataframe_type = dataframe_type
        return self

    async def all(self) -> Any:
        """The whole table, as the type chosen with `open`.

        Raises:
            ValueError: If `open` was not called, or there is neither a frame nor a `uri`.
            StorageError: If the table cannot be read.
        """
        return await asyncio.to_thread(self.all_sync)

    def all_sync(self) -> Any:
        """`all`, blocking."""
        target = self._target()
        if self._raw_df is not None:
            return frames.convert(self._raw_df, target)
        return frames.convert(frames.read(self._stored_uri(), self.format), target)

    def iter(self) -> Chunks:
        """The table in pieces, as the type chosen with `open`: `async for chunk in df.open(pd.DataFrame).iter()`
        (`await df.iter()` gives the same iterator, as in Flyte)."""
        target = self._target()
        if self._raw_df is not None:
            return Chunks(iter([frames.convert(self._raw_df, target)]))
        return Chunks(frames.convert(piece, target) for piece in frames.batches(self._stored_uri(), self.format))

    def __flyte_hash__(self) -> str:
        # The cache key of this input: the given hash, else the content of an in-memory frame, else where it is.
        if self.hash:
            return self.hash
        if self._raw_df is not None:
            return frames.digest(self._raw_df)
        return f"{self.format}:{self.uri}"

    def _target(self) -> type:
        if self._dataframe_type is None:
            raise ValueError("no dataframe type chosen: call open(pandas.DataFrame) (or pyarrow.Table) first")
        return self._dataframe_type

    def _stored_uri(self) -> str:
        if not self.uri:
            raise ValueError("this DataFrame holds no frame and no uri")
        return self.uri


class Chunks:
    """An async iterator over a blocking one, each step on a worker thread; awaiting it returns itself."""

    def __init__(self, pieces: Iterator[Any]) -> None:
        self._pieces = pieces
        self._done = object()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        piece = await asyncio.to_thread(next, self._pieces, self._done)
        if piece is self._done:
            raise StopAsyncIteration
        return piece

    def __await__(self) -> Generator[Any, None, Chunks]:
        return self._identity().__await__()

    async def _identity(self) -> Chunks:
        return self
