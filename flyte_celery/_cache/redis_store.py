"""A `CacheStore` in Redis, shared by every client and worker of a Celery deployment.

Key families (`<prefix>` defaults to `flyte_celery:`; `<key>` is a `cache_key`):

    <prefix>cache:{<key>}       string, the cached value; TTL `entry_ttl_s` when given, else none
    <prefix>cache-lock:{<key>}  string, the owner of the serialize reservation; TTL the reservation's `ttl_s`
    <prefix>cache-done:{<key>}  pub/sub channel (no storage): a message on every put and release of `<key>`

The `{<key>}` hash tag puts an entry and its lock in one Redis Cluster slot, so the scripts and transactions below
touch one slot; entries do not share a slot with any run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, cast

import redis.asyncio as aioredis

from flyte_celery._cache.sealed import SealedCache
from flyte_celery._config_model import Settings
from flyte_celery._redis_connect import async_client
from flyte_celery._signing import KeyRing

DEFAULT_PREFIX: Final = "flyte_celery:"
CACHE_ENTRY_KEY: Final = "{prefix}cache:{{{key}}}"
CACHE_LOCK_KEY: Final = "{prefix}cache-lock:{{{key}}}"
CACHE_DONE_CHANNEL: Final = "{prefix}cache-done:{{{key}}}"
# A crashed owner publishes nothing: waiters re-check the lock this often so its expiry wakes them.
LOCK_POLL_INTERVAL_S: Final = 0.5

# KEYS[1] lock; ARGV owner, ttl ms. Take a free lock, or refresh one the owner already holds.
_RESERVE_LUA: Final = """
local holder = redis.call('GET', KEYS[1])
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
# KEYS[1] lock; ARGV owner, done channel. Delete only the owner's lock, then wake the waiters.
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', ARGV[2], 'released')
    return 1
end
return 0
"""


class RedisCacheStore:
    """Cache entries and serialize reservations in Redis.

    The client is created on first use and bound to that event loop (redis.asyncio connections belong to one
    loop): a caller on another loop must create its own store, e.g. one store per loop or per thread. Using a
    store from a second loop raises RuntimeError rather than failing deep inside redis-py.

    Args:
        url: Redis URL, e.g. `redis://localhost:6379/0`.
        prefix: Prepended to every key and channel.
        entry_ttl_s: Expiry of cached values in seconds; None keeps them until evicted or deleted.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, entry_ttl_s: int | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.entry_ttl_s = entry_ttl_s
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under `key`, or None."""
        return cast("bytes | None", await self._redis().get(self._entry(key)))

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` (last write wins) and wake the waiters."""
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.set(self._entry(key), value, ex=self.entry_ttl_s)
            pipe.publish(self._channel(key), "put")
            await pipe.execute()

    async def reserve(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take or refresh `owner`'s reservation of `key`; False if another owner holds an unexpired one."""
        ttl_ms = max(1, round(ttl_s * 1000))
        taken = await self._redis().eval(_RESERVE_LUA, 1, self._lock(key), owner, ttl_ms)
        return bool(taken)

    async def release(self, key: str, owner: str) -> None:
        """Drop `owner`'s reservation of `key`, if it holds it, and wake the waiters."""
        await self._redis().eval(_RELEASE_LUA, 1, self._lock(key), owner, self._channel(key))

    async def wait_for(self, key: str, timeout_s: float, seen: bytes | None = None) -> bytes | None:
        """Wait for a value other than `seen`, or the reservation's end (on a put or release notification, and
        re-checking the lock every `LOCK_POLL_INTERVAL_S`)."""
        client = self._redis()
        deadline = time.monotonic() + timeout_s
        pubsub = client.pubsub()
        try:
            # Subscribe before reading, so a put between the read and the wait still wakes us.
            await pubsub.subscribe(self._channel(key))
            while True:
                async with client.pipeline(transaction=True) as pipe:
                    # Lock first: a value put before the release is then always visible to the GET.
                    pipe.exists(self._lock(key))
                    pipe.get(self._entry(key))
                    locked, value = await pipe.execute()
                if value is not None and value != seen:
                    return cast(bytes, value)
                if not locked:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, LOCK_POLL_INTERVAL_S))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close the client and its connections (on the loop that used them)."""
        if self._client is not None:
            await self._redis().aclose()
            self._client = None
            self._loop = None

    def _redis(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        if self._client is None:
            self._client = async_client(self.url)
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "RedisCacheStore is bound to the event loop it was first used on; create one store per loop"
            )
        return self._client

    def _entry(self, key: str) -> str:
        return CACHE_ENTRY_KEY.format(prefix=self.prefix, key=key)

    def _lock(self, key: str) -> str:
        return CACHE_LOCK_KEY.format(prefix=self.prefix, key=key)

    def _channel(self, key: str) -> str:
        return CACHE_DONE_CHANNEL.format(prefix=self.prefix, key=key)

    def __repr__(self) -> str:
        return f"RedisCacheStore(prefix={self.prefix!r})"  # the URL may carry a password


def redis_cache(settings: Settings, keys: KeyRing) -> SealedCache:
    """The fleet's cache: sealed entries in the configured Redis, bounded by the `cache:` settings."""
    store = RedisCacheStore(
        settings.redis_url_resolved(), prefix=settings.redis.key_prefix, entry_ttl_s=settings.cache.max_age_s
    )
    return SealedCache(store, keys, max_entry_bytes=settings.cache.max_entry_bytes)
