"""An open file for async code: each blocking call (network reads, multipart uploads) runs on a worker thread."""

from __future__ import annotations

import asyncio
from typing import IO, Any


class AsyncFile:
    """The async face of an open file: `await fh.read()`, `await fh.write(data)`, `async for line in fh`.

    Reads stream: `await fh.read(size)` fetches at most `size` bytes (`b""` at the end).
    """

    def __init__(self, raw: IO[Any]) -> None:
        self._raw = raw

    @property
    def raw(self) -> IO[Any]:
        """The underlying blocking file, for libraries that want one (call it from a thread)."""
        return self._raw

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    async def read(self, size: int = -1) -> Any:
        return await asyncio.to_thread(self._raw.read, size)

    async def readline(self, size: int = -1) -> Any:
        # fsspec's buffered files take no size argument.
        if size < 0:
            return await asyncio.to_thread(self._raw.readline)
        return await asyncio.to_thread(self._raw.readline, size)

    async def write(self, data: Any) -> int:
        return int(await asyncio.to_thread(self._raw.write, data))

    async def seek(self, offset: int, whence: int = 0) -> int:
        return int(await asyncio.to_thread(self._raw.seek, offset, whence))

    async def tell(self) -> int:
        return int(self._raw.tell())

    async def flush(self) -> None:
        await asyncio.to_thread(self._raw.flush)

    async def close(self) -> None:
        # Closing a remote file being written uploads its last part: a network call.
        await asyncio.to_thread(self._raw.close)

    def __aiter__(self) -> AsyncFile:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line
