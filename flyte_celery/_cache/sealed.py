"""Cache entries sealed for their key: a store (SQLite or Redis) only ever sees opaque bytes, and what comes back is
used only if a holder of the fleet's key wrote it for exactly that cache key.

An entry is ``seal(written_at | payload, "cache", <cache key>)``: its write time is authenticated too, so an
entry cannot be made younger to pass a `max_age`. An entry that fails its check, is too old, or is not of this
format is a miss (with a warning for the first two), and the fresh result replaces it.
"""

from __future__ import annotations

import struct
import time
from datetime import timedelta
from typing import Final

from flyte_celery._cache.store import CacheStore
from flyte_celery._logging import system_logger
from flyte_celery._signing import Authenticated, KeyRing
from flyte_celery.errors import UnsafePayloadError

CACHE_PURPOSE: Final = "cache"
WRITTEN_AT: Final = struct.Struct("!d")


class SealedCache:
    """A `CacheStore` whose values are sealed for their key.

    Args:
        store: Where the sealed bytes live.
        keys: Seals what this process writes; verifies what it reads.
        max_entry_bytes: Results whose serialized size is above this are not cached (with a warning); None: no cap.
    """

    def __init__(self, store: CacheStore, keys: KeyRing, *, max_entry_bytes: int | None = None) -> None:
        self.store = store
        self.keys = keys
        self.max_entry_bytes = max_entry_bytes

    async def get(self, key: str, max_age: timedelta | None = None) -> Authenticated | None:
        """The payload stored under `key`, if authentic and (with `max_age`) young enough; else None."""
        data = await self.store.get(key)
        return None if data is None else self._open(key, data, max_age)

    async def put(self, key: str, payload: bytes) -> bool:
        """Seal and store `payload` under `key`; False (storing nothing) when it is over `max_entry_bytes`."""
        if self.max_entry_bytes is not None and len(payload) > self.max_entry_bytes:
            system_logger.warning(
                "not caching %s: its %d bytes are over the cache's entry size cap of %d bytes",
                key,
                len(payload),
                self.max_entry_bytes,
            )
            return False
        sealed = self.keys.seal(WRITTEN_AT.pack(time.time()) + payload, CACHE_PURPOSE, key)
        await self.store.put(key, sealed)
        return True

    async def reserve(self, key: str, owner: str, ttl_s: float) -> bool:
        return await self.store.reserve(key, owner, ttl_s)

    async def release(self, key: str, owner: str) -> None:
        await self.store.release(key, owner)

    async def wait_for(self, key: str, timeout_s: float, max_age: timedelta | None = None) -> Authenticated | None:
        """Wait for the holder of `key`'s reservation to put a usable value (see `CacheStore.wait_for`); None when
        the reservation ends without one, or after `timeout_s`. An entry it cannot use is waited past, not reread."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while True:
            data = await self.store.wait_for(key, max(deadline - time.monotonic(), 0.0), seen)
            if data is None:
                return None
            payload = self._open(key, data, max_age)
            if payload is not None or time.monotonic() >= deadline:
                return payload
            seen = data

    async def close(self) -> None:
        await self.store.close()

    def _open(self, key: str, data: bytes, max_age: timedelta | None) -> Authenticated | None:
        try:
            entry = self.keys.open(data, CACHE_PURPOSE, key, what=f"cache entry {key}")
        except UnsafePayloadError as exc:
            system_logger.warning("ignoring cache entry %s: %s", key, exc)
            return None
        if len(entry) < WRITTEN_AT.size:
            return None
        (written_at,) = WRITTEN_AT.unpack_from(entry)
        if max_age is not None and time.time() - written_at > max_age.total_seconds():
            return None
        return Authenticated(entry[WRITTEN_AT.size :])

    def __repr__(self) -> str:
        return f"SealedCache({self.store!r})"
