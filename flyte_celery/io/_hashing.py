"""Cache keys of files and data frames: a precomputed string, or a `HashMethod` fed the data as it goes by."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any, Protocol, runtime_checkable

CHUNK_BYTES = 8 * 1024 * 1024


@runtime_checkable
class HashMethod(Protocol):
    """Something that digests data piece by piece: `update(chunk)` for each piece, then `result()`."""

    def update(self, data: Any, /) -> None: ...

    def result(self) -> str: ...


class HashFunction:
    """A `HashMethod` made from a function of the data, e.g. of a whole data frame.

    `update(data)` computes `fn(data)`; `result()` returns the last value. Fed a file, it sees the file in chunks, so
    use it for values that arrive whole (data frames) and an accumulating method for files.

    Example:
        >>> HashFunction.from_fn(lambda df: str(pd.util.hash_pandas_object(df).sum()))
    """

    def __init__(self, fn: Callable[[Any], str]) -> None:
        self._fn = fn
        self._value: str | None = None

    def update(self, data: Any, /) -> None:
        self._value = self._fn(data)

    def result(self) -> str:
        if self._value is None:
            raise ValueError("HashFunction.result() before any update()")
        return self._value

    @classmethod
    def from_fn(cls, fn: Callable[[Any], str]) -> HashFunction:
        """A `HashFunction` computing `fn(data)`."""
        return cls(fn)


def split_hash_method(hash_method: str | HashMethod | None) -> tuple[str | None, HashMethod | None]:
    """A precomputed cache key, or a method to compute one; a string is the key itself."""
    if hash_method is None or isinstance(hash_method, str):
        return hash_method, None
    if isinstance(hash_method, HashMethod):
        return None, hash_method
    raise TypeError(f"hash_method must be a str or a HashMethod (update/result), not {type(hash_method).__name__}")


def hash_local_file(path: str, method: HashMethod) -> str:
    """Feed the file at `path` to `method` in chunks and return its result."""
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            method.update(memoryview(chunk))
    return method.result()


class HashingWriter:
    """A writable file that feeds every byte written to a `HashMethod` (text is hashed as UTF-8)."""

    def __init__(self, raw: IO[Any], method: HashMethod) -> None:
        self._raw = raw
        self._method = method

    def write(self, data: Any) -> int:
        self._method.update(memoryview(data.encode("utf-8") if isinstance(data, str) else data))
        return int(self._raw.write(data))

    def result(self) -> str:
        return self._method.result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
