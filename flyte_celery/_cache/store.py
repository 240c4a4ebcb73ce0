"""The contract every cache store implements: opaque bytes by key, plus serialize reservations."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CacheStore(Protocol):
    """Async storage for cached task outputs, shared by every process of a deployment.

    Values are opaque bytes: callers serialize and validate them. Reservations implement `Cache(serialize=True)`:
    the first caller reserves the key and computes, the others `wait_for` its value. A reservation expires after
    its TTL so a crashed owner never blocks the key for good.
    """

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None."""
        ...

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key`; the last write wins."""
        ...

    async def reserve(self, key: str, owner: str, ttl_s: float) -> bool:
        """Atomically take the reservation of `key` for `owner` for `ttl_s` seconds.

        Returns:
            True if `owner` now holds it (re-reserving refreshes the TTL); False if another owner holds an
            unexpired reservation.
        """
        ...

    async def release(self, key: str, owner: str) -> None:
        """Drop `owner`'s reservation of `key`; another owner's reservation is left alone."""
        ...

    async def wait_for(self, key: str, timeout_s: float, seen: bytes | None = None) -> bytes | None:
        """Wait until `key` has a value other than `seen`, its reservation is gone (released or expired), or
        `timeout_s` passes. `seen` is a value the caller already read and could not use (too old, say): waiting for
        another one, not returning it again, keeps the caller from spinning while the holder computes.

        Returns:
            The new value, or None when the reservation ended without one or the wait timed out.
        """
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
